"""Timing shared by every comparison script, so that every side gets the same treatment.

* ``pinned(cmd, threads)``: the command under ``taskset`` on the first `threads` CPUs. The
  comparison scripts run all sides of a comparison in one such process, so every side has the
  same cores (XLA has no exact thread-count knob, PyTorch and our engine have one: pinning the
  whole process is what makes them equal).
* ``pin_self(threads)``: the same for a script that runs all its sides in its own process.
* ``alternate(runs, rounds, warmup)``: every side gets the same warm-up calls and the same
  number of timed calls, in rounds whose order alternates (A B C, C B A, ...), so that a burst of
  load from other work on a shared machine falls on every side alike.
* ``summary(times)`` / ``round_ratios(times, peer, ours)``: best and median of a side, and the
  median and range of the per-round ratios (each ratio from two runs seconds apart).
"""
from __future__ import annotations

import os
import shutil
import statistics
import time
from typing import Callable, Dict, List, Mapping, Sequence


def cpu_list(threads: int) -> str:
    """The first `threads` CPUs this process may run on, as a taskset list ("0" or "0,1")."""
    allowed = sorted(os.sched_getaffinity(0))
    if threads > len(allowed):
        raise ValueError(f"threads: {threads} requested, {len(allowed)} CPUs available")
    return ",".join(str(c) for c in allowed[:threads])


def pinned(cmd: Sequence[str], threads: int) -> List[str]:
    """`cmd` pinned to `threads` CPUs with taskset (unchanged where taskset is missing)."""
    if shutil.which("taskset") is None:
        return list(cmd)
    return ["taskset", "-c", cpu_list(threads)] + list(cmd)


PINNED_ENV = "FALSESTRUCT_BENCH_PINNED"


def pin_self(threads: int) -> None:
    """Re-runs the current script pinned to `threads` CPUs and exits with its status (once: the
    pinned run sees PINNED_ENV; a no-op without taskset). Call it before any work."""
    import subprocess
    import sys

    if os.environ.get(PINNED_ENV) or shutil.which("taskset") is None:
        return
    env = dict(os.environ, **{PINNED_ENV: "1"})
    sys.exit(subprocess.run(pinned([sys.executable] + sys.argv, threads), env=env).returncode)


def alternate(runs: Mapping[str, Callable[[], object]], rounds: int, warmup: int = 1,
              units: Mapping[str, float] | None = None) -> Dict[str, List[float]]:
    """Times every run() `rounds` times after `warmup` untimed calls each, in alternating order.

    Returns {name: [seconds per call / units[name], one per round]} (units default 1).
    """
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            runs[name]()
            took = time.perf_counter() - t0
            times[name].append(took / (units[name] if units else 1.0))
    return times


def summary(values: Sequence[float]) -> Dict[str, float]:
    """best (minimum) and median of a side's per-round times."""
    return {"best": min(values), "median": statistics.median(values)}


def round_ratios(times: Mapping[str, Sequence[float]], peer: str, ours: str) -> Dict[str, float]:
    """Per-round ratios peer / ours (same round, seconds apart): median, min and max, and the
    ratio of the bests."""
    r = [p / o for p, o in zip(times[peer], times[ours])]
    return {"median": statistics.median(r), "min": min(r), "max": max(r),
            "of_bests": min(times[peer]) / min(times[ours])}


def machine() -> str:
    """The CPU model and family from /proc/cpuinfo and the SMT topology, e.g. 'AMD EPYC
    (family 25, model 17), 2 CPUs, 1 CPU per core'."""
    info: Dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = info.get("model name", "unknown CPU")
    return (f"{name} (family {info.get('cpu family', '?')}, model {info.get('model', '?')}), "
            f"{os.cpu_count()} CPUs{smt_note()}")


def smt_note() -> str:
    """', 2 CPUs share a core' when the kernel reports hyperthread siblings among our CPUs:
    two threads then share one core's FMA units, and no code scales to 2x on them."""
    try:
        with open("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list") as f:
            siblings = f.read().strip()
    except OSError:
        return ""
    count = 0
    for part in siblings.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi) - int(lo) + 1 if hi else 1
    return f", {count} CPUs share a core (SMT)" if count > 1 else ", 1 CPU per core"
