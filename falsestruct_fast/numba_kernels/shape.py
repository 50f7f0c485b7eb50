"""The layer table of a network spec (the ``net.spec`` encoding of src/falsestruct/net_shape.h).

A spec is a 1-D int64 array: the input shape (h, w, c), then per layer [kind, units or
filters, k, relu] with kind 0 dense, 1 conv2d (k x k, stride 1, 'same'), 2 max-pool 2x2.
:func:`layer_table` turns it into one row of sizes and offsets per layer; every whole-network
kernel starts from that table. Activations are NHWC and sample-major; parameters are one flat
vector in Keras ``get_weights()`` order (dense kernels (in, out), conv kernels HWIO).
The spec is assumed valid (the Python API checks it when the network is built).
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel

DENSE, CONV2D, MAXPOOL2 = 0, 1, 2
# Columns of the layer table.
KIND, RELU, IN_H, IN_W, IN_C, OUT_H, OUT_W, OUT_C, KSIZE, W_OFF, B_OFF, ACT_IN, N_IN, N_OUT = range(14)
N_COLUMNS = 14


@kernel
def layer_table(spec):
    """(L, 14) int64 table of a spec: per layer its kind, relu flag, input and output (h, w, c),
    conv kernel size, kernel and bias offsets in theta, the offset of its input among one row's
    activations (layer inputs stacked: input, layer 0 output, ...), and its input and output
    widths per sample."""
    L = (spec.shape[0] - 3) // 4
    t = np.zeros((L, N_COLUMNS), dtype=np.int64)
    h, w, c = spec[0], spec[1], spec[2]
    off = 0
    act = 0
    for l in range(L):
        kind, units, k, relu = spec[3 + 4 * l], spec[4 + 4 * l], spec[5 + 4 * l], spec[6 + 4 * l]
        t[l, KIND] = kind
        t[l, RELU] = 1 if relu != 0 else 0
        t[l, IN_H], t[l, IN_W], t[l, IN_C] = h, w, c
        n_in = h * w * c
        if kind == DENSE:
            t[l, IN_H], t[l, IN_W], t[l, IN_C] = 1, 1, n_in
            h, w, c = 1, 1, units
            n_w = n_in * units
        elif kind == CONV2D:
            t[l, KSIZE] = k
            n_w = k * k * c * units
            c = units
        else:
            h, w = (h + 1) // 2, (w + 1) // 2
            n_w = 0
        t[l, OUT_H], t[l, OUT_W], t[l, OUT_C] = h, w, c
        t[l, N_IN] = n_in
        t[l, N_OUT] = h * w * c
        t[l, ACT_IN] = act
        act += n_in
        t[l, W_OFF] = off
        off += n_w
        t[l, B_OFF] = off
        if kind != MAXPOOL2:
            off += c
    return t


@kernel
def n_params(layers):
    """Parameters P of one network."""
    last = layers.shape[0] - 1
    return layers[last, B_OFF] + (layers[last, OUT_C] if layers[last, KIND] != MAXPOOL2 else 0)


@kernel
def n_logits(layers):
    return layers[layers.shape[0] - 1, N_OUT]


@kernel
def row_width(layers):
    """Activation values of one row, all layers (input and every output) together."""
    last = layers.shape[0] - 1
    return layers[last, ACT_IN] + layers[last, N_IN] + layers[last, N_OUT]


@kernel
def max_width(layers):
    """Largest layer input or output width per sample (size of a gradient buffer row)."""
    m = layers[0, N_IN]
    for l in range(layers.shape[0]):
        m = max(m, layers[l, N_OUT])
    return m


@kernel
def row_tile(layers, N, tile_max):
    """Rows evaluated at once by forward / input gradients / DeepFool: as the native engine
    (forward_tile in network.h): at most `tile_max` rows and about 2**21 scalars of workspace."""
    scratch = 0
    for l in range(layers.shape[0]):
        if layers[l, KIND] == CONV2D:
            pad = layers[l, IN_H] * (layers[l, IN_W] + 2 * (layers[l, KSIZE] // 2)) * max(layers[l, IN_C], layers[l, OUT_C])
            scratch = max(scratch, pad)
    per_row = row_width(layers) + 2 * max_width(layers) + n_logits(layers) + 2 + scratch
    tile = min((1 << 21) // per_row, tile_max)
    tile = min(tile, N)
    return max(tile, 1)
