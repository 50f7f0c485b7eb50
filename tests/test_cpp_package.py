"""The C++ core as a CMake package: examples/cpp built against the installed falsestruct_fast.

`pip install .` installs the headers and falsestructConfig.cmake inside the Python package;
the example finds them through falsestruct_fast.get_cmake_dir(). In the development setup
(the package imported from the source checkout) there is no package config, so the build
test is skipped there; it runs wherever the package is installed, as in CI.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import falsestruct_fast as fs

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = REPO_ROOT / "examples" / "cpp"
PACKAGE_DIR = Path(fs.__file__).resolve().parent

# examples/cpp/main.cpp's problem: 16 seeds of MLP 2-104-1, a 50-point grid version of
# Experiment I's T^r_delta, batch 10, 300 epochs with per-epoch sample shuffling.
SEEDS, POINTS, BATCH, EPOCHS = 16, 50, 10, 300
A, K, DELTA = 20, 26, 1e-4


def _installed_cmake_dir() -> str:
    try:
        return fs.get_cmake_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"falsestruct_fast runs from a source tree, not an installed package ({exc})")


def _cxx_compiler() -> str | None:
    if os.environ.get("CXX"):
        return shutil.which(os.environ["CXX"].split()[0])
    return next((path for name in ("c++", "g++", "clang++") if (path := shutil.which(name))), None)


def example_training_set() -> tuple[np.ndarray, np.ndarray]:
    """main.cpp's training set: X (50, 2) = (x1, delta * f_a(x1)), y (50,) = f_a(x1), float64."""
    b = A / (K + 1)
    x1 = b + (1 - b) * (np.arange(POINTS) + 0.5) / POINTS
    labels = np.ceil(A / x1) % 2
    return np.stack([x1, DELTA * labels], axis=1), labels


def test_get_cmake_dir_names_the_installed_package_config():
    installed = (PACKAGE_DIR / "share" / "cmake" / "falsestruct").is_dir()
    if not installed:
        with pytest.raises(FileNotFoundError, match=r"installed by `pip install \.`"):
            fs.get_cmake_dir()
        return
    cmake_dir = Path(fs.get_cmake_dir())
    assert cmake_dir == PACKAGE_DIR / "share" / "cmake" / "falsestruct"
    assert (cmake_dir / "falsestructConfig.cmake").is_file()
    assert (cmake_dir / "falsestructConfigVersion.cmake").is_file()
    installed_headers = sorted(p.name for p in (PACKAGE_DIR / "include" / "falsestruct").glob("*.h"))
    source_headers = sorted(p.name for p in (REPO_ROOT / "src" / "falsestruct").glob("*.h"))
    assert installed_headers == source_headers


def test_cpp_example_builds_against_installed_package_and_matches_python(tmp_path):
    cmake_dir = _installed_cmake_dir()
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    if _cxx_compiler() is None:
        pytest.skip("no C++ compiler (c++, g++, clang++ or $CXX) found")

    build = tmp_path / "build"
    # -O1 keeps the example's compile time modest (about half a minute); results do not depend on it.
    configure = subprocess.run(
        ["cmake", "-S", str(EXAMPLE_DIR), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
         "-DCMAKE_CXX_FLAGS_RELEASE=-O1", f"-Dfalsestruct_DIR={cmake_dir}"],
        capture_output=True, text=True, timeout=300)
    assert configure.returncode == 0, configure.stdout + configure.stderr
    compile_ = subprocess.run(["cmake", "--build", str(build)], capture_output=True, text=True,
                              timeout=900)
    assert compile_.returncode == 0, compile_.stdout + compile_.stderr
    run = subprocess.run([str(build / "train_mlp")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr

    rows = np.array([line.split() for line in run.stdout.splitlines()], dtype=np.float64)
    assert rows.shape == (SEEDS, 3)
    np.testing.assert_array_equal(rows[:, 0], np.arange(SEEDS))
    cpp_initial, cpp_final = rows[:, 1], rows[:, 2]
    assert np.isfinite(rows).all()
    assert (cpp_final < cpp_initial).all()

    # The same training from Python: the example's compiler flags (no -march=native, so no
    # FMA contraction) change only the rounding.
    net = fs.MLP([2, 104, 1])
    X, y = example_training_set()
    params = fs.init(net, seeds=range(SEEDS), dtype="float64")
    initial, _ = fs.loss_and_grad(net, params, X, y)
    fit = fs.train(net, params, X, y, epochs=EPOCHS, batch_size=BATCH, shuffle="samples",
                   progress=False)
    final, _ = fs.loss_and_grad(net, fit.params, X, y)
    np.testing.assert_allclose(cpp_initial, initial, rtol=1e-12)
    np.testing.assert_allclose(cpp_final, final, rtol=1e-9)
