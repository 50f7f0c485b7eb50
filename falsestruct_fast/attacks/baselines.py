"""Baseline attacks from the slides: a random direction and the fast-gradient direction, each
scaled by the smallest factor alpha that flips the label (found by doubling, then bisection).

Every evaluation is one native forward pass over all S x N points, so the search costs about
log2(range) + log2(1 / rtol) forward passes in total.
"""
from __future__ import annotations

import numpy as np

from .. import _validate as V
from .. import engines
from ..network import (Network, _threads, check_net, data_arrays, flatten, host_arrays, input_grad,
                       logits_of_rows)
from .deepfool import norm_order
from .result import AttackResult, AttackStatus, norms


def _labels(z: np.ndarray) -> np.ndarray:
    """(S, N) labels from logits (S, N, K): [z > 0] for one logit, else argmax."""
    return (z[..., 0] > 0).astype(np.int64) if z.shape[-1] == 1 else np.argmax(z, axis=-1)


def smallest_flipping_scale(net: Network, params, X, directions: np.ndarray, *, rtol: float = 1e-3,
                            max_doublings: int = 48, threads: int | None = None,
                            engine: str = "native"):
    """Smallest alpha > 0 (to relative tolerance rtol) with label(x + alpha v) != label(x).

    X (N, D) or (S, N, D) flattened points of the params' dtype (NaN allowed: status
    NON_FINITE); directions (S, N, D) float64.
    The search doubles alpha from 1e-6 * max(||x||_2, 1) until the label flips (at most
    max_doublings times, i.e. up to ~3e8 times that start; a ray that never crosses the decision
    boundary, e.g. a random direction pointing away from it, ends with status MAX_ITER), then
    bisects between the last non-flipping and the first flipping
    scale, so it finds the first crossing along the ray at that resolution.

    Returns (perturbation (S, N, D) in the params' dtype = (alpha * v) rounded, whose sum with
    x is the evaluated flipping point; status (S, N) int32; evaluations (S, N) int32).
    """
    params, arrays, _ = host_arrays(engine, params, X=X, directions=directions)
    X, directions = arrays["X"], arrays["directions"]
    flat = flatten(net, params)
    eng = engines.get(engine)
    if eng.flipping_scale is not None:  # the engine runs this search as one kernel
        found = eng.flipping_scale(net, flat, X, directions, rtol, max_doublings, _threads(threads))
        if found is not None:  # (None: not for this network)
            return found
    dtype = flat.dtype
    Xs = np.broadcast_to(X, directions.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        z0 = logits_of_rows(net, flat, X, threads, engine)
    label0 = _labels(z0)
    status = np.full(label0.shape, AttackStatus.MAX_ITER, dtype=np.int32)
    evals = np.zeros(label0.shape, dtype=np.int32)
    d_norm = norms(directions, 2)
    finite = np.isfinite(Xs).all(axis=-1) & np.isfinite(directions).all(axis=-1)
    finite &= np.isfinite(z0).all(axis=-1)
    status[~finite] = AttackStatus.NON_FINITE
    status[finite & (d_norm == 0)] = AttackStatus.ZERO_GRADIENT
    searching = status == AttackStatus.MAX_ITER
    dirs = np.where(searching[..., None], directions, 0.0)

    def flips(alpha):
        # Scales past the float range (huge x) give inf steps: such flips become NON_FINITE
        # in AttackResult.build.
        with np.errstate(invalid="ignore", over="ignore"):
            r = (alpha[..., None] * dirs).astype(dtype)
            z = logits_of_rows(net, flat, np.ascontiguousarray(Xs + r), threads, engine)
        return _labels(z) != label0, r

    x_scale = np.maximum(norms(np.asarray(Xs, np.float64), 2), 1.0)
    lo = np.zeros(label0.shape)
    hi = np.where(searching, 1e-6 * x_scale, 0.0)
    found = np.zeros(label0.shape, dtype=bool)
    for _ in range(max_doublings):
        todo = searching & ~found
        if not todo.any():
            break
        flipped, _ = flips(hi)
        evals += todo
        newly = todo & flipped
        found |= newly
        lo = np.where(todo & ~flipped, hi, lo)
        with np.errstate(over="ignore"):  # a scale doubling past the float range: inf, no flip
            hi = np.where(todo & ~flipped, 2 * hi, hi)
    # Bisection on [lo, hi]: hi always flips, lo never does (or is 0; then hi halves until a
    # scale that does not flip is found, at most ~1100 times down to underflow, capped here).
    for _ in range(200):
        todo = found & (hi - lo > rtol * hi)
        if not todo.any():
            break
        mid = 0.5 * lo + 0.5 * hi  # lo + hi may overflow
        flipped, _ = flips(np.where(todo, mid, hi))
        evals += todo
        hi = np.where(todo & flipped, mid, hi)
        lo = np.where(todo & ~flipped, mid, lo)
    status[found] = AttackStatus.FLIPPED
    flipped, r = flips(np.where(found, hi, 0.0))
    # A float32 rounding of alpha * v could in principle land back on the boundary; such a
    # point is reported as not flipped rather than as a success.
    status[found & ~flipped] = AttackStatus.MAX_ITER
    r[~finite] = np.nan
    return r, status, evals


def _result(net, X, r, status, evals, norm_ord, method, on_device=False):
    S, N = status.shape
    pert = r.reshape((S, N) + tuple(net.input_shape))
    result = AttackResult.build(X, pert, evals, status, norm_ord, method)
    return result.to_device() if on_device else result


def random_attack(net: Network, params, X, norm=2, *, seed: int = 0, rtol: float = 1e-3,
                  threads: int | None = None, engine: str = "native") -> AttackResult:
    """Random-direction baseline: v ~ N(0, I) per network and point, r = alpha* v with the
    smallest alpha* that flips the label.

    Parameters
    ----------
    net, params, X : as for :func:`deepfool` (X (N, *input_shape) or (S, N, *input_shape))
    norm : 2 or inf — only the norm reported (the direction is Gaussian either way)
    seed : int — seeds numpy's generator for the directions
    rtol : float — relative resolution of alpha*
    engine : "native" (default), "numba" or "cuda" — runs the forward passes (numba: the whole
        search; cuda: the search on the host, the forward passes on the GPU; CuPy params or X
        give a result of CuPy arrays)

    Returns
    -------
    AttackResult (method "random"); iterations = forward evaluations used for the point.
    """
    check_net(net)
    params, arrays, on_device = host_arrays(engine, params, X=X)
    flat = flatten(net, params)
    norm_ord = norm_order(norm)
    rtol = _rtol(rtol)
    Xf, _ = data_arrays(net, flat.shape[0], flat.dtype, arrays["X"], check_finite=False)
    S, N = flat.shape[0], Xf.shape[-2]
    rng = np.random.default_rng(V.integer(seed, "seed", 0))
    v = rng.standard_normal((S, N, net.n_inputs))
    r, status, evals = smallest_flipping_scale(net, params, Xf, v, rtol=rtol, threads=threads,
                                               engine=engine)
    return _result(net, Xf, r, status, evals, norm_ord, "random", on_device)


def fast_gradient_attack(net: Network, params, X, norm=2, *, rtol: float = 1e-3,
                         threads: int | None = None, engine: str = "native") -> AttackResult:
    """Fast-gradient baseline: v = gradient of the cross-entropy at the network's own label
    (for norm=inf its sign, as in FGSM), r = alpha* v with the smallest alpha* that flips it.

    The slides write the direction as the gradient of L(s) = ||f(x + s) - f(x)||^2, which is
    zero at s = 0; the loss gradient used here is Goodfellow et al.'s fast-gradient direction
    (for one logit f: -sign-of-label * grad f). Points whose gradient is zero get status
    ZERO_GRADIENT.

    Returns
    -------
    AttackResult (method "fast_gradient"); iterations = forward evaluations used.
    """
    check_net(net)
    params, arrays, on_device = host_arrays(engine, params, X=X)
    flat = flatten(net, params)
    norm_ord = norm_order(norm)
    rtol = _rtol(rtol)
    Xf, _ = data_arrays(net, flat.shape[0], flat.dtype, arrays["X"], check_finite=False)
    S, N, K = flat.shape[0], Xf.shape[-2], net.n_logits
    Xg = Xf.reshape(Xf.shape[:-1] + tuple(net.input_shape))
    with np.errstate(invalid="ignore", over="ignore"):
        z = logits_of_rows(net, flat, Xf, threads, engine).astype(np.float64)
        g = input_grad(net, params, np.nan_to_num(Xg), threads=threads, engine=engine).reshape(S, N, K, -1)
        g = g.astype(np.float64)
        label = _labels(z)
        if K == 1:
            v = np.where(label[..., None] == 1, -1.0, 1.0) * g[:, :, 0]
        else:
            p = np.exp(z - z.max(axis=-1, keepdims=True))
            p /= p.sum(axis=-1, keepdims=True)
            p[np.arange(S)[:, None], np.arange(N)[None, :], label] -= 1.0
            v = np.einsum("snk,snkd->snd", p, g)  # gradient of logsumexp(z) - z_label
    if norm_ord == np.inf:
        v = np.sign(v)
    r, status, evals = smallest_flipping_scale(net, params, Xf, v, rtol=rtol, threads=threads,
                                               engine=engine)
    return _result(net, Xf, r, status, evals, norm_ord, "fast_gradient", on_device)


def _rtol(rtol) -> float:
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float, np.floating)) or not 0 < rtol < 1:
        raise ValueError(f"rtol: must be a number in (0, 1), got {rtol!r}")
    return float(rtol)
