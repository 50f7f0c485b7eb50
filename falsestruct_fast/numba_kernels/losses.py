"""Output losses: gradient w.r.t. the logits and per-sample loss / correctness, as the native
engine (src/falsestruct/losses.h). Logits z (B, K) sample-major. Sigmoid cross-entropy: targets
y (B, K) in [0, 1]; softmax cross-entropy: y (B, 1) holds the class index (as a float).
`kind`: 0 sigmoid, 1 softmax (the native LossKind)."""
from __future__ import annotations

import math

from ._jit import kernel

SIGMOID_CE, SOFTMAX_CE = 0, 1


@kernel
def sigmoid_ce_grad(z, y, dz):
    """Gradient of the mean sigmoid cross-entropy over all B * K logits:
    dz = (sigmoid(z) - y) / (B K)."""
    B, K = z.shape
    T = dz.dtype.type
    one = T(1)
    scale = one / T(B * K)
    for n in range(B):
        for j in range(K):
            dz[n, j] = (one / (one + math.exp(-z[n, j])) - y[n, j]) * scale


@kernel
def sigmoid_ce_terms(z, y, loss, correct):
    """Per sample: loss[n] = mean_j [max(z, 0) - z y + log1p(exp(-|z|))],
    correct[n] = mean_j [(z > 0) == (y > 0.5)]."""
    B, K = z.shape
    T = loss.dtype.type
    zero, one, half = T(0), T(1), T(0.5)
    for n in range(B):
        l = zero
        c = zero
        for j in range(K):
            zz = z[n, j]
            yy = y[n, j]
            l += (zz if zz > zero else zero) - zz * yy + math.log1p(math.exp(-abs(zz)))
            if (zz > zero) == (yy > half):
                c += one
        loss[n] = l / T(K)
        correct[n] = c / T(K)


@kernel
def softmax_ce_grad(z, y, dz):
    """Gradient of the mean softmax cross-entropy: dz[n, j] = (softmax(z[n])_j - [j == y[n]]) / B."""
    B, K = z.shape
    T = dz.dtype.type
    zero, one = T(0), T(1)
    scale = one / T(B)
    for n in range(B):
        m = z[n, 0]
        for j in range(1, K):
            m = z[n, j] if z[n, j] > m else m
        s = zero
        for j in range(K):
            s += math.exp(z[n, j] - m)
        label = int(y[n, 0])
        for j in range(K):
            dz[n, j] = (math.exp(z[n, j] - m) / s - (one if j == label else zero)) * scale


@kernel
def softmax_ce_terms(z, y, loss, correct):
    """Per sample: loss[n] = logsumexp(z[n]) - z[n, y[n]], correct[n] = [argmax z[n] == y[n]]."""
    B, K = z.shape
    T = loss.dtype.type
    zero, one = T(0), T(1)
    for n in range(B):
        m = z[n, 0]
        arg = 0
        for j in range(1, K):
            if z[n, j] > m:
                m = z[n, j]
                arg = j
        s = zero
        for j in range(K):
            s += math.exp(z[n, j] - m)
        label = int(y[n, 0])
        loss[n] = m + math.log(s) - z[n, label]
        correct[n] = one if arg == label else zero


@kernel
def loss_grad(kind, z, y, dz):
    """dz = gradient of the mean loss of `kind` (0 sigmoid, 1 softmax) w.r.t. the logits z."""
    if kind == SIGMOID_CE:
        sigmoid_ce_grad(z, y, dz)
    else:
        softmax_ce_grad(z, y, dz)


@kernel
def loss_terms(kind, z, y, loss, correct):
    """Per-sample loss (B,) and correctness (B,) for `kind` (0 sigmoid, 1 softmax)."""
    if kind == SIGMOID_CE:
        sigmoid_ce_terms(z, y, loss, correct)
    else:
        softmax_ce_terms(z, y, loss, correct)
