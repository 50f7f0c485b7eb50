"""The one decorator of every kernel: compiled without the GIL, cached on disk, and with NumPy's
float error model (x / 0 is inf or NaN, as in C++, instead of Python's ZeroDivisionError).

Numba decides whether a cached kernel is stale from the timestamp of the kernel's own source
file only, so a kernel whose callee in another file changed would load old machine code. The
first import of this module therefore drops the package's cached kernels whenever any source
file of the package differs from the ones they were compiled from.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from numba import njit

_STAMP = "sources.sha256"


def clear_stale_cache(package_dir) -> bool:
    """Deletes the Numba cache files (``__pycache__/*.nbi``, ``*.nbc``) of `package_dir` when
    the SHA-256 of its ``*.py`` files differs from the one recorded beside them, and records
    the current one. Returns True if files were deleted. A read-only folder is left as it is
    (Numba then caches elsewhere, see ``NUMBA_CACHE_DIR``)."""
    package_dir = Path(package_dir)
    digest = hashlib.sha256()
    for path in sorted(package_dir.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    current = digest.hexdigest()
    cache = package_dir / "__pycache__"
    stamp = cache / _STAMP
    try:
        if stamp.read_text() == current:
            return False
    except OSError:
        pass
    removed = False
    try:
        for path in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
            path.unlink(missing_ok=True)
            removed = True
        cache.mkdir(exist_ok=True)
        stamp.write_text(current)
    except OSError:
        pass
    return removed


clear_stale_cache(Path(__file__).resolve().parent)


# Multiply-adds contract to FMA instructions, as the native engine's -ffp-contract=fast: one
# rounding instead of two, and no reassociation of sums (their order stays the source's).
CONTRACT = ("contract",)


def kernel(fn=None, **options):
    """@kernel or @kernel(inline="always", parallel=True): njit(cache=True, nogil=True,
    error_model="numpy", boundscheck=False, fastmath={"contract"}, **options)."""
    options.setdefault("fastmath", set(CONTRACT))
    jit = njit(cache=True, nogil=True, error_model="numpy", boundscheck=False, **options)
    return jit if fn is None else jit(fn)
