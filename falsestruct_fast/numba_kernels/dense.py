"""Dense layer forward and backward on sample-major activations: x (B, n_in), W (n_in, n_out)
(Keras layout), b (n_out,), y (B, n_out). Every sum runs over its index in ascending order,
accumulating in the arrays' dtype (as the native engine; its blocked sums may round differently),
except a single output's dot products (dot, dot4: SIMD partial sums).
"""
from __future__ import annotations

from ._jit import kernel

from .relu import relu_grad_if, relu_if

# Below this many outputs a layer is "narrow" (e.g. the one logit of a binary classifier): loops
# over outputs would be too short to vectorise, so the loops run over inputs instead.
NARROW_OUTPUTS = 8


# Reassociation is allowed in this sum only: LLVM splits it into SIMD partial sums (a single
# chain of dependent additions is several times slower). The order is fixed by the compiled
# code: the same for every call on arrays of the same types (the fused shallow step's logit
# equals the layer kernels' bit for bit), differing from the native engine's by rounding.
@kernel(fastmath={"contract", "reassoc"})
def dot(a, b):
    """sum_j a[j] b[j] of two 1-D arrays of one dtype and length, in that dtype."""
    s = a.dtype.type(0)
    for j in range(a.shape[0]):
        s += a[j] * b[j]
    return s


@kernel(fastmath={"contract", "reassoc"})
def dot4(a0, a1, a2, a3, b):
    """(a0 . b, a1 . b, a2 . b, a3 . b) in one loop (b loaded once, four independent sums)."""
    s0 = b.dtype.type(0)
    s1 = s0
    s2 = s0
    s3 = s0
    for j in range(b.shape[0]):
        bj = b[j]
        s0 += a0[j] * bj
        s1 += a1[j] * bj
        s2 += a2[j] * bj
        s3 += a3[j] * bj
    return s0, s1, s2, s3


@kernel
def dot_rows(x, w, z):
    """z[n] = x[n] . w for the rows of x (B, m): rows n .. n + 3 with dot4 from n = 0, the
    last B mod 4 rows with dot (each row's sum depends on its place among the rows)."""
    B = x.shape[0]
    n = 0
    while n + 4 <= B:
        z[n], z[n + 1], z[n + 2], z[n + 3] = dot4(x[n], x[n + 1], x[n + 2], x[n + 3], w)
        n += 4
    for n in range(n, B):
        z[n] = dot(x[n], w)


@kernel(inline="always")
def _dot_strided(x, W, j, zero):
    """sum_i x[i] W[i, j] with four partial sums (i mod 4), added as (s0 + s1) + (s2 + s3):
    independent chains, so the sum is not one long chain of dependent additions."""
    n = x.shape[0]
    s0 = zero
    s1 = zero
    s2 = zero
    s3 = zero
    i = 0
    while i + 4 <= n:
        s0 += x[i] * W[i, j]
        s1 += x[i + 1] * W[i + 1, j]
        s2 += x[i + 2] * W[i + 2, j]
        s3 += x[i + 3] * W[i + 3, j]
        i += 4
    while i < n:
        s0 += x[i] * W[i, j]
        i += 1
    return (s0 + s1) + (s2 + s3)


@kernel
def dense_forward(x, W, b, y, relu):
    """y[n, j] = act(b[j] + sum_i x[n, i] W[i, j]); act = ReLU when `relu`, else identity."""
    B, n_in = x.shape
    n_out = W.shape[1]
    zero = y.dtype.type(0)
    if n_out == 1:  # one column: contiguous (a copy only if W is not)
        dot_rows(x, W.ravel(), y[:, 0])
        for n in range(B):
            y[n, 0] = relu_if(relu, b[0] + y[n, 0], zero)
        return
    if n_out < NARROW_OUTPUTS:
        for n in range(B):
            for j in range(n_out):
                y[n, j] = relu_if(relu, b[j] + _dot_strided(x[n], W, j, zero), zero)
        return
    for n in range(B):
        for j in range(n_out):
            y[n, j] = zero
        for i in range(n_in):
            xi = x[n, i]
            for j in range(n_out):
                y[n, j] += xi * W[i, j]
        for j in range(n_out):
            y[n, j] = relu_if(relu, b[j] + y[n, j], zero)


@kernel
def dense_backward_input(W, dy, x, dx, relu_input):
    """dx[n, i] = sum_j dy[n, j] W[i, j], times relu'(x) when the layer's input x (B, n_in) is
    a ReLU output (`relu_input`)."""
    B, n_out = dy.shape
    n_in = W.shape[0]
    zero = dx.dtype.type(0)
    if n_out < NARROW_OUTPUTS:  # dx[n, :] += dy[n, j] W[:, j], j ascending
        for n in range(B):
            for i in range(n_in):
                dx[n, i] = zero
            for j in range(n_out):
                d = dy[n, j]
                for i in range(n_in):
                    dx[n, i] += d * W[i, j]
            for i in range(n_in):
                dx[n, i] = relu_grad_if(relu_input, x[n, i], dx[n, i], zero)
        return
    for n in range(B):
        for i in range(n_in):
            s = zero
            for j in range(n_out):
                s += dy[n, j] * W[i, j]
            dx[n, i] = relu_grad_if(relu_input, x[n, i], s, zero)


@kernel
def dense_backward_params(x, dy, dW, db):
    """dW[i, j] = sum_n x[n, i] dy[n, j];  db[j] = sum_n dy[n, j]."""
    B, n_in = x.shape
    n_out = dy.shape[1]
    zero = dW.dtype.type(0)
    for i in range(n_in):
        for j in range(n_out):
            dW[i, j] = zero
    for j in range(n_out):
        db[j] = zero
    for n in range(B):
        if n_out < NARROW_OUTPUTS:  # the same sums over n, with the loop over inputs inside
            for j in range(n_out):
                d = dy[n, j]
                for i in range(n_in):
                    dW[i, j] += x[n, i] * d
        else:
            for i in range(n_in):
                xi = x[n, i]
                for j in range(n_out):
                    dW[i, j] += xi * dy[n, j]
        for j in range(n_out):
            db[j] += dy[n, j]
