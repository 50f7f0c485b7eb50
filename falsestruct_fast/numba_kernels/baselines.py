"""The baseline attacks' search (random and fast-gradient directions): the smallest scale alpha
with label(x + alpha v) != label(x), found by doubling from 1e-6 max(||x||_2, 1) (at most
`max_doublings` times) and then bisection to relative resolution rtol (at most 200 steps) -
point for point the search of falsestruct_fast.attacks.baselines.smallest_flipping_scale."""
from __future__ import annotations

import math

import numpy as np

from ._jit import kernel

from .deepfool import FLIPPED, MAX_ITER, NON_FINITE, ZERO_GRADIENT, predicted_label
from .network import layers_forward, logits_of
from .shape import layer_table, row_width

MAX_BISECTIONS = 200


@kernel
def _norm2(v):
    """||v||_2 in float64; rescaled by the largest entry when the squares overflow."""
    s = 0.0
    for k in range(v.shape[0]):
        s += float(v[k]) * float(v[k])
    nrm = math.sqrt(s)
    if math.isinf(nrm):
        big = 0.0
        for k in range(v.shape[0]):
            big = max(big, abs(float(v[k])))
        if math.isfinite(big):
            s = 0.0
            for k in range(v.shape[0]):
                u = float(v[k]) / big
                s += u * u
            nrm = big * math.sqrt(s)
    return nrm


@kernel
def _label_at(layers, theta, acts, x, alpha, direction, r):
    """Label at x + r with r = (alpha * direction) rounded to x's dtype (written to r), or -1
    when the logits are not finite."""
    T = x.dtype.type
    d = x.shape[0]
    for k in range(d):
        r[k] = T(alpha * direction[k])
        acts[k] = x[k] + r[k]
    layers_forward(layers, theta, acts, 1)
    return predicted_label(logits_of(layers, acts, 1)[0])


@kernel
def flipping_scale_layers(layers, theta, acts, x, direction, rtol, max_doublings, r_out):
    """The search for one point x (d,) and direction (d,) float64; returns (status, evaluations)
    and writes the perturbation r_out (d,) (x's dtype; NaN for NON_FINITE, zero when not
    flipped). `acts`: workspace of row_width(layers) scalars."""
    d = x.shape[0]
    T = x.dtype.type
    for k in range(d):
        acts[k] = x[k]
    layers_forward(layers, theta, acts, 1)
    z0 = logits_of(layers, acts, 1)[0]
    finite = True
    for k in range(z0.shape[0]):
        finite = finite and math.isfinite(z0[k])
    label0 = predicted_label(z0)
    for k in range(d):
        finite = finite and math.isfinite(x[k]) and math.isfinite(direction[k])
    if not finite:
        for k in range(d):
            r_out[k] = np.nan
        return NON_FINITE, 0
    if _norm2(direction) == 0:
        for k in range(d):
            r_out[k] = T(0)
        return ZERO_GRADIENT, 0
    evals = 0
    lo = 0.0
    hi = 1e-6 * max(_norm2(x), 1.0)
    found = False
    for _ in range(max_doublings):
        evals += 1
        if _label_at(layers, theta, acts, x, hi, direction, r_out) != label0:
            found = True
            break
        lo = hi
        hi = 2 * hi
    if found:
        for _ in range(MAX_BISECTIONS):
            if not hi - lo > rtol * hi:
                break
            mid = 0.5 * lo + 0.5 * hi
            evals += 1
            if _label_at(layers, theta, acts, x, mid, direction, r_out) != label0:
                hi = mid
            else:
                lo = mid
    # the returned point is evaluated once more: a rounding of alpha * v could land back on
    # the boundary, and is then reported as not flipped
    flipped = _label_at(layers, theta, acts, x, hi if found else 0.0, direction, r_out) != label0
    return (FLIPPED if found and flipped else MAX_ITER), evals


@kernel
def flipping_scale_search(spec, theta, x, direction, rtol, max_doublings, r_out):
    """Smallest flipping scale along `direction` (d,) float64 from the point x (d,) of one
    network (spec, theta (P,)): returns (status, forward evaluations) and writes
    r_out (d,) = the flipping perturbation (rounded to x's dtype)."""
    layers = layer_table(spec)
    acts = np.empty(row_width(layers), dtype=theta.dtype)
    return flipping_scale_layers(layers, theta, acts, x, direction, rtol, max_doublings, r_out)
