"""Max-pool 2 x 2, stride 2, 'same' (Keras/TensorFlow): x (B, H, W, C) -> y (B, ceil(H/2),
ceil(W/2), C); on odd sizes the last window is clipped at the bottom/right edge. A NaN counts
as the maximum (divergence stays visible) and the first maximum of a window (row-major) wins,
as in the native engine (pool_argmax in src/falsestruct/pool_layer.h)."""
from __future__ import annotations

from ._jit import kernel

from .relu import relu_grad_if


@kernel(inline="always")
def _window_argmax(x, n, oh, ow, c):
    """(position 0..3 row-major in the window, value) of the first maximum of a window."""
    H, W = x.shape[1], x.shape[2]
    h0, w0 = 2 * oh, 2 * ow
    best = 0
    m = x[n, h0, w0, c]
    for q in range(1, 4):
        h = h0 + q // 2
        w = w0 + q % 2
        if h >= H or w >= W:
            continue
        v = x[n, h, w, c]
        if v > m or (v != v and m == m):
            m = v
            best = q
    return best, m


@kernel
def maxpool2_forward(x, y):
    """y[n, i, j, c] = max of the 2 x 2 window (2i.., 2j..) of x (NaN wins)."""
    B, OH, OW, C = y.shape
    for n in range(B):
        for oh in range(OH):
            for ow in range(OW):
                for c in range(C):
                    best, m = _window_argmax(x, n, oh, ow, c)
                    y[n, oh, ow, c] = m


@kernel
def maxpool2_backward_input(x, dy, dx, relu_input):
    """dx = dy routed to the first maximum of each window, zero elsewhere; times relu'(x) when
    x is a ReLU output (`relu_input`)."""
    B, OH, OW, C = dy.shape
    zero = dx.dtype.type(0)
    dxf = dx.reshape(-1)
    for e in range(dxf.shape[0]):
        dxf[e] = zero
    for n in range(B):
        for oh in range(OH):
            for ow in range(OW):
                for c in range(C):
                    best, m = _window_argmax(x, n, oh, ow, c)
                    dx[n, 2 * oh + best // 2, 2 * ow + best % 2, c] = relu_grad_if(relu_input, m, dy[n, oh, ow, c], zero)
