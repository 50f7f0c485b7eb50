"""The CUDA engine's layer-wise CNN kernels (src/falsestruct/cuda/layer_kernels.h), run on the CPU
through their emulation (_native.cuda_emulation.layerwise_train / layerwise_forward), against
the CPU engine: the same training trajectory (parameters, Adam moments, loss and accuracy
records) to rounding, and the same logits. Shapes are tiny: the emulation runs every GPU thread
of every block one after the other."""
from __future__ import annotations

import numpy as np
import pytest

import falsestruct_fast as fs
from falsestruct_fast import _native

from helpers import assert_close

emulation = _native.cuda_emulation

DENSE, CONV, POOL = 0, 1, 2
ADAM = (1e-2, 0.9, 0.999, 1e-8)
# 8x8x1 -> conv 3x3 (3, ReLU) -> pool -> conv 5x5 (4, ReLU) -> pool -> dense 5 (ReLU) -> 1 logit
SIGMOID_CNN = [8, 8, 1, CONV, 3, 3, 1, POOL, 0, 0, 0, CONV, 4, 5, 1, POOL, 0, 0, 0, DENSE, 5, 0, 1,
               DENSE, 1, 0, 0]
# 7x7x2 (odd: pools clip their last window) -> conv 5x5 (2, linear) -> pool -> conv 3x3 (3, ReLU)
# -> dense 3 logits (softmax)
SOFTMAX_CNN = [7, 7, 2, CONV, 2, 5, 0, POOL, 0, 0, 0, CONV, 3, 3, 1, DENSE, 3, 0, 0]
# More than one column tile (32) of every product: 34 filters, 33 hidden units
WIDE_CNN = [4, 4, 2, CONV, 34, 3, 1, POOL, 0, 0, 0, DENSE, 33, 0, 1, DENSE, 1, 0, 0]


def logits_of(spec):
    return spec[-3] if spec[-4] == DENSE else None


def initial_theta(spec, S, dtype):
    theta = np.zeros((S, _native.n_params(spec)), dtype)
    _native.net_init(spec, np.arange(10, 10 + S, dtype=np.uint64), theta, 1)
    return theta


def problem(spec, loss_kind, S, N, dtype, per_network_data, seed=0):
    rng = np.random.default_rng(seed)
    d = spec[0] * spec[1] * spec[2]
    K = logits_of(spec)
    lead = (S,) if per_network_data else ()
    X = rng.standard_normal(lead + (N, d)).astype(dtype)
    if loss_kind == 0:
        Y = rng.integers(0, 2, size=lead + (N, K)).astype(dtype)
    else:
        Y = rng.integers(0, K, size=lead + (N, 1)).astype(dtype)
    return X, Y


def train(fn, spec, loss_kind, shuffle, X, Y, theta, *, epochs, B, record_every, step0=0, first_seed=100, **kw):
    S = theta.shape[0]
    theta = theta.copy()
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    n_records = -(-epochs // record_every)
    loss_h, acc_h = np.full((S, n_records), np.nan), np.full((S, n_records), np.nan)
    seeds = np.arange(first_seed, first_seed + S, dtype=np.uint64)
    done = fn(spec, loss_kind, shuffle, ADAM, X, Y, theta, m, v, seeds, epochs, B, step0, record_every,
              loss_h, acc_h, **kw)
    assert done == S * epochs
    return {"theta": theta, "adam_m": m, "adam_v": v, "loss_history": loss_h, "acc_history": acc_h}


def assert_same_run(actual, expected, rtol):
    for name, e in expected.items():
        assert_close(actual[name], e, rtol, what=name)


CASES = [
    # spec, loss kind, S, N, B (not dividing N), networks' own data
    pytest.param(SIGMOID_CNN, 0, 2, 13, 4, False, id="sigmoid-shared-data"),
    pytest.param(SOFTMAX_CNN, 1, 3, 11, 3, True, id="softmax-own-data"),
    pytest.param(WIDE_CNN, 0, 2, 9, 4, False, id="wide"),
]


@pytest.mark.parametrize("shuffle", [0, 1, 2], ids=["none", "samples", "batches"])
@pytest.mark.parametrize("spec, loss_kind, S, N, B, own", CASES)
def test_train_float64_matches_cpu_engine(spec, loss_kind, S, N, B, own, shuffle):
    X, Y = problem(spec, loss_kind, S, N, np.float64, own)
    theta = initial_theta(spec, S, np.float64)
    kw = dict(epochs=3, B=B, record_every=2)
    expected = train(_native.net_train, spec, loss_kind, shuffle, X, Y, theta, n_threads=1, **kw)
    actual = train(emulation.layerwise_train, spec, loss_kind, shuffle, X, Y, theta, **kw)
    assert_same_run(actual, expected, 1e-9)
    # records at epochs 2 and 3 (the last), all finite
    assert np.isfinite(actual["loss_history"]).all() and np.isfinite(actual["acc_history"]).all()


def test_train_float32_matches_cpu_engine():
    X, Y = problem(SIGMOID_CNN, 0, 2, 13, np.float32, False)
    theta = initial_theta(SIGMOID_CNN, 2, np.float32)
    kw = dict(epochs=2, B=5, record_every=1)
    expected = train(_native.net_train, SIGMOID_CNN, 0, 1, X, Y, theta, n_threads=1, **kw)
    actual = train(emulation.layerwise_train, SIGMOID_CNN, 0, 1, X, Y, theta, **kw)
    assert actual["theta"].dtype == np.float32
    assert_same_run(actual, expected, 2e-4)


def test_paper_cnn_matches_cpu_engine():
    # The paper's CNN at its real sizes (48 filters: two column tiles; a 3072-input dense layer
    # whose products are split over the reduction), two images per batch.
    spec = fs.paper_cnn().spec
    X, Y = problem(spec, 0, 2, 4, np.float64, False, seed=13)
    theta = initial_theta(spec, 2, np.float64)
    kw = dict(epochs=2, B=2, record_every=1)
    expected = train(_native.net_train, spec, 0, 1, X, Y, theta, n_threads=1, **kw)
    actual = train(emulation.layerwise_train, spec, 0, 1, X, Y, theta, **kw)
    assert_same_run(actual, expected, 1e-9)


def test_one_network_continuing_run_matches_cpu_engine():
    # S = 1, and a run continued from step0 (Adam's count and the epoch's batch order go on)
    X, Y = problem(SOFTMAX_CNN, 1, 1, 9, np.float64, False, seed=3)
    theta = initial_theta(SOFTMAX_CNN, 1, np.float64)
    kw = dict(epochs=2, B=3, record_every=1, step0=6)
    expected = train(_native.net_train, SOFTMAX_CNN, 1, 1, X, Y, theta, n_threads=1, **kw)
    actual = train(emulation.layerwise_train, SOFTMAX_CNN, 1, 1, X, Y, theta, **kw)
    assert_same_run(actual, expected, 1e-9)


def test_chunks_of_epochs_and_repeats_are_bitwise_one_run():
    X, Y = problem(SIGMOID_CNN, 0, 2, 10, np.float64, False, seed=5)
    theta = initial_theta(SIGMOID_CNN, 2, np.float64)
    kw = dict(epochs=3, B=4, record_every=2)
    one = train(emulation.layerwise_train, SIGMOID_CNN, 0, 1, X, Y, theta, **kw)
    again = train(emulation.layerwise_train, SIGMOID_CNN, 0, 1, X, Y, theta, **kw)
    chunked = train(emulation.layerwise_train, SIGMOID_CNN, 0, 1, X, Y, theta, epoch_chunk=1, **kw)
    # network 1 trained alone (its seed, its parameters) is network 1 of the pair, bitwise
    alone = train(emulation.layerwise_train, SIGMOID_CNN, 0, 1, X, Y, theta[1:], first_seed=101, **kw)
    for name in one:
        assert np.array_equal(again[name], one[name], equal_nan=True), name
        assert np.array_equal(chunked[name], one[name], equal_nan=True), name
        assert np.array_equal(alone[name], one[name][1:], equal_nan=True), name


def test_reduction_splits_change_only_rounding():
    # Another split of the weight gradients' reductions over samples x pixels (the GPU's: 16
    # splits of conv 1's here; 8 blocks: 8 splits): other partial sums, the same values to rounding.
    X, Y = problem(SIGMOID_CNN, 0, 1, 16, np.float64, False, seed=7)
    theta = initial_theta(SIGMOID_CNN, 1, np.float64)
    kw = dict(epochs=1, B=16, record_every=1)
    gpu = train(emulation.layerwise_train, SIGMOID_CNN, 0, 0, X, Y, theta, **kw)
    fewer = train(emulation.layerwise_train, SIGMOID_CNN, 0, 0, X, Y, theta, split_target=8, **kw)
    assert_same_run(fewer, gpu, 1e-12)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("own", [False, True], ids=["shared-X", "own-X"])
@pytest.mark.parametrize("spec", [SIGMOID_CNN, SOFTMAX_CNN], ids=["sigmoid", "softmax"])
def test_forward_matches_cpu_engine(spec, own, dtype, rtol):
    S, N = 2, 7
    X, _ = problem(spec, 0 if spec is SIGMOID_CNN else 1, S, N, dtype, own, seed=11)
    theta = initial_theta(spec, S, dtype)
    K = logits_of(spec)
    expected = np.full((S, N, K), np.nan, dtype)
    actual = np.full((S, N, K), np.nan, dtype)
    _native.net_forward(spec, theta, X, expected, 1)
    emulation.layerwise_forward(spec, theta, X, actual)
    assert_close(actual, expected, rtol, what="logits")


def test_bad_arguments_are_refused_like_net_train():
    X, Y = problem(SIGMOID_CNN, 0, 1, 6, np.float64, False)
    theta = initial_theta(SIGMOID_CNN, 1, np.float64)
    with pytest.raises(ValueError, match="batch_size: must be in"):
        train(emulation.layerwise_train, SIGMOID_CNN, 0, 0, X, Y, theta, epochs=1, B=7, record_every=1)
    with pytest.raises(ValueError, match="split_target"):
        train(emulation.layerwise_train, SIGMOID_CNN, 0, 0, X, Y, theta, epochs=1, B=2, record_every=1, split_target=0)
    with pytest.raises(TypeError, match="theta"):
        out = np.zeros((1, 6, 1))
        emulation.layerwise_forward(SIGMOID_CNN, theta.astype(np.int32), X, out)
