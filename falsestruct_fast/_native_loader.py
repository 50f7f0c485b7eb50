"""Loads the compiled engines and reports how they were built.

The CPU engine (`_native`) is required: importing falsestruct_fast without it raises an
ImportError that says how to build it; the package never falls back to pure Python. Its kernels
are compiled once per instruction-set variant and one is chosen at import: the environment
variable FALSESTRUCT_CPU_ISA = auto (default: the widest this CPU runs) | avx2 | avx512
(| native in a build with FS_NATIVE_ARCH=ON). A variant that is not compiled or that this CPU
cannot run raises ImportError naming the variable and the choices. The CUDA
engine (`_cuda`) is optional and present only when the build found a CUDA compiler.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

try:
    from . import _native  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only on a broken install
    # (an ImportError raised by the module itself passes through: it says why the CPU engine
    # refuses this CPU or the FALSESTRUCT_CPU_ISA setting, and what to do)
    raise ImportError(
        "falsestruct_fast: the compiled CPU engine (falsestruct_fast._native) is missing. "
        "Install the package with `pip install .` (it builds the C++ kernels with CMake); "
        "importing the source folder directly does not work."
    ) from exc

try:
    from . import _cuda
except ImportError:  # built without a CUDA compiler
    _cuda = None

from . import _build_info


def source_hash(root: str | Path) -> str:
    """SHA-256 fingerprint of the kernel sources under ``root/src`` and ``root/cpp``.

    Computed exactly as CMake computes the value compiled into the extension, so that a
    checkout can tell whether the installed extension was built from its current sources.
    """
    root = Path(root)
    files = sorted(
        str(p.relative_to(root)).replace("\\", "/")
        for d in ("src", "cpp")
        for p in (root / d).rglob("*")
        if p.is_file()
    )
    lines = "".join(f"{f}:{hashlib.sha256((root / f).read_bytes()).hexdigest()}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def build_info() -> dict:
    """How the installed engines were built and what this process uses.

    source_hash, cuda_built, cuda_devices (GPUs visible), native_arch (built with -march=native),
    cpu_isa (the CPU kernels' instruction-set variant in use), cpu_isas (the variants compiled),
    flush_denormals (CPU calls flush subnormal numbers to zero, see falsestruct_fast.fp_mode),
    default_threads.
    """
    n_gpus = _cuda.device_count() if _cuda is not None else 0
    return {
        "source_hash": _native.source_hash(),
        "cuda_built": bool(_build_info.cuda_built),
        "cuda_devices": n_gpus,
        "native_arch": bool(_build_info.native_arch),
        "cpu_isa": _native.cpu_isa(),
        "cpu_isas": list(_native.cpu_isas()),
        "flush_denormals": bool(_native.flush_denormals()),
        "default_threads": _native.default_threads(),
    }
