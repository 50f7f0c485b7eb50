"""Adam in TensorFlow 1's form: hand computation, reference steps, continuation, PyTorch."""
from __future__ import annotations

import math

import numpy as np
import pytest

import falsestruct_fast as fs
import reference as R
from helpers import assert_close, assert_params_equal, make_data, make_targets


def tiny_problem(dtype=np.float64, N=8, seed=0):
    net = fs.MLP([2, 3, 1])
    params = fs.init(net, seeds=[seed], dtype="float64")
    rng = np.random.default_rng(seed)
    params = [(a + 0.2 * rng.standard_normal(a.shape)).astype(dtype) for a in params]
    X = make_data(N, 2, seed=seed + 1, dtype=dtype)
    y = (rng.random(N) < 0.5).astype(np.float64)
    return net, params, X, y


@pytest.mark.parametrize("adam", [fs.Adam(), fs.Adam(lr=0.05, beta1=0.7, beta2=0.95, eps=1e-3)],
                         ids=["defaults", "custom"])
def test_one_step_by_hand(adam):
    net, params, X, y = tiny_problem()
    N = len(X)
    fit = fs.train(net, params, X, y, epochs=1, batch_size=N, shuffle="none", optimizer=adam,
                   progress=False)
    ps = R.split_params(params, 0)
    loss0, grads, _ = R.loss_and_grad("sigmoid", ps, X, y)
    lr, b1, b2, eps = adam.lr, adam.beta1, adam.beta2, adam.eps
    lr_t = lr * math.sqrt(1 - b2) / (1 - b1)          # t = 1
    assert adam.step_size(1) == pytest.approx(lr_t, rel=1e-15)
    for i, (theta, g) in enumerate(zip(ps, grads)):
        m = (1 - b1) * g
        v = (1 - b2) * g * g
        want = theta - lr_t * m / (np.sqrt(v) + eps)
        assert_close(fit.params[i][0], want, 1e-12, f"param {i} after one step")
    flat_g = np.concatenate([g.reshape(-1) for g in grads])
    assert_close(fit.opt_state.m[0], (1 - b1) * flat_g, 1e-12, "adam m")
    assert_close(fit.opt_state.v[0], (1 - b2) * flat_g**2, 1e-12, "adam v")
    assert fit.opt_state.step == 1
    # the recorded loss is evaluated before the update
    np.testing.assert_array_equal(fit.epochs, [1])
    assert_close(fit.loss[0], [loss0], 1e-12, "loss history")


def test_one_step_float32():
    net, params, X, y = tiny_problem(np.float32)
    fit = fs.train(net, params, X, y, epochs=1, batch_size=len(X), shuffle="none",
                   progress=False)
    assert fit.params.dtype == np.float32 and fit.opt_state.m.dtype == np.float32
    # float64 reference from the float32 starting point and data
    ps = [a.astype(np.float64) for a in R.split_params(params, 0)]
    _, grads, _ = R.loss_and_grad("sigmoid", ps, X.astype(np.float64), y)
    lr_t = 1e-3 * math.sqrt(1 - 0.999) / (1 - 0.9)
    for i, (theta, g) in enumerate(zip(ps, grads)):
        want = theta - lr_t * (0.1 * g) / (np.sqrt(0.001 * g * g) + 1e-8)
        assert_close(fit.params[i][0], want, 2e-6, f"float32 param {i}")
    # the first step is about lr_t * sign(g) whatever |g| is: m and v carry the gradient's
    # magnitude, so they are what catches a wrongly scaled gradient
    flat_g = np.concatenate([g.reshape(-1) for g in grads])
    assert_close(fit.opt_state.m[0], 0.1 * flat_g, 1e-5, "float32 adam m")
    assert_close(fit.opt_state.v[0], 0.001 * flat_g**2, 1e-5, "float32 adam v")
    assert fit.opt_state.step == 1


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-4)])
def test_several_steps_match_reference(dtype, rtol):
    net = fs.MLP([3, 7, 5, 1])
    params = [a.astype(dtype) for a in fs.init(net, seeds=[3], dtype="float64")]
    X = make_data(24, 3, seed=4, dtype=dtype)
    y = make_targets(net, 24, seed=5)
    adam = fs.Adam(lr=0.01, beta1=0.85, beta2=0.99, eps=1e-7)
    fit = fs.train(net, params, X, y, epochs=5, batch_size=6, shuffle="none", optimizer=adam,
                   record_every=1, progress=False)
    orders = R.batch_orders("none", 3, 24, 6, 5)
    ref = R.train("sigmoid", R.split_params(params, 0), X, y, orders, lr=0.01, beta1=0.85,
                  beta2=0.99, eps=1e-7)
    assert fit.opt_state.step == 20 == ref["state"][2]
    for i, p in enumerate(ref["params"]):
        assert_close(fit.params[i][0], p, rtol, f"param {i} after 20 steps")
    assert_close(fit.opt_state.m[0], np.concatenate([a.reshape(-1) for a in ref["state"][0]]), rtol)
    assert_close(fit.opt_state.v[0], np.concatenate([a.reshape(-1) for a in ref["state"][1]]), rtol)
    assert_close(fit.loss[0], ref["loss"], rtol, "loss history")


def test_step_size_formula():
    adam = fs.Adam(lr=0.02, beta1=0.8, beta2=0.99)
    for t in (1, 2, 10, 1000):
        assert adam.step_size(t) == pytest.approx(0.02 * math.sqrt(1 - 0.99**t) / (1 - 0.8**t),
                                                  rel=1e-14)


@pytest.mark.parametrize("shuffle", ["none", "samples", "batches"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_continue_with_opt_state_equals_one_long_run(shuffle, dtype):
    net = fs.MLP([3, 7, 5, 1])
    params = fs.init(net, seeds=[5, 6, 7], dtype=dtype)
    X = make_data(50, 3, seed=1, dtype=np.dtype(dtype))
    y = make_targets(net, 50, seed=2)
    kw = dict(batch_size=8, shuffle=shuffle, record_every=1, progress=False,
              optimizer=fs.Adam(lr=3e-3))
    full = fs.train(net, params, X, y, epochs=7, **kw)
    part1 = fs.train(net, params, X, y, epochs=3, **kw)
    part2 = fs.train(net, part1.params, X, y, epochs=4, opt_state=part1.opt_state, **kw)
    assert_params_equal(part2.params, full.params, "continued params")
    np.testing.assert_array_equal(part2.opt_state.m, full.opt_state.m)
    np.testing.assert_array_equal(part2.opt_state.v, full.opt_state.v)
    assert part2.opt_state.step == full.opt_state.step == 7 * 6
    np.testing.assert_array_equal(part1.epochs, [1, 2, 3])
    np.testing.assert_array_equal(part2.epochs, [4, 5, 6, 7])
    np.testing.assert_array_equal(np.concatenate([part1.loss, part2.loss], axis=1), full.loss)
    np.testing.assert_array_equal(np.concatenate([part1.accuracy, part2.accuracy], axis=1),
                                  full.accuracy)
    # part1's state was not modified by continuing from it
    assert part1.opt_state.step == 3 * 6


def test_opt_state_not_modified_in_place():
    net, params, X, y = tiny_problem()
    fit = fs.train(net, params, X, y, epochs=2, batch_size=4, progress=False)
    m, v = fit.opt_state.m.copy(), fit.opt_state.v.copy()
    fs.train(net, fit.params, X, y, epochs=2, batch_size=4, opt_state=fit.opt_state,
             progress=False)
    np.testing.assert_array_equal(fit.opt_state.m, m)
    np.testing.assert_array_equal(fit.opt_state.v, v)
    assert fit.opt_state.step == 4


# ---- PyTorch ------------------------------------------------------------------------------
def _torch_adam_run(torch, params, X, y, steps, lr, tf1_eps):
    """Full-batch training of a [d, h, 1] ReLU net with torch.optim.Adam(eps=1e-8).

    tf1_eps: rescale torch's eps every step to eps / sqrt(1 - beta2^t), which turns torch's
    update lr/(1-b1^t) * m / (sqrt(v/(1-b2^t)) + eps') into TF1's exactly (in exact arithmetic).
    """
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: intra-op threads only add overhead
    try:
        tp = [torch.tensor(np.array(a[0]), dtype=torch.float64, requires_grad=True) for a in params]
        opt = torch.optim.Adam(tp, lr=lr, betas=(0.9, 0.999), eps=1e-8)
        Xt, yt = torch.tensor(X), torch.tensor(y)
        for t in range(1, steps + 1):
            h = torch.relu(Xt @ tp[0] + tp[1])
            z = (h @ tp[2] + tp[3])[:, 0]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z, yt)
            opt.zero_grad()
            loss.backward()
            if tf1_eps:
                opt.param_groups[0]["eps"] = 1e-8 / math.sqrt(1 - 0.999**t)
            opt.step()
        return np.concatenate([p.detach().numpy().reshape(-1) for p in tp])
    finally:
        torch.set_num_threads(n_threads)


@pytest.fixture(scope="module")
def torch_problem():
    """All-positive inputs and first-layer weights: no ReLU unit is (nearly) dead, random
    labels keep every gradient well away from eps, so the eps placement matters little."""
    net = fs.MLP([3, 8, 1])
    params = [np.abs(a) for a in fs.init(net, seeds=[4], dtype="float64")]
    rng = np.random.default_rng(0)
    X = rng.uniform(0.5, 1.5, (64, 3))
    y = (rng.random(64) < 0.5).astype(np.float64)
    steps, lr = 300, 1e-3
    fit = fs.train(net, params, X, y, epochs=steps, batch_size=64, shuffle="none",
                   optimizer=fs.Adam(lr=lr, eps=1e-8), progress=False)
    return params, X, y, steps, lr, fit.params.flat[0]


def test_against_torch_adam(torch_problem):
    torch = pytest.importorskip("torch")
    params, X, y, steps, lr, lib = torch_problem
    theirs = _torch_adam_run(torch, params, X, y, steps, lr, tf1_eps=False)
    scale = np.max(np.abs(theirs))
    diff = np.max(np.abs(lib - theirs))
    # torch adds eps to sqrt(v_hat), TF1 to sqrt(v): with |g| >> eps they agree to ~1e-7
    assert diff < 1e-5 * scale, diff / scale
    start = np.concatenate([a[0].reshape(-1) for a in params])
    assert np.max(np.abs(lib - start)) > 0.05  # the parameters did move


def test_against_torch_adam_with_tf1_eps(torch_problem):
    torch = pytest.importorskip("torch")
    params, X, y, steps, lr, lib = torch_problem
    tf1_like = _torch_adam_run(torch, params, X, y, steps, lr, tf1_eps=True)
    plain = _torch_adam_run(torch, params, X, y, steps, lr, tf1_eps=False)
    scale = np.max(np.abs(tf1_like))
    diff_tf1 = np.max(np.abs(lib - tf1_like))
    diff_plain = np.max(np.abs(lib - plain))
    # with torch's eps rescaled to TF1's placement the runs agree to rounding
    assert diff_tf1 < 1e-12 * scale, diff_tf1 / scale
    # ...and clearly better than with torch's own placement: the library is TF1's form
    assert diff_plain > 100 * max(diff_tf1, 1e-16 * scale)
