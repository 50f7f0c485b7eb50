"""Runs a pytest-benchmark case and records a derived figure in its extra_info."""


def record_best(benchmark, run, key, from_seconds, rounds=3, warmup_rounds=1):
    """Times run() (best of `rounds`) and stores extra_info[key] = from_seconds(best time).

    With --benchmark-disable, run() is called once and nothing is recorded (no statistics).
    """
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds)
    if benchmark.stats is not None:
        benchmark.extra_info[key] = from_seconds(benchmark.stats.stats.min)
