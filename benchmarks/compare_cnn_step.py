"""Side-by-side timing of the Experiment II CNN step and forward pass, with ratios, in one run.

    python benchmarks/compare_cnn_step.py [--markdown]

Each measurement runs in its own subprocess (thread counts fixed at start). Reports ms per
network-step (best of 3) and forward images/s, and PyTorch eager's time over ours.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def measure(kind: str, name: str, dtype: str, S: int, threads: int) -> float:
    import cnn_step_cases as cases

    if kind == "step":
        run = (cases.falsestruct_train(S, 2, dtype, threads) if name == "falsestruct"
               else cases.torch_train(2, dtype, threads))
        units = S * run.steps
    else:
        n = 1000
        run = (cases.falsestruct_forward(S, n, dtype, threads) if name == "falsestruct"
               else cases.torch_forward(n, dtype, threads))
        units = S * n
    run()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3 / units if kind == "step" else units / best


def in_subprocess(*args):
    cmd = [sys.executable, __file__, "--worker", *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if args.worker:
        kind, name, dtype, S, threads = args.worker
        print(json.dumps(measure(kind, name, dtype, int(S), int(threads))))
        return
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    print(f"# Experiment II CNN (batch 60, 32x32x1); {platform.machine()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}")
    header = ["measure", "dtype", "S", "threads", "falsestruct", "torch_eager", "ratio"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for kind in ("step", "forward"):
        for dtype in ("float32", "float64"):
            for S in ((1, 8) if kind == "step" else (1,)):
                for threads in (1, 2):
                    ours = in_subprocess(kind, "falsestruct", dtype, S, threads)
                    peer = in_subprocess(kind, "torch", dtype, 1, threads) if have_torch and S == 1 else None
                    unit = "ms/network-step" if kind == "step" else "images/s"
                    ratio = "-"
                    if ours and peer:
                        ratio = f"{peer / ours:.2f}x" if kind == "step" else f"{ours / peer:.2f}x"
                    row = [f"{kind} ({unit})", dtype, S, threads, f"{ours:.1f}" if ours else "error",
                           f"{peer:.1f}" if peer else "-", ratio]
                    print("| " + " | ".join(map(str, row)) + " |", flush=True)


if __name__ == "__main__":
    main()
