"""2-D convolution, k x k (k odd), stride 1, 'same' zero padding, on NHWC activations with HWIO
kernels (Keras layouts): x (B, H, W, Cin), K (k, k, Cin, Cout), b (Cout,), y (B, H, W, Cout).
Taps outside the image are skipped (the zero padding is never materialised)."""
from __future__ import annotations

import numpy as np

from ._jit import kernel
from .relu import relu_grad_if, relu_if

# Input channels from which the input gradient runs its innermost loop over them (below, one
# dot product over output channels per element).
WIDE_CHANNELS = 8


@kernel
def conv2d_forward(x, K, b, y, relu):
    """y[n, h, w, co] = act(b[co] + sum_{kh, kw, ci} x[n, h+kh-p, w+kw-p, ci] K[kh, kw, ci, co]),
    p = k // 2; act = ReLU when `relu`."""
    B, H, W, Cin = x.shape
    k = K.shape[0]
    Cout = K.shape[3]
    p = k // 2
    zero = y.dtype.type(0)
    for n in range(B):
        for h in range(H):
            for w in range(W):
                for co in range(Cout):
                    y[n, h, w, co] = zero
                for kh in range(k):
                    ih = h + kh - p
                    if ih < 0 or ih >= H:
                        continue
                    for kw in range(k):
                        iw = w + kw - p
                        if iw < 0 or iw >= W:
                            continue
                        for ci in range(Cin):
                            xv = x[n, ih, iw, ci]
                            for co in range(Cout):
                                y[n, h, w, co] += xv * K[kh, kw, ci, co]
                for co in range(Cout):
                    y[n, h, w, co] = relu_if(relu, b[co] + y[n, h, w, co], zero)


@kernel
def conv2d_backward_input(K, dy, x, dx, relu_input):
    """dx[n, i, j, ci] = sum_{kh, kw, co} dy[n, i-kh+p, j-kw+p, co] K[kh, kw, ci, co], times
    relu'(x) when the layer's input x (B, H, W, Cin) is a ReLU output (`relu_input`).

    With at least WIDE_CHANNELS input channels the kernel is transposed to (k, k, Cout, Cin)
    first, so that the innermost loop runs over input channels (independent sums, vectorised)
    instead of one dot product over output channels (a chain of dependent additions); either
    way each element is summed over (kh, kw, co) in ascending order."""
    B, H, W, Cout = dy.shape
    k = K.shape[0]
    Cin = K.shape[2]
    p = k // 2
    zero = dx.dtype.type(0)
    if Cin < WIDE_CHANNELS:
        for n in range(B):
            for i in range(H):
                for j in range(W):
                    for ci in range(Cin):
                        s = zero
                        for kh in range(k):
                            oh = i - kh + p
                            if oh < 0 or oh >= H:
                                continue
                            for kw in range(k):
                                ow = j - kw + p
                                if ow < 0 or ow >= W:
                                    continue
                                for co in range(Cout):
                                    s += dy[n, oh, ow, co] * K[kh, kw, ci, co]
                        dx[n, i, j, ci] = relu_grad_if(relu_input, x[n, i, j, ci], s, zero)
        return
    Kt = np.empty((k, k, Cout, Cin), dtype=K.dtype)
    for kh in range(k):
        for kw in range(k):
            for ci in range(Cin):
                for co in range(Cout):
                    Kt[kh, kw, co, ci] = K[kh, kw, ci, co]
    for n in range(B):
        for i in range(H):
            for j in range(W):
                for ci in range(Cin):
                    dx[n, i, j, ci] = zero
                for kh in range(k):
                    oh = i - kh + p
                    if oh < 0 or oh >= H:
                        continue
                    for kw in range(k):
                        ow = j - kw + p
                        if ow < 0 or ow >= W:
                            continue
                        for co in range(Cout):
                            g = dy[n, oh, ow, co]
                            for ci in range(Cin):
                                dx[n, i, j, ci] += g * Kt[kh, kw, co, ci]
                for ci in range(Cin):
                    dx[n, i, j, ci] = relu_grad_if(relu_input, x[n, i, j, ci], dx[n, i, j, ci], zero)


@kernel
def conv2d_backward_params(x, dy, dK, db):
    """dK[kh, kw, ci, co] = sum_{n, h, w} x[n, h+kh-p, w+kw-p, ci] dy[n, h, w, co];
    db[co] = sum_{n, h, w} dy[n, h, w, co]."""
    B, H, W, Cin = x.shape
    k = dK.shape[0]
    Cout = dK.shape[3]
    p = k // 2
    zero = dK.dtype.type(0)
    dKf = dK.reshape(-1)
    for e in range(dKf.shape[0]):
        dKf[e] = zero
    for co in range(Cout):
        db[co] = zero
    for n in range(B):
        for h in range(H):
            for w in range(W):
                for kh in range(k):
                    ih = h + kh - p
                    if ih < 0 or ih >= H:
                        continue
                    for kw in range(k):
                        iw = w + kw - p
                        if iw < 0 or iw >= W:
                            continue
                        for ci in range(Cin):
                            xv = x[n, ih, iw, ci]
                            for co in range(Cout):
                                dK[kh, kw, ci, co] += xv * dy[n, h, w, co]
                for co in range(Cout):
                    db[co] += dy[n, h, w, co]
