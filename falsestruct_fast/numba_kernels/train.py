"""The fused training loop (epochs x batches x forward / backward / Adam, loss recording) for
one network, and a driver in parallel over networks. Batch orders are the native engine's
(network.h train_network): shuffle 0 "none" (consecutive batches), 1 "samples" (a new
permutation of the samples per epoch), 2 "batches" (consecutive batches in a permuted order),
each epoch's permutation drawn from Philox by (seed, epoch); an epoch runs floor(N / B) steps.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import kernel
from .fp_mode import enter_subnormal_mode, leave_subnormal_mode

from .adam import adam_update
from .losses import SIGMOID_CE, loss_grad, loss_terms
from .network import layers_backward, layers_forward, logits_of
from .philox import epoch_permutation
from .shallow import is_shallow_binary, shallow_forward_backward
from .shape import layer_table, max_width, n_logits, row_width

SHUFFLE_NONE, SHUFFLE_SAMPLES, SHUFFLE_BATCHES = 0, 1, 2


@kernel
def _gather_batch(shuffle, order, step, X, Y, xb, yb):
    """Rows of batch `step` of the epoch (by the epoch's order) into xb (B, d), yb (B, t)."""
    B, d = xb.shape
    for n in range(B):
        if shuffle == SHUFFLE_SAMPLES:
            row = order[step * B + n]
        elif shuffle == SHUFFLE_BATCHES:
            row = order[step] * B + n
        else:
            row = step * B + n
        for i in range(d):
            xb[n, i] = X[row, i]
        for i in range(yb.shape[1]):
            yb[n, i] = Y[row, i]


# The step is a function of its own (not the loop's body): LLVM optimises the layer loops
# several times better outside the large training loop.
@kernel
def _adam_step(layers, loss_kind, lr, beta1, beta2, eps, t, theta, m, v, acts, delta_a, delta_b,
               grad, yb, terms, record, loss_sum, correct_sum):
    """One forward / backward / Adam update (number t) on the batch in acts and yb; returns
    (loss_sum, correct_sum) with the batch's per-sample losses and correctness added when
    `record` (sample by sample, as natively)."""
    B = yb.shape[0]
    K = n_logits(layers)
    fused = loss_kind == SIGMOID_CE and is_shallow_binary(layers)
    if fused:
        shallow_forward_backward(layers, theta, acts, yb, delta_a[:B], grad)
    else:
        layers_forward(layers, theta, acts, B)
    z = logits_of(layers, acts, B)
    if not fused:
        loss_grad(loss_kind, z, yb, delta_a[:B * K].reshape((B, K)))
        layers_backward(layers, theta, acts, delta_a, delta_b, grad, B, False, True)
    if record:
        loss_terms(loss_kind, z, yb, terms[0], terms[1])
        for n in range(B):
            loss_sum += terms[0, n]
            correct_sum += terms[1, n]
    adam_update(lr, beta1, beta2, eps, t, grad, theta, m, v)
    return loss_sum, correct_sum


@kernel
def train_epochs(spec, loss_kind, shuffle, lr, beta1, beta2, eps, X, Y, theta, m, v, seed,
                 batch_size, step0, epoch_begin, epoch_end, epochs, record_every, loss_hist,
                 acc_hist):
    """Epochs [epoch_begin, epoch_end) of a run of `epochs` epochs of one network, in place.

    X (N, d), Y (N, t) (t = K sigmoid targets, or 1 class index for softmax), theta, m, v (P,)
    of one dtype; seed: the network's seed (uint64); step0: Adam updates applied before the
    run (the run's epoch e is global epoch step0 // n_batches + e of the batch order, and its
    updates are numbered from step0 + e * n_batches + 1). Epoch e (0-based) is recorded when
    (e + 1) % record_every == 0 or e + 1 == epochs: mean loss and accuracy over the samples of
    the epoch (each batch evaluated before its update) into loss_hist / acc_hist (float64,
    index (e + 1) // record_every - 1, or the last slot for the final epoch). Calling this on
    consecutive ranges gives bitwise the result of one call on [0, epochs)."""
    layers = layer_table(spec)
    N, d = X.shape
    t_per = Y.shape[1]
    B = batch_size
    n_batches = N // B
    dt = theta.dtype
    acts = np.empty(B * row_width(layers), dtype=dt)
    mw = max_width(layers)
    delta_a = np.empty(B * mw, dtype=dt)
    delta_b = np.empty(B * mw, dtype=dt)
    yb = np.empty((B, t_per), dtype=dt)
    terms = np.empty((2, B), dtype=dt)
    grad = np.empty_like(theta)
    n_perm = N if shuffle == SHUFFLE_SAMPLES else n_batches
    order = np.empty(max(n_perm, 1), dtype=np.int64)
    n_records = loss_hist.shape[0]
    xb = acts[:B * d].reshape((B, d))
    t = step0 + epoch_begin * n_batches
    first_epoch = step0 // n_batches
    for epoch in range(epoch_begin, epoch_end):
        epoch_no = epoch + 1
        record = epoch_no % record_every == 0 or epoch_no == epochs
        if shuffle != SHUFFLE_NONE:
            epoch_permutation(seed, (first_epoch + epoch) & 0xFFFFFFFF, order[:n_perm])
        loss_sum = 0.0
        correct_sum = 0.0
        for step in range(n_batches):
            _gather_batch(shuffle, order, step, X, Y, xb, yb)
            t += 1
            loss_sum, correct_sum = _adam_step(layers, loss_kind, lr, beta1, beta2, eps, t, theta, m, v,
                                               acts, delta_a, delta_b, grad, yb, terms, record,
                                               loss_sum, correct_sum)
        if record:
            r = epoch_no // record_every - 1 if epoch_no % record_every == 0 else n_records - 1
            count = float(n_batches * B)
            loss_hist[r] = loss_sum / count
            acc_hist[r] = correct_sum / count


@kernel
def train_network(spec, loss_kind, shuffle, lr, beta1, beta2, eps, X, Y, theta, m, v, seed,
                  epochs, batch_size, step0, record_every, loss_hist, acc_hist):
    """`epochs` epochs of one network in place (see train_epochs)."""
    train_epochs(spec, loss_kind, shuffle, lr, beta1, beta2, eps, X, Y, theta, m, v, seed,
                 batch_size, step0, 0, epochs, epochs, record_every, loss_hist, acc_hist)


@kernel(parallel=True)
def train_networks(spec, loss_kind, shuffle, lr, beta1, beta2, eps, X, Y, theta, m, v, seeds,
                   batch_size, step0, epoch_begin, epoch_end, epochs, record_every, loss_hist,
                   acc_hist, flush):
    """train_epochs for S networks in parallel (prange over networks): theta, m, v (S, P),
    seeds (S,) uint64, loss_hist / acc_hist (S, R); X (Sx, N, d) and Y (Sy, N, t) with Sx, Sy
    either 1 (shared by all networks) or S. Each network's result does not depend on the
    thread count. flush: subnormals flushed to zero in every thread (fp_mode)."""
    for s_ in prange(theta.shape[0]):
        saved = enter_subnormal_mode(flush)
        s = np.int64(s_)  # prange(n) counts in uint64: signed for indexing and mixing
        xs = s if X.shape[0] > 1 else 0
        ys = s if Y.shape[0] > 1 else 0
        train_epochs(spec, loss_kind, shuffle, lr, beta1, beta2, eps, X[xs], Y[ys], theta[s], m[s],
                     v[s], seeds[s], batch_size, step0, epoch_begin, epoch_end, epochs,
                     record_every, loss_hist[s], acc_hist[s])
        leave_subnormal_mode(saved)
