"""Test helpers shared by the test modules (import as `from helpers import ...`)."""
from __future__ import annotations

import numpy as np

from falsestruct_fast import _native


# ----------------------------------------------------------------------------------------
# numeric comparison and data helpers
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


# Fused training through the low-level binding, with `emulate` EmulatedBlock threads (0: the
# CPU engine). X is (N, D) or (S, N, D) with D the flattened input size.
def native_train(net, params, X, y, *, shuffle, epochs, batch_size, record_every, adam, emulate,
                  seeds=None):
    S, P = params.flat.shape
    theta = params.flat.copy()
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    n_records = -(-epochs // record_every)
    loss_h = np.full((S, n_records), np.nan)
    acc_h = np.full((S, n_records), np.nan)
    t = net.n_logits if net.loss == "sigmoid" else 1
    Y = np.ascontiguousarray(np.asarray(y, dtype=theta.dtype).reshape(X.shape[:-1] + (t,)))
    seeds = np.arange(S, dtype=np.uint64) if seeds is None else np.asarray(seeds, np.uint64)
    done = _native.net_train(net.spec, {"sigmoid": 0, "softmax": 1}[net.loss], {"none": 0, "samples": 1, "batches": 2}[shuffle],
                             adam.as_tuple(), X, Y, theta, m, v, seeds, epochs, batch_size, 0,
                             record_every, loss_h, acc_h, 1, None, 2.0, emulate)
    assert done == S * epochs
    return theta, m, v, loss_h, acc_h


# ----------------------------------------------------------------------------------------
# a fresh interpreter: calls that could crash (a signal) fail the test instead of pytest
# ----------------------------------------------------------------------------------------
def default_sigint_in_child() -> None:
    """preexec_fn: Ctrl-C (SIGINT) at its default in the child, so that Python installs its
    KeyboardInterrupt handler there even when the test run itself ignores SIGINT (a shell
    starts background jobs `cmd &` that way), which the child would otherwise inherit."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def python_subprocess(script: str, *args: str, **popen):
    """Popen of `python -c script args...` importing the very falsestruct_fast under test.
    stdout and stderr are text pipes; SIGINT is at its default in the child."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import falsestruct_fast

    env = dict(os.environ)
    package_parent = str(Path(falsestruct_fast.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    # `python -c` puts its working directory first on sys.path: run beside the package under
    # test, never in a checkout whose source folder would shadow the installed package.
    popen.setdefault("cwd", package_parent)
    popen.setdefault("preexec_fn", default_sigint_in_child)
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **popen)


def run_python(script: str, *args: str, timeout: float = 120.0):
    """(returncode, stdout, stderr) of `python -c script args...` (see python_subprocess);
    a negative returncode is the signal that killed it."""
    proc = python_subprocess(script, *args)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, out, err


# ----------------------------------------------------------------------------------------
# valid arguments of every _native binding (for argument checks and fuzzing)
# ----------------------------------------------------------------------------------------
# The array arguments each binding writes in place.
NATIVE_OUTPUTS = {
    "net_init": ("theta",),
    "net_forward": ("out",),
    "net_logit_input_grads": ("out",),
    "net_loss_and_grad": ("loss_out", "grad_out", "input_grad_out"),
    "net_deepfool": ("perturbation_out", "iterations_out", "status_out"),
    "net_train": ("theta", "adam_m", "adam_v", "loss_history", "acc_history"),
}


def spec_logits(spec):
    """Logits K of a native spec [in_h, in_w, in_c, then (kind, units, k, relu) per layer]:
    the last layer's h * w * c (dense 0: 1 x 1 x units, conv 1: filters, max-pool 2: halves)."""
    h, w, c = spec[:3]
    for kind, units, _k, _relu in zip(*[iter(spec[3:])] * 4):
        if kind == 0:
            h, w, c = 1, 1, units
        elif kind == 1:
            c = units
        else:
            h, w = (h + 1) // 2, (w + 1) // 2
    return h * w * c


def native_call_args(func, spec, *, S=2, N=5, dtype=np.float64, loss_kind=0, seed=0):
    """Keyword arguments of a valid call of _native.<func> for network `spec`: S networks
    initialised from seeds 0..S-1, N Gaussian rows, targets for loss_kind (0 sigmoid, 1
    softmax); float outputs filled with NaN and int outputs with -7, so that an output the call
    does not write is visible."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    P = _native.n_params(spec)
    d = spec[0] * spec[1] * spec[2]
    theta = np.empty((S, P), dtype)
    _native.net_init(spec, np.arange(S, dtype=np.uint64), theta, 1)
    K = spec_logits(spec)
    X = rng.standard_normal((N, d)).astype(dtype)
    if loss_kind == 0:
        Y = rng.integers(0, 2, (N, K)).astype(dtype)
    else:
        Y = rng.integers(0, K, (N, 1)).astype(dtype)

    def nan(*shape, dt=dtype):
        return np.full(shape, np.nan, dt)

    common = dict(n_threads=1)
    if func == "net_init":
        return dict(spec=spec, seeds=np.arange(S, dtype=np.uint64), theta=nan(S, P), **common)
    if func in ("net_forward", "net_logit_input_grads"):
        out = nan(S, N, K) if func == "net_forward" else nan(S, N, K, d)
        return dict(spec=spec, theta=theta, X=X, out=out, **common)
    if func == "net_loss_and_grad":
        return dict(spec=spec, loss_kind=loss_kind, theta=theta, X=X, Y=Y, loss_out=nan(S),
                    grad_out=nan(S, P), input_grad_out=nan(S, N, d), **common)
    if func == "net_deepfool":
        return dict(spec=spec, theta=theta, X=X, perturbation_out=nan(S, N, d),
                    iterations_out=np.full((S, N), -7, np.int32),
                    status_out=np.full((S, N), -7, np.int32), overshoot=0.02, max_iter=10,
                    linf=False, candidates=1, foolbox=False, clip=None, **common)
    if func == "net_train":
        epochs, record_every = 2, 1
        return dict(spec=spec, loss_kind=loss_kind, shuffle=1, adam=(1e-3, 0.9, 0.999, 1e-8), X=X,
                    Y=Y, theta=theta, adam_m=np.zeros((S, P), dtype), adam_v=np.zeros((S, P), dtype),
                    seeds=np.arange(S, dtype=np.uint64), epochs=epochs, batch_size=max(1, N // 2),
                    step0=0, record_every=record_every, loss_history=nan(S, epochs, dt=np.float64),
                    acc_history=nan(S, epochs, dt=np.float64), **common)
    raise ValueError(f"func: unknown binding {func!r}")
