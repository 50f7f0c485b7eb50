"""ReLU forward and backward. NaN passes through both (divergence stays visible), as in the
native engine (relu_if / relu_grad_if in src/falsestruct/fs_math.h)."""
from __future__ import annotations

from ._jit import kernel


@kernel(inline="always")
def relu_if(relu, s, zero):
    """max(s, 0) when relu, else s; NaN stays NaN. `zero`: 0 of s's dtype. One select, no
    branch: the sign of s is unpredictable once samples are shuffled."""
    return zero if relu & (s < zero) else s


@kernel(inline="always")
def relu_grad_if(relu, y, g, zero):
    """The gradient g through a ReLU whose output was y (y > 0 exactly where its input was);
    `zero`: 0 of g's dtype (not g * 0, which is NaN for an infinite g). One select, no branch."""
    return zero if relu & (not y > zero) else g


@kernel
def relu(x, out):
    """out = max(x, 0) elementwise (any shape, x and out of one dtype; may be the same array)."""
    xf = x.reshape(-1)
    of = out.reshape(-1)
    zero = out.dtype.type(0)
    for e in range(xf.shape[0]):
        of[e] = relu_if(True, xf[e], zero)


@kernel
def relu_backward(y, dy, dx):
    """dx = dy where the ReLU output y > 0, else 0 (same shapes)."""
    yf = y.reshape(-1)
    gf = dy.reshape(-1)
    df = dx.reshape(-1)
    zero = dx.dtype.type(0)
    for e in range(yf.shape[0]):
        df[e] = relu_grad_if(True, yf[e], gf[e], zero)
