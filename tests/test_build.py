"""The compiled engines are present, and the staleness check behind conftest.py can see a change.

(conftest.py already stops the run when the extension's source hash differs from the
checkout's, so comparing the two again here could not fail; what is tested instead is that
the fingerprint reacts to every kind of change it is meant to catch.)
"""
import shutil

import pytest

import falsestruct_fast as fs
from falsestruct_fast import _native, _native_loader


def _kernel_tree(root):
    (root / "src" / "falsestruct").mkdir(parents=True)
    (root / "cpp").mkdir()
    (root / "src" / "falsestruct" / "core.h").write_text("int f();\n")
    (root / "cpp" / "module.cpp").write_text("int f() { return 1; }\n")
    return root


def test_source_hash_sees_edits_new_files_and_renames(tmp_path):
    root = _kernel_tree(tmp_path / "a")
    base = _native_loader.source_hash(root)
    assert len(base) == 64 and set(base) <= set("0123456789abcdef")  # a SHA-256 hex digest
    # the fingerprint depends on the files' paths relative to the root and their bytes only
    assert _native_loader.source_hash(_kernel_tree(tmp_path / "b")) == base
    (root / "cpp" / "module.cpp").write_text("int f() { return 2; }\n")
    edited = _native_loader.source_hash(root)
    assert edited != base
    (root / "src" / "falsestruct" / "extra.h").write_text("")
    added = _native_loader.source_hash(root)
    assert added not in (base, edited)
    (root / "src" / "falsestruct" / "extra.h").rename(root / "src" / "falsestruct" / "other.h")
    assert _native_loader.source_hash(root) not in (base, edited, added)
    # files outside src/ and cpp/ are not kernel sources
    (root / "README.md").write_text("notes\n")
    (root / "src" / "falsestruct" / "other.h").rename(root / "src" / "falsestruct" / "extra.h")
    assert _native_loader.source_hash(root) == added


def test_build_info_reports_the_loaded_extension():
    info = fs.build_info()
    assert info["source_hash"] == _native.source_hash()
    assert info["default_threads"] == _native.default_threads() >= 1
    assert info["cuda_built"] == (_native_loader._cuda is not None)


def test_cuda_engine_built_when_nvcc_present():
    # CI has nvcc: the CUDA kernels must then have been compiled (sm_90 + PTX).
    if shutil.which("nvcc") is None:
        pytest.skip("no nvcc on PATH: the CUDA engine is not expected")
    info = fs.build_info()
    assert info["cuda_built"], "nvcc is on PATH but the CUDA engine was not built"
    from falsestruct_fast import _cuda  # importable without a GPU or driver

    n_devices = _cuda.device_count()
    assert isinstance(n_devices, int) and n_devices == info["cuda_devices"]
    assert callable(_cuda.net_train_epochs) and callable(_cuda.net_forward)
    if n_devices > 0:
        assert isinstance(_cuda.device_name(0), str) and _cuda.device_name(0)
