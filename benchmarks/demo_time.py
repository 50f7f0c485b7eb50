"""Times the README's main job, `falsestruct-fast demo`, from a fresh store.

    python benchmarks/demo_time.py [--repeats 1] [--threads N] [-- extra demo options]

Each run is a new process (`python -m falsestruct_fast.cli demo`, what the console script
runs) writing a new SQLite store in a temporary folder, so nothing is resumed. Prints the wall
time of each run, the CPU time it used (user + sys of the process and its children) and that as
a share of the wall time, which shows how much of the machine the run had (2 cores to itself:
close to 200%).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import timing  # noqa: E402


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_demo(extra: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one demo run on a fresh store."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "falsestruct_fast.cli", "demo",
               "--store", str(Path(tmp) / "demo.sqlite")] + extra
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0, cpu_seconds() - cpu0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=1, help="demo runs, each on a fresh store")
    ap.add_argument("--threads", type=int, default=None, help="passed to the demo (default: all cores)")
    ap.add_argument("extra", nargs="*", help="further demo options, after --")
    args = ap.parse_args()
    extra = list(args.extra) + (["--threads", str(args.threads)] if args.threads else [])
    print(f"# falsestruct-fast demo {' '.join(extra)}".rstrip() + f"; {timing.machine()}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    walls = []
    for i in range(args.repeats):
        wall, cpu = run_demo(extra)
        walls.append(wall)
        print(f"run {i + 1}: {wall:.1f} s wall, {cpu:.1f} s CPU ({100 * cpu / wall:.0f}% of one core; "
              f"{os.cpu_count()} cores)", flush=True)
    if len(walls) > 1:
        print(f"range {min(walls):.1f}-{max(walls):.1f} s over {len(walls)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
