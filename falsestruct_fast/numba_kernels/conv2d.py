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


@kernel(inline="always")
def _add_rows4(acc, a0, r0, a1, r1, a2, r2, a3, r3):
    """acc += a0 r0 + a1 r1 + a2 r2 + a3 r3, added term by term in that order (each element's
    sum as four separate updates, but loaded and stored once: a loop over four updates of acc
    through memory would store it four times)."""
    for e in range(acc.shape[0]):
        s = acc[e]
        s += a0 * r0[e]
        s += a1 * r1[e]
        s += a2 * r2[e]
        s += a3 * r3[e]
        acc[e] = s


@kernel(inline="always")
def _add_row(acc, a, r):
    """acc += a r."""
    for e in range(acc.shape[0]):
        acc[e] += a * r[e]


@kernel(inline="always")
def _add_rows(acc, a, R):
    """acc += sum_i a[i] R[i], i ascending (in blocks of four rows, then one at a time)."""
    i = 0
    while i + 4 <= a.shape[0]:
        _add_rows4(acc, a[i], R[i], a[i + 1], R[i + 1], a[i + 2], R[i + 2], a[i + 3], R[i + 3])
        i += 4
    while i < a.shape[0]:
        _add_row(acc, a[i], R[i])
        i += 1


@kernel
def conv2d_forward(x, K, b, y, relu):
    """y[n, h, w, co] = act(b[co] + sum_{kh, kw, ci} x[n, h+kh-p, w+kw-p, ci] K[kh, kw, ci, co]),
    p = k // 2; act = ReLU when `relu`. Each output pixel's channels are summed over (kh, kw,
    ci) in ascending order."""
    B, H, W, Cin = x.shape
    k = K.shape[0]
    Cout = K.shape[3]
    p = k // 2
    zero = y.dtype.type(0)
    for n in range(B):
        for h in range(H):
            for w in range(W):
                yo = y[n, h, w]
                for co in range(Cout):
                    yo[co] = zero
                for kh in range(k):
                    ih = h + kh - p
                    if ih < 0 or ih >= H:
                        continue
                    for kw in range(k):
                        iw = w + kw - p
                        if iw < 0 or iw >= W:
                            continue
                        _add_rows(yo, x[n, ih, iw], K[kh, kw])
                for co in range(Cout):
                    yo[co] = relu_if(relu, b[co] + yo[co], zero)


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
                        _add_rows(dx[n, i, j], dy[n, oh, ow], Kt[kh, kw])
                for ci in range(Cin):
                    dx[n, i, j, ci] = relu_grad_if(relu_input, x[n, i, j, ci], dx[n, i, j, ci], zero)


@kernel
def conv2d_backward_params(x, dy, dK, db):
    """dK[kh, kw, ci, co] = sum_{n, h, w} x[n, h+kh-p, w+kw-p, ci] dy[n, h, w, co];
    db[co] = sum_{n, h, w} dy[n, h, w, co]. Every sum runs over the pixels (n, h, w) in
    ascending order; the pixels of an image row are taken four at a time (each element of dK
    loaded and stored once for their four terms)."""
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
            w = 0
            while w + 4 <= W:
                dy0, dy1, dy2, dy3 = dy[n, h, w], dy[n, h, w + 1], dy[n, h, w + 2], dy[n, h, w + 3]
                for kh in range(k):
                    ih = h + kh - p
                    if ih < 0 or ih >= H:
                        continue
                    for kw in range(k):
                        iw = w + kw - p
                        if iw >= 0 and iw + 3 < W:
                            x0, x1, x2, x3 = x[n, ih, iw], x[n, ih, iw + 1], x[n, ih, iw + 2], x[n, ih, iw + 3]
                            for ci in range(Cin):
                                _add_rows4(dK[kh, kw, ci], x0[ci], dy0, x1[ci], dy1, x2[ci], dy2, x3[ci], dy3)
                        else:  # at the image's edge: the pixels whose tap is inside, in order
                            for q in range(4):
                                if 0 <= iw + q < W:
                                    _add_pixel_terms(dK[kh, kw], x[n, ih, iw + q], dy[n, h, w + q])
                for q in range(4):
                    _add_row(db, dy.dtype.type(1), dy[n, h, w + q])
                w += 4
            for w in range(w, W):
                for kh in range(k):
                    ih = h + kh - p
                    if ih < 0 or ih >= H:
                        continue
                    for kw in range(k):
                        iw = w + kw - p
                        if 0 <= iw < W:
                            _add_pixel_terms(dK[kh, kw], x[n, ih, iw], dy[n, h, w])
                _add_row(db, dy.dtype.type(1), dy[n, h, w])


@kernel(inline="always")
def _add_pixel_terms(dK_tap, x_pixel, dy_pixel):
    """dK_tap[ci] += x_pixel[ci] dy_pixel for every input channel ci (one pixel's terms)."""
    for ci in range(x_pixel.shape[0]):
        _add_row(dK_tap[ci], x_pixel[ci], dy_pixel)
