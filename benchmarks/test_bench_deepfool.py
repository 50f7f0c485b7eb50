"""pytest-benchmark suite: DeepFool on Experiment I networks (100 seeds x 501 points) and on the
paper's CNN (1 network x 1000 images), beside Foolbox 3 on PyTorch when installed.

    pytest benchmarks/test_bench_deepfool.py --benchmark-columns=min,median

Stores `points_per_s` in extra_info. For a table with ratios and agreement in one run use
`python benchmarks/compare_deepfool.py`.
"""
import pytest

import deepfool_cases as cases
from bench_record import record_best

pytest.importorskip("pytest_benchmark")

CASES = {"mlp": lambda: cases.mlp_case(100), "cnn": lambda: cases.cnn_case(1000)}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    return request.param, CASES[request.param]()


@pytest.mark.parametrize("threads", [1, 2])
def test_falsestruct_deepfool(benchmark, case, threads):
    name, (net, params, X, bounds) = case
    run = cases.falsestruct_runner(net, params, X, bounds, threads)
    record_best(benchmark, run, "points_per_s", lambda t: params[0].shape[0] * len(X) / t)


def test_foolbox_deepfool(benchmark, case):
    pytest.importorskip("foolbox")
    name, (net, params, X, bounds) = case
    run = cases.foolbox_runner(net, params, X, bounds, "float32", 1)
    record_best(benchmark, run, "points_per_s", lambda t: params[0].shape[0] * len(X) / t,
                rounds=1, warmup_rounds=0)
