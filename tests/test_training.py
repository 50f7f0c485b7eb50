"""Fused training (fs.train) against the NumPy reference loop, determinism, executors,
progress reporting, divergence, and learning sanity checks."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import falsestruct_fast as fs
import reference as R
from falsestruct_fast import _native
from helpers import assert_close, assert_params_equal, make_data, make_targets, native_train as _native_train

SHUFFLES = ["none", "samples", "batches"]
LOSS_KIND = {"sigmoid": 0, "softmax": 1}
SHUFFLE_KIND = {"none": 0, "samples": 1, "batches": 2}


def reference_fit(net, params, X, y, *, seeds, shuffle, epochs, batch_size, adam, record_every,
                  per_seed_data=False, first_epoch=0):
    """Reference training of every network; returns list of per-network reference dicts."""
    out = []
    for s, seed in enumerate(seeds):
        orders = R.batch_orders(shuffle, int(seed), X.shape[-2], batch_size, epochs, first_epoch)
        Xs = X[s] if per_seed_data else X
        ys = y[s] if per_seed_data else y
        out.append(R.train(net.loss, R.split_params(params, s), Xs, ys, orders, lr=adam.lr,
                           beta1=adam.beta1, beta2=adam.beta2, eps=adam.eps,
                           record_every=record_every))
    return out


def check_fit_against_reference(fit, refs, rtol):
    for s, ref in enumerate(refs):
        for i, p in enumerate(ref["params"]):
            assert_close(fit.params[i][s], p, rtol, f"net {s} param {i}")
        np.testing.assert_array_equal(fit.epochs, ref["epochs"])
        assert_close(fit.loss[s], ref["loss"], rtol, f"net {s} loss history")
        assert_close(fit.accuracy[s], ref["accuracy"], 1e-12, f"net {s} accuracy history")


# ---- reference equality -------------------------------------------------------------------
@pytest.mark.parametrize("shuffle", SHUFFLES)
def test_training_matches_reference_sigmoid(shuffle):
    net = fs.MLP([3, 7, 5, 1])
    seeds = [11, 2**33 + 5]
    params = fs.init(net, seeds=seeds, dtype="float64")
    N, B, epochs = 50, 8, 40           # 6 steps per epoch (2 samples left over), 240 steps
    X = make_data(N, 3, seed=1)
    y = make_targets(net, N, seed=2)
    adam = fs.Adam(lr=5e-3)
    fit = fs.train(net, params, X, y, epochs=epochs, batch_size=B, shuffle=shuffle,
                   optimizer=adam, record_every=3, progress=False)
    np.testing.assert_array_equal(fit.epochs, list(range(3, 40, 3)) + [40])
    assert fit.loss.shape == fit.accuracy.shape == (2, 14)
    assert fit.opt_state.step == epochs * (N // B)
    refs = reference_fit(net, params, X, y, seeds=seeds, shuffle=shuffle, epochs=epochs,
                         batch_size=B, adam=adam, record_every=3)
    check_fit_against_reference(fit, refs, 1e-12)
    # the training changed something and learned a little
    assert not np.array_equal(fit.params.flat, params.flat)


@pytest.mark.parametrize("shuffle", SHUFFLES)
def test_training_matches_reference_softmax_per_seed_data(shuffle):
    net = fs.MLP([4, 6, 3])
    seeds = [0, 1, 2]
    S, N, B, epochs = 3, 37, 5, 30     # 7 steps per epoch, 210 steps
    params = fs.init(net, seeds=seeds, dtype="float64")
    X = make_data(N, 4, seed=3, S=S)
    y = make_targets(net, N, seed=4, S=S)
    adam = fs.Adam(lr=1e-2, beta1=0.8)
    fit = fs.train(net, params, X, y, epochs=epochs, batch_size=B, shuffle=shuffle,
                   optimizer=adam, record_every=7, progress=False)
    np.testing.assert_array_equal(fit.epochs, [7, 14, 21, 28, 30])
    refs = reference_fit(net, params, X, y, seeds=seeds, shuffle=shuffle, epochs=epochs,
                         batch_size=B, adam=adam, record_every=7, per_seed_data=True)
    check_fit_against_reference(fit, refs, 1e-12)


def test_training_explicit_seeds_override_params_seeds():
    net = fs.MLP([2, 5, 1])
    params = fs.init(net, seeds=[0, 1], dtype="float64")
    X = make_data(20, 2, seed=1)
    y = make_targets(net, 20, seed=2)
    adam = fs.Adam(lr=1e-2)
    fit = fs.train(net, params, X, y, epochs=5, batch_size=4, seeds=[77, 78], optimizer=adam,
                   record_every=1, progress=False)
    np.testing.assert_array_equal(fit.params.seeds, [77, 78])
    refs = reference_fit(net, params, X, y, seeds=[77, 78], shuffle="samples", epochs=5,
                         batch_size=4, adam=adam, record_every=1)
    check_fit_against_reference(fit, refs, 1e-12)
    # plain arrays (no .seeds attribute) use seeds 0..S-1
    fit2 = fs.train(net, [np.array(a) for a in params], X, y, epochs=5, batch_size=4,
                    optimizer=adam, record_every=1, progress=False)
    refs2 = reference_fit(net, params, X, y, seeds=[0, 1], shuffle="samples", epochs=5,
                          batch_size=4, adam=adam, record_every=1)
    check_fit_against_reference(fit2, refs2, 1e-12)


def test_continued_run_batch_order_uses_global_epoch():
    # a run continued with opt_state draws the permutation of global epoch step0 // n_batches + e
    net = fs.MLP([2, 5, 1])
    params = fs.init(net, seeds=[9], dtype="float64")
    X = make_data(24, 2, seed=5)
    y = make_targets(net, 24, seed=6)
    adam = fs.Adam(lr=1e-2)
    first = fs.train(net, params, X, y, epochs=3, batch_size=6, shuffle="batches",
                     optimizer=adam, progress=False)
    second = fs.train(net, first.params, X, y, epochs=2, batch_size=6, shuffle="batches",
                      optimizer=adam, opt_state=first.opt_state, record_every=1, progress=False)
    m, v = first.opt_state.m, first.opt_state.v
    state = ([], [], first.opt_state.step)
    off = 0
    for shape in net.param_shapes():
        n = int(np.prod(shape))
        state[0].append(m[0, off:off + n].reshape(shape))
        state[1].append(v[0, off:off + n].reshape(shape))
        off += n
    orders = R.batch_orders("batches", 9, 24, 6, 2, first_epoch=3)
    ref = R.train("sigmoid", R.split_params(first.params, 0), X, y, orders, lr=1e-2,
                  state=(state[0], state[1], state[2]))
    for i, p in enumerate(ref["params"]):
        assert_close(second.params[i][0], p, 1e-12, f"param {i}")
    assert_close(second.loss[0], ref["loss"], 1e-12)
    np.testing.assert_array_equal(second.epochs, [4, 5])


def test_philox_known_answer_vectors():
    # Random123 tests/kat_vectors, philox4x32 10: counter[4], key[2] -> output[4]
    assert R.philox4x32_10((0, 0, 0, 0), (0, 0)) == (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)
    assert R.philox4x32_10((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2) == (
        0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)
    assert R.philox4x32_10((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
                           (0xA4093822, 0x299F31D0)) == (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)


def test_reference_permutation_is_a_permutation():
    for n in (1, 2, 7, 50):
        perm = R.random_permutation(3, 4, n)
        np.testing.assert_array_equal(np.sort(perm), np.arange(n))
    assert not np.array_equal(R.random_permutation(3, 0, 50), R.random_permutation(3, 1, 50))
    assert not np.array_equal(R.random_permutation(3, 0, 50), R.random_permutation(4, 0, 50))


def test_shuffle_modes_give_different_orders():
    # the three modes are really different, and "samples" differs between seeds
    net = fs.MLP([2, 5, 1])
    params = fs.init(net, seeds=[1], dtype="float64")
    X = make_data(24, 2, seed=5)
    y = make_targets(net, 24, seed=6)
    results = {sh: fs.train(net, params, X, y, epochs=2, batch_size=4, shuffle=sh,
                            optimizer=fs.Adam(lr=1e-2), progress=False).params.flat
               for sh in SHUFFLES}
    assert not np.array_equal(results["none"], results["samples"])
    assert not np.array_equal(results["none"], results["batches"])
    assert not np.array_equal(results["samples"], results["batches"])


# ---- determinism ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_threads_bitwise_identical(dtype):
    net = fs.MLP([2, 24, 1])
    params = fs.init(net, seeds=range(8), dtype=dtype)
    X = make_data(40, 2, seed=1, dtype=np.dtype(dtype))
    y = make_targets(net, 40, X=X.astype(np.float64))
    kw = dict(epochs=20, batch_size=8, record_every=2, progress=False)
    a = fs.train(net, params, X, y, threads=1, **kw)
    b = fs.train(net, params, X, y, threads=2, **kw)
    assert_params_equal(a.params, b.params)
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.accuracy, b.accuracy)
    np.testing.assert_array_equal(a.opt_state.m, b.opt_state.m)
    np.testing.assert_array_equal(a.opt_state.v, b.opt_state.v)
    for fn in (lambda t: fs.forward(net, a.params, X, threads=t),
               lambda t: fs.loss_and_grad(net, a.params, X, y, threads=t)[1].flat):
        np.testing.assert_array_equal(fn(1), fn(2))


@pytest.mark.parametrize("per_seed_X", [False, True], ids=["shared-X", "per-seed-X"])
def test_seed_alone_equals_seed_among_64(per_seed_X):
    net = fs.MLP([2, 16, 1])
    S, N = 64, 30
    params = fs.init(net, seeds=range(1000, 1000 + S), dtype="float32")
    X = make_data(N, 2, seed=7, S=S if per_seed_X else None, dtype=np.float32)
    y = make_targets(net, N, seed=8, S=S if per_seed_X else None)
    kw = dict(epochs=6, batch_size=7, shuffle="samples", record_every=2, progress=False)
    many = fs.train(net, params, X, y, **kw)
    for s in (0, 17, 63):
        alone_params = fs.init(net, seeds=1000 + s, dtype="float32")
        Xs = X[s] if per_seed_X else X
        ys = y[s] if per_seed_X else y
        alone = fs.train(net, alone_params, Xs, ys, **kw)
        for a, b in zip(alone.params, many.params):
            assert np.array_equal(a[0], b[s]), f"seed {1000 + s}"
        np.testing.assert_array_equal(alone.loss[0], many.loss[s])
        np.testing.assert_array_equal(alone.accuracy[0], many.accuracy[s])


# ---- the EmulatedBlock executor (CUDA index mapping run on the CPU) ------------------------
@pytest.mark.parametrize("batch_size", [6, 17])  # 17: batch phases larger than 128 elements
@pytest.mark.parametrize("shuffle", SHUFFLES)
@pytest.mark.parametrize("widths,loss", [([3, 7, 5, 1], None), ([4, 6, 3], None),
                                         ([3, 5, 4], "sigmoid")],
                         ids=["3-7-5-1", "4-6-3-softmax", "3-5-4-sigmoid"])
def test_emulated_block_train_matches_host(widths, loss, shuffle, batch_size):
    net = fs.MLP(widths, loss=loss)
    S, N = 3, 37
    params = fs.init(net, seeds=range(S), dtype="float64")
    X = make_data(N, widths[0], seed=1, S=S)
    y = make_targets(net, N, seed=2, S=S)
    kw = dict(shuffle=shuffle, epochs=25, batch_size=batch_size, record_every=4,
              adam=fs.Adam(lr=1e-2))
    host = _native_train(net, params, X, y, emulate=0, **kw)
    emulated = {e: _native_train(net, params, X, y, emulate=e, **kw) for e in (7, 128)}
    for e, res in emulated.items():
        for name, a, b in zip(("theta", "m", "v", "loss", "acc"), res, host):
            assert_close(a, b, 1e-12, f"emulate_threads={e}: {name}")
        assert not np.array_equal(res[0], params.flat)
    # the per-element arithmetic does not depend on the number of emulated threads
    for a, b in zip(emulated[7], emulated[128]):
        np.testing.assert_array_equal(a, b)
    # and the Python API (default executor) is the host executor
    fit = fs.train(net, params, X, y, epochs=25, batch_size=batch_size, shuffle=shuffle,
                   optimizer=fs.Adam(lr=1e-2), seeds=range(S), record_every=4, progress=False)
    np.testing.assert_array_equal(fit.params.flat, host[0])


# The CPU engine fuses the backward pass of a one-hidden-layer, one-logit network with <= 4
# inputs (host_shallow_backward.h); the emulated executor runs the generic phases. Widths cover
# full, half and scalar column blocks in both dtypes; 5 inputs take the generic host path.
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("widths", [[1, 13, 1], [2, 104, 1], [3, 40, 1], [4, 21, 1], [5, 9, 1]],
                         ids=lambda w: "-".join(map(str, w)))
def test_fused_shallow_backward_matches_generic_phases(widths, dtype, rtol):
    net = fs.MLP(widths)
    S, N = 2, 40
    params = fs.init(net, seeds=range(S), dtype=dtype)
    X = make_data(N, widths[0], seed=3).astype(dtype)
    y = make_targets(net, N, seed=4)
    kw = dict(shuffle="samples", epochs=6, batch_size=10, record_every=2, adam=fs.Adam(lr=1e-2))
    host = _native_train(net, params, X, y, emulate=0, **kw)
    emulated = _native_train(net, params, X, y, emulate=7, **kw)
    for name, a, b in zip(("theta", "m", "v", "loss", "acc"), host, emulated):
        assert_close(a, b, rtol, f"{widths} {dtype}: {name}")
    assert not np.array_equal(host[0], params.flat)
    # one gradient against the float64 NumPy reference
    loss, grads = fs.loss_and_grad(net, params, X, y)
    grad_rtol = 1e-12 if dtype == "float64" else 1e-4
    for s in range(S):
        ref_loss, ref_grads, _ = R.loss_and_grad("sigmoid", R.split_params(params, s),
                                                 X.astype(np.float64), y)
        assert_close(loss[s], ref_loss, grad_rtol, "loss")
        for i, (g, r) in enumerate(zip(grads, ref_grads)):
            assert_close(g[s], r, grad_rtol, f"grad {i}")


# The CPU engine's fused step (host_shallow_step.h) takes a batch in chunks of at most 64
# samples, carrying the gradient sums from one chunk to the next: batches of 150 and 65 take
# three and two chunks, and must still equal the generic phases (emulated executor).
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("batch_size", [65, 150])
def test_fused_shallow_step_batches_in_chunks(dtype, rtol, batch_size):
    net = fs.MLP([2, 104, 1])
    S, N = 2, 300
    params = fs.init(net, seeds=range(S), dtype=dtype)
    X = make_data(N, 2, seed=5).astype(dtype)
    y = make_targets(net, N, seed=6)
    kw = dict(shuffle="samples", epochs=3, batch_size=batch_size, record_every=1,
              adam=fs.Adam(lr=1e-2))
    host = _native_train(net, params, X, y, emulate=0, **kw)
    emulated = _native_train(net, params, X, y, emulate=7, **kw)
    for name, a, b in zip(("theta", "m", "v", "loss", "acc"), host, emulated):
        assert_close(a, b, rtol, f"batch {batch_size} {dtype}: {name}")
    assert not np.array_equal(host[0], params.flat)


@pytest.mark.parametrize("N", [1, 37, 600])
def test_emulated_block_forward_and_grad_match_host(N):
    net = fs.MLP([3, 7, 5, 2], loss="softmax")
    S = 2
    params = fs.init(net, seeds=range(S), dtype="float64")
    theta = params.flat
    X = make_data(N, 3, seed=N)
    Y = make_targets(net, N, seed=N + 1).reshape(N, 1)
    res = {}
    for e in (0, 7, 128):
        out = np.empty((S, N, 2))
        _native.net_forward(fs.MLP([3, 7, 5, 2]).spec, theta, X, out, 1, e)
        loss = np.empty(S)
        grad = np.empty_like(theta)
        dX = np.empty((S, N, 3))
        _native.net_loss_and_grad(fs.MLP([3, 7, 5, 2]).spec, 1, theta, X, Y, loss, grad, dX, 1, e)
        res[e] = (out, loss, grad, dX)
    for e in (7, 128):
        for name, a, b in zip(("forward", "loss", "grad", "input grad"), res[e], res[0]):
            assert_close(a, b, 1e-12, f"emulate_threads={e}: {name}")
    # the host executor result is the reference's
    ref_z = R.forward(R.split_params(params, 1), X)
    assert_close(res[7][0][1], ref_z, 1e-12, "emulated forward vs reference")


# ---- progress callback ----------------------------------------------------------------------
def _long_problem():
    net = fs.MLP([2, 104, 1])
    params = fs.init(net, seeds=range(4), dtype="float32")
    X = make_data(256, 2, seed=0, dtype=np.float32)
    y = make_targets(net, 256, X=X.astype(np.float64))
    return net, params, X, y


class _StopTraining(Exception):
    pass


# Hours of work for _long_problem (about 0.2 s per 3000 epochs), and S * epochs still fits an
# int32: such a run can only return within a test because its progress callback stopped it.
_ENDLESS_EPOCHS = 5 * 10**8


def _run_in_thread(fn):
    """Runs fn() in a daemon thread; returns (finished, exception raised by fn or None)."""
    outcome = []

    def target():
        try:
            fn()
            outcome.append(None)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    # a liveness guard, not a timing assertion: a run that is not stopped needs hours
    worker.join(timeout=300)
    return not worker.is_alive(), (outcome[0] if outcome else None)


def test_progress_callback_reports_network_epochs():
    net, params, X, y = _long_problem()
    calls = []
    fs.train(net, params, X, y, epochs=400, batch_size=16, threads=2,
             progress=lambda done, total: calls.append((done, total)), progress_seconds=0.01)
    total = 4 * 400
    assert calls, "progress callback never called"
    assert calls[-1] == (total, total)
    assert all(t == total for _, t in calls)
    dones = [d for d, _ in calls]
    assert dones == sorted(dones)
    assert all(0 <= d <= total for d in dones)


def test_progress_callback_reports_while_running():
    # reports arrive during the run, not only at its end: the endless run is stopped at the
    # third report, so three reports before the end is the only way for it to return
    net, params, X, y = _long_problem()
    calls = []

    def callback(done, total):
        calls.append((done, total))
        if len(calls) == 3:
            raise _StopTraining("third report")

    finished, exc = _run_in_thread(lambda: fs.train(
        net, params, X, y, epochs=_ENDLESS_EPOCHS, batch_size=16, threads=2, progress=callback,
        progress_seconds=0.01))
    assert finished, "the run was not stopped by its progress callback"
    assert isinstance(exc, _StopTraining), exc
    total = 4 * _ENDLESS_EPOCHS
    assert len(calls) == 3 and all(t == total for _, t in calls)
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and dones[-1] < total


def test_progress_callback_short_run_final_call_only():
    net = fs.MLP([2, 4, 1])
    params = fs.init(net, seeds=range(3), dtype="float64")
    X = make_data(10, 2)
    y = make_targets(net, 10)
    calls = []
    fs.train(net, params, X, y, epochs=2, batch_size=5,
             progress=lambda d, t: calls.append((d, t)))
    assert calls == [(6, 6)]


def test_exception_in_progress_callback_propagates():
    net, params, X, y = _long_problem()
    calls = []

    def callback(done, total):
        calls.append((done, total))
        raise _StopTraining(f"stop at {done}/{total}")

    # the run returns only if the exception cancels it (see _ENDLESS_EPOCHS)
    finished, exc = _run_in_thread(lambda: fs.train(
        net, params, X, y, epochs=_ENDLESS_EPOCHS, batch_size=16, threads=2, progress=callback,
        progress_seconds=0.01))
    assert finished, "the run went on after its progress callback raised"
    assert isinstance(exc, _StopTraining) and "stop at" in str(exc), exc
    assert len(calls) == 1  # not called again after it raised
    assert calls[0][0] < calls[0][1] == 4 * _ENDLESS_EPOCHS
    # the library is usable afterwards
    fit = fs.train(net, params, X, y, epochs=2, batch_size=16, progress=False)
    assert not fit.diverged.any()


def test_progress_bar_writes_only_for_long_runs(capsys):
    from falsestruct_fast.progress import ProgressBar
    import io

    stream = io.StringIO()
    bar = ProgressBar("train", stream=stream)
    bar(5, 5)                       # finished before the first report: silent
    assert stream.getvalue() == ""
    bar2 = ProgressBar("train", stream=stream)
    bar2(1, 4)
    bar2(4, 4)
    text = stream.getvalue()
    assert "25.0%" in text and "100.0%" in text and text.endswith("\n")


# ---- divergence -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,lr", [("float32", 1e30), ("float64", 1e300)])
def test_divergence_is_flagged_not_raised(dtype, lr):
    net = fs.MLP([2, 16, 1])
    params = fs.init(net, seeds=range(4), dtype=dtype)
    X = make_data(64, 2, seed=0, scale=1e3, dtype=np.dtype(dtype))
    y = make_targets(net, 64, seed=1)
    fit = fs.train(net, params, X, y, epochs=3, batch_size=16, optimizer=fs.Adam(lr=lr),
                   progress=False)
    assert fit.diverged.dtype == bool and fit.diverged.shape == (4,)
    assert fit.diverged.all()
    assert not np.isfinite(fit.params.flat).all()


def test_divergence_with_huge_params():
    net = fs.MLP([2, 16, 1])
    params = [np.full_like(a, 1e200) for a in fs.init(net, seeds=range(2), dtype="float64")]
    X = make_data(32, 2, seed=0)
    y = make_targets(net, 32, seed=1)
    fit = fs.train(net, params, X, y, epochs=2, batch_size=8, progress=False)
    assert fit.diverged.all()
    assert np.isnan(fit.final_loss).all()


def test_normal_training_not_flagged_diverged():
    net = fs.MLP([2, 16, 1])
    params = fs.init(net, seeds=range(4), dtype="float32")
    X = make_data(64, 2, seed=0, dtype=np.float32)
    y = make_targets(net, 64, seed=1)
    fit = fs.train(net, params, X, y, epochs=3, batch_size=16, progress=False)
    assert not fit.diverged.any()
    assert np.isfinite(fit.loss).all()


# ---- learning -------------------------------------------------------------------------------
def test_softmax_training_decreases_loss_on_separable_blobs():
    rng = np.random.default_rng(0)
    centers = np.array([[3.0, 0.0], [-1.5, 2.6], [-1.5, -2.6]])
    labels = rng.integers(0, 3, 240)
    X = centers[labels] + 0.5 * rng.standard_normal((240, 2))
    net = fs.MLP([2, 16, 3])
    params = fs.init(net, seeds=range(4), dtype="float64")
    loss0, _ = fs.loss_and_grad(net, params, X, labels)
    fit = fs.train(net, params, X, labels, epochs=30, batch_size=16,
                   optimizer=fs.Adam(lr=1e-2), record_every=1, progress=False)
    loss1, _ = fs.loss_and_grad(net, fit.params, X, labels)
    assert np.all(loss1 < 0.1 * loss0)
    assert np.all(fit.loss[:, -1] < fit.loss[:, 0])
    assert np.all(fit.accuracy[:, -1] > 0.97)
    acc = (fs.predict(net, fit.params, X) == labels).mean(axis=1)
    assert np.all(acc > 0.97)


def test_training_reaches_high_accuracy():
    rng = np.random.default_rng(1)
    X = rng.uniform(-1, 1, (400, 2)).astype(np.float32)
    y = ((X[:, 0] ** 2 + X[:, 1] ** 2) < 0.5).astype(np.float32)   # a disc: needs the hidden layer
    net = fs.MLP([2, 32, 1])
    params = fs.init(net, seeds=range(6), dtype="float32")
    fit = fs.train(net, params, X, y, epochs=150, batch_size=20, optimizer=fs.Adam(lr=1e-2),
                   progress=False)
    acc = (fs.predict(net, fit.params, X) == y).mean(axis=1)
    assert np.all(acc > 0.95), acc
    assert np.all(fit.final_loss < 0.2)


# ---- CUDA engine ----------------------------------------------------------------------------
def test_cuda_engine_matches_native_or_raises():
    net = fs.MLP([3, 7, 5, 1])
    params = fs.init(net, seeds=range(3), dtype="float64")
    X = make_data(37, 3, seed=1)
    y = make_targets(net, 37, seed=2)
    kw = dict(epochs=10, batch_size=6, record_every=2, progress=False)
    if fs.build_info()["cuda_devices"] == 0:
        with pytest.raises(RuntimeError, match="cuda|CUDA"):
            fs.train(net, params, X, y, engine="cuda", **kw)
        return
    gpu = fs.train(net, params, X, y, engine="cuda", **kw)
    cpu = fs.train(net, params, X, y, engine="native", **kw)
    assert_close(gpu.params.flat, cpu.params.flat, 1e-12, "cuda vs native params")
    assert_close(gpu.loss, cpu.loss, 1e-12, "cuda vs native loss")
