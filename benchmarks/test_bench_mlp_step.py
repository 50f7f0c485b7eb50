"""pytest-benchmark suite: the Experiment I step, falsestruct_fast beside PyTorch and JAX.

    pytest benchmarks/test_bench_mlp_step.py --benchmark-columns=min,median --benchmark-sort=name

Each benchmark stores `us_per_network_step` in extra_info. For a table with ratios in one run
use `python benchmarks/compare_mlp_step.py` (it also pins JAX's thread count per process).
"""
import pytest

import mlp_step_cases as cases
from bench_record import record_best

pytest.importorskip("pytest_benchmark")


def _measure(benchmark, run, S, steps):
    record_best(benchmark, run, "us_per_network_step", lambda t: t * 1e6 / (S * steps), rounds=5)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("S", [1, 16, 256])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_falsestruct_native(benchmark, dtype, S, threads):
    run = cases.falsestruct_runner(S, n_steps=max(20, 40000 // S), dtype=dtype, threads=threads)
    _measure(benchmark, run, S, run.steps)


@pytest.mark.parametrize("S", [1, 16])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_eager(benchmark, dtype, S):
    peers = pytest.importorskip("peers")
    pytest.importorskip("torch")
    X, y = cases.data(dtype)
    steps = 100
    run = peers.torch_eager(S, steps, dtype, 1, X, y)
    _measure(benchmark, run, S, steps)


@pytest.mark.parametrize("S", [1, 16, 256])
@pytest.mark.parametrize("dtype", ["float32"])
def test_jax_scan(benchmark, dtype, S):
    peers = pytest.importorskip("peers")
    pytest.importorskip("jax")
    X, y = cases.data(dtype)
    steps = 2000 if S == 1 else 200
    run = peers.jax_scan(S, steps, dtype, X, y)
    _measure(benchmark, run, S, steps)
