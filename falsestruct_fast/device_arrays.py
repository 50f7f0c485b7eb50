"""GPU arrays at the public API's boundary (the CUDA engine, ``engine="cuda"``).

With ``engine="cuda"`` every array argument may be a CuPy array, any object with
``__cuda_array_interface__`` (Numba, PyTorch CUDA tensors, ...) or one with a CUDA DLPack
capsule: they are taken as CuPy arrays without a copy. NumPy arrays (and lists) are copied to
the GPU. Results are CuPy arrays on the same device when any array argument was on the GPU,
NumPy arrays otherwise ("NumPy in, NumPy out"). The CUDA engine needs CuPy (the ``[cuda]``
extra) for its device memory.

The CPU engines ("native", "numba") refuse GPU arrays with a TypeError naming the argument
(no implicit device-to-host copy: call ``cupy.asnumpy`` where that is meant).
"""
from __future__ import annotations

import numpy as np

# DLPack's device type of CUDA memory (kDLCUDA) and of CUDA managed memory (kDLCUDAManaged)
_DLPACK_CUDA = (2, 13)

_cupy = None  # the CuPy module, imported on first use (tests may put a stand-in here)


def cupy():
    """The CuPy module; RuntimeError saying how to install it when it is missing."""
    global _cupy
    if _cupy is None:
        try:
            import cupy as cp
        except ImportError:
            raise RuntimeError("engine: 'cuda' needs CuPy for GPU memory; install it with "
                               "pip install 'falsestruct_fast[cuda]' (cupy-cuda13x)") from None
        _cupy = cp
    return _cupy


def is_device_array(x) -> bool:
    """True for an array in GPU memory: ``__cuda_array_interface__`` or a CUDA DLPack device."""
    if isinstance(x, np.ndarray):
        return False
    if hasattr(x, "__cuda_array_interface__"):
        return True
    dlpack_device = getattr(x, "__dlpack_device__", None)
    if dlpack_device is None or not hasattr(x, "__dlpack__"):
        return False
    try:
        return int(dlpack_device()[0]) in _DLPACK_CUDA
    except Exception:  # a foreign object whose query fails is not ours to take
        return False


def any_on_device(*arrays) -> bool:
    """True when any argument (or any element of a list/tuple argument) is a GPU array."""
    for a in arrays:
        if isinstance(a, (list, tuple)):
            if any(is_device_array(x) for x in a):
                return True
        elif is_device_array(a):
            return True
    return False


def refuse_on_host_engine(engine: str, **named) -> None:
    """TypeError naming the first GPU array among `named` (name=array or list of arrays) when
    `engine` runs on the CPU."""
    if engine == "cuda":
        return
    for name, value in named.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        for i, x in enumerate(items):
            if is_device_array(x):
                where = name if not isinstance(value, (list, tuple)) else f"{name}[{i}]"
                raise TypeError(f"{where}: a GPU array ({type(x).__module__}.{type(x).__name__}) was "
                                f"given to engine={engine!r}, which runs on the CPU; use "
                                f"engine='cuda', or copy it to the host first (cupy.asnumpy)")


def to_device(x):
    """`x` as a CuPy array on the current device: GPU arrays without a copy (CUDA array
    interface, or DLPack), NumPy arrays and lists copied. Anything else is returned unchanged,
    for the validation to name."""
    cp = cupy()
    if isinstance(x, cp.ndarray):
        return x
    if is_device_array(x):
        if hasattr(x, "__cuda_array_interface__"):
            return cp.asarray(x)
        return cp.from_dlpack(x)
    if isinstance(x, np.ndarray):
        return cp.asarray(x)
    return x


def to_host(x):
    """A NumPy array of `x` (a copy from the GPU for CuPy arrays; NumPy arrays as they are)."""
    if isinstance(x, np.ndarray) or x is None:
        return x
    return cupy().asnumpy(x)


def array_module(x):
    """numpy for NumPy arrays, cupy for GPU arrays (the module whose functions fit `x`)."""
    return np if isinstance(x, np.ndarray) else cupy()


def is_array(x) -> bool:
    """A NumPy array, or a CuPy array when CuPy is in use."""
    return isinstance(x, np.ndarray) or (_cupy is not None and isinstance(x, _cupy.ndarray))


def stream_handle() -> int:
    """CuPy's current stream as the integer the CUDA engine takes (0: the default stream)."""
    return int(cupy().cuda.get_current_stream().ptr)
