"""Philox4x32-10 counter-based random numbers and the per-epoch permutations, bitwise those
of the native engine (src/falsestruct/philox.h): a value is a pure function of
(seed, stream, counter), so every engine and thread count draws the same numbers.

All arithmetic is done in uint64 and masked to 32 bits (Numba has no wrapping uint32
multiply-high).
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel

STREAM_INIT = 1     # initial weights
STREAM_SHUFFLE = 2  # per-epoch sample / batch order
STREAM_DATA = 3     # data sampling (experiments)

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)
_SHIFT11 = np.uint64(11)


@kernel
def philox4x32(seed, c0, c1, c2, c3):
    """Philox4x32 with 10 rounds: key = the 64-bit `seed` (low word first), counter
    (c0, c1, c2, c3) of 32-bit values. Returns four uint64 holding the 32-bit outputs."""
    s = np.uint64(seed)
    k0 = s & _MASK
    k1 = s >> _SHIFT
    x0 = np.uint64(c0) & _MASK
    x1 = np.uint64(c1) & _MASK
    x2 = np.uint64(c2) & _MASK
    x3 = np.uint64(c3) & _MASK
    for _ in range(10):
        p0 = _M0 * x0
        p1 = _M1 * x2
        y0 = (p1 >> _SHIFT) ^ x1 ^ k0
        y2 = (p0 >> _SHIFT) ^ x3 ^ k1
        x1 = p1 & _MASK
        x3 = p0 & _MASK
        x0 = y0
        x2 = y2
        k0 = (k0 + _W0) & _MASK
        k1 = (k1 + _W1) & _MASK
    return x0, x1, x2, x3


@kernel
def uniform01(r0, r1):
    """Double in [0, 1) from the top 53 bits of (r0 << 32 | r1) (two Philox output words)."""
    bits = (np.uint64(r0) << _SHIFT) | np.uint64(r1)
    return float(bits >> _SHIFT11) * (1.0 / 9007199254740992.0)


@kernel
def uniform_below(r2, r3, n):
    """Integer in [0, n) (n < 2**32) from the 64 bits (r2 << 32 | r3) by multiply-shift,
    floor(bits * n / 2**64), exactly as the native engine computes it in 64-bit arithmetic."""
    nn = np.uint64(n)
    hi = np.uint64(r2) * nn
    lo = (np.uint64(r3) * nn) >> _SHIFT
    return np.int64((hi + lo) >> _SHIFT)


@kernel
def shuffle_draw(seed, epoch, i):
    """Swap partner of position i in the Fisher-Yates permutation of (seed, epoch)."""
    x0, x1, x2, x3 = philox4x32(seed, STREAM_SHUFFLE, epoch, i, 0)
    return uniform_below(x2, x3, i + 1)


@kernel
def epoch_permutation(seed, epoch, out):
    """out (n,) int64 = the permutation of 0..n-1 for (seed, epoch) (the native engine's batch
    or sample order of that epoch)."""
    n = out.shape[0]
    for i in range(n):
        out[i] = i
    for i in range(n - 1, 0, -1):
        j = shuffle_draw(seed, epoch, i)
        t = out[i]
        out[i] = out[j]
        out[j] = t
