"""Bad inputs raise the documented exception naming the argument; the low-level bindings check
array structure (dtype, shape, contiguity, writeability) without crashing; the high-level API
accepts non-contiguous and read-only inputs and never modifies its inputs."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import falsestruct_fast as fs
from falsestruct_fast import _native
from helpers import assert_params_equal, make_data, make_targets

REPO_ROOT = Path(__file__).resolve().parents[1]


# ---- high-level API -------------------------------------------------------------------------
def call_train(problem, **overrides):
    net, params, X, y = problem
    args = dict(net=net, params=params, X=X, y=y, epochs=1, batch_size=5, progress=False)
    args.update(overrides)
    return fs.train(args.pop("net"), args.pop("params"), args.pop("X"), args.pop("y"), **args)


def with_value(a, index, value):
    a = np.array(a, dtype=np.float64 if np.asarray(a).dtype.kind != "f" else None)
    a[index] = value
    return a


def test_valid_call_works(problem, softmax_problem):
    # the baseline of every case below is valid
    assert call_train(problem).params.n_networks == 2
    assert call_train(softmax_problem).params.n_networks == 2


X_CASES = [
    ("last dim", lambda X: X[:, :1], ValueError, r"X: expected shape \(N, 2\)"),
    ("1-D", lambda X: X[:, 0], ValueError, r"X: expected shape"),
    ("4-D", lambda X: X[None, None], ValueError, r"X: expected shape"),
    ("wrong S", lambda X: np.stack([X] * 3), ValueError, r"X: leading axis 3 .* S = 2"),
    ("float32", lambda X: X.astype(np.float32), TypeError, r"X: dtype float32 does not match"),
    ("int", lambda X: X.astype(np.int64), TypeError, r"X: dtype int64 does not match"),
    ("complex", lambda X: X.astype(np.complex128), TypeError, r"X: must be a float array"),
    ("strings", lambda X: [["a", "b"]] * 10, TypeError, r"X: cannot be converted"),
    ("NaN", lambda X: with_value(X, (3, 1), np.nan), ValueError, r"X: contains NaN or inf .*\(3, 1\)"),
    ("inf", lambda X: with_value(X, (0, 0), np.inf), ValueError, r"X: contains NaN or inf"),
    ("-inf", lambda X: with_value(X, (9, 1), -np.inf), ValueError, r"X: contains NaN or inf"),
    ("empty", lambda X: X[:0], ValueError, r"X: no data rows \(N = 0\)"),
]


@pytest.mark.parametrize("make_X,exc,match", [c[1:] for c in X_CASES], ids=[c[0] for c in X_CASES])
def test_bad_X(problem, make_X, exc, match):
    net, params, X, y = problem
    with pytest.raises(exc, match=match):
        call_train(problem, X=make_X(X))
    with pytest.raises(exc, match=match):
        fs.forward(net, params, make_X(X))
    with pytest.raises(exc, match=match):
        fs.loss_and_grad(net, params, make_X(X), y)


Y_CASES = [
    ("NaN", lambda y: with_value(y, 2, np.nan), ValueError, r"y: contains NaN or inf"),
    ("inf", lambda y: with_value(y, 0, np.inf), ValueError, r"y: contains NaN or inf"),
    ("above 1", lambda y: y * 2, ValueError, r"y: sigmoid cross-entropy targets must lie in \[0, 1\]"),
    ("below 0", lambda y: y - 1, ValueError, r"y: sigmoid .* \[0, 1\]"),
    ("wrong length", lambda y: y[:5], ValueError, r"y: expected shape \(10,\) or \(2, 10\)"),
    ("wrong S", lambda y: np.stack([y] * 3), ValueError, r"y: expected shape"),
    ("strings", lambda y: y.astype(str), TypeError, r"y: must be numeric"),
]


@pytest.mark.parametrize("make_y,exc,match", [c[1:] for c in Y_CASES], ids=[c[0] for c in Y_CASES])
def test_bad_y_sigmoid(problem, make_y, exc, match):
    net, params, X, y = problem
    with pytest.raises(exc, match=match):
        call_train(problem, y=make_y(y))
    with pytest.raises(exc, match=match):
        fs.loss_and_grad(net, params, X, make_y(y))


@pytest.mark.parametrize("labels", [
    [0, 1, 2.5, 0, 1, 2, 0, 1, 2, 0],   # not an integer
    [0, 1, 3, 0, 1, 2, 0, 1, 2, 0],     # = K
    [0, -1, 2, 0, 1, 2, 0, 1, 2, 0],    # negative
    [0, 1, 2, 0, 1, 2, 0, 1, 2, 1e12],  # huge
], ids=["fraction", "K", "negative", "huge"])
def test_bad_softmax_labels(softmax_problem, labels):
    net, params, X, _ = softmax_problem
    with pytest.raises(ValueError, match=r"y: softmax labels must be integer class indices in \[0, 3\)"):
        call_train(softmax_problem, y=np.array(labels))
    with pytest.raises(ValueError, match=r"y: softmax labels"):
        fs.loss_and_grad(net, params, X, np.array(labels))


def test_softmax_labels_as_float_or_int_accepted(softmax_problem):
    net, params, X, y = softmax_problem
    a = fs.loss_and_grad(net, params, X, y.astype(np.int32))[0]
    b = fs.loss_and_grad(net, params, X, y.astype(np.float64))[0]
    np.testing.assert_array_equal(a, b)


def test_sigmoid_multi_logit_targets_need_K_columns():
    net = fs.MLP([2, 4, 3], loss="sigmoid")
    params = fs.init(net, seeds=0, dtype="float64")
    X = make_data(6, 2)
    with pytest.raises(ValueError, match=r"y: expected shape \(6, 3\) or \(1, 6, 3\)"):
        fs.loss_and_grad(net, params, X, np.zeros(6))
    fs.loss_and_grad(net, params, X, np.zeros((6, 3)))   # the right shape works


def _nan_in(index, value=np.nan):
    def mutate(params):
        out = [np.array(a) for a in params]
        out[index][(0,) * out[index].ndim] = value
        return out
    return mutate


PARAM_CASES = [
    ("int dtype", lambda p: [a.astype(np.int64) for a in p], TypeError,
     r"params\[0\]\.dtype: must be float32 or float64, got int64"),
    ("float16", lambda p: [a.astype(np.float16) for a in p], TypeError, r"params\[0\]\.dtype"),
    ("mixed dtypes", lambda p: [p[0], p[1].astype(np.float32), p[2], p[3]], TypeError,
     r"params\[1\]: dtype float32 differs from params\[0\]'s float64"),
    ("NaN in W0", _nan_in(0), ValueError, r"params\[0\]: contains NaN or inf"),
    ("inf in b1", _nan_in(3, np.inf), ValueError, r"params\[3\]: contains NaN or inf"),
    ("too few arrays", lambda p: list(p)[:3], ValueError, r"params: .* has 4 arrays .*got 3"),
    ("too many arrays", lambda p: list(p) + [p[0]], ValueError, r"params: .* has 4 arrays .*got 5"),
    ("no S axis", lambda p: [a[0] for a in p], ValueError,
     r"params\[0\]: expected shape \(S, 2, 5\) with a leading network axis S, got \(2, 5\)"),
    ("S mismatch", lambda p: [p[0], p[1][:1], p[2], p[3]], ValueError,
     r"params\[1\]: expected shape \(2, 5\), got \(1, 5\)"),
    ("wrong width", lambda p: [p[0][:, :, :4], p[1], p[2], p[3]], ValueError, r"params\[0\]"),
    ("S = 0", lambda p: [a[:0] for a in p], ValueError, r"params: no networks"),
    ("an ndarray", lambda p: p[0], TypeError, r"params: expected a list of arrays"),
    ("list of lists", lambda p: [a.tolist() for a in p], TypeError, r"params\[0\]: expected a NumPy array"),
]


@pytest.mark.parametrize("mutate,exc,match", [c[1:] for c in PARAM_CASES],
                         ids=[c[0] for c in PARAM_CASES])
def test_bad_params(problem, mutate, exc, match):
    net, params, X, y = problem
    bad = mutate(params)
    with pytest.raises(exc, match=match):
        call_train(problem, params=bad)
    with pytest.raises(exc, match=match):
        fs.forward(net, bad, X)
    with pytest.raises(exc, match=match):
        fs.loss_and_grad(net, bad, X, y)


TRAIN_OPTION_CASES = [
    ("batch_size > N", dict(batch_size=11), ValueError, r"batch_size: 11 is larger than .* N = 10"),
    ("batch_size 0", dict(batch_size=0), ValueError, r"batch_size: must be >= 1"),
    ("batch_size float", dict(batch_size=2.5), TypeError, r"batch_size: must be an integer"),
    ("epochs negative", dict(epochs=-1), ValueError, r"epochs: must be >= 0"),
    ("epochs float", dict(epochs=1.5), TypeError, r"epochs: must be an integer"),
    ("shuffle", dict(shuffle="random"), ValueError,
     r"shuffle: unknown option 'random'; expected one of \['batches', 'none', 'samples'\]"),
    ("engine", dict(engine="tpu"), ValueError,
     r"engine: unknown option 'tpu'; expected one of \['cuda', 'native', 'numba'\]"),
    ("record_every 0", dict(record_every=0), ValueError, r"record_every: must be >= 1"),
    ("threads 0", dict(threads=0), ValueError, r"threads: must be >= 1"),
    ("progress_seconds", dict(progress_seconds=0), ValueError, r"progress_seconds: must be a positive"),
    ("progress", dict(progress="yes"), TypeError, r"progress: expected bool or a callable"),
    ("optimizer", dict(optimizer="adam"), TypeError, r"optimizer: expected falsestruct_fast.Adam"),
    ("seeds count", dict(seeds=[1, 2, 3]), ValueError, r"seeds: 3 seeds for S = 2 networks"),
    ("seeds negative", dict(seeds=[-1, 2]), ValueError, r"seeds: must be in \[0, 2\*\*64\)"),
    ("seeds too big", dict(seeds=[0, 2**64]), ValueError, r"seeds: must be in \[0, 2\*\*64\)"),
    ("seeds strings", dict(seeds="ab"), TypeError, r"seeds: must be an integer or an iterable"),
    ("opt_state type", dict(opt_state="x"), TypeError, r"opt_state: expected AdamState"),
    ("opt_state shape", dict(opt_state=fs.AdamState.zeros(2, 3, np.float64)), ValueError,
     r"opt_state.m: expected shape \(2, 21\), got \(2, 3\)"),
    ("opt_state dtype", dict(opt_state=fs.AdamState.zeros(2, 21, np.float32)), TypeError,
     r"opt_state.m: expected a float64 NumPy array"),
    ("epochs bool", dict(epochs=True), TypeError, r"epochs: must be an integer, got bool"),
    ("epochs too large", dict(epochs=2**31), ValueError, r"epochs: must be <= 2147483647"),
    ("opt_state step", dict(opt_state=fs.AdamState(np.zeros((2, 21)), np.zeros((2, 21)), -1)),
     ValueError, r"opt_state.step: must be >= 0"),
    ("unknown keyword", dict(learning_rate=0.1), TypeError, r"unexpected keyword argument 'learning_rate'"),
]


@pytest.mark.parametrize("overrides,exc,match", [c[1:] for c in TRAIN_OPTION_CASES],
                         ids=[c[0] for c in TRAIN_OPTION_CASES])
def test_bad_train_options(problem, overrides, exc, match):
    with pytest.raises(exc, match=match):
        call_train(problem, **overrides)


def test_positional_options_rejected(problem):
    net, params, X, y = problem
    with pytest.raises(TypeError):
        fs.train(net, params, X, y, 1, 5)   # epochs and batch_size are keyword-only


def test_unknown_keyword_elsewhere(problem):
    net, params, X, y = problem
    with pytest.raises(TypeError, match="unexpected keyword argument 'wrt_inputs'"):
        fs.loss_and_grad(net, params, X, y, wrt_inputs=True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'seed'"):
        fs.init(net, seed=3)


@pytest.mark.parametrize("widths,exc,match", [
    ([2, 0, 1], ValueError, r"widths\[1\]: must be >= 1, got 0"),
    ([2, -3, 1], ValueError, r"widths\[1\]: must be >= 1, got -3"),
    ([0, 3], ValueError, r"widths\[0\]: must be >= 1"),
    ([2], ValueError, r"widths: need 2 to 17 layer widths, got 1"),
    ([], ValueError, r"widths: need 2 to 17 layer widths, got 0"),
    ([2] * 18, ValueError, r"widths: need 2 to 17 layer widths, got 18"),
    ([2, 1.5, 1], TypeError, r"widths\[1\]: must be an integer"),
    ("abc", TypeError, r"widths\[0\]: must be an integer"),
    (5, TypeError, r"widths: must be a sequence of positive integers"),
], ids=["zero", "negative", "zero input", "one", "empty", "18", "float", "string", "int"])
def test_bad_widths(widths, exc, match):
    with pytest.raises(exc, match=match):
        fs.MLP(widths)


def test_widths_limits_are_accepted():
    assert fs.MLP([2] * 17).n_layers == 16
    assert fs.MLP([1, 1]).n_params == 2
    assert fs.MLP(np.array([3, 4, 1])).widths == (3, 4, 1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(loss="mse"), r"loss: unknown option 'mse'; expected one of \['sigmoid', 'softmax'\]"),
    (dict(widths=[2, 1], loss="softmax"), r"loss: 'softmax' needs at least 2 output logits"),
])
def test_bad_loss_option(kwargs, match):
    widths = kwargs.pop("widths", [2, 3, 2])
    with pytest.raises(ValueError, match=match):
        fs.MLP(widths, **kwargs)


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=0), r"Adam.lr: must be > 0"),
    (dict(lr=-1e-3), r"Adam.lr: must be > 0"),
    (dict(lr=float("nan")), r"Adam.lr: must be finite"),
    (dict(lr=float("inf")), r"Adam.lr: must be finite"),
    (dict(beta1=1.0), r"Adam.beta1: must be in \[0, 1\)"),
    (dict(beta2=-0.1), r"Adam.beta2: must be in \[0, 1\)"),
    (dict(eps=-1.0), r"Adam.eps: must be > 0"),
    (dict(eps=0.0), r"Adam.eps: must be > 0"),
])
def test_bad_adam(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fs.Adam(**kwargs)


@pytest.mark.parametrize("call,exc,match", [
    (lambda net: fs.init(net, seeds=[]), ValueError, r"seeds: at least one seed"),
    (lambda net: fs.init(net, seeds=-1), ValueError, r"seeds: must be in \[0, 2\*\*64\)"),
    (lambda net: fs.init(net, seeds=2**64), ValueError, r"seeds: must be in"),
    (lambda net: fs.init(net, dtype="int32"), TypeError, r"dtype: must be float32 or float64, got int32"),
    (lambda net: fs.init(net, dtype="float16"), TypeError, r"dtype: must be float32 or float64"),
    (lambda net: fs.init(net, dtype="nonsense"), TypeError, r"dtype: not a dtype"),
    (lambda net: fs.init("net"), TypeError, r"net: expected falsestruct_fast.MLP"),
    (lambda net: fs.init(net, threads=0), ValueError, r"threads: must be >= 1"),
    (lambda net: fs.forward("net", [], np.zeros((1, 2))), TypeError, r"net: expected falsestruct_fast.MLP"),
], ids=["no seeds", "negative seed", "seed 2**64", "int32", "float16", "nonsense dtype", "net",
        "threads", "forward net"])
def test_bad_init_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call(fs.MLP([2, 5, 1]))


def test_cuda_engine_without_device_raises(problem):
    if fs.build_info()["cuda_devices"] > 0:
        pytest.skip("a CUDA device is available")
    with pytest.raises(RuntimeError, match="cuda|CUDA"):
        call_train(problem, engine="cuda")


# ---- the high-level API copies what it needs and never writes its inputs --------------------
def test_non_contiguous_X_gives_same_result(problem):
    net, params, X, y = problem
    big = np.zeros((10, 4))
    big[:, ::2] = X
    Xv = big[:, ::2]
    Xf = np.asfortranarray(X)
    assert not Xv.flags.c_contiguous and not Xf.flags.c_contiguous
    ref = call_train(problem)
    for Xn in (Xv, Xf):
        np.testing.assert_array_equal(call_train(problem, X=Xn).params.flat, ref.params.flat)
        np.testing.assert_array_equal(fs.forward(net, params, Xn), fs.forward(net, params, X))
        np.testing.assert_array_equal(fs.loss_and_grad(net, params, Xn, y)[1].flat,
                                      fs.loss_and_grad(net, params, X, y)[1].flat)
    # per-seed X as a strided view
    X3 = np.stack([X, X[::-1]])
    X3v = np.zeros((2, 10, 6))[:, :, ::3]
    X3v[...] = X3
    np.testing.assert_array_equal(fs.forward(net, params, X3v), fs.forward(net, params, X3))


def test_non_contiguous_params_and_y_accepted(problem):
    net, params, X, y = problem
    ref = call_train(problem)
    params_f = [np.asfortranarray(a) for a in params]
    yv = np.zeros(20)[::2]
    yv[...] = y
    got = call_train(problem, params=params_f, y=yv)
    np.testing.assert_array_equal(got.params.flat, ref.params.flat)


def _read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def test_read_only_inputs_accepted_and_not_modified(problem):
    net, params, X, y = problem
    params_ro = [_read_only(a) for a in params]
    before = [a.copy() for a in params_ro]
    X_ro, y_ro = _read_only(X), _read_only(y)
    fit = call_train(problem, params=params_ro, X=X_ro, y=y_ro, epochs=3)
    ref = call_train(problem, epochs=3)
    np.testing.assert_array_equal(fit.params.flat, ref.params.flat)
    assert_params_equal(params_ro, before, "read-only params")
    np.testing.assert_array_equal(fs.forward(net, params_ro, X_ro), fs.forward(net, params, X))
    fs.loss_and_grad(net, params_ro, X_ro, y_ro, wrt_input=True)
    # the result is writeable and independent of the inputs
    assert fit.params[0].flags.writeable


def test_train_does_not_modify_params_in_place(problem):
    net, params, X, y = problem
    before = [a.copy() for a in params]
    flat_before = params.flat.copy()
    fit = call_train(problem, epochs=5)
    assert_params_equal(params, before, "input params after train")
    np.testing.assert_array_equal(params.flat, flat_before)
    assert not np.array_equal(fit.params.flat, flat_before)
    assert not np.shares_memory(fit.params.flat, params.flat)
    # continuing from a result does not modify that result either
    fit_before = fit.params.flat.copy()
    call_train(problem, params=fit.params, epochs=2, opt_state=fit.opt_state)
    np.testing.assert_array_equal(fit.params.flat, fit_before)


def test_epochs_zero_returns_copy(problem):
    net, params, X, y = problem
    fit = call_train(problem, epochs=0)
    np.testing.assert_array_equal(fit.params.flat, params.flat)
    assert not np.shares_memory(fit.params.flat, params.flat)
    assert fit.loss.shape == (2, 0) and fit.epochs.shape == (0,)
    assert fit.opt_state.step == 0


# ---- the low-level bindings -----------------------------------------------------------------
W = [2, 5, 1]
SPEC = fs.MLP(W).spec
S, N = 2, 7


def native_args(func: str, dtype=np.float64) -> dict:
    """Valid keyword arguments for the _native function `func` (float64, S = 2, N = 7)."""
    P = _native.n_params(SPEC)
    theta = np.full((S, P), 0.1, dtype)
    if func == "net_init":
        return dict(spec=SPEC, seeds=np.arange(S, dtype=np.uint64), theta=np.zeros((S, P), dtype))
    X = make_data(N, 2, dtype=dtype)
    if func == "net_forward":
        return dict(spec=SPEC, theta=theta, X=X, out=np.zeros((S, N, 1), dtype))
    Y = np.ones((N, 1), dtype)
    if func == "net_loss_and_grad":
        return dict(spec=SPEC, loss_kind=0, theta=theta, X=X, Y=Y, loss_out=np.zeros(S, dtype),
                    grad_out=np.zeros((S, P), dtype), input_grad_out=np.zeros((S, N, 2), dtype))
    assert func == "net_train"
    return dict(spec=SPEC, loss_kind=0, shuffle=1, adam=(1e-3, 0.9, 0.999, 1e-8), X=X, Y=Y,
                theta=theta, adam_m=np.zeros((S, P), dtype), adam_v=np.zeros((S, P), dtype),
                seeds=np.arange(S, dtype=np.uint64), epochs=2, batch_size=3, step0=0,
                record_every=1, loss_history=np.zeros((S, 2)), acc_history=np.zeros((S, 2)))


ARRAY_ARGS = {
    "net_init": ["seeds", "theta"],
    "net_forward": ["theta", "X", "out"],
    "net_loss_and_grad": ["theta", "X", "Y", "loss_out", "grad_out", "input_grad_out"],
    "net_train": ["X", "Y", "theta", "adam_m", "adam_v", "seeds", "loss_history", "acc_history"],
}
OUTPUT_ARGS = {
    "net_init": ["theta"],
    "net_forward": ["out"],
    "net_loss_and_grad": ["loss_out", "grad_out", "input_grad_out"],
    "net_train": ["theta", "adam_m", "adam_v", "loss_history", "acc_history"],
}
ALL_ARRAYS = [(f, a) for f, names in ARRAY_ARGS.items() for a in names]
ALL_OUTPUTS = [(f, a) for f, names in OUTPUT_ARGS.items() for a in names]


def call_native(func, args):
    return getattr(_native, func)(**args)


def strided(a: np.ndarray) -> np.ndarray:
    """A non-C-contiguous view with the same shape and values (every other row of a bigger
    array along the first axis, which has length >= 2 here)."""
    big = np.zeros((2 * a.shape[0],) + a.shape[1:], a.dtype)
    view = big[::2]
    view[...] = a
    assert not view.flags.c_contiguous and view.shape == a.shape
    return view


@pytest.mark.parametrize("func", list(ARRAY_ARGS))
def test_native_valid_arguments_work(func):
    import reference as R
    from helpers import assert_close

    args = native_args(func)
    theta0 = args["theta"].copy()
    call_native(func, args)
    net = fs.MLP(W)
    # the outputs' values against the public API (init) or the float64 NumPy reference
    from falsestruct_fast.network import unflatten

    per_net = [R.split_params(unflatten(net, theta0), s) for s in range(S)]
    if func == "net_init":
        np.testing.assert_array_equal(args["theta"], fs.init(net, seeds=range(S), dtype="float64").flat)
    elif func == "net_forward":
        for s in range(S):
            assert_close(args["out"][s], R.forward(per_net[s], args["X"]), 1e-12, f"out[{s}]")
    elif func == "net_loss_and_grad":
        for s in range(S):
            loss, grads, dX = R.loss_and_grad("sigmoid", per_net[s], args["X"], args["Y"])
            assert_close(args["loss_out"][s], loss, 1e-12, f"loss_out[{s}]")
            assert_close(args["grad_out"][s], np.concatenate([g.reshape(-1) for g in grads]), 1e-12,
                         f"grad_out[{s}]")
            assert_close(args["input_grad_out"][s], dX, 1e-12, f"input_grad_out[{s}]")
    else:
        for s in range(S):
            orders = R.batch_orders("samples", s, N, args["batch_size"], args["epochs"])
            ref = R.train("sigmoid", per_net[s], args["X"], args["Y"], orders)
            assert_close(args["loss_history"][s], ref["loss"], 1e-12, f"loss_history[{s}]")
            assert_close(args["theta"][s], np.concatenate([a.reshape(-1) for a in ref["params"]]),
                         1e-12, f"theta[{s}]")


@pytest.mark.parametrize("func,name", ALL_ARRAYS, ids=[f"{f}-{a}" for f, a in ALL_ARRAYS])
def test_native_rejects_strided_view(func, name):
    args = native_args(func)
    args[name] = strided(args[name])
    with pytest.raises(ValueError, match=rf"{name}: .*C-contiguous"):
        call_native(func, args)


# arrays with two axes longer than 1, whose Fortran-order copy is not C-contiguous
FORTRAN_ARRAYS = [(f, a) for f, a in ALL_ARRAYS
                  if sum(d > 1 for d in native_args(f)[a].shape) >= 2]


@pytest.mark.parametrize("func,name", FORTRAN_ARRAYS, ids=[f"{f}-{a}" for f, a in FORTRAN_ARRAYS])
def test_native_rejects_fortran_order(func, name):
    args = native_args(func)
    bad = np.asfortranarray(args[name])
    assert not bad.flags.c_contiguous
    args[name] = bad
    with pytest.raises(ValueError, match=rf"{name}: .*C-contiguous"):
        call_native(func, args)


@pytest.mark.parametrize("func,name", ALL_OUTPUTS, ids=[f"{f}-{a}" for f, a in ALL_OUTPUTS])
def test_native_rejects_read_only_output(func, name):
    args = native_args(func)
    args[name] = _read_only(args[name])
    with pytest.raises(ValueError, match=rf"{name}: .*read-only"):
        call_native(func, args)


@pytest.mark.parametrize("func,name", ALL_ARRAYS, ids=[f"{f}-{a}" for f, a in ALL_ARRAYS])
def test_native_accepts_read_only_inputs_only(func, name):
    # read-only is fine exactly for the arrays that are not written
    args = native_args(func)
    args[name] = _read_only(args[name])
    if name in OUTPUT_ARGS[func]:
        with pytest.raises(ValueError, match="read-only"):
            call_native(func, args)
    else:
        call_native(func, args)


@pytest.mark.parametrize("func,name", ALL_ARRAYS, ids=[f"{f}-{a}" for f, a in ALL_ARRAYS])
def test_native_rejects_wrong_dtype(func, name):
    args = native_args(func)
    a = args[name]
    if a.dtype == np.uint64:                       # seeds
        args[name] = a.astype(np.int64)
        match = rf"{name}: expected dtype uint64, got int64"
    elif name != "theta":                          # theta is float64: so must this be
        args[name] = a.astype(np.float32)
        match = rf"{name}: expected dtype float64, got float32"
    elif func == "net_init":                       # theta selects the precision...
        args[name] = a.astype(np.float16)
        match = r"theta: expected dtype float32, got float16"
    else:                                          # ...so the other arrays disagree with it
        args[name] = a.astype(np.float32)
        match = r"(X|adam_m): expected dtype float32, got float64"
    with pytest.raises(TypeError, match=match):
        call_native(func, args)


def _wrong_shapes(a):
    """Arrays of the same dtype with a wrong shape: an extra axis, a wrong last axis."""
    out = [np.zeros(a.shape + (1,), a.dtype)]
    out.append(np.zeros(a.shape[:-1] + (a.shape[-1] + 1,), a.dtype))
    return out


@pytest.mark.parametrize("func,name", ALL_ARRAYS, ids=[f"{f}-{a}" for f, a in ALL_ARRAYS])
def test_native_rejects_wrong_shape(func, name):
    for bad in _wrong_shapes(native_args(func)[name]):
        args = native_args(func)
        args[name] = bad
        if func == "net_init" and name == "seeds" and bad.ndim == 1:
            # S is taken from seeds: theta then has the wrong first axis
            with pytest.raises(ValueError, match=r"theta: shape"):
                call_native(func, args)
            continue
        if name == "theta" and bad.ndim == 2 and func != "net_init":
            with pytest.raises(ValueError, match=r"theta: shape .* axis 1 must be"):
                call_native(func, args)
            continue
        with pytest.raises(ValueError, match=rf"{name}: "):
            call_native(func, args)


NATIVE_VALUE_CASES = [
    ("net_train", dict(shuffle=3), ValueError, r"shuffle: unknown mode"),
    ("net_train", dict(loss_kind=2), ValueError, r"loss_kind: unknown kind"),
    ("net_loss_and_grad", dict(loss_kind=7), ValueError, r"loss_kind: unknown kind"),
    ("net_train", dict(adam=(1e-3, 0.9, 0.999)), ValueError, r"adam: expected \(lr, beta1, beta2, eps\)"),
    ("net_train", dict(batch_size=8), ValueError, r"batch_size: must be in \[1, N=7\]"),
    ("net_train", dict(batch_size=0), ValueError, r"batch_size: must be in"),
    ("net_train", dict(epochs=-1), ValueError, r"epochs: must be >= 0"),
    ("net_train", dict(record_every=0), ValueError, r"record_every: must be >= 1"),
    ("net_train", dict(step0=-1), ValueError, r"step0: must be >= 0"),
    ("net_train", dict(Y=np.ones((6, 1))), ValueError, r"Y: number of rows differs from X"),
    ("net_train", dict(X=np.zeros((3, 7, 2))), ValueError, r"X: shape \(3, 7, 2\) .* axis 0 must be 2"),
    ("net_train", dict(spec=[1, 1, 2, 0, 0, 0, 1, 0, 1, 0, 0]), ValueError, r"spec: dense units must be positive"),
    ("net_forward", dict(X=np.zeros(7)), ValueError, r"X: expected 3 dimensions"),
    ("net_forward", dict(out=np.zeros((2, 8, 1))), ValueError, r"out: shape .* axis 1 must be 7"),
    ("net_forward", dict(spec=[1, 1, 2] + [0, 2, 0, 1] * 17), ValueError, r"spec: a network has 1 to 16 layers"),
    ("net_forward", dict(spec=[8, 8, 1, 1, 4, 2, 1, 0, 1, 0, 0]), ValueError, r"spec: conv kernel size must be odd"),
    ("net_forward", dict(spec=[8, 8, 1, 9, 4, 3, 1]), ValueError, r"spec: unknown layer kind"),
    ("net_loss_and_grad", dict(Y=np.ones((6, 1))), ValueError, r"Y: number of rows differs from X"),
    ("net_loss_and_grad", dict(X=np.zeros((0, 2)), Y=np.zeros((0, 1)), input_grad_out=None),
     ValueError, r"X: no data rows"),
    ("net_init", dict(spec=[2]), ValueError, r"spec: expected \[in_h, in_w, in_c\] and 4 ints per layer"),
]


@pytest.mark.parametrize("func,overrides,exc,match", NATIVE_VALUE_CASES,
                         ids=[f"{c[0]}-{'-'.join(c[1])}-{i}" for i, c in enumerate(NATIVE_VALUE_CASES)])
def test_native_bad_values(func, overrides, exc, match):
    args = native_args(func)
    args.update(overrides)
    with pytest.raises(exc, match=match):
        call_native(func, args)


def test_native_float32_path_checks_too():
    args = native_args("net_train", np.float32)
    call_native("net_train", args)
    args = native_args("net_train", np.float32)
    args["adam_v"] = np.zeros_like(args["adam_v"], dtype=np.float64)
    with pytest.raises(TypeError, match=r"adam_v: expected dtype float32, got float64"):
        call_native("net_train", args)
    args = native_args("net_forward", np.float32)
    args["X"] = strided(args["X"])
    with pytest.raises(ValueError, match=r"X: .*C-contiguous"):
        call_native("net_forward", args)


def test_native_argument_errors_do_not_crash_the_interpreter():
    # the same kind of calls in a fresh interpreter: it must exit normally after each error
    script = textwrap.dedent("""
        import numpy as np
        from falsestruct_fast import _native as N
        P = N.n_params([1, 1, 2, 0, 5, 0, 1, 0, 1, 0, 0])
        bad_calls = [
            lambda: N.net_forward([1, 1, 2, 0, 5, 0, 1, 0, 1, 0, 0], np.zeros((2, P)), np.zeros((7, 4))[:, ::2], np.zeros((2, 7, 1))),
            lambda: N.net_forward([1, 1, 2, 0, 5, 0, 1, 0, 1, 0, 0], np.zeros((2, P)), np.zeros((7, 2)), np.zeros((2, 3, 1))),
            lambda: N.net_forward([1, 1, 2, 0, 5, 0, 1, 0, 1, 0, 0], np.zeros(()), np.zeros((7, 2)), np.zeros((2, 7, 1))),
            lambda: N.net_forward([1, 1, 2, 0, 5, 0, 1, 0, 1, 0, 0], np.zeros((2, P)), np.zeros((1, 1, 7, 2)), np.zeros((2, 7, 1))),
            lambda: N.net_init([1, 1, 2, 0, 5, 0, 1, 0, 1, 0, 0], np.zeros((), np.uint64), np.zeros((2, P))),
            lambda: N.net_loss_and_grad([1, 1, 2, 0, 5, 0, 1, 0, 1, 0, 0], 0, np.zeros((2, P)), np.zeros((7, 2)), np.zeros((9, 1)),
                                        np.zeros(2), np.zeros((2, P)), np.zeros((2, 3, 2))),
            lambda: N.net_train([1, 1, 2, 0, 5, 0, 1, 0, 1, 0, 0], 0, 1, (1e-3, 0.9, 0.999, 1e-8), np.zeros((7, 2)),
                                np.zeros((7, 1)), np.zeros((2, P)), np.zeros((2, P)), np.zeros((2, P)),
                                np.arange(3, dtype=np.uint64), 2, 3, 0, 1, np.zeros((2, 2)), np.zeros((2, 2))),
            lambda: N.net_train([1, 1, 2, 0, 5, 0, 1, 0, 1, 0, 0], 0, 1, (1e-3, 0.9, 0.999, 1e-8), np.zeros((7, 2)),
                                np.zeros((7, 1)), np.zeros((2, P)), np.zeros((2, P)), np.zeros((2, P)),
                                np.arange(2, dtype=np.uint64), 2, 3, 0, 1, np.zeros((2, 5)), np.zeros((2, 2))),
        ]
        for i, call in enumerate(bad_calls):
            try:
                call()
            except ValueError:  # every call has a wrong shape; any other error ends the script
                print(i, "ValueError")
            else:
                print(i, "no error")
        print("survived")
    """)
    env = dict(os.environ)
    # import the very package under test (source folder or installed copy)
    package_parent = str(Path(fs.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=str(REPO_ROOT.parent), env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [w for i in range(8) for w in (str(i), "ValueError")] + ["survived"], \
        proc.stdout


# Regressions: inputs that reach the kernels directly must be refused, never crash or read
# out of bounds (softmax labels are used as array indices).
@pytest.mark.parametrize("bad_label", [1e9, -1.0, 0.5, float("nan")])
def test_native_softmax_labels_out_of_range_raise(bad_label):
    from falsestruct_fast import _native as N

    spec = fs.MLP([2, 5, 3]).spec
    P = N.n_params(spec)
    Y = np.zeros((7, 1))
    Y[3, 0] = bad_label
    with pytest.raises(ValueError, match=r"Y: softmax labels must be integer class indices in \[0, 3\)"):
        N.net_loss_and_grad(spec, 1, np.full((2, P), 0.1), np.ones((7, 2)), Y, np.zeros(2),
                            np.zeros((2, P)), None)
    with pytest.raises(ValueError, match=r"Y: softmax labels"):
        N.net_train(spec, 1, 0, (1e-3, 0.9, 0.999, 1e-8), np.ones((7, 2)), Y, np.full((2, P), 0.1),
                    np.zeros((2, P)), np.zeros((2, P)), np.zeros(2, np.uint64), 1, 7, 0, 1,
                    np.zeros((2, 1)), np.zeros((2, 1)))


def test_native_scalar_theta_names_argument():
    from falsestruct_fast import _native as N

    with pytest.raises(ValueError, match=r"theta: expected an array with a leading network axis"):
        N.net_forward([1, 1, 2, 0, 5, 0, 1, 0, 1, 0, 0], np.zeros(()), np.zeros((7, 2)), np.zeros((2, 7, 1)))


def test_native_non_numeric_adam_is_type_error():
    from falsestruct_fast import _native as N

    spec = fs.MLP([2, 5, 1]).spec
    P = N.n_params(spec)
    with pytest.raises(TypeError, match=r"adam: expected four floats"):
        N.net_train(spec, 0, 0, ("a", 0.9, 0.999, 1e-8), np.ones((7, 2)), np.zeros((7, 1)),
                    np.full((2, P), 0.1), np.zeros((2, P)), np.zeros((2, P)), np.zeros(2, np.uint64),
                    1, 7, 0, 1, np.zeros((2, 1)), np.zeros((2, 1)))


def test_bool_width_is_refused():
    with pytest.raises(TypeError, match=r"widths\[1\]: must be an integer, got bool"):
        fs.MLP([2, True, 1])


# ---- issue 21 item 10: small API holes ---------------------------------------------------------
@pytest.mark.parametrize("seeds,match", [
    (["3"], r"seeds: must be an integer or an iterable of integers; got str '3' at position 0"),
    ([1.5], r"seeds: must be an integer or an iterable of integers; got float 1.5 at position 0"),
    ([0, np.float64(2.0)], r"seeds: must be an integer or an iterable of integers; got float64 .*2.0.* at position 1"),
    ([True], r"seeds: must be an integer or an iterable of integers; got bool True"),
    (np.array([1.0, 2.0]), r"seeds: must be a 1-D integer array, got dtype float64"),
    (1.5, r"seeds: must be an integer or an iterable of integers, got 1.5"),
])
def test_non_integer_seeds_refused(problem, seeds, match):
    net, params, X, y = problem
    with pytest.raises(TypeError, match=match):
        fs.init(net, seeds=seeds)
    with pytest.raises(TypeError, match=match):
        fs.experiments.preset("psi1", epochs=1).train(seeds, progress=False)


def test_integer_seeds_of_any_kind_agree(problem):
    net = problem[0]
    ref = fs.init(net, seeds=[3, 4], dtype="float64").flat
    for seeds in (range(3, 5), np.array([3, 4], np.int32), [np.uint64(3), 4], (3, 4)):
        np.testing.assert_array_equal(fs.init(net, seeds=seeds, dtype="float64").flat, ref)


def test_dtype_none_is_a_type_error(problem):
    net = problem[0]
    from falsestruct_fast.experiments import exp1

    for call in (lambda: fs.init(net, seeds=0, dtype=None),
                 lambda: exp1.training_set(7, dtype=None),
                 lambda: exp1.evaluation_set(dtype=None),
                 lambda: fs.experiments.preset("psi1", dtype=None)):
        with pytest.raises(TypeError, match=r"dtype: must be float32 or float64, got None"):
            call()


@pytest.mark.parametrize("delta,exc,match", [
    (float("inf"), ValueError, r"delta: must be finite, got inf"),
    (float("nan"), ValueError, r"delta: must be finite, got nan"),
    (1e-4 + 1j, TypeError, r"delta: must be a real number, got complex"),
    ("1e-4", TypeError, r"delta: must be a real number, got str"),
    (-1e-4, ValueError, r"delta: must be >= 0.0"),
])
def test_evaluation_and_training_set_delta(delta, exc, match):
    from falsestruct_fast.experiments import exp1

    with pytest.raises(exc, match=match):
        exp1.evaluation_set(delta=delta)
    with pytest.raises(exc, match=r"delta: "):
        exp1.training_set(7, delta=delta)


def test_classify_structure_accepts_a_list_of_arrays():
    from falsestruct_fast.experiments import classify_structure

    net = fs.MLP([2, 6, 1])
    params = fs.init(net, seeds=range(3), dtype="float64")
    params[0][1] = np.nan  # a diverged network is classified, not refused
    a = classify_structure(net, params)
    b = classify_structure(net, list(params))
    np.testing.assert_array_equal(a.verdict, b.verdict)
    np.testing.assert_array_equal(a.agreement_delta, b.agreement_delta)
    assert a.verdict[1] == "neither"
    with pytest.raises(TypeError, match=r"params: expected a list of arrays"):
        classify_structure(net, params[0])
    with pytest.raises(TypeError, match=r"net: expected falsestruct_fast.MLP or CNN"):
        classify_structure("net", params)


@pytest.mark.parametrize("seconds,exc,match", [
    (float("inf"), ValueError, r"progress_seconds: must be finite"),
    (1e9, ValueError, r"progress_seconds: must be <= 3600.0"),
    (0, ValueError, r"progress_seconds: must be a positive number"),
    ("2", TypeError, r"progress_seconds: must be a real number"),
])
def test_progress_seconds_bounded(problem, seconds, exc, match):
    with pytest.raises(exc, match=match):
        call_train(problem, progress_seconds=seconds)


THREADS_CALLS = {
    "train": lambda net, p, X, y, t: call_train((net, p, X, y), threads=t),
    "forward": lambda net, p, X, y, t: fs.forward(net, p, X, threads=t),
    "predict": lambda net, p, X, y, t: fs.predict(net, p, X, threads=t),
    "input_grad": lambda net, p, X, y, t: fs.input_grad(net, p, X, threads=t),
    "loss_and_grad": lambda net, p, X, y, t: fs.loss_and_grad(net, p, X, y, threads=t),
    "init": lambda net, p, X, y, t: fs.init(net, seeds=0, threads=t),
    "deepfool": lambda net, p, X, y, t: fs.deepfool(net, p, X, threads=t),
    "random_attack": lambda net, p, X, y, t: fs.random_attack(net, p, X, threads=t),
    "fast_gradient_attack": lambda net, p, X, y, t: fs.fast_gradient_attack(net, p, X, threads=t),
    "stability": lambda net, p, X, y, t: fs.stability(net, p, X, threads=t),
    "classify_structure": lambda net, p, X, y, t: fs.experiments.classify_structure(net, p, threads=t),
}


@pytest.mark.parametrize("name", sorted(THREADS_CALLS))
@pytest.mark.parametrize("threads,exc,match", [
    (5 * 10**7, ValueError, r"threads: must be <= 1024, got 50000000"),
    (0, ValueError, r"threads: must be >= 1, got 0"),
    (2.0, TypeError, r"threads: must be an integer, got float"),
])
def test_threads_capped_everywhere(problem, name, threads, exc, match):
    net, params, X, y = problem
    with pytest.raises(exc, match=match):
        THREADS_CALLS[name](net, params, X, y, threads)
    THREADS_CALLS[name](net, params, X, y, 1024)  # the cap itself is accepted
