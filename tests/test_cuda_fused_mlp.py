"""The GPU's fused MLP training kernel (src/falsestruct/cuda/fused_mlp_train.h) run on the CPU by
the emulated executor (_native.cuda_emulation.fused_mlp_train) against the CPU engine: the same
parameters, Adam moments and loss/accuracy records (to rounding: sums are ordered differently),
the same batch order in every shuffle mode, chunks of epochs equal to one run, and no race
between the threads of a phase (both thread orders give the same bits)."""
from __future__ import annotations

import numpy as np
import pytest

import falsestruct_fast as fs
from falsestruct_fast import _native
from helpers import assert_close, make_data, make_targets

EMU = _native.cuda_emulation
LOSS = {"sigmoid": 0, "softmax": 1}
SHUFFLE = {"none": 0, "samples": 1, "batches": 2}


def _arrays(net, params, X, y, epochs, record_every):
    theta = params.flat.copy()
    S = theta.shape[0]
    n_records = -(-epochs // record_every) if epochs else 0
    t = net.n_logits if net.loss == "sigmoid" else 1
    Y = np.ascontiguousarray(np.asarray(y, dtype=theta.dtype).reshape(X.shape[:-1] + (t,)))
    hist = (np.full((S, n_records), np.nan), np.full((S, n_records), np.nan))
    return theta, np.zeros_like(theta), np.zeros_like(theta), Y, hist


def cpu_train(net, params, X, y, *, shuffle, epochs, batch_size, record_every=1,
              adam=fs.Adam(), step0=0):
    """The CPU engine (the contract): theta, m, v, loss history, accuracy history."""
    theta, m, v, Y, (lh, ah) = _arrays(net, params, X, y, epochs, record_every)
    seeds = np.arange(theta.shape[0], dtype=np.uint64) + 11
    _native.net_train(net.spec, LOSS[net.loss], SHUFFLE[shuffle], adam.as_tuple(), X, Y, theta,
                      m, v, seeds, epochs, batch_size, step0, record_every, lh, ah, 1)
    return theta, m, v, lh, ah


def fused_train(net, params, X, y, *, shuffle, epochs, batch_size, record_every=1,
                adam=fs.Adam(), step0=0, chunks=None, threads_per_net=0, nets_per_block=0,
                reverse=False):
    """The emulated kernel, launched once per chunk [begin, end) of epochs (default: one)."""
    theta, m, v, Y, (lh, ah) = _arrays(net, params, X, y, epochs, record_every)
    seeds = np.arange(theta.shape[0], dtype=np.uint64) + 11
    for begin, end in chunks or [(0, epochs)]:
        done = EMU.fused_mlp_train(net.spec, LOSS[net.loss], SHUFFLE[shuffle], adam.as_tuple(), X,
                                   Y, theta, m, v, seeds, epochs, batch_size, step0, record_every,
                                   lh, ah, epoch_begin=begin, epoch_end=end,
                                   threads_per_net=threads_per_net, nets_per_block=nets_per_block,
                                   reverse_threads=reverse)
        assert done == theta.shape[0] * (end - begin)
    return theta, m, v, lh, ah


def problem(widths, loss, S, N, dtype, shared_data=False):
    net = fs.MLP(widths, loss=loss)
    params = fs.init(net, seeds=range(S), dtype=dtype)
    X = make_data(N, widths[0], seed=3, S=None if shared_data else S, dtype=dtype)
    y = make_targets(net, N, seed=4, S=None if shared_data else S)
    return net, params, X, y


def assert_results_close(got, want, rtol, what):
    for name, a, b in zip(("theta", "adam_m", "adam_v", "loss", "accuracy"), got, want):
        assert not np.isnan(a).any(), f"{what}: {name} has NaN (a value never written)"
        assert_close(a, b, rtol, f"{what}: {name}")


def assert_bitwise(got, want, what):
    for name, a, b in zip(("theta", "adam_m", "adam_v", "loss", "accuracy"), got, want):
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: {name}")


# widths, loss, shuffle, S, N, batch: every tile (Experiment I's; 2 units per lane; 10 logits),
# H not a multiple of 32, B not dividing N, several networks per block with S not a multiple of
# them (a block with an idle network slot), one step per epoch.
CASES = [
    ([2, 104, 1], "sigmoid", "batches", 2, 130, 50),
    ([2, 40, 1], "sigmoid", "samples", 3, 37, 6),
    ([1, 20, 1], "sigmoid", "none", 5, 7, 7),
    ([3, 300, 2], "sigmoid", "samples", 2, 23, 5),
    ([4, 33, 3], "softmax", "none", 3, 30, 7),
    ([2, 17, 10], "softmax", "batches", 3, 41, 8),
]


@pytest.mark.parametrize("widths,loss,shuffle,S,N,batch", CASES,
                         ids=["-".join(map(str, c[0])) + f"-{c[2]}" for c in CASES])
def test_float64_equals_cpu_engine(widths, loss, shuffle, S, N, batch):
    net, params, X, y = problem(widths, loss, S, N, "float64")
    kw = dict(shuffle=shuffle, epochs=24, batch_size=batch, record_every=5, adam=fs.Adam(lr=1e-2))
    want = cpu_train(net, params, X, y, **kw)
    got = fused_train(net, params, X, y, **kw)
    assert_results_close(got, want, 1e-9, "float64")
    assert not np.allclose(got[0], params.flat)  # it trained
    # No phase reads what another thread of the phase writes: the reverse order gives the bits.
    assert_bitwise(fused_train(net, params, X, y, reverse=True, **kw), got, "reverse thread order")


@pytest.mark.parametrize("widths,loss,shuffle", [([2, 104, 1], "sigmoid", "batches"),
                                                 ([3, 24, 4], "softmax", "samples")])
def test_float32_equals_cpu_engine(widths, loss, shuffle):
    net, params, X, y = problem(widths, loss, 3, 60, "float32", shared_data=True)
    kw = dict(shuffle=shuffle, epochs=20, batch_size=11, record_every=4)
    want = cpu_train(net, params, X, y, **kw)
    got = fused_train(net, params, X, y, **kw)
    assert got[0].dtype == np.float32
    assert_results_close(got, want, 2e-4, "float32")


def test_matches_public_train():
    # The CPU engine's reference above is fs.train's: the public API on Experiment I's shape.
    net, params, X, y = problem([2, 104, 1], "sigmoid", 2, 100, "float64")
    fit = fs.train(net, params, X, y, epochs=6, batch_size=50, shuffle="batches",
                   seeds=np.arange(2) + 11, record_every=2, progress=False)
    got = fused_train(net, params, X, y, shuffle="batches", epochs=6, batch_size=50,
                      record_every=2)
    assert_close(got[0], fit.params.flat, 1e-10, "theta")
    assert_close(got[3], fit.loss, 1e-10, "loss history")
    assert_close(got[4], fit.accuracy, 1e-10, "accuracy history")


@pytest.mark.parametrize("shuffle", ["none", "samples", "batches"])
def test_chunks_of_epochs_equal_one_run(shuffle):
    net, params, X, y = problem([2, 40, 1], "sigmoid", 3, 29, "float64")
    kw = dict(shuffle=shuffle, epochs=13, batch_size=6, record_every=3, adam=fs.Adam(lr=1e-2))
    one = fused_train(net, params, X, y, **kw)
    chunked = fused_train(net, params, X, y, chunks=[(0, 4), (4, 5), (5, 5), (5, 13)], **kw)
    assert_bitwise(chunked, one, "chunks")


def test_continued_run_equals_cpu_engine():
    # step0 > 0: Adam's step count and the epochs' batch order continue an earlier run.
    net, params, X, y = problem([2, 104, 1], "sigmoid", 2, 60, "float64")
    kw = dict(shuffle="batches", epochs=5, batch_size=12, step0=35, adam=fs.Adam(lr=1e-2))
    assert_results_close(fused_train(net, params, X, y, **kw), cpu_train(net, params, X, y, **kw),
                         1e-9, "step0")


def test_launch_configuration_changes_no_parameter():
    # More lanes than units, one or several networks per block: the parameters' arithmetic is
    # the same; only the loss records' sums are ordered differently.
    net, params, X, y = problem([2, 40, 1], "sigmoid", 3, 31, "float64")
    kw = dict(shuffle="samples", epochs=6, batch_size=5, record_every=2, adam=fs.Adam(lr=1e-2))
    base = fused_train(net, params, X, y, **kw)
    for tpn, npb in [(64, 1), (128, 2), (96, 2)]:
        other = fused_train(net, params, X, y, threads_per_net=tpn, nets_per_block=npb, **kw)
        assert_bitwise(other[:3], base[:3], f"threads_per_net={tpn}, nets_per_block={npb}")
        assert_close(other[3], base[3], 1e-14, "loss history")
        assert_close(other[4], base[4], 1e-14, "accuracy history")


def _call(net, X, Y, theta, **kw):
    S = theta.shape[0]
    args = dict(spec=net.spec, loss_kind=0, shuffle=0, adam=(1e-3, 0.9, 0.999, 1e-8), X=X, Y=Y,
                theta=theta, adam_m=np.zeros_like(theta), adam_v=np.zeros_like(theta),
                seeds=np.zeros(S, np.uint64), epochs=2, batch_size=2, step0=0, record_every=1,
                loss_history=np.zeros((S, 2)), acc_history=np.zeros((S, 2)))
    args.update(kw)
    return EMU.fused_mlp_train(**args)


def test_bad_arguments_name_the_argument():
    net = fs.MLP([2, 8, 1])
    theta = fs.init(net, seeds=[0], dtype="float64").flat.copy()
    X, Y = np.zeros((4, 2)), np.zeros((4, 1))
    with pytest.raises(ValueError, match=r"^spec: the fused kernel takes one ReLU dense hidden"):
        deep = fs.MLP([2, 8, 8, 1])
        _call(deep, X, Y, fs.init(deep, seeds=[0], dtype="float64").flat.copy())
    with pytest.raises(ValueError, match=r"^threads_per_net/nets_per_block: threads_per_net must be a positive multiple of 32"):
        _call(net, X, Y, theta, threads_per_net=48)
    with pytest.raises(ValueError, match=r"^threads_per_net/nets_per_block: nets_per_block must be >= 1 with at most 256"):
        _call(net, X, Y, theta, threads_per_net=128, nets_per_block=3)
    with pytest.raises(ValueError, match=r"^epoch_end: must be >= 0 and <= 2, got 3"):
        _call(net, X, Y, theta, epoch_end=3)
    with pytest.raises(ValueError, match=r"^epoch_begin: must be >= 0 and <= 1, got 2"):
        _call(net, X, Y, theta, epoch_begin=2, epoch_end=1)
    with pytest.raises(TypeError, match=r"^adam_m: expected dtype float32, got float64"):
        _call(net, X, Y, theta.astype(np.float32), adam_m=np.zeros_like(theta))
    assert _call(net, X, Y, theta, epoch_begin=1, epoch_end=1) == 0  # an empty range
