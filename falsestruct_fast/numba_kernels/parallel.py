"""Drivers over S networks (and tiles of points) with ``prange``: what the "numba" engine calls.

Shared data is passed with a leading axis of 1 (X (1, N, d)), per-network data with S, so one
compiled function serves both. Work is split into units (a network, or a network's tile of
rows) and every driver takes a unit range [begin, end), so that the Python layer can run a long
call in chunks (progress, Ctrl-C between chunks). A unit's result never depends on the thread
count.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import kernel
from .fp_mode import enter_subnormal_mode, leave_subnormal_mode

from .baselines import flipping_scale_layers
from .deepfool import deepfool_layers, deepfool_tile
from .network import FORWARD_TILE, forward, logit_input_grads, loss_and_grad
from .shape import layer_table, row_tile, row_width


@kernel
def forward_tile_rows(spec, N):
    """Rows per unit of forward_networks / logit_input_grads_networks."""
    return row_tile(layer_table(spec), N, FORWARD_TILE)


@kernel
def deepfool_tile_rows(spec, N):
    """Points per unit of deepfool_networks."""
    return deepfool_tile(layer_table(spec), N)


@kernel(inline="always")
def tile_unit(u_, n_tiles, tile, N, n_x):
    """(network s, its row of X, first and past-the-end rows) of unit u_ of (network, tile of
    `tile` rows); n_x is X's leading axis (1: shared rows)."""
    u = np.int64(u_)  # prange(n) counts in uint64: signed for indexing and mixing
    s = u // n_tiles
    r0 = (u % n_tiles) * tile
    return s, (s if n_x > 1 else 0), r0, min(N, r0 + tile)


@kernel(parallel=True)
def forward_networks(spec, theta, X, out, tile, begin, end, flush):
    """out (S, N, K) = logits of X (1 or S, N, d) under theta (S, P); units [begin, end) of
    (network, tile of `tile` rows). flush: subnormals flushed to zero (fp_mode), as every
    driver here."""
    N = X.shape[1]
    n_tiles = (N + tile - 1) // tile
    for u_ in prange(begin, end):
        saved = enter_subnormal_mode(flush)
        s, xs, r0, r1 = tile_unit(u_, n_tiles, tile, N, X.shape[0])
        forward(spec, theta[s], X[xs, r0:r1], out[s, r0:r1])
        leave_subnormal_mode(saved)


@kernel(parallel=True)
def logit_input_grads_networks(spec, theta, X, out, tile, begin, end, flush):
    """out (S, N, K, d): logit input gradients, units as forward_networks."""
    N = X.shape[1]
    n_tiles = (N + tile - 1) // tile
    for u_ in prange(begin, end):
        saved = enter_subnormal_mode(flush)
        s, xs, r0, r1 = tile_unit(u_, n_tiles, tile, N, X.shape[0])
        logit_input_grads(spec, theta[s], X[xs, r0:r1], out[s, r0:r1])
        leave_subnormal_mode(saved)


@kernel(parallel=True)
def loss_and_grad_networks(spec, loss_kind, theta, X, Y, loss_out, grad_out, input_grad_out,
                           want_input_grad, flush):
    """Per network s: loss_out[s], grad_out[s] (P,) and, when want_input_grad,
    input_grad_out[s] (N, d) (otherwise input_grad_out may be any (S, 0, 0) array)."""
    for s_ in prange(theta.shape[0]):
        saved = enter_subnormal_mode(flush)
        s = np.int64(s_)  # prange(n) counts in uint64: signed for indexing and mixing
        xs = s if X.shape[0] > 1 else 0
        ys = s if Y.shape[0] > 1 else 0
        if want_input_grad:
            loss_out[s] = loss_and_grad(spec, loss_kind, theta[s], X[xs], Y[ys], grad_out[s],
                                        input_grad_out[s])
        else:
            loss_out[s] = loss_and_grad(spec, loss_kind, theta[s], X[xs], Y[ys], grad_out[s])
        leave_subnormal_mode(saved)


@kernel(parallel=True)
def deepfool_networks(spec, theta, X, overshoot, max_iter, linf, candidates, foolbox, clip, lo,
                      hi, pert, iters, status, tile, begin, end, flush):
    """DeepFool for S networks: pert (S, N, d), iters and status (S, N) int32; units
    [begin, end) of (network, tile of `tile` points)."""
    layers = layer_table(spec)
    N = X.shape[1]
    n_tiles = (N + tile - 1) // tile
    for u_ in prange(begin, end):
        saved = enter_subnormal_mode(flush)
        s, xs, r0, r1 = tile_unit(u_, n_tiles, tile, N, X.shape[0])
        deepfool_layers(layers, theta[s], X[xs, r0:r1], overshoot, max_iter, linf, candidates,
                        foolbox, clip, lo, hi, pert[s, r0:r1], iters[s, r0:r1], status[s, r0:r1])
        leave_subnormal_mode(saved)


@kernel(parallel=True)
def flipping_scale_networks(spec, theta, X, directions, rtol, max_doublings, r_out, status,
                            evals, begin, end, flush):
    """The baselines' search for points [begin, end) of S x N (unit = s * N + n): X (1 or S, N,
    d), directions (S, N, d) float64, r_out (S, N, d), status and evals (S, N) int32."""
    layers = layer_table(spec)
    N = X.shape[1]
    for u_ in prange(begin, end):
        saved = enter_subnormal_mode(flush)
        u = np.int64(u_)
        s = u // N
        n = u % N
        xs = s if X.shape[0] > 1 else 0
        acts = np.empty(row_width(layers), dtype=theta.dtype)
        st, ev = flipping_scale_layers(layers, theta[s], acts, X[xs, n], directions[s, n], rtol,
                                       max_doublings, r_out[s, n])
        status[s, n] = st
        evals[s, n] = ev
        leave_subnormal_mode(saved)
