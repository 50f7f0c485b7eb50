"""pytest-benchmark suite: DeepFool on Experiment I networks (100 seeds x 501 points) and on the
paper's CNN (1 network x 1000 images), beside Foolbox 3 and ART on PyTorch when installed.

    taskset -c 0 pytest benchmarks/test_bench_deepfool.py -k "threads1" --benchmark-columns=min,median

Every side gets the same warm-up call and the same rounds (bench_record.record_best), and the
same thread count (PyTorch's set_num_threads, ours threads=); pin the run with taskset so that
every side also has the same cores. Foolbox and ART run per network (S attack calls) and, for
S > 1, batched (one call on a model of all S networks; see deepfool_cases). Stores
`points_per_s` in extra_info. Ours runs on the native and the numba engine. For a table with ratios and agreement in one run use
`python benchmarks/compare_deepfool.py`.
"""
import pytest

import deepfool_cases as cases
from bench_record import record_best

pytest.importorskip("pytest_benchmark")

CASES = {"mlp": lambda: cases.mlp_case(100), "cnn": lambda: cases.cnn_case(1000)}
THREADS = pytest.mark.parametrize("threads", [1, 2], ids=["threads1", "threads2"])


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    return request.param, CASES[request.param]()


def _points_per_s(params, X):
    return lambda t: params[0].shape[0] * len(X) / t


@THREADS
@pytest.mark.parametrize("engine", ["native", "numba"])
def test_falsestruct_deepfool(benchmark, case, threads, engine):
    name, (net, params, X, bounds) = case
    run = cases.falsestruct_runner(net, params, X, bounds, threads, engine)
    record_best(benchmark, run, "points_per_s", _points_per_s(params, X))


@THREADS
@pytest.mark.parametrize("batched", [False, True], ids=["per_network", "batched"])
@pytest.mark.parametrize("peer", ["foolbox", "art"])
def test_peer_deepfool(benchmark, case, threads, batched, peer):
    pytest.importorskip("foolbox" if peer == "foolbox" else "art")
    name, (net, params, X, bounds) = case
    if batched and params[0].shape[0] == 1:
        pytest.skip("one network: batched is the per-network run")
    runner = cases.foolbox_runner if peer == "foolbox" else cases.art_runner
    run = runner(net, params, X, bounds, "float32", threads, batched)
    record_best(benchmark, run, "points_per_s", _points_per_s(params, X))
