"""Shared fixtures and helpers for the falsestruct_fast test-suite.

At session start the compiled extension is checked against the current sources: a missing or
stale ``falsestruct_fast._native`` stops the whole run with a nonzero exit status (it is never
skipped), because every other test would silently exercise an old build.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
# pyproject uses --import-mode=importlib: make tests/reference.py importable as `reference`.
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))


def _extension_problem() -> str | None:
    """None if the compiled CPU engine is present and built from the current sources."""
    try:
        native = importlib.import_module("falsestruct_fast._native")
    except ImportError as exc:
        return f"falsestruct_fast._native is missing or cannot be imported: {exc}"
    try:
        loader = importlib.import_module("falsestruct_fast._native_loader")
    except ImportError as exc:
        return f"falsestruct_fast._native_loader cannot be imported: {exc}"
    built = native.source_hash()
    current = loader.source_hash(REPO_ROOT)
    if built != current:
        return (
            "falsestruct_fast._native is stale: it was compiled from other sources than the "
            f"checkout's src/ and cpp/.\n  extension source_hash(): {built}\n"
            f"  checkout source_hash({REPO_ROOT}): {current}\n"
            "Rebuild the extension (pip install . / the development build) before testing."
        )
    return None


def pytest_sessionstart(session):
    problem = _extension_problem()
    if problem is not None:
        pytest.exit(problem, returncode=3)


# ----------------------------------------------------------------------------------------
# helpers (imported by the test modules as `from conftest import ...`)
# ----------------------------------------------------------------------------------------
def assert_close(actual, expected, rtol, what="", scale=None):
    """Elementwise |a - e| <= rtol * (|e| + scale), scale = max|e| (absolute floor)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if scale is None:
        scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def assert_params_equal(a, b, what=""):
    """Bitwise equality of two params lists."""
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.dtype == y.dtype, f"{what}[{i}] dtype"
        assert x.shape == y.shape, f"{what}[{i}] shape"
        assert np.array_equal(x, y), f"{what}[{i}]: max diff {np.max(np.abs(x - y))}"


def make_data(N, d, *, seed=0, scale=1.0, S=None, dtype=np.float64):
    """Gaussian inputs (N, d), or (S, N, d) when S is given."""
    rng = np.random.default_rng(seed)
    shape = (N, d) if S is None else (S, N, d)
    return (rng.standard_normal(shape) * scale).astype(dtype)


def make_targets(net, N, *, seed=1, S=None, X=None):
    """Targets matching net.loss: 0/1 (N,) or (N, K) for sigmoid, class indices for softmax.

    With X given (2-D), sigmoid targets are a simple function of X (learnable)."""
    rng = np.random.default_rng(seed)
    K = net.n_logits
    lead = () if S is None else (S,)
    if net.loss == "softmax":
        return rng.integers(0, K, size=lead + (N,)).astype(np.float64)
    shape = lead + ((N,) if K == 1 else (N, K))
    if X is not None and S is None and K == 1:
        return (X[:, 0] * X[:, -1] > 0).astype(np.float64)
    return rng.integers(0, 2, size=shape).astype(np.float64)


@pytest.fixture(scope="session")
def fs():
    import falsestruct_fast

    return falsestruct_fast


@pytest.fixture(scope="session")
def native():
    from falsestruct_fast import _native

    return _native


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
