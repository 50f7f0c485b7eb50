"""pytest-benchmark suite: the Experiment I step, falsestruct_fast (native and numba engines) beside
PyTorch and JAX.

    taskset -c 0 pytest benchmarks/test_bench_mlp_step.py -k "threads1" --benchmark-columns=min,median

Every case gets the same warm-up call and 5 rounds (bench_record.record_best). PyTorch and ours
take the thread count from the parameter; XLA fixes its threads when JAX starts, so pin the whole
run with taskset (one CPU for the "threads1" cases) to give every side the same cores. JAX runs
S > 1 networks both vmapped and as a loop over networks. Each benchmark stores
`us_per_network_step` in extra_info. For a table with ratios in one run (each thread count in
its own pinned process, sides alternating) use `python benchmarks/compare_mlp_step.py`.
"""
import pytest

import mlp_step_cases as cases
from bench_record import record_best

pytest.importorskip("pytest_benchmark")

THREADS = pytest.mark.parametrize("threads", [1, 2], ids=["threads1", "threads2"])


def _measure(benchmark, run, S, steps):
    record_best(benchmark, run, "us_per_network_step", lambda t: t * 1e6 / (S * steps), rounds=5)


@THREADS
@pytest.mark.parametrize("S", [1, 16, 256])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_falsestruct_native(benchmark, dtype, S, threads):
    run = cases.falsestruct_runner(S, n_steps=max(20, 40000 // S), dtype=dtype, threads=threads)
    _measure(benchmark, run, S, run.steps)


@THREADS
@pytest.mark.parametrize("S", [1, 16, 256])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_falsestruct_numba(benchmark, dtype, S, threads):
    run = cases.falsestruct_runner(S, n_steps=max(20, 10000 // S), dtype=dtype, threads=threads,
                                   engine="numba")
    _measure(benchmark, run, S, run.steps)


@THREADS
@pytest.mark.parametrize("S", [1, 16])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_eager(benchmark, dtype, S, threads):
    peers = pytest.importorskip("peers")
    pytest.importorskip("torch")
    X, y = cases.data(dtype)
    steps = max(2, 100 // S)
    run = peers.torch_eager(S, steps, dtype, threads, X, y)
    _measure(benchmark, run, S, steps)


@THREADS
@pytest.mark.parametrize("S", [16, 256])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_vmap(benchmark, dtype, S, threads):
    peers = pytest.importorskip("peers")
    pytest.importorskip("torch")
    X, y = cases.data(dtype)
    steps = max(5, 800 // S)
    run = peers.torch_vmap(S, steps, dtype, threads, X, y)
    _measure(benchmark, run, S, steps)


@pytest.mark.parametrize("over", ["vmap", "loop"])
@pytest.mark.parametrize("S", [1, 16, 256])
@pytest.mark.parametrize("dtype", ["float32"])   # float64 would switch JAX to x64 for the process
def test_jax_scan(benchmark, dtype, S, over):
    peers = pytest.importorskip("peers")
    pytest.importorskip("jax")
    if S == 1 and over == "vmap":
        pytest.skip("one network: nothing to vmap over")
    X, y = cases.data(dtype)
    steps = 2000 if S == 1 else max(50, 6400 // S)
    run = peers.jax_scan(S, steps, dtype, X, y, over=over)
    _measure(benchmark, run, S, steps)
