"""Sizes the native engine cannot hold are refused up front with the limit named: networks
(parameters, values per sample), rows per call, batch rows, memory; attack results that
overflowed are not reported as flips."""
from __future__ import annotations

import numpy as np
import pytest

import falsestruct_fast as fs
from falsestruct_fast import _native, memory
from falsestruct_fast.attacks.result import AttackResult, AttackStatus, norms
from falsestruct_fast.experiments import exp1
from falsestruct_fast.network import MAX_ROWS, max_batch_rows

INT32_MAX = 2**31 - 1


# ---- networks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make,match", [
    (lambda: fs.CNN((65536, 65536, 1), [fs.Flatten(), fs.Dense(1)]),
     r"layers: the network has 4294967297 parameters; .* at most 2147483647 \(2\*\*31 - 1\)"),
    (lambda: fs.CNN((46341, 46341, 1), [fs.Flatten(), fs.Dense(1)]),
     r"layers: the network has 2147488282 parameters"),
    (lambda: fs.CNN((1, 1, 3), [fs.Conv2D(1, 2**31 - 1), fs.Flatten(), fs.Dense(1)]),
     r"layers: the network has 13835058042397261830 parameters"),
    (lambda: fs.MLP([46341, 46341, 1]), r"widths: the network has 2147580964 parameters"),
    (lambda: fs.MLP([2**28 + 1, 1]),
     r"widths: a layer has 268435457 values per sample; .* at most 268435456 \(2\*\*28\) per layer"),
    (lambda: fs.CNN((2**14, 2**14, 1), [fs.Conv2D(2, 1), fs.Flatten(), fs.Dense(1)]),
     r"layers: a layer has 536870912 values per sample"),
    (lambda: fs.CNN((2**14, 2**14, 1), [fs.Conv2D(1, 1)] * 4 + [fs.Flatten(), fs.Dense(1)]),
     r"layers: the layers have 1342177281 values per sample in all; .* at most 1073741824 \(2\*\*30\)"),
], ids=["cnn-2^32", "cnn-int32-wrap", "conv-kernel-2^31", "mlp-params", "mlp-width", "cnn-width",
        "cnn-sum"])
def test_networks_the_kernels_cannot_hold_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_n_params_is_exact_and_agrees_with_native():
    cases = [fs.CNN((2**14, 2**13, 1), [fs.Flatten(), fs.Dense(1)]), fs.paper_cnn(),
             fs.MLP([2, 104, 1]), fs.CNN((5, 7, 2), [fs.Conv2D(3, 3), fs.MaxPool2D(), fs.Flatten(),
                                                     fs.Dense(4), fs.Dense(2)])]
    expected = [2**27 + 1, 60213, 417, 3 * 3 * 2 * 3 + 3 + 3 * 4 * 3 * 4 + 4 + 4 * 2 + 2]
    for net, want in zip(cases, expected):
        assert net.n_params == want
        assert _native.n_params(net.spec) == want


# ---- rows per call ----------------------------------------------------------------------------
@pytest.fixture
def too_many_rows(tmp_path):
    """X of 2**31 + 5 rows (float32, 8.6 GB) as a memmap of a sparse file: nothing is
    allocated, and reading it would take far longer than the test."""
    X = np.memmap(tmp_path / "X.f32", dtype=np.float32, mode="w+", shape=(2**31 + 5, 1))
    yield X
    del X


ROWS_MSG = r"X: 2147483653 rows; the native engine takes at most 2147483647 \(2\*\*31 - 1\) rows per call"


@pytest.mark.parametrize("call", [
    lambda net, p, X: fs.forward(net, p, X),
    lambda net, p, X: fs.predict(net, p, X),
    lambda net, p, X: fs.input_grad(net, p, X),
    lambda net, p, X: fs.deepfool(net, p, X),
    lambda net, p, X: fs.random_attack(net, p, X),
    lambda net, p, X: fs.loss_and_grad(net, p, X, np.zeros(1)),
    lambda net, p, X: fs.train(net, p, X, np.zeros(1), epochs=1, batch_size=1, progress=False),
], ids=["forward", "predict", "input_grad", "deepfool", "random_attack", "loss_and_grad", "train"])
def test_more_rows_than_int32_refused_before_reading_them(too_many_rows, call):
    net = fs.MLP([1, 2, 1])
    params = fs.init(net, seeds=range(2))
    assert MAX_ROWS == INT32_MAX
    with pytest.raises(ValueError, match=ROWS_MSG):
        call(net, params, too_many_rows)


def test_batch_rows_beyond_32_bit_workspace_refused():
    # MLP([2**28, 1]): about 3 * 2**28 workspace scalars per row, so at most 2 rows per pass.
    net = fs.MLP([2**28, 1])
    assert max_batch_rows(net) == INT32_MAX // _native.workspace_scalars_per_row(net.spec) == 2
    # refused before params or data are looked at (they would be gigabytes)
    for call, name in ((lambda: fs.train(net, None, None, None, epochs=1, batch_size=3, progress=False),
                        "batch_size"),
                       (lambda: fs.loss_and_grad(net, None, None, None, chunk_size=3), "chunk_size")):
        with pytest.raises(ValueError, match=rf"{name}: 3 rows of this network exceed the native "
                                             r"engine's 32-bit workspace indexing; at most 2 rows"):
            call()


# ---- huge finite inputs in attacks ---------------------------------------------------------------
@pytest.fixture(scope="module")
def huge_point():
    net = fs.MLP([2, 8, 1])
    params = fs.init(net, seeds=range(20), dtype="float64")
    X = np.array([[1e300, 0.5], [0.3, -0.2]])
    return net, params, X


def _assert_flips_are_finite(res, X):
    flipped = res.status == AttackStatus.FLIPPED
    r = res.perturbation.reshape(res.status.shape + (-1,))
    assert np.isfinite(r[flipped]).all()
    assert np.isfinite(res.norm[flipped]).all()
    assert np.isfinite((X + r)[flipped]).all()
    bad = res.status == AttackStatus.NON_FINITE
    assert np.isnan(res.norm[bad]).all() and np.isnan(r[bad]).all()


@pytest.mark.parametrize("attack", [fs.random_attack, fs.fast_gradient_attack, fs.deepfool],
                         ids=["random", "fast_gradient", "deepfool"])
def test_huge_finite_inputs_never_flip_through_overflow(huge_point, attack):
    net, params, X = huge_point
    res = attack(net, params, X)
    _assert_flips_are_finite(res, X)
    assert res.flipped[:, 0].any() and res.flipped[:, 1].any()


def test_overflowing_flip_becomes_non_finite():
    X = np.zeros((2, 2))
    pert = np.array([[[np.inf, 0.0], [3.0, 4.0]]])
    status = np.full((1, 2), AttackStatus.FLIPPED, dtype=np.int32)
    res = AttackResult.build(X, pert, np.ones((1, 2), np.int32), status, 2, "test")
    assert res.status.tolist() == [[AttackStatus.NON_FINITE, AttackStatus.FLIPPED]]
    assert np.isnan(res.perturbation[0, 0]).all() and np.isnan(res.norm[0, 0])
    assert res.norm[0, 1] == 5.0
    # x + r overflowing is no adversarial point either
    X = np.array([[1.5e308, 0.0]])
    pert = np.array([[[1.5e308, 0.0]]])
    res = AttackResult.build(X, pert, np.ones((1, 1), np.int32),
                             np.zeros((1, 1), np.int32), 2, "test")
    assert res.status[0, 0] == AttackStatus.NON_FINITE


def test_norm_of_finite_vector_with_overflowing_squares_is_finite():
    v = np.array([[[3e200, 4e200], [np.inf, 1.0], [3.0, 4.0]]])
    n = norms(v, 2)
    assert n[0, 0] == pytest.approx(5e200, rel=1e-15)
    assert n[0, 1] == np.inf and n[0, 2] == 5.0


@pytest.mark.parametrize("overshoot,exc,match", [
    (1e308, ValueError, r"overshoot: must be <= 1.0, got 1e\+308"),
    (float("inf"), ValueError, r"overshoot: must be finite"),
    (-0.1, ValueError, r"overshoot: must be >= 0.0"),
    (1j, TypeError, r"overshoot: must be a real number, got complex"),
    (True, TypeError, r"overshoot: must be a real number, got bool"),
])
def test_overshoot_range(huge_point, overshoot, exc, match):
    net, params, X = huge_point
    with pytest.raises(exc, match=match):
        fs.deepfool(net, params, X[1:], overshoot=overshoot)


def test_max_iter_beyond_int32_refused(huge_point):
    net, params, X = huge_point
    with pytest.raises(ValueError, match=r"max_iter: must be <= 2147483647, got 2147483648"):
        fs.deepfool(net, params, X[1:], max_iter=2**31)


def test_overshoot_upper_bound_accepted(huge_point):
    net, params, X = huge_point
    res = fs.deepfool(net, params, X[1:], overshoot=1.0)
    assert res.flipped.any()
    _assert_flips_are_finite(res, X[1:])


# ---- memory ----------------------------------------------------------------------------------
def test_available_bytes_reads_meminfo_with_fallback(monkeypatch):
    have = memory.available_bytes()
    assert isinstance(have, int) and have > 0

    def no_proc(*args, **kwargs):
        raise OSError("no /proc")

    monkeypatch.setattr(memory, "open", no_proc, raising=False)
    fallback = memory.available_bytes()
    assert isinstance(fallback, int) and fallback > 0


def test_available_bytes_respects_a_cgroup_limit(tmp_path, monkeypatch):
    limit, usage, stat = tmp_path / "memory.max", tmp_path / "memory.current", tmp_path / "memory.stat"
    files = ((str(limit), str(usage), str(stat), "inactive_file"),)
    monkeypatch.setattr(memory, "_CGROUP_FILES", files)
    monkeypatch.setattr(memory, "_meminfo_available", lambda: 8 * 10**9)
    limit.write_text("1000000000\n")
    usage.write_text("600000000\n")
    stat.write_text("active_file 5\ninactive_file 100000000\n")
    assert memory.available_bytes() == 10**9 - 6 * 10**8 + 10**8
    limit.write_text("max\n")  # no limit: the machine's figure
    assert memory.available_bytes() == 8 * 10**9


def test_estimate_train_bytes_counts_four_parameter_arrays():
    net = fs.MLP([2, 104, 1])
    P = net.n_params
    for dtype, size in (("float32", 4), ("float64", 8)):
        one = memory.estimate_train_bytes(net, 1000, 100, 50, dtype, threads=1)
        two = memory.estimate_train_bytes(net, 2000, 100, 50, dtype, threads=1)
        # per network: four (P,) arrays and two loss/accuracy histories
        assert two - one == 1000 * (4 * P * size + 2 * 101 * 8)
    # the measurement: 10**6 seeds of Experiment I's network held about 6.8 GB
    est = memory.estimate_train_bytes(net, 10**6, 7, 7, "float32", threads=2)
    assert 6.8e9 <= est <= 9e9
    # workspace grows with threads (up to one per network)
    assert (memory.estimate_train_bytes(fs.paper_cnn(), 4, 60, 60, "float32", threads=4)
            > memory.estimate_train_bytes(fs.paper_cnn(), 4, 60, 60, "float32", threads=1))
    assert (memory.estimate_train_bytes(net, 2, 60, 60, "float32", threads=64)
            == memory.estimate_train_bytes(net, 2, 60, 60, "float32", threads=2))
    with pytest.raises(TypeError, match="dtype: must be float32 or float64, got None"):
        memory.estimate_train_bytes(net, 2, 60, 60, None)
    with pytest.raises(ValueError, match="n_networks: must be >= 1"):
        memory.estimate_train_bytes(net, 0, 60, 60, "float32")


# Budgets between what the parameters' working copy needs (2 x 21 float64: 336 bytes) and
# what each call needs on top, so that each call's own estimate is what refuses.
@pytest.mark.parametrize("budget,call,match", [
    (400, lambda net, p, X, y: fs.train(net, p, X, y, epochs=1, batch_size=5, progress=False),
     r"train: 2 networks of 21 parameters \(float64\) need about .* MB, but only 0.0004 MB of memory "
     r"is available; train fewer networks per call"),
    (400, lambda net, p, X, y: fs.forward(net, p, X), r"forward: outputs for 2 networks x 10 rows need"),
    (400, lambda net, p, X, y: fs.input_grad(net, p, X), r"input_grad: outputs for 2 networks x 10 rows"),
    (400, lambda net, p, X, y: fs.deepfool(net, p, X), r"deepfool: outputs for 2 networks x 10 rows"),
    (400, lambda net, p, X, y: fs.loss_and_grad(net, p, X, y), r"loss_and_grad: 2 networks x 10 rows"),
    (100, lambda net, p, X, y: fs.forward(net, p, X),
     r"params: a working copy of 2 networks x 21 parameters need about 0.000336 MB"),
    (100, lambda net, p, X, y: fs.init(net, seeds=range(2)), r"seeds: 2 networks of 21 parameters"),
    (100, lambda net, p, X, y: exp1.training_set(10, seed=[1, 2]), r"r: 2 training sets of 10 points"),
    (100, lambda net, p, X, y: exp1.evaluation_set(10), r"n: an evaluation set of 10 points"),
], ids=["train", "forward", "input_grad", "deepfool", "loss_and_grad", "params-copy", "init",
        "training_set", "evaluation_set"])
def test_calls_beyond_available_memory_refused(problem, monkeypatch, budget, call, match):
    net, params, X, y = problem
    monkeypatch.setattr(memory, "available_bytes", lambda: budget)
    monkeypatch.setattr(memory, "ALWAYS_FITS_BYTES", 0)
    with pytest.raises(MemoryError, match=match):
        call(net, params, X, y)


def test_init_of_a_huge_range_refused_without_materialising_it():
    net = fs.MLP([2, 104, 1])
    with pytest.raises(ValueError, match=r"seeds: 10000000000 seeds; at most 2147483647"):
        fs.init(net, seeds=range(10**10))
    # within the count limit, the memory estimate refuses from len(range) alone
    with pytest.raises(MemoryError, match=r"seeds: 2000000000 networks of 60213 parameters"):
        fs.init(fs.paper_cnn(), seeds=range(2 * 10**9))


def test_training_set_size_bounded():
    with pytest.raises(ValueError, match=r"r: must be <= 2147483647, got 2147483648"):
        exp1.training_set(r=2**31)
    with pytest.raises(ValueError, match=r"n: must be <= 2147483647"):
        exp1.evaluation_set(n=2**31)


def test_small_calls_do_not_ask_the_system(problem, monkeypatch):
    def unavailable():
        raise AssertionError("available_bytes consulted for a small call")

    monkeypatch.setattr(memory, "available_bytes", unavailable)
    net, params, X, y = problem
    assert fs.forward(net, params, X).shape == (2, 10, 1)
    with pytest.raises(AssertionError, match="consulted"):
        memory.check_fits(memory.ALWAYS_FITS_BYTES, "x", "y")
