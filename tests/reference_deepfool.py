"""Plain float64 NumPy DeepFool, one point at a time, written from the algorithm's statement
(slides / Moosavi-Dezfooli et al. 2016), to check the native batched implementation."""
from __future__ import annotations

import numpy as np

FLIPPED, MAX_ITER, ZERO_GRADIENT, NON_FINITE = 0, 1, 2, 3


def label_of(z):
    return int(z[0] > 0) if len(z) == 1 else int(np.argmax(z))


def deepfool_point(logits, jacobian, x0, *, overshoot=0.02, max_iter=50, linf=False,
                   candidates=None, foolbox=False, clip=None):
    """logits(x) -> (K,), jacobian(x) -> (K, D) for a flat point x (D,).

    Returns (perturbation (D,), iterations, status)."""
    over = 1.0 + overshoot
    x0 = np.asarray(x0, dtype=np.float64)
    z0 = logits(x0)
    K = len(z0)
    if not np.isfinite(z0).all():
        return np.full_like(x0, np.nan), 0, NON_FINITE
    label0 = label_of(z0)
    if K == 1:
        cands = [1 - label0]
    else:
        others = sorted((k for k in range(K) if k != label0), key=lambda k: (-z0[k], k))
        cands = others[: (K - 1 if candidates is None else candidates)]
    eps_d, eps_n = (1e-4, 1e-8) if foolbox else (0.0, 0.0)

    def boxed(x):
        return x if clip is None else np.clip(x, clip[0], clip[1])

    r = np.zeros_like(x0)
    for it in range(max_iter + 1):
        p = boxed(x0 + over * r) - x0 if clip is not None else over * r
        if it > 0 and label_of(logits(x0 + p)) != label0:
            return p, it, FLIPPED
        if it == max_iter:
            return p, it, MAX_ITER
        x = boxed(x0 + (over if foolbox else 1.0) * r)
        z, J = logits(x), jacobian(x)
        best = None
        for k in cands:
            if K == 1:
                sign = -1.0 if label0 == 1 else 1.0
                w, m = sign * J[0], sign * z[0]
            else:
                w, m = J[k] - J[label0], z[k] - z[label0]
            nrm = np.abs(w).sum() if linf else np.sqrt(w @ w)
            dist = abs(m) / (nrm + eps_n)
            if best is None or dist < best[0]:
                best = (dist, nrm, w)
        dist, nrm, w = best
        if nrm == 0:
            return p, it, ZERO_GRADIENT
        if not np.isfinite(dist):
            return np.full_like(x0, np.nan), it, NON_FINITE
        r = r + ((dist + eps_d) * np.sign(w) if linf else (dist + eps_d) / (nrm + eps_n) * w)
    raise AssertionError("unreachable")
