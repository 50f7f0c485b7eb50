"""Experiment I's shallow network (one ReLU hidden layer, one logit, sigmoid loss) in one fused
step: the backward pass adds each sample's terms straight into the parameter gradients,
instead of passes over the batch through memory for the hidden gradient (the native engine
does the same in host_shallow_backward.h). Every sum runs in the generic kernels' order (over
inputs, then over samples in ascending order); the logits' dot products over hidden units are
dense.dot_rows, as in the layer kernels."""
from __future__ import annotations

import math

from ._jit import kernel
from .dense import dot_rows
from .relu import relu_grad_if, relu_if
from .shape import B_OFF, DENSE, KIND, N_IN, N_OUT, RELU, W_OFF


@kernel
def is_shallow_binary(layers):
    """Two dense layers, ReLU then linear, one logit."""
    return (layers.shape[0] == 2 and layers[0, KIND] == DENSE and layers[1, KIND] == DENSE
            and layers[0, RELU] != 0 and layers[1, RELU] == 0 and layers[1, N_OUT] == 1)


@kernel
def shallow_forward_backward(layers, theta, acts, yb, dz, grad):
    """For the batch at the start of acts (B rows, d inputs) and targets yb (B, 1): writes the
    logits to acts (where layers_forward puts them; the hidden block is overwritten), the
    logits' gradient to dz (B,) and the gradient of the mean sigmoid cross-entropy to grad (P,),
    bitwise what layers_forward, loss_grad and layers_backward give.

    The forward pass of every sample comes first and the backward pass after it: one sample's
    chain (hidden layer, logit, sigmoid, backward) would leave the core waiting on latencies,
    while the samples' forward passes are independent. With two inputs (Experiment I) the
    forward pass is one loop over hidden units per sample and the backward pass one per four
    samples."""
    B = yb.shape[0]
    d, H = layers[0, N_IN], layers[0, N_OUT]
    T = theta.dtype.type
    zero, one = T(0), T(1)
    scale = one / T(B)
    W1 = theta[layers[0, W_OFF]:layers[0, B_OFF]].reshape((d, H))
    b1 = theta[layers[0, B_OFF]:layers[0, B_OFF] + H]
    w2 = theta[layers[1, W_OFF]:layers[1, B_OFF]]
    b2 = theta[layers[1, B_OFF]]
    dW1 = grad[layers[0, W_OFF]:layers[0, B_OFF]].reshape((d, H))
    db1 = grad[layers[0, B_OFF]:layers[0, B_OFF] + H]
    dw2 = grad[layers[1, W_OFF]:layers[1, B_OFF]]
    x = acts[:B * d].reshape((B, d))
    hidden = acts[B * d:B * (d + H)].reshape((B, H))
    logits = acts[B * (d + H):B * (d + H + 1)]
    for n in range(B):
        if d == 2:
            _hidden_row_2(x[n, 0], x[n, 1], W1[0], W1[1], b1, hidden[n], zero)
        else:
            _hidden_row(x[n], W1, b1, hidden[n], zero)
    dot_rows(hidden, w2, logits)
    for n in range(B):
        logits[n] = b2 + logits[n]
        dz[n] = (one / (one + math.exp(-logits[n])) - yb[n, 0]) * scale
    for e in range(grad.shape[0]):
        grad[e] = zero
    db2 = zero
    for n in range(B):
        db2 += dz[n]
    grad[layers[1, B_OFF]] = db2
    n = 0
    if d == 2:
        while n + 4 <= B:
            _hidden_backward_2x4(x, dz, hidden, n, w2, dW1[0], dW1[1], db1, dw2, zero)
            n += 4
    for n in range(n, B):
        if d == 2:
            _hidden_backward_2(x[n, 0], x[n, 1], dz[n], hidden[n], w2, dW1[0], dW1[1], db1, dw2, zero)
        else:
            _hidden_backward(x[n], dz[n], hidden[n], w2, dW1, db1, dw2, zero)


@kernel(inline="always")
def _hidden_row_2(a0, a1, W1_0, W1_1, b1, h, zero):
    """h = relu(b1 + ((0 + a0 W1_0) + a1 W1_1)): dense_forward's expression for two inputs."""
    for j in range(h.shape[0]):
        s = zero
        s += a0 * W1_0[j]
        s += a1 * W1_1[j]
        h[j] = relu_if(True, b1[j] + s, zero)


@kernel(inline="always")
def _hidden_row(x_n, W1, b1, h, zero):
    """h = relu(b1 + sum_i x_n[i] W1[i]), the sum over inputs in ascending order."""
    for j in range(h.shape[0]):
        h[j] = zero
    for i in range(x_n.shape[0]):
        xi = x_n[i]
        W1_i = W1[i]
        for j in range(h.shape[0]):
            h[j] += xi * W1_i[j]
    for j in range(h.shape[0]):
        h[j] = relu_if(True, b1[j] + h[j], zero)


@kernel(inline="always")
def _hidden_backward_2(a0, a1, g, h, w2, dW1_0, dW1_1, db1, dw2, zero):
    """One sample's terms of the parameter gradients below the logit (gradient g), two inputs."""
    for j in range(h.shape[0]):
        hj = h[j]
        dw2[j] += hj * g
        gh = relu_grad_if(True, hj, g * w2[j], zero)
        db1[j] += gh
        dW1_0[j] += a0 * gh
        dW1_1[j] += a1 * gh


@kernel(inline="always")
def _hidden_backward_2x4(x, dz, hidden, n, w2, dW1_0, dW1_1, db1, dw2, zero):
    """_hidden_backward_2 for samples n .. n + 3 in one loop: each gradient element is loaded
    and stored once for four samples (not once per sample) and receives their terms in
    ascending order, so the sums are the same."""
    a0, a1, a2, a3 = x[n, 0], x[n + 1, 0], x[n + 2, 0], x[n + 3, 0]
    c0, c1, c2, c3 = x[n, 1], x[n + 1, 1], x[n + 2, 1], x[n + 3, 1]
    g0, g1, g2, g3 = dz[n], dz[n + 1], dz[n + 2], dz[n + 3]
    h0, h1, h2, h3 = hidden[n], hidden[n + 1], hidden[n + 2], hidden[n + 3]
    for j in range(w2.shape[0]):
        w = w2[j]
        s_w2, s_b1, s_w10, s_w11 = dw2[j], db1[j], dW1_0[j], dW1_1[j]
        hj = h0[j]
        s_w2 += hj * g0
        gh = relu_grad_if(True, hj, g0 * w, zero)
        s_b1 += gh
        s_w10 += a0 * gh
        s_w11 += c0 * gh
        hj = h1[j]
        s_w2 += hj * g1
        gh = relu_grad_if(True, hj, g1 * w, zero)
        s_b1 += gh
        s_w10 += a1 * gh
        s_w11 += c1 * gh
        hj = h2[j]
        s_w2 += hj * g2
        gh = relu_grad_if(True, hj, g2 * w, zero)
        s_b1 += gh
        s_w10 += a2 * gh
        s_w11 += c2 * gh
        hj = h3[j]
        s_w2 += hj * g3
        gh = relu_grad_if(True, hj, g3 * w, zero)
        s_b1 += gh
        s_w10 += a3 * gh
        s_w11 += c3 * gh
        dw2[j], db1[j], dW1_0[j], dW1_1[j] = s_w2, s_b1, s_w10, s_w11


@kernel(inline="always")
def _hidden_backward(x_n, g, h, w2, dW1, db1, dw2, zero):
    """As _hidden_backward_2 for any number of inputs; h is left holding the hidden gradient."""
    for j in range(h.shape[0]):
        hj = h[j]
        dw2[j] += hj * g
        gh = relu_grad_if(True, hj, g * w2[j], zero)
        h[j] = gh
        db1[j] += gh
    for i in range(x_n.shape[0]):
        xi = x_n[i]
        dW1_i = dW1[i]
        for j in range(h.shape[0]):
            dW1_i[j] += xi * h[j]
