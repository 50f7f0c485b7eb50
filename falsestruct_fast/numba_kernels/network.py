"""Whole-network kernels for one network given by its spec (1-D int64, ``net.spec``) and its
flat parameters theta (P,) in Keras order: forward, loss and gradient, logit input gradients.

These are the entry points a user's own ``@njit`` code calls, e.g.::

    z = np.empty((N, K)); forward(spec, theta, X, z)
    loss = loss_and_grad(spec, 0, theta, X, Y, grad)      # grad (P,) filled

Rows are sample-major: X (N, d) with d = h * w * c of the input in (h, w, c) order (NHWC
flattened), logits (N, K). The activations of a batch of B rows live in one flat buffer,
layer by layer (layer_table's ACT_IN offsets times B), each layer's block (B, width) row-major.
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel

from .conv2d import conv2d_backward_input, conv2d_backward_params, conv2d_forward
from .dense import dense_backward_input, dense_backward_params, dense_forward
from .losses import loss_grad, loss_terms
from .maxpool import maxpool2_backward_input, maxpool2_forward
from .shape import (ACT_IN, B_OFF, CONV2D, DENSE, IN_C, IN_H, IN_W, KIND, KSIZE, N_IN, N_OUT, OUT_C,
                    OUT_H, OUT_W, RELU, W_OFF, layer_table, max_width, n_logits, n_params, row_tile,
                    row_width)

# Rows per tile of forward / logit_input_grads (the native engine's kForwardTile).
FORWARD_TILE = 512


# One function per layer kind and direction, called from the layer loops below: with every
# kind's loops in the loop's own body, LLVM optimised the dense loops about 5 times worse.
@kernel
def _activation(acts, layers, l, B, which):
    """Layer l's input (which = 0) or output (1) block of `acts` for B rows (flat)."""
    x0 = layers[l, ACT_IN] * B
    n_in = layers[l, N_IN]
    if which == 0:
        return acts[x0:x0 + B * n_in]
    return acts[x0 + B * n_in:x0 + B * (n_in + layers[l, N_OUT])]


@kernel
def _dense_forward_layer(layers, l, theta, acts, B):
    n_in, n_out = layers[l, N_IN], layers[l, N_OUT]
    w0, b0 = layers[l, W_OFF], layers[l, B_OFF]
    dense_forward(_activation(acts, layers, l, B, 0).reshape((B, n_in)),
                  theta[w0:b0].reshape((n_in, n_out)), theta[b0:b0 + n_out],
                  _activation(acts, layers, l, B, 1).reshape((B, n_out)), layers[l, RELU] != 0)


@kernel
def _conv_forward_layer(layers, l, theta, acts, B):
    H, W, Cin, Cout, k = layers[l, IN_H], layers[l, IN_W], layers[l, IN_C], layers[l, OUT_C], layers[l, KSIZE]
    w0, b0 = layers[l, W_OFF], layers[l, B_OFF]
    conv2d_forward(_activation(acts, layers, l, B, 0).reshape((B, H, W, Cin)),
                   theta[w0:b0].reshape((k, k, Cin, Cout)), theta[b0:b0 + Cout],
                   _activation(acts, layers, l, B, 1).reshape((B, H, W, Cout)), layers[l, RELU] != 0)


@kernel
def _pool_forward_layer(layers, l, acts, B):
    maxpool2_forward(
        _activation(acts, layers, l, B, 0).reshape((B, layers[l, IN_H], layers[l, IN_W], layers[l, IN_C])),
        _activation(acts, layers, l, B, 1).reshape((B, layers[l, OUT_H], layers[l, OUT_W], layers[l, OUT_C])))


@kernel
def layers_forward(layers, theta, acts, B):
    """Forward through every layer for B rows whose input is already at the start of `acts`
    (B * row_width(layers) scalars); each layer's output follows its input."""
    for l in range(layers.shape[0]):
        kind = layers[l, KIND]
        if kind == DENSE:
            _dense_forward_layer(layers, l, theta, acts, B)
        elif kind == CONV2D:
            _conv_forward_layer(layers, l, theta, acts, B)
        else:
            _pool_forward_layer(layers, l, acts, B)


@kernel
def logits_of(layers, acts, B):
    """(B, K) view of the logits after layers_forward."""
    L = layers.shape[0] - 1
    z0 = (layers[L, ACT_IN] + layers[L, N_IN]) * B
    K = layers[L, N_OUT]
    return acts[z0:z0 + B * K].reshape((B, K))


@kernel
def _dense_backward_layer(layers, l, theta, acts, dy, dx, grad, B, need_dx, relu_input, want_param_grads):
    n_in, n_out = layers[l, N_IN], layers[l, N_OUT]
    w0, b0 = layers[l, W_OFF], layers[l, B_OFF]
    x2 = _activation(acts, layers, l, B, 0).reshape((B, n_in))
    dy2 = dy[:B * n_out].reshape((B, n_out))
    if need_dx:
        dense_backward_input(theta[w0:b0].reshape((n_in, n_out)), dy2, x2,
                             dx[:B * n_in].reshape((B, n_in)), relu_input)
    if want_param_grads:
        dense_backward_params(x2, dy2, grad[w0:b0].reshape((n_in, n_out)), grad[b0:b0 + n_out])


@kernel
def _conv_backward_layer(layers, l, theta, acts, dy, dx, grad, B, need_dx, relu_input, want_param_grads):
    H, Wd, Cin, Cout, k = layers[l, IN_H], layers[l, IN_W], layers[l, IN_C], layers[l, OUT_C], layers[l, KSIZE]
    w0, b0 = layers[l, W_OFF], layers[l, B_OFF]
    x4 = _activation(acts, layers, l, B, 0).reshape((B, H, Wd, Cin))
    dy4 = dy[:B * H * Wd * Cout].reshape((B, H, Wd, Cout))
    if need_dx:
        conv2d_backward_input(theta[w0:b0].reshape((k, k, Cin, Cout)), dy4, x4,
                              dx[:B * H * Wd * Cin].reshape((B, H, Wd, Cin)), relu_input)
    if want_param_grads:
        conv2d_backward_params(x4, dy4, grad[w0:b0].reshape((k, k, Cin, Cout)), grad[b0:b0 + Cout])


@kernel
def _pool_backward_layer(layers, l, acts, dy, dx, B, relu_input):
    H, W, C = layers[l, IN_H], layers[l, IN_W], layers[l, IN_C]
    OH, OW = layers[l, OUT_H], layers[l, OUT_W]
    maxpool2_backward_input(_activation(acts, layers, l, B, 0).reshape((B, H, W, C)),
                            dy[:B * OH * OW * C].reshape((B, OH, OW, C)),
                            dx[:B * H * W * C].reshape((B, H, W, C)), relu_input)


@kernel
def layers_backward(layers, theta, acts, delta_a, delta_b, grad, B, want_input_grad, want_param_grads):
    """Backward from the logit gradient at the start of delta_a (B, K) after layers_forward;
    writes every parameter gradient to grad (P,) when want_param_grads. Returns the buffer
    (delta_a or delta_b) whose first B * d scalars hold the input gradient when
    want_input_grad (its content is undefined otherwise)."""
    dy = delta_a
    dx = delta_b
    for l in range(layers.shape[0] - 1, -1, -1):
        kind = layers[l, KIND]
        need_dx = l > 0 or want_input_grad
        # the ReLU of the layer below is applied to the gradient here
        relu_input = l > 0 and layers[l - 1, RELU] != 0
        if kind == DENSE:
            _dense_backward_layer(layers, l, theta, acts, dy, dx, grad, B, need_dx, relu_input, want_param_grads)
        elif kind == CONV2D:
            _conv_backward_layer(layers, l, theta, acts, dy, dx, grad, B, need_dx, relu_input, want_param_grads)
        elif need_dx:
            _pool_backward_layer(layers, l, acts, dy, dx, B, relu_input)
        tmp = dy
        dy = dx
        dx = tmp
    return dy


@kernel
def forward(spec, theta, X, out):
    """Logits out (N, K) of one network (theta (P,)) on X (N, d); rows in tiles of at most
    FORWARD_TILE, so the workspace does not grow with N."""
    layers = layer_table(spec)
    N, d = X.shape
    K = n_logits(layers)
    tile = row_tile(layers, N, FORWARD_TILE)
    acts = np.empty(tile * row_width(layers), dtype=theta.dtype)
    for r0 in range(0, N, tile):
        B = min(tile, N - r0)
        xin = acts[:B * d].reshape((B, d))
        xin[:, :] = X[r0:r0 + B]
        layers_forward(layers, theta, acts, B)
        out[r0:r0 + B] = logits_of(layers, acts, B)


@kernel
def loss_and_grad(spec, loss_kind, theta, X, Y, grad_out, input_grad_out=None):
    """Mean loss over all N rows of one network (returned, theta's dtype), its gradient
    w.r.t. theta into grad_out (P,), and, when input_grad_out (N, d) is given, w.r.t. X.

    loss_kind: 0 sigmoid cross-entropy (Y (N, K) targets in [0, 1]), 1 softmax cross-entropy
    (Y (N, 1) class indices as floats). The N rows are one batch."""
    layers = layer_table(spec)
    N, d = X.shape
    K = n_logits(layers)
    T = theta.dtype.type
    acts = np.empty(N * row_width(layers), dtype=theta.dtype)
    mw = max_width(layers)
    delta_a = np.empty(N * mw, dtype=theta.dtype)
    delta_b = np.empty(N * mw, dtype=theta.dtype)
    terms = np.empty((2, N), dtype=theta.dtype)
    acts[:N * d].reshape((N, d))[:, :] = X
    layers_forward(layers, theta, acts, N)
    z = logits_of(layers, acts, N)
    loss_grad(loss_kind, z, Y, delta_a[:N * K].reshape((N, K)))
    loss_terms(loss_kind, z, Y, terms[0], terms[1])
    total = 0.0
    for n in range(N):
        total += terms[0, n]
    want_input = input_grad_out is not None
    dx = layers_backward(layers, theta, acts, delta_a, delta_b, grad_out, N, want_input, True)
    if input_grad_out is not None:
        input_grad_out[:, :] = dx[:N * d].reshape((N, d))
    return T(total / N)


@kernel
def logit_input_grads(spec, theta, X, out):
    """out (N, K, d): out[n, k] = d z_k(x_n) / d x_n for one network (theta (P,)), X (N, d)."""
    layers = layer_table(spec)
    N, d = X.shape
    K = n_logits(layers)
    tile = row_tile(layers, N, FORWARD_TILE)
    acts = np.empty(tile * row_width(layers), dtype=theta.dtype)
    mw = max_width(layers)
    delta_a = np.empty(tile * mw, dtype=theta.dtype)
    delta_b = np.empty(tile * mw, dtype=theta.dtype)
    no_grad = np.empty(0, dtype=theta.dtype)
    for r0 in range(0, N, tile):
        B = min(tile, N - r0)
        acts[:B * d].reshape((B, d))[:, :] = X[r0:r0 + B]
        layers_forward(layers, theta, acts, B)
        for k in range(K):
            dz = delta_a[:B * K].reshape((B, K))
            dz[:, :] = 0
            dz[:, k] = 1
            g = layers_backward(layers, theta, acts, delta_a, delta_b, no_grad, B, True, False)
            out[r0:r0 + B, k, :] = g[:B * d].reshape((B, d))


@kernel
def parameter_count(spec):
    """Parameters P of one network of this spec (theta's length)."""
    return n_params(layer_table(spec))
