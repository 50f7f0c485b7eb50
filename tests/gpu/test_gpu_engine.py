"""The CUDA engine on a real GPU (marker gpu; skipped without a GPU, CuPy and the CUDA build).

Run by benchmarks/gpu/run_all.sh (``pytest -m gpu tests/gpu``). Every operation against the
CPU engine on NumPy and on CuPy inputs, CuPy in -> CuPy out (params stay on the device from
train to forward to DeepFool), DLPack inputs, bitwise run-to-run equality, chunked training
equal to one launch, Experiment I trajectories close to the CPU's, and a study on the GPU.
"""
from __future__ import annotations

import numpy as np
import pytest

import falsestruct_fast as fs
from falsestruct_fast import engines

cp = pytest.importorskip("cupy")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(engines._cuda is None or engines._cuda.device_count() == 0,
                       reason="needs the CUDA build and a GPU"),
]

MLP2 = fs.MLP([2, 16, 1])                       # Experiment I's shape (one logit, sigmoid)
MLP3 = fs.MLP([4, 12, 9, 3], loss="softmax")
CNN = fs.CNN((8, 8, 2), [fs.Conv2D(3, 3), fs.MaxPool2D(), fs.Flatten(), fs.Dense(2)], loss="softmax")


def _data(net, N, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N,) + tuple(net.input_shape)).astype(dtype)
    y = rng.integers(0, net.n_logits, N) if net.loss == "softmax" else (rng.random(N) < 0.5).astype(dtype)
    return X, y


def _close(a, b, rtol):
    a = cp.asnumpy(a) if isinstance(a, cp.ndarray) else a
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, float(np.abs(b).max(initial=0))))


@pytest.mark.parametrize("net", [MLP2, MLP3, CNN], ids=["mlp1", "mlp3", "cnn"])
@pytest.mark.parametrize("on_device", [False, True], ids=["numpy", "cupy"])
def test_every_op_matches_the_cpu_engine(net, on_device):
    dtype = np.float64
    params = fs.init(net, range(3), dtype="float64")
    X, y = _data(net, 11, dtype)
    p_in, X_in, y_in = (params.to_device(), cp.asarray(X), cp.asarray(y)) if on_device else (params, X, y)
    kind = cp.ndarray if on_device else np.ndarray
    z = fs.forward(net, p_in, X_in, engine="cuda")
    assert isinstance(z, kind)
    _close(z, fs.forward(net, params, X), 1e-10)
    assert np.array_equal(cp.asnumpy(fs.predict(net, p_in, X_in, engine="cuda")) if on_device else
                          fs.predict(net, p_in, X_in, engine="cuda"), fs.predict(net, params, X))
    _close(fs.input_grad(net, p_in, X_in, engine="cuda"), fs.input_grad(net, params, X), 1e-9)
    lc, gc, dc = fs.loss_and_grad(net, p_in, X_in, y_in, wrt_input=True, engine="cuda")
    ln, gn, dn = fs.loss_and_grad(net, params, X, y, wrt_input=True)
    assert isinstance(lc, kind) and isinstance(gc[0], kind)
    _close(lc, ln, 1e-10)
    for a, b in zip(gc, gn):
        _close(a, b, 1e-9)
    _close(dc, dn, 1e-9)
    dfc = fs.deepfool(net, p_in, X_in, engine="cuda")
    dfn = fs.deepfool(net, params, X)
    assert isinstance(dfc.perturbation, kind)
    assert np.array_equal(cp.asnumpy(dfc.status) if on_device else dfc.status, dfn.status)
    flipped = dfn.status == fs.AttackStatus.FLIPPED
    norm_c = cp.asnumpy(dfc.norm) if on_device else dfc.norm
    np.testing.assert_allclose(norm_c[flipped], dfn.norm[flipped], rtol=1e-7)
    for attack in (fs.random_attack, fs.fast_gradient_attack):
        rc, rn = attack(net, p_in, X_in, engine="cuda"), attack(net, params, X)
        assert np.array_equal(cp.asnumpy(rc.status) if on_device else rc.status, rn.status)
    st = fs.stability(net, p_in, X_in, engine="cuda")
    assert st.result.status.shape == (3, 11)
    fit_c = fs.train(net, p_in, X_in, y_in, epochs=3, batch_size=4, engine="cuda", progress=False)
    fit_n = fs.train(net, params, X, y, epochs=3, batch_size=4, progress=False)
    assert isinstance(fit_c.params[0], kind) and isinstance(fit_c.opt_state.m, kind)
    _close(fit_c.params.flat, fit_n.params.flat, 1e-9)
    _close(fit_c.loss, fit_n.loss, 1e-9)


def test_params_stay_on_the_device_and_dlpack_inputs():
    params = fs.init(MLP2, range(4)).to_device()
    X, y = _data(MLP2, 40, np.float32)
    Xd, yd = cp.asarray(X), cp.asarray(y)
    fit = fs.train(MLP2, params, Xd, yd, epochs=5, batch_size=10, engine="cuda", progress=False)
    assert all(isinstance(a, cp.ndarray) for a in fit.params)
    z = fs.forward(MLP2, fit.params, Xd, engine="cuda")
    df = fs.deepfool(MLP2, fit.params, Xd[:8], engine="cuda")
    assert isinstance(z, cp.ndarray) and isinstance(df.norm, cp.ndarray)

    class OnlyDlpack:  # an array known to us only through DLPack
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    z2 = fs.forward(MLP2, fit.params, OnlyDlpack(Xd), engine="cuda")
    assert cp.array_equal(z, z2)


def test_run_to_run_bitwise_and_chunks_equal_one_launch(monkeypatch):
    params = fs.init(MLP3, range(5), dtype="float32")
    X, y = _data(MLP3, 60, np.float32)
    runs = [fs.train(MLP3, params, X, y, epochs=12, batch_size=7, record_every=5, engine="cuda", progress=False)
            for _ in range(2)]
    monkeypatch.setattr(engines.CudaEngine, "CHUNK_SECONDS", 1e-9)  # one epoch per launch
    runs.append(fs.train(MLP3, params, X, y, epochs=12, batch_size=7, record_every=5, engine="cuda",
                         progress=False))
    for r in runs[1:]:
        assert np.array_equal(r.params.flat, runs[0].params.flat)
        assert np.array_equal(r.loss, runs[0].loss)
    z = [fs.forward(MLP3, runs[0].params, X, engine="cuda") for _ in range(2)]
    assert np.array_equal(z[0], z[1])


def test_experiment1_trajectories_close_to_the_cpu():
    setting = fs.experiments.preset("psi3", r=500, epochs=40)
    gpu = setting.train(range(8), engine="cuda", progress=False)
    cpu = setting.train(range(8), progress=False)
    np.testing.assert_allclose(gpu.loss, cpu.loss, rtol=1e-8)
    np.testing.assert_allclose(gpu.params.flat, cpu.params.flat, rtol=1e-7, atol=1e-9)


def test_bad_inputs_are_the_cpu_engines_errors():
    params = fs.init(MLP2, range(2)).to_device()
    with pytest.raises(TypeError, match=r"^X: dtype float64 does not match"):
        fs.forward(MLP2, params, cp.zeros((3, 2)), engine="cuda")
    with pytest.raises(ValueError, match=r"^X: expected shape \(N, 2\)"):
        fs.forward(MLP2, params, cp.zeros((3, 3), cp.float32), engine="cuda")
    with pytest.raises(ValueError, match=r"^X: contains NaN or inf"):
        fs.forward(MLP2, params, cp.full((3, 2), cp.nan, cp.float32), engine="cuda")
    with pytest.raises(ValueError, match=r"^y: softmax labels"):
        fs.loss_and_grad(MLP3, fs.init(MLP3, 0), cp.zeros((2, 4), cp.float32), cp.asarray([0, 7]), engine="cuda")
    with pytest.raises(ValueError, match=r"^Y: softmax labels"):  # the binding's own device check
        engines._cuda.net_loss_and_grad(MLP3.spec, 1, cp.zeros((1, MLP3.n_params), cp.float32),
                                        cp.zeros((2, 4), cp.float32), cp.asarray([[0], [7]], cp.float32),
                                        cp.zeros(1, cp.float32), cp.zeros((1, MLP3.n_params), cp.float32))


def test_study_on_the_gpu(tmp_path):
    setting = fs.experiments.preset("psi1", epochs=50)
    report = fs.study.run(setting, seeds=4, store=tmp_path / "g.sqlite", engine="cuda", progress=False)
    assert report.written == 4
    rows = fs.study.Store(tmp_path / "g.sqlite").rows()
    assert {r["engine"] for r in rows} == {"cuda"} and rows[0]["name"].endswith("[engine=cuda]")
