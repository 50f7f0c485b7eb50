"""Argument checks shared by the public API. Every error names the offending argument.

TypeError: wrong kind of object or dtype. ValueError: wrong shape, value, or option.
"""
from __future__ import annotations

import numbers
import operator

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# Worker threads any call accepts: more than the machine could ever use, fewer than would make
# the per-thread workspaces alone exhaust memory (a typo like threads=5*10**7 is refused).
MAX_THREADS = 1024


def float_dtype(dtype, name: str = "dtype") -> np.dtype:
    if dtype is None:  # np.dtype(None) is float64: a missing dtype must not pass silently
        raise TypeError(f"{name}: must be float32 or float64, got None")
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{name}: not a dtype: {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name}: must be float32 or float64, got {dt}")
    return dt


def integer(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: must be an integer, got bool {value!r}")
    if not isinstance(value, numbers.Integral):
        try:
            value = operator.index(value)
        except TypeError:
            raise TypeError(f"{name}: must be an integer, got {type(value).__name__} {value!r}") from None
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: must be <= {maximum}, got {value}")
    return value


def real(value, name: str, minimum: float | None = None, maximum: float | None = None) -> float:
    """A finite real number (bool, complex and strings refused) in [minimum, maximum]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: must be <= {maximum}, got {value}")
    return value


def threads(value, name: str = "threads") -> int:
    """CPU threads for the native engine: None (0 to the engine: all cores) or 1..MAX_THREADS."""
    if value is None:
        return 0
    return integer(value, name, minimum=1, maximum=MAX_THREADS)


def option(value, name: str, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{name}: unknown option {value!r}; expected one of {sorted(allowed)}")
    return value


def finite(a: np.ndarray, name: str) -> None:
    """ValueError naming `a` and its first NaN/inf. CuPy arrays are checked on the GPU (NumPy's
    functions dispatch to CuPy's; one small synchronisation)."""
    if a.size and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name}: contains NaN or inf (first at index {tuple(int(i) for i in bad)})")


def float_array(x, name: str, dtype: np.dtype, check_finite: bool = True, xp=np) -> np.ndarray:
    """A C-contiguous array of exactly `dtype` (copying only when needed), finite unless
    check_finite is False. xp: the array module of the result (numpy, or cupy for the CUDA
    engine: `x` is then already a CuPy array, or host data copied to the GPU here)."""
    if isinstance(x, (np.ndarray, xp.ndarray)):
        if x.dtype.kind not in "iuf":
            raise TypeError(f"{name}: must be a float array, got dtype {x.dtype}")
        if x.dtype != dtype:
            # No silent conversion: a float64 array given to float32 networks is most likely a
            # mistake, and converting a large per-seed array costs as much as the work.
            raise TypeError(
                f"{name}: dtype {x.dtype} does not match the parameters' dtype {dtype}; "
                f"convert it with {name}.astype(np.{dtype.name})"
            )
    else:
        try:
            x = np.asarray(x, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name}: cannot be converted to a {dtype} array ({exc})") from None
    x = xp.ascontiguousarray(xp.asarray(x))
    if check_finite:
        finite(x, name)
    return x
