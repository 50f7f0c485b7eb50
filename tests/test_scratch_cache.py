"""The CPU engine's workspace cache (falsestruct_fast.memory, src/falsestruct/host_buffer.h):
calls leave their workspaces for the next call, which must not depend on what is in them."""
from __future__ import annotations

import numpy as np
import pytest

import falsestruct_fast as fs
from falsestruct_fast import _native


def small_cnn():
    return fs.CNN((12, 10, 2), [fs.Conv2D(6, 3), fs.MaxPool2D(), fs.Conv2D(5, 5), fs.MaxPool2D(),
                                fs.Flatten(), fs.Dense(4, activation="relu"), fs.Dense(1)])


def poison_cache(dtype, threads):
    """Leaves NaN in every cached workspace: a loss-and-gradient pass of a big network whose
    parameters are all NaN writes NaN over activations, gradients, padding and kernels."""
    fs.release_scratch()
    net = fs.CNN((20, 20, 3), [fs.Conv2D(16, 5), fs.MaxPool2D(), fs.Conv2D(16, 3), fs.Flatten(),
                               fs.Dense(8), fs.Dense(1)])
    S, N = 2, 64
    theta = np.full((S, net.n_params), np.nan, dtype=dtype)
    X = np.ones((N, 20 * 20 * 3), dtype=dtype)
    Y = np.ones((N, 1), dtype=dtype)
    loss, grad = np.zeros(S, dtype), np.zeros_like(theta)
    _native.net_loss_and_grad(net.spec, 0, theta, X, Y, loss, grad, np.zeros((S, N, X.shape[1]), dtype),
                              threads, 0)
    assert np.isnan(grad).any()
    assert fs.scratch_bytes() > 0


def everything(net, params, X, y, threads):
    """Training, forward, loss/gradients with the input gradient, and DeepFool."""
    fit = fs.train(net, params, X, y, epochs=2, batch_size=8, optimizer=fs.Adam(lr=1e-2),
                   record_every=1, threads=threads, progress=False)
    loss, grads, dx = fs.loss_and_grad(net, fit.params, X, y, wrt_input=True, threads=threads)
    logits = fs.forward(net, fit.params, X, threads=threads)
    adv = fs.deepfool(net, fit.params, X[:6], threads=threads)
    return [fit.params.flat, fit.loss, loss, grads.flat, dx, logits, adv.perturbation]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["cnn", "mlp"])
def test_results_do_not_depend_on_cached_workspace_contents(kind, dtype, threads):
    rng = np.random.default_rng(0)
    if kind == "cnn":
        net = small_cnn()
        X = rng.standard_normal((16,) + net.input_shape).astype(dtype)
    else:
        net = fs.MLP([3, 12, 1])
        X = rng.standard_normal((16, 3)).astype(dtype)
    y = (np.arange(16) % 2).astype(dtype)
    params = fs.init(net, seeds=[1, 2], dtype=dtype)

    fs.release_scratch()
    fresh = everything(net, params, X, y, threads)  # fresh (zero) workspaces
    poison_cache(dtype, threads)
    reused = everything(net, params, X, y, threads)  # workspaces left full of NaN
    for i, (a, b) in enumerate(zip(fresh, reused)):
        assert np.all(np.isfinite(a)), f"result {i} not finite"
        np.testing.assert_array_equal(b, a, err_msg=f"result {i}")


def test_scratch_is_kept_between_calls_and_released():
    fs.release_scratch()
    assert fs.scratch_bytes() == 0
    net = small_cnn()
    params = fs.init(net, seeds=[0], dtype="float64")
    X = np.zeros((30,) + net.input_shape)
    fs.forward(net, params, X, threads=1)
    kept = fs.scratch_bytes()
    # at least the activations of 30 rows (float64), at most the cache's bound
    assert 30 * 8 * _native.workspace_scalars_per_row(net.spec) <= kept <= 512 << 20
    fs.forward(net, params, X, threads=1)
    assert fs.scratch_bytes() == kept  # the same buffer went out and came back
    assert fs.release_scratch() == kept
    assert fs.scratch_bytes() == 0
