"""pytest-benchmark suite: the Experiment II CNN step and forward pass, beside PyTorch eager.

    pytest benchmarks/test_bench_cnn_step.py --benchmark-columns=min,median

Stores `ms_per_network_step` / `images_per_s` in extra_info. For a table with ratios in one
run use `python benchmarks/compare_cnn_step.py`.
"""
import pytest

import cnn_step_cases as cases
from bench_record import record_best

pytest.importorskip("pytest_benchmark")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("S", [1, 8])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_falsestruct_cnn_step(benchmark, dtype, S, threads):
    run = cases.falsestruct_train(S, 2, dtype, threads)
    record_best(benchmark, run, "ms_per_network_step", lambda t: t * 1e3 / (S * run.steps))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_cnn_step(benchmark, dtype, threads):
    pytest.importorskip("torch")
    run = cases.torch_train(2, dtype, threads)
    record_best(benchmark, run, "ms_per_network_step", lambda t: t * 1e3 / run.steps)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_falsestruct_cnn_forward(benchmark, dtype, threads):
    run = cases.falsestruct_forward(1, 1000, dtype, threads)
    record_best(benchmark, run, "images_per_s", lambda t: 1000 / t)
