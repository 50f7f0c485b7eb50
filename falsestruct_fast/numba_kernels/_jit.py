"""The one decorator of every kernel: compiled without the GIL, cached on disk, and with NumPy's
float error model (x / 0 is inf or NaN, as in C++, instead of Python's ZeroDivisionError)."""
from __future__ import annotations

from numba import njit


def kernel(fn=None, **options):
    """@kernel or @kernel(inline="always", parallel=True): njit(cache=True, nogil=True,
    error_model="numpy", **options)."""
    jit = njit(cache=True, nogil=True, error_model="numpy", **options)
    return jit if fn is None else jit(fn)
