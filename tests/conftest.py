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
