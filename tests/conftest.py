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


def _checkout_hash_without_package() -> str:
    """The checkout's source hash when the package cannot be imported: run the loader's own
    source_hash function, taken from its file, without the package's imports."""
    import ast
    import hashlib

    path = REPO_ROOT / "falsestruct_fast" / "_native_loader.py"
    try:
        text = path.read_text()
        fn = next(n for n in ast.parse(text).body
                  if isinstance(n, ast.FunctionDef) and n.name == "source_hash")
        namespace = {"hashlib": hashlib, "Path": Path}
        exec("from __future__ import annotations\n" + ast.get_source_segment(text, fn), namespace)
        return namespace["source_hash"](REPO_ROOT)
    except Exception as exc:  # diagnostics only
        return f"<unavailable: {exc}>"


def _extension_problem() -> str | None:
    """None if the compiled CPU engine is present and built from the current sources."""
    try:
        native = importlib.import_module("falsestruct_fast._native")
    except ImportError as exc:
        return (
            f"falsestruct_fast._native is missing or cannot be imported: {exc}\n"
            "  extension source_hash(): <no extension>\n"
            f"  checkout source_hash({REPO_ROOT}): {_checkout_hash_without_package()}"
        )
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


# ---- fixtures: small valid problems (S = 2 networks, N = 10 rows, float64) ----------------
@pytest.fixture
def problem():
    """(net, params, X, y) for a [2, 5, 1] sigmoid network."""
    import falsestruct_fast as fs
    from helpers import make_data, make_targets

    net = fs.MLP([2, 5, 1])
    params = fs.init(net, seeds=range(2), dtype="float64")
    X = make_data(10, 2, seed=0)
    y = make_targets(net, 10, seed=1)
    return net, params, X, y


@pytest.fixture
def softmax_problem():
    """(net, params, X, labels) for a [2, 5, 3] softmax network."""
    import falsestruct_fast as fs
    from helpers import make_data

    net = fs.MLP([2, 5, 3])
    params = fs.init(net, seeds=range(2), dtype="float64")
    X = make_data(10, 2, seed=0)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    return net, params, X, y
