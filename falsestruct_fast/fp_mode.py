"""Whether the CPU engines flush subnormal (denormal) numbers to zero.

Intel cores take a microcode assist of about a hundred cycles for every vector operation that
produces or reads a subnormal number; training drives some values there as a matter of course
(Adam's first moment of a parameter whose gradient is exactly zero decays by beta1 per step
and is subnormal after about 800 steps in float32). On an Intel Xeon this made the Experiment I
step 3x slower. So by default the CPU engines run with subnormals flushed to zero (x86's FTZ
and DAZ modes), as TensorFlow, the paper's framework, runs its CPU kernels: a value below
1.2e-38 (float32) or 2.2e-308 (float64) in magnitude becomes 0. The setting applies to every
call of the native and numba engines, on every thread they use; the caller's own
floating-point mode is restored after each call. It does nothing on CPUs other than x86, nor on
the GPU. The environment variable ``FALSESTRUCT_FLUSH_DENORMALS=0`` turns it off at import.
"""
from __future__ import annotations

from ._native_loader import _native


def flush_denormals() -> bool:
    """True when the CPU engines flush subnormal numbers to zero (the default)."""
    return bool(_native.flush_denormals())


def set_flush_denormals(flush: bool) -> bool:
    """Sets whether later CPU calls flush subnormal numbers to zero; returns the previous
    setting, so that ``prev = set_flush_denormals(False); ...; set_flush_denormals(prev)``
    restores it.

    flush: bool. True (the default at import): FTZ + DAZ, faster on Intel cores, results
    differ from IEEE gradual underflow only by values below the smallest normal number.
    False: IEEE arithmetic with subnormals kept.
    """
    if not isinstance(flush, bool):
        raise TypeError(f"flush: expected a bool, got {type(flush).__name__}")
    return bool(_native.set_flush_denormals(flush))
