"""Safety of the low-level bindings (falsestruct_fast._native), issue 16.

The bindings are public, so bad arguments must raise TypeError/ValueError naming the argument:
never crash the interpreter, never read or write out of bounds, never return silently wrong
numbers. Calls that used to crash run in a fresh interpreter, so a regression fails its test
instead of killing pytest.
"""
from __future__ import annotations

import re
import signal
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from falsestruct_fast import _native
from helpers import NATIVE_OUTPUTS, native_call_args, python_subprocess, run_python
import reference as R

MLP_2_8_1 = [1, 1, 2, 0, 8, 0, 1, 0, 1, 0, 0]   # fs.MLP([2, 8, 1]).spec
MLP_1_2_1 = [1, 1, 1, 0, 2, 0, 1, 0, 1, 0, 0]
INT32_MAX = 2**31 - 1

# ---- the interpreter crashes of issue 16, each in a fresh interpreter ------------------------
PRELUDE = """
import numpy as np
import falsestruct_fast as fs
from falsestruct_fast import _native as nat
net = fs.MLP([2, 8, 1]); p = fs.init(net, range(2))

def report(call):
    try:
        result = call()
    except (TypeError, ValueError) as exc:
        print(f"{type(exc).__name__}: {exc}")
    else:
        print("returned", result)
"""

CRASHES = {
    # 1. SIGFPE (a division by the tile size 0): N = 0 is a valid empty result
    "forward N=0": (
        "out = np.zeros((2, 0, 1), np.float32)\n"
        "report(lambda: nat.net_forward(net.spec, p.flat, np.zeros((0, 2), np.float32), out))",
        "returned None"),
    # 2. the same in the input-gradient binding
    "logit grads N=0": (
        "report(lambda: nat.net_logit_input_grads(net.spec, p.flat, np.zeros((0, 2), np.float32),"
        " np.zeros((2, 0, 1, 2), np.float32)))",
        "returned None"),
    # 3. SIGSEGV: a spec whose sizes overflow int32 (n_params was -2147479014)
    "int32 overflow spec": (
        "report(lambda: nat.net_init([46341, 46341, 1, 0, 1, 0, 0], np.zeros(1, np.uint64),"
        " np.zeros((1, 4), np.float32)))",
        "ValueError: spec: input has more than 2^28 units per sample"),
    # 4. SIGSEGV: conv kernel size 2**31 - 1
    "conv kernel 2**31-1": (
        "report(lambda: nat.net_init([1, 1, 3, 1, 1, 2**31 - 1, 0, 0, 1, 0, 0],"
        " np.zeros(1, np.uint64), np.zeros((1, 4), np.float32)))",
        "ValueError: spec: conv kernel size too large for 32-bit indexing"),
    # 5. heap corruption: a list as an output was converted to a temporary array that the
    # kernel wrote after it was freed
    "list as output": (
        "q = fs.init(net, range(1), dtype='float64'); N = 100\n"
        "report(lambda: nat.net_loss_and_grad(net.spec, 0, q.flat, np.ones((N, 2)), np.ones((N, 1)),"
        " np.zeros(1), np.zeros((1, net.n_params)), np.zeros((1, N, 2)).tolist()))",
        "TypeError: input_grad_out: expected a numpy.ndarray, got list"),
}


@pytest.mark.parametrize("name", list(CRASHES))
def test_issue16_crash_reproducer(name):
    code, expected = CRASHES[name]
    rc, out, err = run_python(PRELUDE + code, timeout=60)
    assert rc == 0, f"exit status {rc} (a negative status is the signal that killed it)\n{err}"
    assert out.strip() == expected


def test_every_array_argument_refuses_non_arrays():
    # Lists, tuples and None are refused before any conversion, for inputs and outputs alike
    # (an output converted to a temporary copy would be written where nobody sees it).
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        import numpy as np
        from falsestruct_fast import _native
        from helpers import native_call_args
        spec = [1, 1, 2, 0, 8, 0, 1, 0, 1, 0, 0]
        for func in ("net_init", "net_forward", "net_logit_input_grads", "net_loss_and_grad",
                     "net_deepfool", "net_train"):
            for name, value in native_call_args(func, spec).items():
                if not isinstance(value, np.ndarray):
                    continue
                for bad in (value.tolist(), tuple(value.ravel().tolist()), None):
                    if bad is None and name == "input_grad_out":
                        continue  # optional: None means "not wanted"
                    args = native_call_args(func, spec)
                    args[name] = bad
                    try:
                        getattr(_native, func)(**args)
                    except TypeError as exc:
                        print(func, name, "TypeError", exc)
                    else:
                        print(func, name, "accepted", type(bad).__name__)
    """)
    rc, out, err = run_python(script, str(Path(__file__).resolve().parent), timeout=60)
    assert rc == 0, err
    lines = out.strip().splitlines()
    n_arrays = sum(isinstance(v, np.ndarray) for f in NATIVE_OUTPUTS
                   for v in native_call_args(f, MLP_2_8_1).values())
    assert len(lines) == 3 * n_arrays - 1   # list, tuple, None; None is valid for input_grad_out
    for line in lines:
        func, name, outcome, *message = line.split(" ", 3)
        assert outcome == "TypeError", line
        assert re.fullmatch(rf"{name}: expected a numpy\.ndarray, got (list|tuple|NoneType)", message[0]), line


@pytest.mark.parametrize("func,outputs", list(NATIVE_OUTPUTS.items()))
def test_valid_calls_write_every_output(func, outputs):
    # the NaN / -7 fill of native_call_args is overwritten everywhere
    args = native_call_args(func, MLP_2_8_1, N=7)
    getattr(_native, func)(**args)
    for name in outputs:
        assert np.all(np.isfinite(args[name])) and np.all(args[name] != -7), name


@pytest.mark.parametrize("func", ["net_forward", "net_logit_input_grads"])
def test_zero_rows_is_an_empty_result(func):
    args = native_call_args(func, MLP_2_8_1, N=0)
    getattr(_native, func)(**args)
    assert args["out"].shape[:2] == (2, 0)


@pytest.mark.parametrize("func,match", [("net_loss_and_grad", r"X: no data rows"),
                                        ("net_train", r"X: no data rows"),
                                        ("net_deepfool", r"X: no points")])
def test_zero_rows_is_refused_where_a_mean_or_a_point_is_needed(func, match):
    args = native_call_args(func, MLP_2_8_1, N=0)
    if func == "net_train":
        args["batch_size"] = 1
    with pytest.raises(ValueError, match=match):
        getattr(_native, func)(**args)


# ---- network specs: sizes checked once, in 64 bits, against the kernels' 32-bit limits -------
@pytest.mark.parametrize("spec,expected", [
    # one dense layer just below 2**31 - 1 parameters: 40000 * 50000 weights + 50000 biases
    ([1, 1, 40000, 0, 50000, 0, 0], 40000 * 50000 + 50000),
    # conv 5x5, 3 -> 7 filters, 2x2 pool, dense 4: K*K*Cin*Cout + Cout, then 4x4x7 * 4 + 4
    ([8, 8, 3, 1, 7, 5, 1, 2, 0, 0, 0, 0, 4, 0, 0], 5 * 5 * 3 * 7 + 7 + 4 * 4 * 7 * 4 + 4),
    # a layer of exactly 2**28 units
    ([1, 1, 1, 0, 2**28, 0, 0], 2 * 2**28),
])
def test_n_params_closed_form(spec, expected):
    assert _native.n_params(spec) == expected


@pytest.mark.parametrize("spec,match", [
    ([65536, 65536, 1, 0, 1, 0, 0], r"spec: input has more than 2\^28 units per sample"),
    ([46341, 46341, 1, 0, 1, 0, 0], r"spec: input has more than 2\^28 units per sample"),
    ([1, 1, 46341, 0, 46341, 0, 0], r"spec: a layer has more than 2147483647 weights"),
    # 2,120,053,000 + 31,800,600 parameters: each layer fits, the network does not
    ([1, 1, 40000, 0, 53000, 0, 1, 0, 600, 0, 0], r"spec: network has more than 2147483647 parameters"),
    ([1, 1, 1, 0, 2**28 + 1, 0, 0], r"spec: a layer has more than 2\^28 units per sample"),
    ([16384, 16384, 1, 1, 2, 1, 0], r"spec: a layer has more than 2\^28 units per sample"),
    ([1, 1, 3, 1, 1, 2**31 - 1, 0], r"spec: conv kernel size too large for 32-bit indexing"),
    # a 1 x 1 conv from 46341 channels to 46341: every size fits, the kernel does not
    ([1, 1, 46341, 1, 46341, 1, 0], r"spec: a layer has more than 2147483647 weights"),
    ([1, 1, 2**31, 0, 1, 0, 0], r"spec: entry 2 = 2147483648 is outside the 32-bit range"),
    ([1, 1, 2, 0, -2**40, 0, 0], r"spec: entry 4 = -1099511627776 is outside the 32-bit range"),
    ([1, 1, 0, 0, 1, 0, 0], r"spec: input shape must be positive"),
    ([1, 1, 2, 0, 0, 0, 0], r"spec: dense units must be positive"),
    ([1, 1, 2, 1, -3, 3, 0], r"spec: conv filters must be positive"),
])
def test_oversized_or_invalid_spec_is_refused(spec, match):
    with pytest.raises(ValueError, match=match):
        _native.n_params(spec)
    # every binding shares the check
    with pytest.raises(ValueError, match=match):
        _native.net_forward(spec, np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1, 1)))


@pytest.mark.parametrize("spec,exc,match", [
    ("abc", TypeError, r"spec: expected a sequence of ints, got str"),
    (None, TypeError, r"spec: expected a sequence of ints, got NoneType"),
    ([1, 1, 2.5, 0, 1, 0, 0], TypeError, r"spec: entry 2 is not an int \(float\)"),
])
def test_spec_of_wrong_type_is_a_type_error(spec, exc, match):
    with pytest.raises(exc, match=match):
        _native.n_params(spec)


def test_spec_accepts_numpy_integers():
    assert _native.n_params(np.array(MLP_2_8_1, np.int64)) == 2 * 8 + 8 + 8 + 1


# ---- past 2**31 rows: refused from the 64-bit shape before any data is read ------------------
def _sparse(tmp_path, name, dtype, shape):
    """A memory map of a sparse file: the shape of a huge array without its memory."""
    return np.memmap(tmp_path / name, dtype=dtype, mode="w+", shape=shape)


ROWS = 2**31 + 5


@pytest.mark.parametrize("func", ["net_forward", "net_logit_input_grads", "net_loss_and_grad",
                                  "net_deepfool", "net_train"])
@pytest.mark.parametrize("three_d", [False, True], ids=["X(N,d)", "X(S,N,d)"])
def test_more_than_2_31_rows_is_refused(tmp_path, func, three_d):
    args = native_call_args(func, MLP_1_2_1, S=1, dtype=np.float32)
    args["X"] = _sparse(tmp_path, "X", np.float32, (1, ROWS, 1) if three_d else (ROWS, 1))
    with pytest.raises(ValueError, match=rf"^X: {ROWS} rows; at most {INT32_MAX} per call$"):
        getattr(_native, func)(**args)


def test_more_than_2_31_networks_is_refused(tmp_path):
    S = 2**31 + 1
    seeds = _sparse(tmp_path, "seeds", np.uint64, (S,))
    with pytest.raises(ValueError, match=rf"^seeds: {S} networks; at most {INT32_MAX} per call$"):
        _native.net_init(MLP_1_2_1, seeds, np.zeros((1, 7), np.float32))
    theta = _sparse(tmp_path, "theta", np.float32, (S, 7))
    with pytest.raises(ValueError, match=rf"^theta: {S} networks; at most {INT32_MAX} per call$"):
        _native.net_forward(MLP_1_2_1, theta, np.zeros((3, 1), np.float32), np.zeros((1, 3, 1), np.float32))


def test_one_batch_larger_than_32_bit_indexing_is_refused():
    # net_loss_and_grad takes all N rows as one batch, net_train batch_size rows: a batch's
    # workspace must stay indexable with 32-bit ints. S = 0 networks: no parameter memory.
    spec = [1, 1, 1, 0, 2**27, 0, 1, 0, 1, 0, 0]
    most = INT32_MAX // _native.workspace_scalars_per_row(spec)
    assert most == INT32_MAX // (3 * 2**27 + 6)
    N, P = most + 1, _native.n_params(spec)
    X, Y = np.zeros((N, 1), np.float32), np.zeros((N, 1), np.float32)
    theta = np.zeros((0, P), np.float32)
    with pytest.raises(ValueError, match=rf"^X: {N} rows in one batch; at most {most} for this network"):
        _native.net_loss_and_grad(spec, 0, theta, X, Y, np.zeros(0, np.float32), theta.copy())
    with pytest.raises(ValueError, match=rf"^batch_size: {N} rows in one batch; at most {most} for this network"):
        _native.net_train(spec, 0, 0, (1e-3, 0.9, 0.999, 1e-8), X, Y, theta, theta.copy(), theta.copy(),
                          np.zeros(0, np.uint64), 1, N, 0, 1, np.zeros((0, 1)), np.zeros((0, 1)))


# ---- scalar options, checked in the bindings --------------------------------------------------
NAN, INF = float("nan"), float("inf")
OPTION_CASES = [
    ("net_train", dict(adam=(NAN, 0.9, 0.999, 1e-8)), r"adam lr: must be finite, got nan"),
    ("net_train", dict(adam=(0.0, 0.9, 0.999, 1e-8)), r"adam lr: must be > 0, got 0\.0$"),
    ("net_train", dict(adam=(-1e-3, 0.9, 0.999, 1e-8)), r"adam lr: must be > 0"),
    ("net_train", dict(adam=(1e-3, 1.0, 0.999, 1e-8)), r"adam beta1: must be in \[0, 1\), got 1\.0$"),
    ("net_train", dict(adam=(1e-3, -0.1, 0.999, 1e-8)), r"adam beta1: must be in \[0, 1\)"),
    ("net_train", dict(adam=(1e-3, 0.9, INF, 1e-8)), r"adam beta2: must be finite, got inf"),
    ("net_train", dict(adam=(1e-3, 0.9, 1.5, 1e-8)), r"adam beta2: must be in \[0, 1\)"),
    ("net_train", dict(adam=(1e-3, 0.9, 0.999, 0.0)), r"adam eps: must be > 0, got 0"),
    ("net_train", dict(adam=(1e-3, 0.9, 0.999, NAN)), r"adam eps: must be finite"),
    ("net_train", dict(progress_seconds=0.0), r"progress_seconds: must be finite and > 0, got 0"),
    ("net_train", dict(progress_seconds=NAN), r"progress_seconds: must be finite and > 0"),
    ("net_train", dict(progress_seconds=INF), r"progress_seconds: must be finite and > 0"),
    ("net_train", dict(epochs=2**31), r"epochs: must be >= 0 and <= 2147483647, got 2147483648"),
    ("net_train", dict(epochs=-1), r"epochs: must be >= 0"),
    ("net_train", dict(record_every=2**40), r"record_every: must be >= 1 and <= 2147483647"),
    ("net_train", dict(step0=2**63 - 2), r"step0: must be >= 0 and <= 9223372036854775803"),
    ("net_deepfool", dict(overshoot=NAN), r"overshoot: must be finite, got nan"),
    ("net_deepfool", dict(overshoot=INF), r"overshoot: must be finite"),
    ("net_deepfool", dict(overshoot=-0.5), r"overshoot: must be >= 0, got -0.5"),
    ("net_deepfool", dict(max_iter=-1), r"max_iter: must be >= 0 and <= 2147483647, got -1"),
    ("net_deepfool", dict(max_iter=2**31), r"max_iter: must be >= 0 and <= 2147483647"),
    ("net_deepfool", dict(clip=(1.0, 1.0)), r"clip: expected lo < hi"),
    ("net_deepfool", dict(clip=(NAN, 1.0)), r"clip lo: must be finite"),
    ("net_deepfool", dict(clip=(0.0, INF)), r"clip hi: must be finite"),
    ("net_deepfool", dict(clip=(0.0, 1.0, 2.0)), r"clip: expected \(lo, hi\), got 3 values"),
    ("net_forward", dict(n_threads=-1), r"n_threads: must be >= 0 and <= 4096, got -1"),
    ("net_forward", dict(n_threads=4097), r"n_threads: must be >= 0 and <= 4096, got 4097"),
    ("net_init", dict(n_threads=2**40), r"n_threads: must be >= 0 and <= 4096"),
    ("net_loss_and_grad", dict(emulate_threads=1025), r"emulate_threads: must be >= 0 and <= 1024"),
]


@pytest.mark.parametrize("func,overrides,match", OPTION_CASES,
                         ids=[f"{c[0]}-{next(iter(c[1]))}-{i}" for i, c in enumerate(OPTION_CASES)])
def test_bad_scalar_option_is_a_value_error(func, overrides, match):
    args = native_call_args(func, MLP_2_8_1)
    args.update(overrides)
    with pytest.raises(ValueError, match=match):
        getattr(_native, func)(**args)


def test_overshoot_that_overflows_float32_is_refused():
    args = native_call_args("net_deepfool", MLP_2_8_1, dtype=np.float32, N=3)
    args["overshoot"] = 1e300
    with pytest.raises(ValueError, match=r"^overshoot: 1e\+300 overflows float32$"):
        _native.net_deepfool(**args)
    args = native_call_args("net_deepfool", MLP_2_8_1, dtype=np.float64, N=3)
    args["overshoot"] = 1e300   # representable in float64: a valid (if useless) option
    _native.net_deepfool(**args)
    assert set(np.unique(args["status_out"])) <= {0, 1, 2, 3}


@pytest.mark.parametrize("adam", [(1e-3, 0.9, 0.999), (1e-3, 0.9, 0.999, 1e-8, 0.0)])
def test_adam_of_wrong_length_is_a_value_error(adam):
    args = native_call_args("net_train", MLP_2_8_1)
    args["adam"] = adam
    with pytest.raises(ValueError, match=rf"adam: expected \(lr, beta1, beta2, eps\), got {len(adam)} values"):
        _native.net_train(**args)


@pytest.mark.parametrize("adam", [1e-3, "abcd", (1e-3, "b", 0.999, 1e-8)])
def test_adam_of_wrong_type_is_a_type_error(adam):
    args = native_call_args("net_train", MLP_2_8_1)
    args["adam"] = adam
    with pytest.raises(TypeError, match=r"adam: expected four floats \(lr, beta1, beta2, eps\)"):
        _native.net_train(**args)


def test_n_threads_beyond_the_work_starts_no_extra_threads():
    # n_threads up to the cap is valid: the executor starts at most one thread per work item
    args = native_call_args("net_forward", MLP_2_8_1, S=1, N=3)
    args["n_threads"] = 4096
    _native.net_forward(**args)
    expected = native_call_args("net_forward", MLP_2_8_1, S=1, N=3)
    _native.net_forward(**expected)
    np.testing.assert_array_equal(args["out"], expected["out"])


# ---- long calls stop on Ctrl-C ------------------------------------------------------------------
# Each call below runs for minutes uninterrupted (one thread). The parent sends SIGINT one
# second after the call starts; the call must raise KeyboardInterrupt soon after.
LONG_CALLS = textwrap.dedent("""
    import sys, time
    import numpy as np
    from falsestruct_fast import _native as nat

    CNN = [32, 32, 1, 1, 64, 3, 1, 1, 64, 3, 1, 0, 1, 0, 0]  # two 3x3 convs of 64 filters, one logit
    LINE = [1, 1, 1, 0, 1, 0, 0]                             # f(x) = w x + b

    def cnn(S, N):
        theta = np.zeros((S, nat.n_params(CNN)), np.float32)
        nat.net_init(CNN, np.arange(S, dtype=np.uint64), theta)
        return theta, np.ones((N, 1024), np.float32)

    def forward():
        theta, X = cnn(50, 1000)
        return lambda: nat.net_forward(CNN, theta, X, np.zeros((50, 1000, 1), np.float32), 1), None

    def logit_input_grads():
        theta, X = cnn(10, 1000)
        out = np.zeros((10, 1000, 1, 1024), np.float32)
        return lambda: nat.net_logit_input_grads(CNN, theta, X, out, 1), None

    def loss_and_grad():
        # networks are its work items (all rows are one batch): many small ones, so that
        # cancelling, which waits for the network in progress, is quick
        spec = [32, 32, 1, 1, 16, 3, 1, 1, 16, 3, 1, 2, 0, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0]
        theta = np.zeros((500, nat.n_params(spec)), np.float32)
        nat.net_init(spec, np.arange(500, dtype=np.uint64), theta)
        X, Y = np.ones((128, 1024), np.float32), np.ones((128, 1), np.float32)
        return lambda: nat.net_loss_and_grad(spec, 0, theta, X, Y, np.zeros(500, np.float32),
                                             np.zeros_like(theta), None, 1), None

    def deepfool():
        # f(x) = x - 10 in the box [0, 1]: no label change and a nonzero gradient at every
        # step, so each point iterates up to max_iter = 2**31 - 1
        theta = np.tile(np.array([1.0, -10.0]), (4, 1))
        status = np.full((4, 256), 99, np.int32)
        call = lambda: nat.net_deepfool(LINE, theta, np.full((256, 1), 0.5), np.zeros((4, 256, 1)),
                                        np.zeros((4, 256), np.int32), status, 0.02, 2**31 - 1,
                                        False, 1, False, (0.0, 1.0), 1)
        # statuses of finished points are 0..3; interrupted ones must not claim to be finished
        return call, lambda: int(np.sum(~np.isin(status, [0, 1, 2, 3])))

    def train():
        theta = np.zeros((2, 2))
        X = np.linspace(-1, 1, 8).reshape(8, 1)
        call = lambda: nat.net_train(LINE, 0, 1, (1e-3, 0.9, 0.999, 1e-8), X, (X > 0) * 1.0, theta,
                                     np.zeros((2, 2)), np.zeros((2, 2)), np.arange(2, dtype=np.uint64),
                                     2**31 - 1, 4, 0, 2**31 - 1, np.zeros((2, 1)), np.zeros((2, 1)),
                                     1, None, 2.0)
        return call, None

    def train_long_epoch():
        # one epoch of 4000 batches of one image (128-filter convs): stops within the epoch
        spec = [32, 32, 1, 1, 128, 3, 1, 1, 128, 3, 1, 0, 1, 0, 0]
        theta = np.zeros((1, nat.n_params(spec)), np.float32)
        nat.net_init(spec, np.zeros(1, np.uint64), theta)
        X = np.ones((4000, 1024), np.float32)
        call = lambda: nat.net_train(spec, 0, 0, (1e-3, 0.9, 0.999, 1e-8), X, np.ones((4000, 1), np.float32),
                                     theta, np.zeros_like(theta), np.zeros_like(theta),
                                     np.zeros(1, np.uint64), 1, 1, 0, 1, np.zeros((1, 1)), np.zeros((1, 1)),
                                     1, None, 2.0)
        return call, None

    for name in sys.argv[1:]:
        call, unfinished = globals()[name]()
        print("start", name, flush=True)
        t0 = time.perf_counter()
        try:
            call()
            print("completed", name, flush=True)
        except KeyboardInterrupt:
            print("interrupted", name, time.perf_counter() - t0,
                  unfinished() if unfinished else -1, flush=True)
""")
INTERRUPTIBLE = ["forward", "logit_input_grads", "loss_and_grad", "deepfool", "train", "train_long_epoch"]
INTERRUPT_DEADLINE_S = 20.0   # after SIGINT; the calls run for minutes without it


@pytest.fixture(scope="module")
def interrupted_calls():
    """name -> (outcome, seconds from the call's start, unfinished points or -1)."""
    proc = python_subprocess(LONG_CALLS, *INTERRUPTIBLE)
    results = {}
    try:
        for line in proc.stdout:
            words = line.split()
            if words[0] == "start":
                time.sleep(1.0)
                proc.send_signal(signal.SIGINT)
                sent = time.monotonic()
                continue
            results[words[1]] = (words[0], *[float(w) for w in words[2:]])
            if len(results) == len(INTERRUPTIBLE):
                break
            assert time.monotonic() - sent < INTERRUPT_DEADLINE_S
        proc.wait(timeout=INTERRUPT_DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read()
    return results


@pytest.mark.parametrize("name", INTERRUPTIBLE)
def test_long_native_call_stops_on_ctrl_c(interrupted_calls, name):
    outcome, *rest = interrupted_calls[name]
    assert outcome == "interrupted"
    seconds, unfinished = rest
    assert seconds < 1.0 + INTERRUPT_DEADLINE_S
    if name == "deepfool":
        assert unfinished > 0


# ---- the engine's Philox4x32-10 -----------------------------------------------------------------
@pytest.mark.parametrize("counter,key,expected", [
    # Random123 kat_vectors, philox4x32 10 rounds
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_native_philox_known_answers(counter, key, expected):
    assert _native.philox4x32_10(counter, key) == expected


def test_native_philox_matches_reference_with_high_counter_words():
    # the high counter word carries the upper half of a 64-bit element index (weights e >= 2**32)
    assert _native.philox4x32_10((1, 7, 5, 1), (42, 0)) == R.philox4x32_10((1, 7, 5, 1), (42, 0))
    rng = np.random.default_rng(19)
    for _ in range(50):
        counter = tuple(int(c) for c in rng.integers(0, 2**32, 4, dtype=np.uint64))
        key = tuple(int(k) for k in rng.integers(0, 2**32, 2, dtype=np.uint64))
        assert counter[3] != 0
        assert _native.philox4x32_10(counter, key) == R.philox4x32_10(counter, key)


# ---- outputs never alias another argument -------------------------------------------------------
@pytest.mark.parametrize("func,output,other", [
    ("net_forward", "out", "X"),
    ("net_init", "theta", "seeds"),
    ("net_loss_and_grad", "grad_out", "theta"),
    ("net_loss_and_grad", "input_grad_out", "X"),
    ("net_deepfool", "status_out", "iterations_out"),
    ("net_train", "adam_m", "adam_v"),
    ("net_train", "loss_history", "acc_history"),
])
def test_output_sharing_memory_with_another_argument_is_refused(func, output, other):
    # The output is a view of the other argument's buffer with the shape and dtype it needs.
    args = native_call_args(func, MLP_2_8_1, N=4)
    want = args[output]
    base = args[other].view(np.uint8).reshape(-1)
    if base.size < want.nbytes:
        base = np.zeros(want.nbytes, np.uint8)
        args[other] = base[:args[other].nbytes].view(args[other].dtype).reshape(args[other].shape)
    args[output] = base[:want.nbytes].view(want.dtype).reshape(want.shape)
    pair = rf"({output}: shares memory with {other}|{other}: shares memory with {output})"
    with pytest.raises(ValueError, match=rf"^{pair} \(outputs are written in place\)$"):
        getattr(_native, func)(**args)
