"""The compiled engines are present and built from this checkout's sources."""
import shutil
from pathlib import Path

import falsestruct_fast as fs
from falsestruct_fast import _native_loader


def test_native_extension_matches_sources():
    root = Path(__file__).resolve().parents[1]
    assert fs.build_info()["source_hash"] == _native_loader.source_hash(root)


def test_cuda_engine_built_when_nvcc_present():
    # CI has nvcc: the CUDA kernels must then have been compiled (sm_90 + PTX).
    if shutil.which("nvcc") is None:
        import pytest

        pytest.skip("no nvcc on PATH: the CUDA engine is not expected")
    info = fs.build_info()
    assert info["cuda_built"], "nvcc is on PATH but the CUDA engine was not built"
    from falsestruct_fast import _cuda

    assert _cuda.device_count() >= 0  # importable without a GPU or driver
