"""The CUDA engine's plumbing, without a GPU.

- The _cuda module's argument checks (cpp/cuda_array_checks.h) on fake objects exposing
  __cuda_array_interface__ with made-up pointers: every refusal names the argument, and
  nothing is dereferenced (a dereference of these pointers would crash the interpreter).
- Training in chunks of epochs (as the engine launches a long run) equals one launch
  bitwise, through the generic kernel on the CUDA index mapping (EmulatedBlock).
- The public API with engine="cuda" through a stand-in _cuda module that runs the same
  kernels on the CPU (EmulatedBlock) and a NumPy stand-in for CuPy: dispatch, chunking,
  progress, NumPy in -> NumPy out; GPU arrays on the CPU engines are refused.
- Without a GPU (or the build), engine="cuda" is a clean RuntimeError.
- The study: GPU rows are a setting of their own; CPU engines share rows.
GPU runs of all this are tests/gpu/ (marker gpu).
"""
from __future__ import annotations

import types

import numpy as np
import pytest

import falsestruct_fast as fs
from falsestruct_fast import _native, device_arrays, engines
from falsestruct_fast.study import runner, store

emu = _native.cuda_emulation
NET = fs.MLP([3, 5, 2], loss="softmax")
SPEC = NET.spec
P = NET.n_params
BASE = 0x7F0000000000  # made-up device addresses: never dereferenced


class FakeGpuArray:
    """Only a __cuda_array_interface__ (version 3): shape, typestr, pointer, flags."""

    def __init__(self, shape, typestr="<f4", ptr=None, readonly=False, strides=None, **extra):
        FakeGpuArray.next_ptr = getattr(FakeGpuArray, "next_ptr", BASE) + (1 << 30)
        self.__cuda_array_interface__ = dict(
            shape=tuple(shape), typestr=typestr, data=(FakeGpuArray.next_ptr if ptr is None else ptr, readonly),
            version=3, strides=strides, **extra)


def _eval(theta=None, X=None, out=None, **kw):
    theta = FakeGpuArray((4, P)) if theta is None else theta
    X = FakeGpuArray((10, 3)) if X is None else X
    out = FakeGpuArray((4, 10, 2)) if out is None else out
    return emu.cuda_eval_args(SPEC, theta, X, out, **kw)


def test_cuda_array_interface_parsed():
    theta, X, out = FakeGpuArray((4, P)), FakeGpuArray((4, 10, 3)), FakeGpuArray((4, 10, 2))
    d = emu.cuda_eval_args(SPEC, theta, X, out)
    assert (d["S"], d["N"], d["x_net_stride"]) == (4, 10, 30)
    assert d["theta"] == theta.__cuda_array_interface__["data"][0]
    assert d["out"] == out.__cuda_array_interface__["data"][0]
    # C-order strides given explicitly are contiguous too; so are any strides of size-1 axes
    X2 = FakeGpuArray((10, 3), strides=(12, 4))
    assert emu.cuda_eval_args(SPEC, theta, X2, FakeGpuArray((4, 10, 2)))["x_net_stride"] == 0
    X3 = FakeGpuArray((1, 3), strides=(999, 4))
    assert emu.cuda_eval_args(SPEC, theta, X3, FakeGpuArray((4, 1, 2)))["N"] == 1
    g = emu.cuda_eval_args(SPEC, theta, X2, FakeGpuArray((4, 10, 2, 3)), logit_input_grads=True)
    assert g["N"] == 10


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(X=FakeGpuArray((10, 3), "<f8")), TypeError, r"^X: expected dtype float32, got float64$"),
    (dict(out=FakeGpuArray((4, 10, 2), "<i4")), TypeError, r"^out: expected dtype float32, got int32$"),
    (dict(X=FakeGpuArray((10, 3), ">f4")), TypeError, r"^X: unsupported typestr '>f4'"),
    (dict(X=FakeGpuArray((10, 4))), ValueError, r"^X: shape \(10, 4\) does not match; axis 1 must be 3$"),
    (dict(out=FakeGpuArray((4, 10, 1))), ValueError, r"^out: shape \(4, 10, 1\) does not match; axis 2 must be 2$"),
    (dict(out=FakeGpuArray((4, 10))), ValueError, r"^out: expected 3 dimensions, got shape \(4, 10\)$"),
    (dict(X=FakeGpuArray((10, 3), strides=(4, 40))), ValueError, r"^X: GPU array must be C-contiguous"),
    (dict(out=FakeGpuArray((4, 10, 2), readonly=True)), ValueError,
     r"^out: array is read-only but is written in place$"),
    (dict(X=FakeGpuArray((10, 3), mask=object())), ValueError, r"^X: masked GPU arrays are not supported$"),
    (dict(X=np.zeros((10, 3), np.float32)), TypeError, r"^X: expected a GPU array \(an object with "),
    (dict(theta=FakeGpuArray((4, P), ptr=0)), ValueError, r"^theta: GPU array has a null data pointer$"),
])
def test_cuda_array_refusals_name_the_argument(kwargs, err, match):
    with pytest.raises(err, match=match):
        _eval(**kwargs)


def test_malformed_interfaces_are_type_errors():
    for bad in (dict(shape=(4, P), typestr="<f4", version=3),  # no data
                dict(shape="x", typestr="<f4", data=(BASE, False), version=3),
                dict(shape=(4, P), typestr="<f4", data=(BASE, False), version=9)):
        theta = types.SimpleNamespace(__cuda_array_interface__=bad)
        with pytest.raises(TypeError, match=r"^theta: "):
            _eval(theta=theta)


def test_device_and_overlap_refusals():
    theta, X, out = FakeGpuArray((4, P)), FakeGpuArray((10, 3)), FakeGpuArray((4, 10, 2))
    x_ptr = X.__cuda_array_interface__["data"][0]
    on_gpu1 = lambda p: 1 if p == x_ptr else 0  # noqa: E731
    with pytest.raises(ValueError, match=r"^X: data is on GPU 1 but the current device is GPU 0"):
        emu.cuda_eval_args(SPEC, theta, X, out, device_of=on_gpu1)
    with pytest.raises(ValueError, match=r"^X: data is not in GPU memory$"):
        emu.cuda_eval_args(SPEC, theta, X, out, device_of=lambda p: -1 if p == x_ptr else 0)
    alias = FakeGpuArray((4, 10, 2), ptr=x_ptr)
    with pytest.raises(ValueError, match=r"^out: shares memory with X"):
        emu.cuda_eval_args(SPEC, theta, X, alias)


def _train_fakes(S=2, N=12, dtype="<f4", **over):
    a = dict(X=FakeGpuArray((N, 3), dtype), Y=FakeGpuArray((N, 1), dtype), theta=FakeGpuArray((S, P), dtype),
             adam_m=FakeGpuArray((S, P), dtype), adam_v=FakeGpuArray((S, P), dtype),
             seeds=FakeGpuArray((S,), "<u8"), loss_history=FakeGpuArray((S, 2), "<f8"),
             acc_history=FakeGpuArray((S, 2), "<f8"))
    a.update(over)
    return a


def test_train_and_other_op_argument_checks():
    a = _train_fakes()
    d = emu.cuda_train_args(SPEC, 1, 1, (1e-3, 0.9, 0.999, 1e-7), epochs=4, batch_size=5, step0=0,
                            record_every=2, **a)
    assert (d["S"], d["N"], d["B"], d["n_records"], d["y_net_stride"]) == (2, 12, 5, 2, 0)
    for name, fake, match in [
            ("seeds", FakeGpuArray((2,), "<i8"), r"^seeds: expected dtype uint64, got int64$"),
            ("loss_history", FakeGpuArray((2, 3), "<f8"), r"^loss_history: shape \(2, 3\) does not match"),
            ("acc_history", FakeGpuArray((2, 2), "<f4"), r"^acc_history: expected dtype float64"),
            ("adam_m", FakeGpuArray((2, P), "<f4", readonly=True), r"^adam_m: array is read-only")]:
        with pytest.raises((TypeError, ValueError), match=match):
            emu.cuda_train_args(SPEC, 1, 1, (1e-3, 0.9, 0.999, 1e-7), epochs=4, batch_size=5, step0=0,
                                record_every=2, **_train_fakes(**{name: fake}))
    with pytest.raises(ValueError, match=r"^batch_size: must be in \[1, N=12\], got 13$"):
        emu.cuda_train_args(SPEC, 1, 1, (1e-3, 0.9, 0.999, 1e-7), epochs=4, batch_size=13, step0=0,
                            record_every=2, **_train_fakes())
    lg = emu.cuda_loss_grad_args(SPEC, 1, FakeGpuArray((2, P)), FakeGpuArray((2, 7, 3)), FakeGpuArray((7, 1)),
                                 FakeGpuArray((2,)), FakeGpuArray((2, P)), FakeGpuArray((2, 7, 3)))
    assert (lg["S"], lg["N"], lg["x_net_stride"], lg["y_net_stride"]) == (2, 7, 21, 0)
    with pytest.raises(ValueError, match=r"^Y: number of rows differs from X$"):
        emu.cuda_loss_grad_args(SPEC, 1, FakeGpuArray((2, P)), FakeGpuArray((7, 3)), FakeGpuArray((6, 1)),
                                FakeGpuArray((2,)), FakeGpuArray((2, P)))
    df = emu.cuda_deepfool_args(SPEC, FakeGpuArray((2, P)), FakeGpuArray((7, 3)), FakeGpuArray((2, 7, 3)),
                                FakeGpuArray((2, 7), "<i4"), FakeGpuArray((2, 7), "<i4"))
    assert (df["S"], df["N"]) == (2, 7)
    with pytest.raises(TypeError, match=r"^status_out: expected dtype int32, got float32$"):
        emu.cuda_deepfool_args(SPEC, FakeGpuArray((2, P)), FakeGpuArray((7, 3)), FakeGpuArray((2, 7, 3)),
                               FakeGpuArray((2, 7), "<i4"), FakeGpuArray((2, 7)))


# ---- chunks of epochs equal one launch (generic kernel, CUDA index mapping) ---------------
def _train_arrays(net, S, N, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, net.n_inputs)).astype(dtype)
    Y = rng.integers(0, net.n_logits, (N, 1)).astype(dtype) if net.loss == "softmax" else \
        (rng.random((N, net.n_logits)) < 0.5).astype(dtype)
    theta = fs.network.flatten(net, fs.init(net, range(S), dtype=dtype))
    return X, Y, theta


@pytest.mark.parametrize("shuffle", [0, 1, 2])
def test_epoch_chunks_equal_one_launch_bitwise(shuffle):
    S, N, B, epochs, every = 3, 20, 6, 7, 3
    X, Y, theta0 = _train_arrays(NET, S, N, np.float32)
    seeds = np.arange(S, dtype=np.uint64) + 11
    n_rec = -(-epochs // every)

    def run(ranges, step0=5 * (N // B)):
        theta, m, v = theta0.copy(), np.zeros_like(theta0), np.zeros_like(theta0)
        lh, ah = np.full((S, n_rec), np.nan), np.full((S, n_rec), np.nan)
        for b, e in ranges:
            emu.train_epochs(SPEC, 1, shuffle, (1e-2, 0.9, 0.999, 1e-7), X, Y, theta, m, v, seeds, epochs, B,
                             step0, every, lh, ah, b, e, emulate_threads=32)
        return theta, m, v, lh, ah

    one = run([(0, epochs)])
    chunks = run([(0, 1), (1, 3), (3, 3), (3, 6), (6, 7)])
    for a, b in zip(one, chunks):
        assert np.array_equal(a, b, equal_nan=True)
    assert np.isfinite(one[3]).all()  # records 3, 6 and the last epoch 7
    # and it is the native engine's run (rounding of the sums aside)
    theta, m, v = theta0.copy(), np.zeros_like(theta0), np.zeros_like(theta0)
    lh, ah = np.full((S, n_rec), np.nan), np.full((S, n_rec), np.nan)
    _native.net_train(SPEC, 1, shuffle, (1e-2, 0.9, 0.999, 1e-7), X, Y, theta, m, v, seeds, epochs, B,
                      5 * (N // B), every, lh, ah)
    np.testing.assert_allclose(one[0], theta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(one[3], lh, rtol=1e-4)


def test_epoch_range_is_checked():
    X, Y, theta = _train_arrays(NET, 1, 8, np.float32)
    z = np.zeros_like(theta)
    with pytest.raises(ValueError, match=r"^epoch_end: must be >= 2 and <= 3, got 1$"):
        emu.train_epochs(SPEC, 1, 1, (1e-2, 0.9, 0.999, 1e-7), X, Y, theta, z, z.copy(), np.zeros(1, np.uint64),
                         3, 4, 0, 1, np.zeros((1, 3)), np.zeros((1, 3)), 2, 1)


def test_epoch_chunk_schedule_covers_every_epoch_once():
    calls, reports = [], []
    engines.for_epoch_chunks(50, lambda b, e: calls.append((b, e)), chunk_seconds=1.0,
                             progress=lambda d, t: reports.append((d, t)), progress_seconds=1e-9, networks=4)
    assert calls[0] == (0, 1) and calls[-1][1] == 50
    assert all(a[1] == b[0] for a, b in zip(calls, calls[1:]))
    sizes = [e - b for b, e in calls]
    assert all(s2 <= 4 * s1 for s1, s2 in zip(sizes, sizes[1:]))  # grows at most 4x per chunk
    assert reports[-1] == (200, 200)


# ---- the public API through a stand-in _cuda module (kernels emulated on the CPU) ---------
EMULATED = 64  # CUDA threads per block emulated


class _StandInCuda:
    """_cuda's interface over the CPU emulation of the same generic kernels: what the CUDA
    engine's Python side calls, and with which arrays."""

    def __init__(self):
        self.calls = []
        self.per_point_search = True

    def device_count(self):
        return 1

    def net_forward(self, spec, theta, X, out, stream):
        self.calls.append("forward")
        _native.net_forward(spec, theta, X, out, emulate_threads=EMULATED)

    def net_logit_input_grads(self, spec, theta, X, out, stream):
        self.calls.append("input_grads")
        _native.net_logit_input_grads(spec, theta, X, out, emulate_threads=EMULATED)

    def net_loss_and_grad(self, spec, kind, theta, X, Y, loss, grad, dX, stream):
        self.calls.append("loss_and_grad")
        _native.net_loss_and_grad(spec, kind, theta, X, Y, loss, grad, dX, emulate_threads=EMULATED)

    def net_train_epochs(self, *args):
        self.calls.append(("train", args[-3], args[-2]))
        emu.train_epochs(*args[:-1], emulate_threads=EMULATED)

    def net_flipping_scale(self, spec, theta, X, directions, rtol, max_doublings, r, status, evals, stream):
        self.calls.append("flipping_scale")
        if not self.per_point_search:
            return False  # a network the per-point kernels do not hold
        emu.point_flipping_scale(spec, theta, X, directions, rtol, max_doublings, r, status, evals)
        return True

    def net_deepfool(self, spec, theta, X, pert, iters, status, overshoot, max_iter, linf, cand, foolbox,
                     clip, stream):
        self.calls.append("deepfool")
        _native.net_deepfool(spec, theta, X, pert, iters, status, overshoot, max_iter, linf, cand, foolbox,
                             clip, emulate_threads=EMULATED)


class _NumpyAsCupy(types.ModuleType):
    """The few CuPy functions the engine's Python side calls, on NumPy arrays (so every
    array counts as a host array: NumPy in, NumPy out)."""

    class ndarray:  # no NumPy array is one of these
        pass

    def __init__(self):
        super().__init__("cupy_stand_in")
        self.asarray, self.full, self.asnumpy = np.asarray, np.full, np.array
        self.empty, self.ascontiguousarray = np.empty, np.ascontiguousarray
        self.cuda = types.SimpleNamespace(get_current_stream=lambda: types.SimpleNamespace(ptr=0))


@pytest.fixture
def stand_in_cuda(monkeypatch):
    fake = _StandInCuda()
    monkeypatch.setattr(engines, "_cuda", fake)
    monkeypatch.setattr(device_arrays, "_cupy", _NumpyAsCupy())
    monkeypatch.setattr(engines.CudaEngine, "CHUNK_SECONDS", 1e-9)  # one epoch per launch
    return fake


def test_public_api_on_the_cuda_engine_matches_native(stand_in_cuda):
    net = fs.MLP([3, 6, 3], loss="softmax")
    params = fs.init(net, range(2), dtype="float64")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((9, 3))
    y = rng.integers(0, 3, 9)
    ref = dict(engine="native")
    cuda = dict(engine="cuda")
    np.testing.assert_allclose(fs.forward(net, params, X, **cuda), fs.forward(net, params, X, **ref), rtol=1e-12)
    np.testing.assert_array_equal(fs.predict(net, params, X, **cuda), fs.predict(net, params, X, **ref))
    np.testing.assert_allclose(fs.input_grad(net, params, X, **cuda), fs.input_grad(net, params, X, **ref),
                               rtol=1e-12, atol=1e-14)
    lc, gc, dc = fs.loss_and_grad(net, params, X, y, wrt_input=True, **cuda)
    ln, gn, dn = fs.loss_and_grad(net, params, X, y, wrt_input=True, **ref)
    np.testing.assert_allclose(lc, ln, rtol=1e-12)
    np.testing.assert_allclose(np.concatenate([g.ravel() for g in gc]),
                               np.concatenate([g.ravel() for g in gn]), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dc, dn, rtol=1e-10, atol=1e-14)
    dfc = fs.deepfool(net, params, X, **cuda)
    dfn = fs.deepfool(net, params, X, **ref)
    np.testing.assert_array_equal(dfc.status, dfn.status)
    np.testing.assert_allclose(dfc.norm, dfn.norm, rtol=1e-9)
    for per_point in (True, False):  # the search as one kernel, or over forward passes
        stand_in_cuda.per_point_search = per_point
        for attack in (fs.random_attack, fs.fast_gradient_attack):
            rc, rn = attack(net, params, X, **cuda), attack(net, params, X, **ref)
            np.testing.assert_array_equal(rc.status, rn.status)
            np.testing.assert_array_equal(rc.iterations, rn.iterations)
            np.testing.assert_allclose(rc.norm, rn.norm, rtol=1e-12)
    assert {"forward", "input_grads", "loss_and_grad", "deepfool", "flipping_scale"} <= set(stand_in_cuda.calls)
    for out in (lc, dc, dfc.perturbation):
        assert type(out) is np.ndarray  # NumPy in, NumPy out


def test_train_on_the_cuda_engine_runs_in_chunks(stand_in_cuda):
    net = fs.MLP([2, 8, 1])
    params = fs.init(net, range(3))
    rng = np.random.default_rng(0)
    X = rng.random((20, 2)).astype(np.float32)
    y = (X[:, 0] > X[:, 1]).astype(np.float32)
    seen = []
    fit = fs.train(net, params, X, y, epochs=6, batch_size=5, record_every=4, engine="cuda",
                   progress=lambda d, t: seen.append((d, t)))
    launches = [c for c in stand_in_cuda.calls if c[0] == "train"]
    assert [(b, e) for _, b, e in launches] == [(i, i + 1) for i in range(6)]
    assert seen[-1] == (18, 18)
    # the native engine's run (rounding aside); continuing from the state as one longer run
    ref = fs.train(net, params, X, y, epochs=6, batch_size=5, record_every=4, progress=False)
    np.testing.assert_allclose(fit.params.flat, ref.params.flat, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(fit.loss, ref.loss, rtol=2e-5)
    assert np.array_equal(fit.epochs, [4, 6]) and type(fit.params[0]) is np.ndarray
    more = fs.train(net, fit.params, X, y, epochs=3, batch_size=5, opt_state=fit.opt_state, engine="cuda",
                    progress=False)
    longer = fs.train(net, params, X, y, epochs=9, batch_size=5, progress=False)
    np.testing.assert_allclose(more.params.flat, longer.params.flat, rtol=2e-5, atol=1e-6)
    assert more.opt_state.step == longer.opt_state.step == 36


def test_gpu_arrays_are_refused_by_the_cpu_engines():
    params = fs.init(NET, range(2))
    X = FakeGpuArray((5, 3))
    for engine in ("native", "numba"):
        with pytest.raises(TypeError, match=rf"^X: a GPU array .* engine='{engine}', which runs on the CPU"):
            fs.forward(NET, params, X, engine=engine)
    with pytest.raises(TypeError, match=r"^params\[1\]: a GPU array"):
        fs.deepfool(NET, [params[0], FakeGpuArray((2, 5)), params[2], params[3]], np.zeros((5, 3), np.float32))
    with pytest.raises(TypeError, match=r"^y: a GPU array"):
        fs.train(NET, params, np.zeros((5, 3), np.float32), FakeGpuArray((5,)), epochs=1, batch_size=5)


def test_device_array_detection():
    assert device_arrays.is_device_array(FakeGpuArray((2,)))
    assert not device_arrays.is_device_array(np.zeros(2))

    class DlpackOnGpu:
        def __dlpack__(self, stream=None):
            raise AssertionError("not called for detection")

        def __dlpack_device__(self):
            return (2, 0)

    class DlpackOnCpu(DlpackOnGpu):
        def __dlpack_device__(self):
            return (1, 0)

    assert device_arrays.is_device_array(DlpackOnGpu())
    assert not device_arrays.is_device_array(DlpackOnCpu())
    assert device_arrays.any_on_device([np.zeros(1), FakeGpuArray((1,))]) is True


@pytest.mark.skipif(engines._cuda is not None and engines._cuda.device_count() > 0, reason="a GPU is present")
def test_no_gpu_is_a_clean_runtime_error():
    params = fs.init(NET, range(1))
    X = np.zeros((4, 3), np.float32)
    msg = r"^(no CUDA device is available \(engine='cuda'\)|engine: 'cuda' is not available)"
    with pytest.raises(RuntimeError, match=msg):
        fs.forward(NET, params, X, engine="cuda")
    with pytest.raises(RuntimeError, match=msg):
        fs.train(NET, params, X, np.zeros(4), epochs=1, batch_size=2, engine="cuda")
    if engines._cuda is not None:  # the built module itself, before it looks at any argument
        with pytest.raises(RuntimeError, match=r"^no CUDA device is available \(engine='cuda'\)$"):
            engines._cuda.net_forward(SPEC, object(), object(), object())


# ---- the study records the engine --------------------------------------------------------
def test_study_rows_of_the_gpu_are_a_setting_of_their_own(tmp_path):
    setting = fs.experiments.preset("psi1", epochs=2)
    cpu = runner.study_definition(setting)
    assert runner.study_definition(setting, engine="numba") == cpu  # the CPU engines share rows
    gpu = runner.study_definition(setting, engine="cuda")
    assert gpu["engine"] == "cuda" and gpu["name"] == "psi1[epochs=2,engine=cuda]"
    assert store.setting_id(gpu) != store.setting_id(cpu)
    assert runner.setting_from_dict(gpu).epochs == 2  # the engine key is not a setting field
    with pytest.raises(ValueError, match=r"^engine: 'native' cannot compute rows of a setting defined for the GPU"):
        runner.run_chunk(gpu, [0], engine="native")
    with pytest.raises(ValueError, match=r"^engine: 'cuda' cannot compute rows of a setting defined for a CPU"):
        runner.run_chunk(cpu, [0], engine="cuda")
    # an old store (rows without the engine) keeps its rows as CPU rows
    path = tmp_path / "s.sqlite"
    fs.study.run(setting, seeds=2, store=path, radius_points=0, progress=False)
    report = fs.study.run(setting, seeds=2, store=path, radius_points=0, engine="numba", progress=False)
    assert (report.written, report.skipped) == (0, 2)
    with store.Store(path) as db:
        assert db.done_seeds(store.setting_id(runner.study_definition(setting, 0, "cuda"))) == set()
        assert {r["engine"] for r in db.rows()} == {"native"}
