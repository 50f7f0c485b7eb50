"""Fuzzing of the low-level bindings (falsestruct_fast._native), issue 16.

About 1,500 generated calls with a fixed seed: random small networks (dense, conv, pool) and
oversized specs, random dtypes, shapes, layouts, lists, None, aliased outputs and odd scalars
for every argument.
Every call must succeed or raise TypeError/ValueError whose message starts with the name of one
of the call's arguments; never another exception, never a signal. Unmodified calls must write
every output, finite. The calls run in a fresh interpreter so that a crash fails the test.
"""
from __future__ import annotations

import json
from pathlib import Path

from helpers import run_python

FUZZ_SCRIPT = r'''
import json, re, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from falsestruct_fast import _native as nat
from helpers import NATIVE_OUTPUTS, native_call_args

rng = np.random.default_rng(int(sys.argv[2]))
N_CALLS = int(sys.argv[3])
FUNCS = sorted(NATIVE_OUTPUTS)


def pick(values):
    return values[int(rng.integers(len(values)))]


def random_spec():
    """A valid small network: input up to 6 x 6 x 3, one to four dense/conv/pool layers."""
    h, w, c = (int(v) for v in rng.integers(1, [7, 7, 4]))
    spec = [h, w, c]
    for _ in range(int(rng.integers(1, 5))):
        kind = pick([0, 0, 1, 2])
        relu = int(rng.integers(2)) if kind != 2 else 0
        if kind == 0:
            spec += [0, int(rng.integers(1, 6)), 0, relu]
        elif kind == 1:
            spec += [1, int(rng.integers(1, 4)), pick([1, 3, 5]), relu]
        else:
            spec += [2, 0, 0, 0]
    return spec


HUGE = [0, -1, -2**31, 2**31 - 1, 2**31, 46341, 65536, 2**28 + 1, 2**40, 3, 7]
OVERSIZED = [[46341, 46341, 1, 0, 1, 0, 0], [1, 1, 3, 1, 1, 2**31 - 1, 0, 0, 1, 0, 0],
             [65536, 65536, 1, 0, 1, 0, 0], [1, 1, 46341, 0, 46341, 0, 0],
             [1, 1, 40000, 0, 53000, 0, 1, 0, 600, 0, 0], [4, 4, 3, 1, 8, 45001, 0],
             [1, 1, 1, 0, 2**28, 0, 1, 0, 2**28, 0, 0]]


def bad_spec(spec):
    choice = int(rng.integers(6))
    if choice == 0:
        return pick(OVERSIZED)
    if choice == 1:
        spec = list(spec)
        spec[int(rng.integers(len(spec)))] = pick(HUGE + ["a", 1.5, None])
        return spec
    if choice == 2:
        return spec[:int(rng.integers(len(spec)))]
    if choice == 3:
        return pick([None, "abc", 3, tuple(spec), np.array(spec, np.int64), spec * 20])
    if choice == 4:
        return np.array(spec, np.float64)
    return spec + [0, 1, 0, 0] * int(rng.integers(1, 20))


DTYPES = [np.float16, np.float32, np.float64, np.int32, np.int64, np.uint64, np.complex64, np.bool_]


def bad_array(a):
    """Wrong type, dtype, shape or layout for array argument a."""
    kind = pick(["dtype", "list", "none", "scalar", "0d", "extra_axis", "drop_axis", "wrong_dim",
                 "noncontig", "fortran", "readonly", "byteswap", "empty", "object", "string"])
    if kind == "dtype":
        return kind, a.astype(pick(DTYPES))
    if kind == "list":
        return kind, a.tolist()
    if kind == "none":
        return kind, None
    if kind == "scalar":
        return kind, pick([1.0, 3, np.float64(2.0)])
    if kind == "0d":
        return kind, np.array(1.0, a.dtype)
    if kind == "extra_axis":
        return kind, a[..., None].copy()
    if kind == "drop_axis":
        return kind, a.reshape(-1).copy()
    if kind == "wrong_dim" and a.ndim:
        shape = list(a.shape)
        axis = int(rng.integers(a.ndim))
        shape[axis] = max(0, shape[axis] + pick([-1, 1, 2]))
        return kind, np.zeros(shape, a.dtype)
    if kind == "noncontig" and a.ndim:
        return kind, np.repeat(a, 2, axis=-1)[..., ::2]
    if kind == "fortran":
        return kind, np.asfortranarray(a)
    if kind == "readonly":
        b = a.copy()
        b.setflags(write=False)
        return kind, b
    if kind == "byteswap":
        return kind, a.astype(a.dtype.newbyteorder())
    if kind == "empty" and a.ndim:
        return kind, np.zeros((0,) + a.shape[1:], a.dtype)
    if kind == "object":
        return kind, np.array(a.tolist(), dtype=object)
    return "string", "abc"


# valid-but-long values (epochs, max_iter = 2**31 - 1) are left out: every call stays short
BAD_INTS = [-1, 0, 1, 2, 3, 2**31, 2**63 - 1, 2**63, -2**63, 1.5, "x", None, True, np.int64(2)]
BAD_FLOATS = [float("nan"), float("inf"), -float("inf"), -1.0, 0.0, 1e-300, 1e300, 1e308, "x", None, 5]
BAD_ADAM = [(float("nan"), 0.9, 0.999, 1e-8), (1e-3, 1.0, 0.999, 1e-8), (1e-3, 0.9, 0.999, 0.0),
            (-1.0, 0.9, 0.999, 1e-8), (1e-3, 0.9, float("inf"), 1e-8), (1e-3, 0.9, 0.999),
            ("a", 0.9, 0.999, 1e-8), None, 1e-3, [1e-3, 0.9, 0.999, 1e-8],
            np.array([1e-3, 0.9, 0.999, 1e-8]), (10**400, 0.9, 0.999, 1e-8), (1e300, 0.9, 0.999, 1e-8)]
BAD_CLIP = [(1.0, 0.0), (float("nan"), 1.0), (0.0, float("inf")), [0.0, 1.0], (0.0, 1.0, 2.0),
            "ab", 5, (-1e300, 1e300), (0, 1)]


def raise_value_error(done, total):
    raise ValueError("progress: stop")


BAD_PROGRESS = [None, lambda done, total: None, raise_value_error, 5]


def bad_scalar(name, value):
    if name == "spec":
        return bad_spec(value)
    if name == "adam":
        return pick(BAD_ADAM)
    if name == "clip":
        return pick(BAD_CLIP)
    if name == "progress":
        return pick(BAD_PROGRESS)
    if name in ("overshoot", "progress_seconds"):
        return pick(BAD_FLOATS)
    if name in ("linf", "foolbox"):
        return pick([True, False, 0, 1, None, "x"])
    return pick(BAD_INTS)


ARGUMENT = re.compile(r"(\w+)( \w+)?: ")
stats = {"calls": 0, "ok": 0, "TypeError": 0, "ValueError": 0, "checked_outputs": 0}
bad = []
for i in range(N_CALLS):
    func = pick(FUNCS)
    spec = random_spec()
    dtype = pick([np.float32, np.float64])
    loss_kind = int(rng.integers(2)) if func in ("net_loss_and_grad", "net_train") else 0
    args = native_call_args(func, spec, S=int(rng.integers(0, 4)), N=int(rng.integers(0, 7)),
                            dtype=dtype, loss_kind=loss_kind, seed=i)
    if func == "net_deepfool":
        args["progress"] = None
    if func == "net_train":
        args["progress"] = None
        args["progress_seconds"] = 2.0
    mutated = []
    arrays = [name for name, value in args.items() if isinstance(value, np.ndarray) and value.nbytes]
    outputs = [name for name in NATIVE_OUTPUTS[func] if name in arrays]
    if rng.random() < 0.05 and outputs and len(arrays) > 1:
        # an output that is a view of another argument's memory
        output = pick(outputs)
        other = pick([name for name in arrays if name != output])
        base = args[other].view(np.uint8).reshape(-1)
        if base.size >= args[output].nbytes:
            args[output] = base[:args[output].nbytes].view(args[output].dtype).reshape(args[output].shape)
            mutated.append(f"{output}:alias-of-{other}")
    elif rng.random() < 0.75:
        for name in rng.choice(list(args), size=int(rng.integers(1, 3)), replace=False):
            if isinstance(args[name], np.ndarray):
                kind, args[name] = bad_array(args[name])
            else:
                kind, args[name] = "value", bad_scalar(name, args[name])
            mutated.append(f"{name}:{kind}")
    print(i, func, spec, np.dtype(dtype).name, mutated, flush=True)
    stats["calls"] += 1
    try:
        getattr(nat, func)(**args)
    except (TypeError, ValueError) as exc:
        stats[type(exc).__name__] += 1
        message = str(exc)
        named = ARGUMENT.match(message)
        if not (message.startswith(f"{func}(): incompatible function arguments")
                or (named and named.group(1) in args) or message == "progress: stop"):
            bad.append(f"call {i} {func} {mutated}: {type(exc).__name__} does not name an argument: {message}")
    except BaseException as exc:
        bad.append(f"call {i} {func} {mutated}: {type(exc).__name__}: {exc}")
    else:
        stats["ok"] += 1
        if any("alias-of" in m for m in mutated):
            bad.append(f"call {i} {func} {mutated}: an output sharing memory was accepted")
        if not mutated:   # finite inputs and options: every output written, finite
            stats["checked_outputs"] += 1
            for name in NATIVE_OUTPUTS[func]:
                out = args[name]
                if not (np.all(np.isfinite(out)) and np.all(out != -7)):
                    bad.append(f"call {i} {func}: output {name} not written or not finite")
print(json.dumps({"stats": stats, "bad": bad}))
'''

SEED = 20261202
N_CALLS = 1500


def test_fuzz_native_bindings():
    rc, out, err = run_python(FUZZ_SCRIPT, str(Path(__file__).resolve().parent), str(SEED),
                              str(N_CALLS), timeout=300)
    lines = out.strip().splitlines()
    assert rc == 0, f"exit status {rc} (negative: killed by that signal) after:\n" + "\n".join(
        lines[-3:]) + "\n" + err[-2000:]
    report = json.loads(lines[-1])
    assert report["bad"] == []
    stats = report["stats"]
    assert stats["calls"] == N_CALLS
    # the generator reaches both outcomes: valid calls run and bad ones are refused
    assert stats["checked_outputs"] >= 100
    assert stats["ok"] >= 200
    assert stats["TypeError"] >= 200 and stats["ValueError"] >= 200
