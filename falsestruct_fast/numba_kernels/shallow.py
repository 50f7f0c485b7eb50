"""Experiment I's shallow network (one ReLU hidden layer, one logit, sigmoid loss) in one fused
pass per sample: forward, the loss gradient and the backward pass add straight into the
parameter gradients, instead of three passes over the batch through memory (the native engine
does the same in host_shallow_backward.h). Every sum runs in the generic kernels' order (over
inputs, then over samples in ascending order), except the logit's dot product over hidden units."""
from __future__ import annotations

import math

from ._jit import kernel
from .relu import relu_if
from .shape import B_OFF, DENSE, KIND, N_IN, N_OUT, RELU, W_OFF


@kernel
def is_shallow_binary(layers):
    """Two dense layers, ReLU then linear, one logit."""
    return (layers.shape[0] == 2 and layers[0, KIND] == DENSE and layers[1, KIND] == DENSE
            and layers[0, RELU] != 0 and layers[1, RELU] == 0 and layers[1, N_OUT] == 1)


@kernel
def shallow_forward_backward(layers, theta, acts, yb, grad):
    """For the batch at the start of acts (B rows, d inputs) and targets yb (B, 1): writes the
    logits to acts (where layers_forward puts them; the hidden block is left holding the hidden
    layer's gradient) and the gradient of the mean sigmoid cross-entropy to grad (P,), bitwise
    what layers_forward, loss_grad and layers_backward give."""
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
    for e in range(grad.shape[0]):
        grad[e] = zero
    x = acts[:B * d].reshape((B, d))
    hidden = acts[B * d:B * (d + H)].reshape((B, H))
    logits = acts[B * (d + H):B * (d + H + 1)]
    for n in range(B):
        h = hidden[n]
        for j in range(H):
            h[j] = zero
        for i in range(d):
            xi = x[n, i]
            for j in range(H):
                h[j] += xi * W1[i, j]
        s0 = zero
        s1 = zero
        s2 = zero
        s3 = zero
        j = 0
        while j + 4 <= H:
            h0 = relu_if(True, b1[j] + h[j], zero)
            h1 = relu_if(True, b1[j + 1] + h[j + 1], zero)
            h2 = relu_if(True, b1[j + 2] + h[j + 2], zero)
            h3 = relu_if(True, b1[j + 3] + h[j + 3], zero)
            h[j], h[j + 1], h[j + 2], h[j + 3] = h0, h1, h2, h3
            s0 += h0 * w2[j]
            s1 += h1 * w2[j + 1]
            s2 += h2 * w2[j + 2]
            s3 += h3 * w2[j + 3]
            j += 4
        while j < H:
            h[j] = relu_if(True, b1[j] + h[j], zero)
            s0 += h[j] * w2[j]
            j += 1
        z = b2 + ((s0 + s1) + (s2 + s3))
        logits[n] = z
        dz = (one / (one + math.exp(-z)) - yb[n, 0]) * scale
        grad[layers[1, B_OFF]] += dz
        for j in range(H):  # h becomes the hidden layer's gradient
            dw2[j] += h[j] * dz
            h[j] = dz * w2[j] if h[j] > zero else zero
            db1[j] += h[j]
        for i in range(d):
            xi = x[n, i]
            for j in range(H):
                dW1[i, j] += xi * h[j]
