"""Side-by-side timing of the Experiment I training step, with ratios, in one run.

    python benchmarks/compare_mlp_step.py [--quick] [--markdown]

Every measurement runs in its own subprocess so that each framework's thread count is fixed
before it starts (JAX reads XLA_FLAGS at start-up). Reports microseconds per network-step
(best of several repeats) and each peer's time divided by falsestruct_fast's at the same
dtype, S and thread count.
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


def measure(name: str, dtype: str, S: int, threads: int, repeats: int) -> float:
    """Runs inside the worker process: best time per network-step in microseconds."""
    import mlp_step_cases as cases

    if name == "falsestruct":
        run = cases.falsestruct_runner(S, max(20, 40000 // S), dtype, threads)
        steps = run.steps
    else:
        import peers

        X, y = cases.data(dtype)
        if name == "torch_eager":
            steps = 100
            run = peers.torch_eager(S, steps, dtype, threads, X, y)
        elif name == "torch_vmap":
            steps = 100
            run = peers.torch_vmap(S, steps, dtype, threads, X, y)
        elif name == "jax_scan":
            steps = 2000 if S == 1 else 400
            run = peers.jax_scan(S, steps, dtype, X, y)
        else:
            raise ValueError(name)
    run()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best * 1e6 / (S * steps)


def in_subprocess(name, dtype, S, threads, repeats):
    env = dict(os.environ)
    if name == "jax_scan":
        import peers

        env = peers.jax_env(threads, env)
    cmd = [sys.executable, __file__, "--worker", name, dtype, str(S), str(threads), str(repeats)]
    if name == "jax_scan" and threads == 1:
        cmd = ["taskset", "-c", "0"] + cmd  # XLA has no exact 1-thread knob; pin one core
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr else "failed"
    return json.loads(out.stdout.strip().splitlines()[-1]), None


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="fewer cases and repeats")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args()
    if args.worker:
        name, dtype, S, threads, repeats = args.worker
        print(json.dumps(measure(name, dtype, int(S), int(threads), int(repeats))))
        return

    import peers

    have = peers.available()
    repeats = 3 if args.quick else 5
    cases = []
    for dtype in ("float32", "float64"):
        for S in ((1, 16) if args.quick else (1, 16, 256)):
            for threads in (1, 2):
                cases.append((dtype, S, threads))
    print(f"# Experiment I step (2-104-1, batch 50, Adam), us per network-step; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}")
    header = ["dtype", "S", "threads", "falsestruct", "jax_scan", "ratio", "torch_vmap", "ratio",
              "torch_eager", "ratio"]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    else:
        print("  ".join(f"{h:>11}" for h in header))
    for dtype, S, threads in cases:
        ours, err = in_subprocess("falsestruct", dtype, S, threads, repeats)
        row = [dtype, str(S), str(threads), f"{ours:.3f}" if ours else f"error: {err}"]
        for peer, enabled in (("jax_scan", have["jax"] and S <= 16),
                              ("torch_vmap", have["torch"] and S >= 16),
                              ("torch_eager", have["torch"] and S == 1)):
            value = in_subprocess(peer, dtype, S, threads, repeats)[0] if enabled else None
            row += [f"{value:.3f}" if value else "-",
                    f"{value / ours:.1f}x" if (value and ours) else "-"]
        if args.markdown:
            print("| " + " | ".join(row) + " |", flush=True)
        else:
            print("  ".join(f"{c:>11}" for c in row), flush=True)


if __name__ == "__main__":
    main()
