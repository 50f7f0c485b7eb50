"""Side-by-side timing of the Experiment II CNN step and forward pass, with ratios, in one run.

    python benchmarks/compare_cnn_step.py [--quick] [--rounds N] [--measure step|forward|scaling]
                                          [--dtype float32|float64] [--no-torch] [--no-jax]

For every dtype and thread count one worker process runs, pinned with taskset to that many CPUs
(the same cores for every side), and times every side in alternating rounds with the same
warm-up (benchmarks/timing.py). Step (ms per network-step) for S = 1 and 8 networks:
falsestruct_fast; its numba engine (`engine="numba"`, with its time over the native engine's);
PyTorch eager (nn.Module + torch.optim.Adam, a loop over the S models; on 2
CPUs with 1 and with 2 intra-op threads, the faster reported); JAX
(jit + an unrolled lax.scan over steps, see cnn_step_cases._jax_steps; for S = 8 both vmap over
the networks and a loop over networks with one compiled function, the faster reported and
named). Forward: images/s over 1000 images, ours and PyTorch. Times are medians of the rounds
(best in brackets); ratios are medians of the per-round ratios (range in brackets); "÷ floor" is
our best step over the FLOP floor (benchmarks/flops.py: the step's matrix products at the FMA
rate measured here, times the thread count). Before the table, the JAX peer is checked against
falsestruct_fast on the same weights and batch (loss, gradients, one Adam step), per dtype.
The scaling table times falsestruct_fast's step on 1 and 2 threads in one process, alternating,
beside 2S networks on 2 threads, the machine's own 2-core speed-up at the same moments (see
measure_scaling). Peers that are not installed show '-'. --quick (2 rounds) takes about 3-5
minutes on a shared 2-core machine.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def step_sides(dtype: str, S: int, threads: int, torch: bool, jax: bool):
    """{side: (run, network-steps per call)} of the step at (S, threads)."""
    import cnn_step_cases as cases

    ours = cases.falsestruct_train(S, 2, dtype, threads)
    out = {"falsestruct": (ours, S * ours.steps)}
    numba = cases.falsestruct_train(S, 1, dtype, threads, engine="numba")
    out["numba"] = (numba, S * numba.steps)
    if torch:
        # with 2 CPUs PyTorch can do better with one intra-op thread on a busy machine: both
        for n in sorted({1, threads}):
            run = cases.torch_train(S, 2, dtype, n)
            out[f"torch eager{f', {n} thread' + ('s' if n > 1 else '') if threads > 1 else ''}"] = (run, S * run.steps)
    if jax:
        for over in (("loop", "vmap") if S > 1 else ("loop",)):
            run = cases.jax_train(S, 2 if over == "loop" else 1, dtype, over=over)
            out[f"jax {over}"] = (run, S * run.steps)
    return out


def worker(kind: str, dtype: str, threads: int, rounds: int, torch: bool, jax: bool) -> dict:
    """Runs in the pinned worker process. step: {S: {side: ms per network-step per round}};
    forward: {"1": {side: images/s per round}}; check: the JAX check; scaling: measure_scaling."""
    import cnn_step_cases as cases
    from timing import alternate

    if kind == "check":
        return cases.jax_check(dtype)
    if kind == "scaling":
        return {str(S): measure_scaling(dtype, S) for S in (1, 8)}
    if kind == "forward":
        n = 1000
        runs = {"falsestruct": cases.falsestruct_forward(1, n, dtype, threads)}
        if torch:
            for k in sorted({1, threads}):
                runs[f"torch eager{f', {k} thread' + ('s' if k > 1 else '') if threads > 1 else ''}"] = \
                    cases.torch_forward(n, dtype, k)
        times = alternate(runs, rounds, warmup=1)
        return {"1": {k: [n / t for t in v] for k, v in times.items()}}
    out = {}
    for S in (1, 8):
        sides = step_sides(dtype, S, threads, torch, jax)
        out[str(S)] = alternate({k: r for k, (r, _) in sides.items()}, rounds, warmup=1,
                                units={k: n / 1e3 for k, (_, n) in sides.items()})
    return out


def measure_scaling(dtype: str, S: int):
    """falsestruct_fast's step in rounds of three runs back to back (the order alternating):
    S networks on 1 thread, the same S on 2 threads, and 2 S networks on 2 threads. The last is
    the machine's own 2-core speed-up at that moment: two independent workloads that never wait
    for each other (for S = 1, the one network is shared by a team of 2 threads; for S = 8, each
    thread trains its own networks either way). At least 10 rounds, more (up to 40) while under
    12 s in all. Returns the best ms per network-step of each, the speed-ups of the bests, and
    the medians of the rounds' speed-ups."""
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
        res = in_worker("scaling", dtype, 2, 0)
        for S, r in (res or {}).items():
            print(f"| {dtype} | {S} | {r['one']:.1f} | {r['two']:.1f} | {r['machine']:.1f} | "
                  f"{r['speedup']:.2f}x | {r['machine_speedup']:.2f}x | {r['median_speedup']:.2f}x | "
                  f"{r['median_machine_speedup']:.2f}x | {r['rounds']} |", flush=True)
    print("(ms per network-step, best of the rounds; speed-up = 1 thread over 2 threads; the "
          "machine's = 1 thread over 2S networks on 2 threads, in the same rounds)")


def in_worker(kind, dtype, threads, rounds, torch=False, jax=False):
    """Runs worker(...) in a process pinned to `threads` CPUs, with JAX's thread settings."""
    import peers
    import timing

    cmd = timing.pinned([sys.executable, __file__, "--worker", kind, dtype, str(threads),
                         str(rounds), str(int(torch)), str(int(jax))], threads)
    out = subprocess.run(cmd, capture_output=True, text=True, env=peers.jax_env(threads))
    if out.returncode != 0:
        last = out.stderr.strip().splitlines()[-1:] or ["no message"]
        print(f"# {kind} {dtype} threads={threads} failed (exit status {out.returncode}): {last[0]}",
              file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


# Agreement expected of the JAX peer with falsestruct_fast (check_jax); float32 differs by
# rounding only, and a parameter whose gradient is ~0 may take a different first Adam step.
CHECK_TOLERANCE = {"float32": (1e-5, 1e-4, 0.05), "float64": (1e-12, 1e-10, 1e-6)}


def check_jax(dtype: str) -> bool | None:
    """Prints the JAX peer's agreement with ours; None if JAX could not run (not importable)."""
    c = in_worker("check", dtype, 2, 0)
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


def num(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="2 rounds per side (default 5)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per side")
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
        kind, dtype, threads, rounds, torch, jax = args.worker
        print(json.dumps(worker(kind, dtype, int(threads), int(rounds), torch == "1", jax == "1")))
        return
    import falsestruct_fast as fs
    import flops
    import peers
    import timing

    have = peers.available()
    have_torch = have["torch"] and not args.no_torch
    have_jax = have["jax"] and not args.no_jax
    kinds = args.measure or ["step", "forward", "scaling"]
    dtypes = args.dtype or ["float32", "float64"]
    rounds = args.rounds or (2 if args.quick else 5)
    rates = flops.fma_gflops()
    net = fs.paper_cnn()
    print(f"# Experiment II CNN (batch 60, 32x32x1); {timing.machine()}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# FMA probe (one core): {rates['float32']:.0f} GFLOP/s float32, {rates['float64']:.0f} "
          f"float64; FLOP floor {flops.floor_us(net, 60, 'float32', rates) / 1e3:.1f} / "
          f"{flops.floor_us(net, 60, 'float64', rates) / 1e3:.1f} ms per network-step on one core")
    print(f"# every side pinned to the same CPUs, 1 warm-up call, {rounds} alternating rounds; "
          "values: median [best]; ratios: median of the per-round ratios (min-max)")
    if have_jax and "step" in kinds:
        for dtype in dtypes:
            if check_jax(dtype) is None:
                have_jax = False
                break
    header = ["measure", "dtype", "S", "threads", "falsestruct", "÷ floor", "numba engine", "÷ native",
              "PyTorch eager", "ratio", "JAX (best of loop/vmap)", "ratio"]
    if kinds != ["scaling"]:
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for kind in kinds:
        if kind == "scaling":
            continue
        for dtype in dtypes:
            for threads in (1, 2):
                res = in_worker(kind, dtype, threads, rounds, have_torch, have_jax and kind == "step")
                if res is None:
                    continue
                floor = flops.floor_us(net, 60, dtype, rates) / 1e3 / threads
                for S, times in res.items():
                    ours = times["falsestruct"]
                    step = kind == "step"
                    best = min(ours) if step else max(ours)
                    row = [f"{kind} ({'ms/network-step' if step else 'images/s'})", dtype, S, threads,
                           f"{num(statistics.median(ours))} [{num(best)}]",
                           f"{best / floor:.2f}" if step else "-"]
                    if step:
                        numba = times["numba"]
                        r = timing.round_ratios({"p": numba, "o": ours}, "p", "o")
                        row += [f"{num(statistics.median(numba))} [{num(min(numba))}]",
                                f"{r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f})"]
                    else:
                        row += ["-", "-"]
                    for prefix in ("torch", "jax"):
                        options = {k: v for k, v in times.items() if k.startswith(prefix)}
                        if not options:
                            row += ["-", "-"]
                            continue
                        name = (min if step else max)(options, key=lambda k: statistics.median(options[k]))
                        peer = options[name]
                        r = (timing.round_ratios({"p": peer, "o": ours}, "p", "o") if step
                             else timing.round_ratios({"p": ours, "o": peer}, "p", "o"))
                        label = f" ({name.split(' ', 1)[1]})" if (prefix == "jax" or threads > 1) else ""
                        row += [f"{num(statistics.median(peer))} [{num((min if step else max)(peer))}]{label}",
                                f"{r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f})"]
                    print("| " + " | ".join(map(str, row)) + " |", flush=True)
    if "scaling" in kinds:
        scaling_table(dtypes)


if __name__ == "__main__":
    main()
