"""The CUDA per-point kernels (src/falsestruct/cuda/point_kernels.h: one thread per point, the
network's weights in shared memory) run on the CPU through their emulation
(_native.cuda_emulation.point_*), against the CPU engine's forward, logit input gradients and
DeepFool. Emulated devices are small (few SMs, odd block sizes) so that blocks loop over
several (network, chunk) units and networks spread over several blocks."""
from __future__ import annotations

import numpy as np
import pytest

import falsestruct_fast as fs
from falsestruct_fast import _native
from helpers import assert_close

em = _native.cuda_emulation

# (widths, loss): the register path (shallow binary, 1..4 inputs) and the scratch path.
NETS = {
    "exp1 2-104-1": ([2, 104, 1], None),
    "1 input": ([1, 7, 1], None),
    "4 inputs": ([4, 9, 1], None),
    "5 inputs (scratch path)": ([5, 12, 1], None),
    "two hidden, binary": ([3, 16, 16, 1], None),
    "softmax, one hidden": ([4, 20, 3], "softmax"),
    "softmax, three hidden": ([6, 10, 8, 5, 4], "softmax"),
    "sigmoid, 3 logits": ([3, 12, 3], "sigmoid"),
}
# (threads_per_block, sm_count): the GPU's 128 threads on a 2-SM device; 7 threads on one SM
# (32 units per grid: blocks loop over units); 32 threads on a large device (one network's
# points over several blocks).
DEVICES = [(128, 2), (7, 1), (32, 64)]


def _setup(name, dtype=np.float64, S=3, N=40, per_net_x=False, seed=0):
    widths, loss = NETS[name]
    net = fs.MLP(widths, loss=loss)
    rng = np.random.default_rng(seed)
    # Glorot weights plus noise on every parameter: nonzero biases (a ReLU net without biases is
    # positively homogeneous, and DeepFool's steps on it mostly never flip the label)
    theta = fs.init(net, seeds=range(S), dtype=np.float64).flat
    theta = (theta + 0.2 * rng.standard_normal(theta.shape)).astype(dtype)
    shape = (S, N, widths[0]) if per_net_x else (N, widths[0])
    return net, theta, rng.standard_normal(shape).astype(dtype)


def _forward_and_grads(fn_forward, fn_grads, net, theta, X, **kw):
    S, N = theta.shape[0], X.shape[-2]
    out = np.full((S, N, net.n_logits), np.nan, theta.dtype)
    grads = np.full((S, N, net.n_logits, net.n_inputs), np.nan, theta.dtype)
    fn_forward(net.spec, theta, X, out, **kw)
    fn_grads(net.spec, theta, X, grads, **kw)
    return out, grads


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_forward_and_input_grads_equal_the_cpu_engine(name, dtype, rtol):
    for per_net_x in (False, True):
        net, theta, X = _setup(name, dtype, per_net_x=per_net_x)
        ref = _forward_and_grads(_native.net_forward, _native.net_logit_input_grads, net, theta, X)
        for threads, sms in DEVICES:
            got = _forward_and_grads(em.point_forward, em.point_input_grads, net, theta, X,
                                     threads_per_block=threads, sm_count=sms)
            for a, b, what in zip(got, ref, ("logits", "input gradients")):
                assert a.dtype == dtype
                assert_close(a, b, rtol, f"{name} {what} ({threads}, {sms}) per_net_x={per_net_x}")


def _deepfool(fn, net, theta, X, **kw):
    S, N = theta.shape[0], X.shape[-2]
    pert = np.full((S, N, net.n_inputs), -7.0, theta.dtype)
    iters = np.full((S, N), -7, np.int32)
    status = np.full((S, N), -7, np.int32)
    opts = dict(overshoot=0.02, max_iter=50, linf=False, candidates=max(1, net.n_logits - 1),
                foolbox=False)
    opts.update(kw)
    fn(net.spec, theta, X, pert, iters, status, **opts)
    return pert, iters, status


def _assert_deepfool_equal(got, ref, what, rtol=1e-9):
    """Points the CPU engine settles in a few steps (rounding makes the ~50-step ones, which
    oscillate between linear regions, differ even between the CPU engine's tilings) have the
    same status, iterations and perturbation."""
    pert, iters, status = got
    rpert, riters, rstatus = ref
    calm = riters < 20
    assert calm.mean() > 0.3 and (status == rstatus).mean() > 0.9, what
    assert np.array_equal(status[calm], rstatus[calm]), what
    assert np.array_equal(iters[calm], riters[calm]), what
    assert_close(pert[calm], rpert[calm], rtol, what)


DEEPFOOL_OPTIONS = [
    dict(),
    dict(linf=True),
    dict(overshoot=1e-3),
    dict(overshoot=0.5, linf=True),
    dict(foolbox=True),
    dict(foolbox=True, linf=True),
    dict(clip=(-1.5, 1.5)),
    dict(clip=(-1.5, 1.5), foolbox=True, linf=True),
]


@pytest.mark.parametrize("name", list(NETS))
def test_deepfool_equals_the_cpu_engine(name):
    net, theta, X = _setup(name)
    if net.n_logits > 1:
        X *= 0.5  # inside the clip box below
    X = np.clip(X, -1.4, 1.4)
    for opts in DEEPFOOL_OPTIONS:
        if net.n_logits > 1:
            opts = dict(opts, candidates=1 if opts.get("linf") else net.n_logits - 1)
        ref = _deepfool(_native.net_deepfool, net, theta, X, **opts)
        assert (ref[2] == fs.AttackStatus.FLIPPED).any()
        for threads, sms in DEVICES[:2]:
            got = _deepfool(em.point_deepfool, net, theta, X, threads_per_block=threads,
                            sm_count=sms, **opts)
            _assert_deepfool_equal(got, ref, f"{name} {opts} ({threads}, {sms})")


def test_deepfool_per_network_points_and_float32():
    for name in ("exp1 2-104-1", "softmax, one hidden"):
        net, theta, X = _setup(name, per_net_x=True, S=4, N=30, seed=3)
        ref = _deepfool(_native.net_deepfool, net, theta, X)
        _assert_deepfool_equal(_deepfool(em.point_deepfool, net, theta, X), ref, name)
        net, theta, X = _setup(name, np.float32, per_net_x=True, S=4, N=30, seed=3)
        ref = _deepfool(_native.net_deepfool, net, theta, X)
        _assert_deepfool_equal(_deepfool(em.point_deepfool, net, theta, X), ref, name + " float32",
                               rtol=1e-4)


def test_mapping_covers_every_point_once_and_does_not_change_results():
    # The per-point computation does not depend on the grid: results are bitwise equal.
    for name in ("exp1 2-104-1", "softmax, three hidden"):
        net, theta, X = _setup(name, S=5, N=77)
        runs = [_deepfool(em.point_deepfool, net, theta, X, threads_per_block=t, sm_count=m)
                for t, m in DEVICES + [(1, 1), (1024, 1)]]
        fwd = [_forward_and_grads(em.point_forward, em.point_input_grads, net, theta, X,
                                  threads_per_block=t, sm_count=m)[0]
               for t, m in DEVICES + [(1, 1)]]
        for run in runs[1:]:
            for a, b in zip(run, runs[0]):
                assert np.array_equal(a, b)
        assert np.all(runs[0][2] >= 0) and not np.isnan(fwd[0]).any()
        for f in fwd[1:]:
            assert np.array_equal(f, fwd[0])


@pytest.mark.parametrize("name", ["exp1 2-104-1", "two hidden, binary", "softmax, one hidden"])
def test_statuses_zero_gradient_nan_and_max_iter(name):
    net, theta, X = _setup(name, S=2, N=12, seed=5)
    theta = theta.copy()
    first_kernel = int(np.prod(net.param_shapes()[0]))
    theta[1, :first_kernel] = 0.0  # network 1: constant output, zero input gradient
    X[3, 0] = np.nan
    X[4, -1] = np.inf
    X[6] = 1e300  # huge but finite: steps of ~1e300
    pert, iters, status = got = _deepfool(em.point_deepfool, net, theta, X)
    ref = _deepfool(_native.net_deepfool, net, theta, X)
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)  # NaN where the CPU has NaN
    assert np.all(status[:, 3:5] == fs.AttackStatus.NON_FINITE) and np.isnan(pert[:, 3:5]).all()
    assert np.isfinite(pert[:, 6]).all()
    rest = [n for n in range(12) if n not in (3, 4, 6)]
    assert np.all(status[1, rest] == fs.AttackStatus.ZERO_GRADIENT)
    assert np.all(pert[1, rest] == 0) and np.all(iters[1, rest] == 0)
    # max_iter = 0: every finite point stops at once; max_iter = 1: the points needing more
    # steps stop with MAX_ITER and the last checked perturbation, as on the CPU engine
    for max_iter in (0, 1):
        got = _deepfool(em.point_deepfool, net, theta, X, max_iter=max_iter)
        ref = _deepfool(_native.net_deepfool, net, theta, X, max_iter=max_iter)
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)  # NaN where the CPU has NaN
        assert (got[2][0] == fs.AttackStatus.MAX_ITER).any()


def test_networks_the_point_kernels_do_not_take_and_bad_arguments():
    cnn = fs.paper_cnn((8, 8, 1))
    theta = fs.init(cnn, seeds=[0], dtype="float64").flat
    X = np.zeros((2, 64))
    with pytest.raises(ValueError, match=r"^spec: the per-point kernels take dense ReLU MLPs"):
        em.point_forward(cnn.spec, theta, X, np.empty((1, 2, cnn.n_logits)))
    net, theta, X = _setup("exp1 2-104-1", S=1, N=4)
    with pytest.raises(ValueError, match=r"shared_bytes=1024 bytes of shared memory \(this one needs 3336\)"):
        em.point_forward(net.spec, theta, X, np.empty((1, 4, 1)), shared_bytes=1024)
    with pytest.raises(TypeError, match=r"^out: expected dtype float64, got float32"):
        em.point_forward(net.spec, theta, X, np.empty((1, 4, 1), np.float32))
    with pytest.raises(ValueError, match=r"^out: shape \(1, 4, 2, 2\) does not match"):
        em.point_input_grads(net.spec, theta, X, np.empty((1, 4, 2, 2)))
    with pytest.raises(ValueError, match=r"^threads_per_block: must be >= 1 and <= 1024, got 0"):
        em.point_forward(net.spec, theta, X, np.empty((1, 4, 1)), threads_per_block=0)
    with pytest.raises(ValueError, match=r"^X: no points"):
        _deepfool(em.point_deepfool, net, theta, X[:0])
    with pytest.raises(ValueError, match=r"^max_iter: must be >= 0"):
        _deepfool(em.point_deepfool, net, theta, X, max_iter=-1)
    with pytest.raises(ValueError, match=r"^iterations_out: shares memory with status_out"):
        it = np.empty((1, 4), np.int32)
        em.point_deepfool(net.spec, theta, X, np.empty((1, 4, 2)), it, it, 0.02, 5, False, 1, False)


@pytest.mark.parametrize("name", ["exp1 2-104-1", "5 inputs (scratch path)", "softmax, three hidden"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_flipping_scale_search_equals_the_baselines_search(name, dtype):
    from falsestruct_fast.attacks.baselines import smallest_flipping_scale
    widths, loss = NETS[name]
    net = fs.MLP(widths, loss=loss)
    params = fs.init(net, seeds=range(2), dtype=dtype)
    rng = np.random.default_rng(7)
    X = rng.standard_normal((25, widths[0])).astype(dtype)
    X[3, 0] = np.nan
    dirs = rng.standard_normal((2, 25, widths[0]))
    dirs[:, 5] = 0.0   # ZERO_GRADIENT
    dirs[1, 6] *= 1e-30  # past max_doublings = 30 below: MAX_ITER
    for max_doublings in (48, 30):
        ref = smallest_flipping_scale(net, params, X, dirs, rtol=1e-3, max_doublings=max_doublings)
        r = np.full((2, 25, widths[0]), -7.0, dtype)
        status = np.full((2, 25), -7, np.int32)
        evals = np.full((2, 25), -7, np.int32)
        em.point_flipping_scale(net.spec, params.flat, X, dirs, 1e-3, max_doublings, r, status, evals,
                                threads_per_block=7, sm_count=1)
        np.testing.assert_array_equal(status, ref[1])
        np.testing.assert_array_equal(evals, ref[2])
        np.testing.assert_allclose(r, ref[0], rtol=1e-12, atol=0)  # NaN where the search has NaN
    assert {int(v) for v in status.ravel()} >= {fs.AttackStatus.FLIPPED, fs.AttackStatus.MAX_ITER,
                                                 fs.AttackStatus.ZERO_GRADIENT, fs.AttackStatus.NON_FINITE}
    with pytest.raises(ValueError, match=r"^rtol: must be in \(0, 1\), got 0.0"):
        em.point_flipping_scale(net.spec, params.flat, X, dirs, 0.0, 4, r, status, evals)
    with pytest.raises(TypeError, match=r"^directions: expected dtype float64"):
        em.point_flipping_scale(net.spec, params.flat, X, dirs.astype(np.float32), 1e-3, 4, r, status, evals)
