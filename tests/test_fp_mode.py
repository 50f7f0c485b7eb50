"""Subnormal numbers: flushed to zero by default on the CPU engines (falsestruct_fast.fp_mode),
kept when asked, and the caller's own floating-point mode left as it was."""
import platform

import numpy as np
import pytest

import falsestruct_fast as fs
from helpers import run_python

X86 = platform.machine().lower() in ("x86_64", "amd64")
pytestmark = pytest.mark.skipif(not X86, reason="FTZ/DAZ are x86 modes; elsewhere nothing is flushed")

ENGINES = ["native", "numba"]
TINY32 = float(np.finfo(np.float32).tiny)  # smallest normal float32, 1.18e-38


@pytest.fixture
def flush_mode():
    """Restores the process's setting after the test."""
    previous = fs.flush_denormals()
    yield
    fs.set_flush_denormals(previous)


def linear_unit(w, b, dtype=np.float32):
    """A 1-1 MLP (one logit, no hidden layer) with weight w and bias b."""
    net = fs.MLP([1, 1])
    params = fs.init(net, [0], dtype=dtype)
    params[0][...] = w
    params[1][...] = b
    return net, params


def numpy_makes_subnormals() -> bool:
    """True when this thread's arithmetic keeps subnormals (numpy computes in the thread's mode)."""
    a = np.array([1e-20], dtype=np.float32)
    return bool((a * a)[0] != 0)


def test_default_and_setter(flush_mode):
    assert fs.flush_denormals() is True
    assert fs.build_info()["flush_denormals"] is True
    assert fs.set_flush_denormals(False) is True
    assert fs.flush_denormals() is False
    assert fs.build_info()["flush_denormals"] is False
    assert fs.set_flush_denormals(True) is False
    assert fs.flush_denormals() is True


@pytest.mark.parametrize("bad", [1, 0, None, "yes", np.bool_(True)])
def test_setter_refuses_non_bool(bad, flush_mode):
    with pytest.raises(TypeError, match="flush"):
        fs.set_flush_denormals(bad)


@pytest.mark.parametrize("engine", ENGINES)
def test_subnormal_results_are_flushed_or_kept(engine, flush_mode):
    # logit = w * x + b with w = x = 1e-20: the exact product 1e-40 is subnormal in float32
    net, params = linear_unit(1e-20, 0.0)
    X = np.full((3, 1), 1e-20, dtype=np.float32)
    fs.set_flush_denormals(True)
    assert np.all(fs.forward(net, params, X, engine=engine) == 0)
    fs.set_flush_denormals(False)
    out = fs.forward(net, params, X, engine=engine)
    np.testing.assert_allclose(out, np.float32(1e-20) * np.float32(1e-20), rtol=1e-2)
    assert np.all((out > 0) & (out < TINY32))


@pytest.mark.parametrize("engine", ENGINES)
def test_subnormal_inputs_read_as_zero_when_flushing(engine, flush_mode):
    # DAZ: a subnormal input times a weight of 1 is 0; kept, it passes through exactly
    net, params = linear_unit(1.0, 0.0)
    X = np.full((2, 1), 1e-39, dtype=np.float32)
    fs.set_flush_denormals(True)
    assert np.all(fs.forward(net, params, X, engine=engine) == 0)
    fs.set_flush_denormals(False)
    assert np.all(fs.forward(net, params, X, engine=engine) == X[:, 0][None, :, None])


@pytest.mark.parametrize("engine", ENGINES)
def test_training_flushes_decayed_adam_moments(engine, flush_mode):
    # Units that die during training (ReLU inactive on every sample) get gradients of exactly
    # 0 from then on, and their first moments decay by beta1 = 0.9 per step through the
    # subnormal range (after about 800 steps in float32). Flushed, no moment is subnormal;
    # kept, some are; the weights agree to float32 rounding either way.
    net = fs.MLP([2, 104, 1])
    params = fs.init(net, [0], dtype=np.float32)
    X = np.random.default_rng(0).random((200, 2), dtype=np.float32)
    y = (X[:, 0] > 0.5).astype(np.float32)
    results = {}
    for flush in (True, False):
        fs.set_flush_denormals(flush)
        r = fs.train(net, params, X, y, epochs=3000, batch_size=50, progress=False, engine=engine)
        m = np.concatenate([np.ravel(a) for a in r.opt_state.m])
        results[flush] = (r, m)
    subnormal = lambda m: np.sum((m != 0) & (np.abs(m) < TINY32))
    assert subnormal(results[True][1]) == 0
    assert subnormal(results[False][1]) > 0
    for a, b in zip(results[True][0].params, results[False][0].params):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_caller_mode_is_restored(engine, flush_mode):
    assert numpy_makes_subnormals()
    net, params = linear_unit(1.0, 0.0)
    X = np.ones((4, 1), dtype=np.float32)
    for flush in (True, False):
        fs.set_flush_denormals(flush)
        fs.forward(net, params, X, engine=engine)
        assert numpy_makes_subnormals()


def test_progress_callback_runs_in_the_callers_mode(flush_mode):
    # the native engine polls Python (progress, Ctrl-C) from the calling thread during a call
    seen = []
    net = fs.MLP([2, 8, 1])
    params = fs.init(net, range(2), dtype=np.float32)
    X = np.random.default_rng(0).random((200, 2), dtype=np.float32)
    y = (X[:, 0] > 0.5).astype(np.float32)
    fs.set_flush_denormals(True)
    fs.train(net, params, X, y, epochs=2000, batch_size=20, progress_seconds=1e-3, threads=1,
             progress=lambda done, total: seen.append(numpy_makes_subnormals()))
    assert seen and all(seen)


def run_with_environment(monkeypatch, value: str):
    """(returncode, stdout, stderr) of a fresh process that imports the package under test
    with FALSESTRUCT_FLUSH_DENORMALS=value and prints fs.flush_denormals()."""
    monkeypatch.setenv("FALSESTRUCT_FLUSH_DENORMALS", value)
    return run_python("import falsestruct_fast as fs; print(fs.flush_denormals())")


@pytest.mark.parametrize("value,expected", [("0", "False"), ("off", "False"), ("1", "True"), ("", "True")])
def test_environment_variable(monkeypatch, value, expected):
    code, out, err = run_with_environment(monkeypatch, value)
    assert code == 0, err
    assert out.strip() == expected


def test_environment_variable_bad_value(monkeypatch):
    code, out, err = run_with_environment(monkeypatch, "sometimes")
    assert code != 0
    assert "FALSESTRUCT_FLUSH_DENORMALS" in err and "sometimes" in err
