"""Side-by-side timing of the Experiment I training step, with ratios, in one run.

    python benchmarks/compare_mlp_step.py [--quick] [--rounds N]

For every dtype and thread count one worker process runs, pinned with taskset to that many
CPUs (the same cores for every side), and times every side in alternating rounds with the same
warm-up (benchmarks/timing.py): falsestruct_fast, its numba engine (`engine="numba"`, with
its time over the native engine's), JAX (jit + lax.scan over steps; for S > 1
both vmap over the networks and a loop over networks with one compiled function, and the
faster is reported and named), PyTorch (eager nn.Module + torch.optim.Adam looping over the
networks, and for S > 1 torch.func vmap; on 2 CPUs each with 1 and with 2 intra-op threads;
the fastest is reported and named). Reports µs per
network-step (median of the rounds, best in brackets), each peer's ratio to ours as the median
of the per-round ratios with their range, and ours over the FLOP floor (benchmarks/flops.py:
the step's matrix products at the FMA rate measured on this machine, times the thread count).
"""
from __future__ import annotations

import argparse
import json
import statistics
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import timing  # noqa: E402


def sides(dtype: str, S: int, threads: int):
    """{side name: (run, network-steps per call)} of every configuration timed at (S, threads)."""
    import mlp_step_cases as cases
    import peers

    have = peers.available()
    X, y = cases.data(dtype)
    ours = cases.falsestruct_runner(S, max(20, 40000 // S), dtype, threads)
    out = {"falsestruct": (ours, S * ours.steps)}
    numba = cases.falsestruct_runner(S, max(20, 10000 // S), dtype, threads, engine="numba")
    out["numba"] = (numba, S * numba.steps)
    if have["jax"]:
        steps = 2000 if S == 1 else max(50, 6400 // S)
        for over in (("vmap", "loop") if S > 1 else ("loop",)):
            out[f"jax {over}"] = (peers.jax_scan(S, steps, dtype, X, y, over=over), S * steps)
    if have["torch"]:
        # with 2 CPUs PyTorch may still do best with one intra-op thread (tiny tensors): both
        for n in sorted({1, threads}):
            tag = f", {n} thread{'s' if n > 1 else ''}" if threads > 1 else ""
            steps = max(2, 100 // S)
            out[f"torch eager{tag}"] = (peers.torch_eager(S, steps, dtype, n, X, y), S * steps)
            if S > 1:
                steps = max(5, 800 // S)
                out[f"torch vmap{tag}"] = (peers.torch_vmap(S, steps, dtype, n, X, y), S * steps)
    return out


def worker(dtype: str, threads: int, S_values, rounds: int) -> dict:
    """Runs in the pinned worker process: per S, every side's per-round µs per network-step."""
    result = {}
    for S in S_values:
        runs = sides(dtype, S, threads)
        times = timing.alternate({k: r for k, (r, _) in runs.items()}, rounds, warmup=1,
                                 units={k: n / 1e6 for k, (_, n) in runs.items()})
        result[str(S)] = times
    return result


def in_worker(dtype: str, threads: int, S_values, rounds: int) -> dict | None:
    import peers

    env = peers.jax_env(threads)   # XLA reads its thread settings at start-up
    cmd = timing.pinned([sys.executable, __file__, "--worker", dtype, str(threads),
                         ",".join(map(str, S_values)), str(rounds)], threads)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"# worker {dtype} threads={threads} failed (exit status {out.returncode}): "
              f"{(out.stderr.strip().splitlines() or ['no message'])[-1]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def best_config(times: dict, prefix: str):
    """The peer's configuration with the lower median (name, per-round times) or None."""
    options = {k: v for k, v in times.items() if k.startswith(prefix)}
    if not options:
        return None
    name = min(options, key=lambda k: statistics.median(options[k]))
    return name, options[name]


def num(x: float) -> str:
    """3 significant digits without exponents."""
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="S = 1 and 16 only, 3 rounds")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per side (default 5, quick 3)")
    ap.add_argument("--markdown", action="store_true", help="accepted; the table is always markdown")
    args = ap.parse_args()
    if args.worker:
        dtype, threads, S_values, rounds = args.worker
        print(json.dumps(worker(dtype, int(threads), [int(s) for s in S_values.split(",")], int(rounds))))
        return

    import falsestruct_fast as fs
    import flops

    rounds = args.rounds or (3 if args.quick else 5)
    S_values = (1, 16) if args.quick else (1, 16, 256)
    rates = flops.fma_gflops()
    net = fs.MLP([2, 104, 1])
    print(f"# Experiment I step (2-104-1, batch 50, TF1 Adam), µs per network-step; {timing.machine()}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# FMA probe (one core): {rates['float32']:.0f} GFLOP/s float32, {rates['float64']:.0f} "
          f"float64; FLOP floor {flops.floor_us(net, 50, 'float32', rates):.2f} / "
          f"{flops.floor_us(net, 50, 'float64', rates):.2f} µs per network-step on one core")
    print(f"# every side pinned to the same CPUs, 1 warm-up call, {rounds} alternating rounds; "
          "times: median [best]; ratios: median of the per-round ratios (min-max)")
    header = ["dtype", "S", "threads", "falsestruct", "÷ floor", "numba engine", "÷ native",
              "JAX (best of vmap/loop)", "ratio", "PyTorch (best of eager/vmap)", "ratio"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))

    for dtype in ("float32", "float64"):
        for threads in (1, 2):
            res = in_worker(dtype, threads, S_values, rounds)
            if res is None:
                continue
            floor = flops.floor_us(net, 50, dtype, rates) / threads
            for S in S_values:
                times = res[str(S)]
                ours = times["falsestruct"]
                row = [dtype, str(S), str(threads), f"{num(statistics.median(ours))} [{num(min(ours))}]",
                       f"{min(ours) / floor:.2f}"]
                numba = times["numba"]
                r = timing.round_ratios({"p": numba, "o": ours}, "p", "o")
                row += [f"{num(statistics.median(numba))} [{num(min(numba))}]",
                        f"{r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f})"]
                for prefix in ("jax", "torch"):
                    best = best_config(times, prefix)
                    if best is None:
                        row += ["-", "-"]
                        continue
                    name, peer = best
                    r = timing.round_ratios({"p": peer, "o": ours}, "p", "o")
                    row += [f"{num(statistics.median(peer))} [{num(min(peer))}] ({name.split(' ', 1)[1]})",
                            f"{r['median']:.1f}x ({r['min']:.1f}-{r['max']:.1f})"]
                print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
