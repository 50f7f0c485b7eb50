"""DeepFool (Moosavi-Dezfooli et al. 2016) for a tile of points of one network, step for step
the native engine's algorithm (src/falsestruct/deepfool.h), so statuses, iterations and
perturbations agree with it up to the rounding of sums.

Binary nets (one logit f, label [f > 0]) follow the slides: linearise at x + r~, step
r_i = -f / ||grad f||^2 grad f, stop when the label at x + (1 + eta) r~ changes, return
(1 + eta) r~. Multiclass nets run the original algorithm over the `candidates` most likely other
classes (ranked at x). The L-inf variant measures distances with ||w||_1 and steps along sign(w).
The "foolbox" variant (Foolbox 3 / LTS4) linearises at the checked point x + (1 + eta) r~ and
adds 1e-4 to each step's distance and 1e-8 to gradient norms. With `clip`, every evaluated point
is clipped to [lo, hi]. Active points are kept as a compacted list, as natively.
"""
from __future__ import annotations

import math

import numpy as np

from ._jit import kernel

from .network import layers_backward, layers_forward, logits_of
from .shape import layer_table, max_width, n_logits, row_tile, row_width

# Per-point outcome (AttackStatus).
ACTIVE, FLIPPED, MAX_ITER, ZERO_GRADIENT, NON_FINITE = -1, 0, 1, 2, 3
# Points per tile (the native engine's kAttackTile).
ATTACK_TILE = 64


@kernel(inline="always")
def _finite(v):
    return v - v == 0


@kernel
def predicted_label(z):
    """Label of a row of logits z (K,): [z > 0] for one logit, else the first maximum."""
    K = z.shape[0]
    if K == 1:
        return 1 if z[0] > 0 else 0
    best = 0
    for k in range(1, K):
        if z[k] > z[best]:
            best = k
    return best


@kernel
def pick_candidates(z, label, out):
    """The out.shape[0] classes other than `label` with the largest logits z (K,), most likely
    first (ties: lower index first). One logit: the other label."""
    K = z.shape[0]
    if K == 1:
        out[0] = 1 - label
        return
    for j in range(out.shape[0]):
        best = -1
        for k in range(K):
            if k == label:
                continue
            used = False
            for q in range(j):
                used = used or out[q] == k
            if not used and (best < 0 or z[k] > z[best]):
                best = k
        out[j] = best


@kernel
def deepfool_layers(layers, theta, X, overshoot, max_iter, linf, candidates, foolbox, clip, lo,
                    hi, pert, iters, status):
    """DeepFool on the rows of X (B, d) for one network (layer table, theta (P,)): writes
    pert (B, d) (NaN where NON_FINITE), iters (B,) and status (B,) (int32)."""
    B, d = X.shape
    K = n_logits(layers)
    C = 1 if K == 1 else candidates
    dt = theta.dtype
    T = dt.type
    zero, one = T(0), T(1)
    over = T(1.0 + overshoot)
    lo_t, hi_t = T(lo), T(hi)
    dist_eps = T(1e-4) if foolbox else zero
    norm_eps = T(1e-8) if foolbox else zero
    acts = np.empty(B * row_width(layers), dtype=dt)
    mw = max_width(layers)
    delta_a = np.empty(B * mw, dtype=dt)
    delta_b = np.empty(B * mw, dtype=dt)
    no_grad = np.empty(0, dtype=dt)
    r_tot = np.zeros((B, d), dtype=dt)
    w_best = np.empty((B, d), dtype=dt)
    dist = np.empty(B, dtype=dt)
    wnorm = np.empty(B, dtype=dt)
    margin = np.empty(B, dtype=dt)
    label0 = np.empty(B, dtype=np.int64)
    cand = np.empty((B, C), dtype=np.int64)
    act = np.arange(B)
    taken = np.zeros(B, dtype=np.bool_)
    for t in range(B):
        status[t] = ACTIVE
        iters[t] = 0
    A = B
    it = 0
    while A > 0:
        # 1. Check the label at x0 + (1 + eta) r~ (at it = 0: the original point). The
        # perturbation is stored first and the network sees x0 + pert, exactly what a user gets.
        inp = acts[:A * d].reshape((A, d))
        for a in range(A):
            t = act[a]
            for k in range(d):
                p = over * r_tot[t, k]
                if clip:
                    v = X[t, k] + p
                    p = (lo_t if v < lo_t else (hi_t if v > hi_t else v)) - X[t, k]
                pert[t, k] = p
            for k in range(d):
                inp[a, k] = X[t, k] + pert[t, k]
        layers_forward(layers, theta, acts, A)
        z = logits_of(layers, acts, A)
        for a in range(A):
            t = act[a]
            if status[t] != ACTIVE:  # stopped at the last step
                continue
            finite = True
            for k in range(K):
                finite = finite and _finite(z[a, k])
            if not finite:
                status[t] = NON_FINITE
                iters[t] = it
                continue
            label = predicted_label(z[a])
            if it == 0:
                label0[t] = label
                pick_candidates(z[a], label, cand[t])
            elif label != label0[t]:
                status[t] = FLIPPED
                iters[t] = it
                continue
            if it == max_iter:
                status[t] = MAX_ITER
                iters[t] = it
        n = 0
        for a in range(A):
            if status[act[a]] == ACTIVE:
                act[n] = act[a]
                n += 1
        changed = n != A
        A = n
        if A == 0:
            break
        # 2. Linearise at x0 + r~ (foolbox: at the checked point, whose activations are still
        # in place unless the active list changed).
        if changed or (not foolbox and it > 0):
            scale = over if foolbox else one
            inp = acts[:A * d].reshape((A, d))
            for a in range(A):
                t = act[a]
                for k in range(d):
                    v = X[t, k] + scale * r_tot[t, k]
                    if clip:
                        v = lo_t if v < lo_t else (hi_t if v > hi_t else v)
                    inp[a, k] = v
            layers_forward(layers, theta, acts, A)
        z = logits_of(layers, acts, A)
        # 3. Nearest linearised boundary over the candidates.
        for j in range(C):
            dz = delta_a[:A * K].reshape((A, K))
            for a in range(A):
                t = act[a]
                l0 = label0[t]
                for k in range(K):
                    if K == 1:
                        dz[a, k] = -one if l0 == 1 else one
                    else:
                        dz[a, k] = (one if k == cand[t, j] else zero) - (one if k == l0 else zero)
                if K == 1:
                    margin[a] = -z[a, 0] if l0 == 1 else z[a, 0]
                else:
                    margin[a] = z[a, cand[t, j]] - z[a, l0]
            gbuf = layers_backward(layers, theta, acts, delta_a, delta_b, no_grad, A, True, False)
            g = gbuf[:A * d].reshape((A, d))
            for a in range(A):
                s = zero
                for k in range(d):
                    s += abs(g[a, k]) if linf else g[a, k] * g[a, k]
                nrm = s if linf else math.sqrt(s)
                dd = abs(margin[a]) / (nrm + norm_eps)
                take = j == 0 or dd < dist[a]
                taken[a] = take
                if take:
                    dist[a] = dd
                    wnorm[a] = nrm
                    for k in range(d):
                        w_best[a, k] = g[a, k]
        # 4. Step r~ += r_i, or stop where there is no usable direction.
        for a in range(A):
            t = act[a]
            nrm = wnorm[a]
            dd = dist[a]
            if nrm == zero or not _finite(nrm) or not _finite(dd):
                status[t] = ZERO_GRADIENT if nrm == zero else NON_FINITE
                iters[t] = it
            dist[a] = dd + dist_eps if linf else (dd + dist_eps) / (nrm + norm_eps)
            if status[t] != ACTIVE:
                continue
            for k in range(d):
                v = w_best[a, k]
                if linf:
                    r_tot[t, k] += dist[a] * (one if v > zero else (-one if v < zero else zero))
                else:
                    r_tot[t, k] += dist[a] * v
        it += 1
    for t in range(B):
        if status[t] == NON_FINITE:
            for k in range(d):
                pert[t, k] = np.nan


@kernel
def deepfool(spec, theta, X, overshoot, max_iter, linf, candidates, foolbox, clip, lo, hi,
             pert, iters, status):
    """DeepFool on every row of X (N, d) for one network (spec, theta (P,)), in tiles of
    ATTACK_TILE rows: pert (N, d) theta's dtype, iters (N,) and status (N,) int32 (AttackStatus:
    0 flipped, 1 max_iter, 2 zero gradient, 3 non-finite). overshoot >= 0, max_iter >= 0,
    linf: L-inf instead of L2, candidates in [1, K - 1] (ignored for one logit), foolbox: the
    Foolbox 3 variant, clip: clip every evaluated point to [lo, hi]."""
    layers = layer_table(spec)
    N = X.shape[0]
    tile = deepfool_tile(layers, N)
    for r0 in range(0, N, tile):
        r1 = min(N, r0 + tile)
        deepfool_layers(layers, theta, X[r0:r1], overshoot, max_iter, linf, candidates, foolbox,
                        clip, lo, hi, pert[r0:r1], iters[r0:r1], status[r0:r1])


@kernel
def deepfool_tile(layers, N):
    """Points per DeepFool tile (as natively: at most ATTACK_TILE and the forward tile)."""
    return row_tile(layers, N, ATTACK_TILE)
