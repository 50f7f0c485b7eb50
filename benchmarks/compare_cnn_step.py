"""Side-by-side timing of the Experiment II CNN step and forward pass, with ratios, in one run.

    python benchmarks/compare_cnn_step.py [--markdown] [--measure step|forward|scaling]
                                          [--dtype float32|float64] [--no-torch] [--no-jax]

Each measurement runs in its own subprocess (thread counts fixed at start). Reports ms per
network-step (best of 5 to 20 runs) and forward images/s, with PyTorch eager's time over ours and, for the
step, JAX's time over ours: jit + an unrolled lax.scan over 2 steps (see
cnn_step_cases._jax_steps for why unrolled), vmap over the networks for S = 8 (1 step per call),
one core pinned with taskset for 1 thread. Before the table, the JAX peer is checked against
falsestruct_fast on the same weights and batch (loss, gradients, one Adam step), per dtype.
The scaling table times falsestruct_fast's step on 1 and 2 threads in one process, alternating,
beside 2S networks on 2 threads, the machine's own 2-core speed-up at the same moments (see
measure_scaling): on a shared machine whose speed drifts, two measurements minutes apart would
give a ratio of two different machines.
Peers that are not installed show '-'. The whole default run takes about 5-6 minutes on 2 cores.
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


def measure(kind: str, name: str, dtype: str, S: int, threads: int):
    import cnn_step_cases as cases

    if kind == "check":
        return cases.jax_check(dtype)
    if kind == "scaling":
        return measure_scaling(dtype, S)
    if kind == "step":
        if name == "falsestruct":
            run = cases.falsestruct_train(S, 2, dtype, threads)
        elif name == "torch":
            run = cases.torch_train(2, dtype, threads)
        else:
            run = cases.jax_train(S, 2 if S == 1 else 1, dtype)   # vmap over 8 CNNs is slow
        units = S * run.steps
    else:
        n = 1000
        run = (cases.falsestruct_forward(S, n, dtype, threads) if name == "falsestruct"
               else cases.torch_forward(n, dtype, threads))
        units = S * n
    run()
    # Best of at least 5 runs, more (up to 20) while they take under 3 s in all: on a shared
    # 2-core machine a burst of noise can cover several short runs in a row.
    best, spent, n = float("inf"), 0.0, 0
    while n < 5 or (n < 20 and spent < 3.0):
        t0 = time.perf_counter()
        run()
        took = time.perf_counter() - t0
        best, spent, n = min(best, took), spent + took, n + 1
    return best * 1e3 / units if kind == "step" else units / best


def measure_scaling(dtype: str, S: int):
    """falsestruct_fast's step in rounds of three runs back to back (the order alternating):
    S networks on 1 thread, the same S on 2 threads, and 2 S networks on 2 threads. The last is
    the machine's own 2-core speed-up at that moment: two independent workloads that never wait
    for each other (for S = 1, the one network is shared by a team of 2 threads; for S = 8, each
    thread trains its own networks either way). At least 10 rounds, more (up to 40) while under
    12 s in all. Returns the best ms per network-step of each, the speed-ups of the bests, and
    the medians of the rounds' speed-ups."""
    import statistics

    import cnn_step_cases as cases

    configs = ((S, 1), (S, 2), (2 * S, 2))
    runs = {c: cases.falsestruct_train(c[0], 2, dtype, c[1]) for c in configs}
    times = {c: [] for c in configs}
    for run in runs.values():
        run()
    spent = 0.0
    while len(times[configs[0]]) < 10 or (len(times[configs[0]]) < 40 and spent < 12.0):
        for c in (configs if len(times[configs[0]]) % 2 == 0 else configs[::-1]):
            t0 = time.perf_counter()
            runs[c]()
            took = time.perf_counter() - t0
            times[c].append(took * 1e3 / (c[0] * runs[c].steps))
            spent += took
    one, two, machine = (times[c] for c in configs)
    median_ratio = lambda a, b: statistics.median(x / y for x, y in zip(a, b))
    return {"one": min(one), "two": min(two), "machine": min(machine),
            "speedup": min(one) / min(two), "machine_speedup": min(one) / min(machine),
            "median_speedup": median_ratio(one, two), "median_machine_speedup": median_ratio(one, machine),
            "rounds": len(one)}


def scaling_table(dtypes):
    print("\n| dtype | S | 1 thread | 2 threads | 2S on 2 threads | speed-up | machine's speed-up "
          "| median speed-up of the rounds | machine's, median | rounds |\n|" + "---|" * 10)
    for dtype in dtypes:
        for S in (1, 8):
            r = in_subprocess("scaling", "falsestruct", dtype, S, 2)
            if r is None:
                continue
            print(f"| {dtype} | {S} | {r['one']:.1f} | {r['two']:.1f} | {r['machine']:.1f} | "
                  f"{r['speedup']:.2f}x | {r['machine_speedup']:.2f}x | {r['median_speedup']:.2f}x | "
                  f"{r['median_machine_speedup']:.2f}x | {r['rounds']} |", flush=True)
    print("(ms per network-step, best of the rounds; speed-up = 1 thread over 2 threads; the "
          "machine's = 1 thread over 2S networks on 2 threads, in the same rounds)")


def in_subprocess(kind, name, dtype, S, threads):
    cmd = [sys.executable, __file__, "--worker", kind, name, dtype, str(S), str(threads)]
    env = None
    if name == "jax":
        import peers

        env = peers.jax_env(threads)           # XLA reads its thread settings at start-up
        if threads == 1:
            cmd = ["taskset", "-c", "0"] + cmd  # and has no exact 1-thread knob: pin one core
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        last = out.stderr.strip().splitlines()[-1:] or ["failed"]
        print(f"# {kind} {name} {dtype} S={S} threads={threads}: {last[0]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


# Agreement expected of the JAX peer with falsestruct_fast (check_jax); float32 differs by
# rounding only, and a parameter whose gradient is ~0 may take a different first Adam step.
CHECK_TOLERANCE = {"float32": (1e-5, 1e-4, 0.05), "float64": (1e-12, 1e-10, 1e-6)}


def check_jax(dtype: str) -> bool | None:
    """Prints the JAX peer's agreement with ours; None if JAX could not run (not importable)."""
    c = in_subprocess("check", "jax", dtype, 1, 2)
    if c is None:
        print(f"# JAX check {dtype}: failed to run; JAX column skipped")
        return None
    tol = CHECK_TOLERANCE[dtype]
    ok = (c["loss_rel_diff"] <= tol[0] and c["grad_rel_diff"] <= tol[1]
          and c["step_diff_over_lr"] <= tol[2])
    print(f"# JAX check {dtype}: loss {c['loss_jax']:.10g} (ours {c['loss']:.10g}, rel diff "
          f"{c['loss_rel_diff']:.1e}), gradients rel diff {c['grad_rel_diff']:.1e}, one Adam step "
          f"max|diff| {c['step_diff_over_lr']:.1e} lr: {'ok' if ok else 'MISMATCH'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--markdown", action="store_true",
                    help="accepted for compatibility (the table is always markdown)")
    ap.add_argument("--measure", choices=("step", "forward", "scaling"), action="append",
                    help="only these measures (repeatable; default: all three)")
    ap.add_argument("--dtype", choices=("float32", "float64"), action="append",
                    help="only these dtypes (repeatable; default: both)")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch eager column")
    ap.add_argument("--no-jax", action="store_true", help="skip the JAX column and its check")
    args = ap.parse_args()
    if args.worker:
        kind, name, dtype, S, threads = args.worker
        print(json.dumps(measure(kind, name, dtype, int(S), int(threads))))
        return
    import peers

    have = peers.available()
    have_torch = have["torch"] and not args.no_torch
    have_jax = have["jax"] and not args.no_jax
    kinds = args.measure or ["step", "forward", "scaling"]
    dtypes = args.dtype or ["float32", "float64"]
    print(f"# Experiment II CNN (batch 60, 32x32x1); {platform.machine()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}")
    if have_jax and "step" in kinds:
        for dtype in dtypes:
            if check_jax(dtype) is None:
                have_jax = False
                break
    header = ["measure", "dtype", "S", "threads", "falsestruct", "torch_eager", "ratio", "jax_scan", "ratio"]
    if kinds != ["scaling"]:
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for kind in kinds:
        if kind == "scaling":
            continue
        for dtype in dtypes:
            for S in ((1, 8) if kind == "step" else (1,)):
                for threads in (1, 2):
                    ours = in_subprocess(kind, "falsestruct", dtype, S, threads)
                    torch = in_subprocess(kind, "torch", dtype, 1, threads) if have_torch and S == 1 else None
                    jax = (in_subprocess(kind, "jax", dtype, S, threads)
                           if have_jax and kind == "step" else None)
                    unit = "ms/network-step" if kind == "step" else "images/s"
                    row = [f"{kind} ({unit})", dtype, S, threads, f"{ours:.1f}" if ours else "error"]
                    for peer in (torch, jax):
                        ratio = "-"
                        if ours and peer:
                            ratio = f"{peer / ours:.2f}x" if kind == "step" else f"{ours / peer:.2f}x"
                        row += [f"{peer:.1f}" if peer else "-", ratio]
                    print("| " + " | ".join(map(str, row)) + " |", flush=True)
    if "scaling" in kinds:
        scaling_table(dtypes)


if __name__ == "__main__":
    main()
