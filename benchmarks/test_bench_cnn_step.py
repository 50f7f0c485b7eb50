"""pytest-benchmark suite: the Experiment II CNN step and forward pass (native and numba engines),
beside PyTorch eager and JAX.

    taskset -c 0 pytest benchmarks/test_bench_cnn_step.py -k "threads1" --benchmark-columns=min,median

Every case gets the same warm-up call and 3 rounds (bench_record.record_best). PyTorch and ours
take the thread count from the parameter; XLA fixes its threads when JAX starts, so pin the whole
run with taskset to give every side the same cores. S networks: PyTorch loops over S models,
JAX runs both a loop and vmap. Stores `ms_per_network_step` / `images_per_s` in extra_info. For
a table with ratios in one run use `python benchmarks/compare_cnn_step.py`.
"""
import pytest

import cnn_step_cases as cases
from bench_record import record_best

pytest.importorskip("pytest_benchmark")

THREADS = pytest.mark.parametrize("threads", [1, 2], ids=["threads1", "threads2"])


@THREADS
@pytest.mark.parametrize("S", [1, 8])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("engine", ["native", "numba"])
def test_falsestruct_cnn_step(benchmark, dtype, S, threads, engine):
    run = cases.falsestruct_train(S, 2, dtype, threads, engine=engine)
    record_best(benchmark, run, "ms_per_network_step", lambda t: t * 1e3 / (S * run.steps))


@THREADS
@pytest.mark.parametrize("S", [1, 8])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_cnn_step(benchmark, dtype, S, threads):
    pytest.importorskip("torch")
    run = cases.torch_train(S, 2, dtype, threads)
    record_best(benchmark, run, "ms_per_network_step", lambda t: t * 1e3 / (S * run.steps))


@pytest.mark.parametrize("over", ["loop", "vmap"])
@pytest.mark.parametrize("S", [1, 8])
@pytest.mark.parametrize("dtype", ["float32"])   # float64 would switch JAX to x64 for the process
def test_jax_cnn_step(benchmark, dtype, S, over):
    pytest.importorskip("jax")
    if S == 1 and over == "vmap":
        pytest.skip("one network: nothing to vmap over")
    run = cases.jax_train(S, 2 if over == "loop" else 1, dtype, over=over)
    record_best(benchmark, run, "ms_per_network_step", lambda t: t * 1e3 / (S * run.steps))


@THREADS
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("engine", ["native", "numba"])
def test_falsestruct_cnn_forward(benchmark, dtype, threads, engine):
    run = cases.falsestruct_forward(1, 1000, dtype, threads, engine=engine)
    record_best(benchmark, run, "images_per_s", lambda t: 1000 / t)


@THREADS
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_cnn_forward(benchmark, dtype, threads):
    pytest.importorskip("torch")
    run = cases.torch_forward(1000, dtype, threads)
    record_best(benchmark, run, "images_per_s", lambda t: 1000 / t)
