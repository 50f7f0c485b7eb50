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
