"""Side-by-side DeepFool timing against Foolbox 3 and ART (PyTorch, CPU), with ratios and a
check that the results agree, in one run.

    python benchmarks/compare_deepfool.py [--quick] [--rounds N] [--threads 1]

MLP: Experiment I networks, S seeds x 501 points (S = 100, --quick: 10). CNN: the paper's CNN,
1 network x 1000 stripe images (--quick: 100). The process runs pinned with taskset to
`--threads` CPUs (every side on the same cores, PyTorch and ours with that many threads), and
every side gets the same warm-up call and the same number of timed calls, in alternating
rounds (benchmarks/timing.py). Foolbox and ART run two ways: one model and attack call per
network ("per network", S Python calls), and one call on a single model whose forward
evaluates all S networks ("batched", deepfool_cases.batched_torch_model; the same as per
network when S = 1). Reports our points/s (median [best]) and each peer's time over ours as
the median of the per-round ratios (range in brackets); the numba engine
(`engine="numba"`) runs as one more side, reported as its time over the native engine's; "÷ floor" is
our time over the FLOP floor (benchmarks/flops.py: a lower bound on the matrix products of the
iterations our run took, at the FMA rate of one core times the thread count). "agree" is the share of points with
the same flipped decision as Foolbox; "max norm diff" the largest per-point relative
difference of the perturbation norms where both flipped.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deepfool_cases as cases  # noqa: E402
import flops  # noqa: E402
import timing  # noqa: E402

def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def compare(case: str, size: int, dtype: str, threads: int, rounds: int) -> dict:
    net, params, X, bounds = (cases.mlp_case(size, dtype) if case == "mlp"
                              else cases.cnn_case(size, dtype))
    S, N = params[0].shape[0], X.shape[0]
    runs = {"ours": cases.falsestruct_runner(net, params, X, bounds, threads),
            "numba": cases.falsestruct_runner(net, params, X, bounds, threads, engine="numba")}
    variants = (False, True) if S > 1 else (False,)
    for batched in variants:
        tag = "batched" if batched else "per network"
        if _installed("foolbox"):
            runs[f"Foolbox {tag}"] = cases.foolbox_runner(net, params, X, bounds, dtype, threads, batched)
        if _installed("art"):
            runs[f"ART {tag}"] = cases.art_runner(net, params, X, bounds, dtype, threads, batched)
    last = {}

    def keeping(name, run):
        def call():
            last[name] = run()
        return call

    times = timing.alternate({k: keeping(k, r) for k, r in runs.items()}, rounds, warmup=1)
    row = {"case": case, "S": S, "N": N, "threads": threads,
           "ours_pts_s": [S * N / t for t in times["ours"]], "ratios": {}, "agreement": {}}
    for name in runs:
        if name != "ours":
            row["ratios"][name] = timing.round_ratios(times, name, "ours")
        if name.startswith("Foolbox"):  # the numba engine against the same peer
            row["ratios"][f"{name} / numba"] = timing.round_ratios(times, name, "numba")
    ours = last["ours"]
    row["flops"] = flops.deepfool_flops(net, ours.iterations.sum(), S * N)
    row["ours_s"] = times["ours"]
    numba = last["numba"]
    row["numba_same"] = bool(np.array_equal(numba.status, ours.status))
    for name in [k for k in runs if k.startswith("Foolbox")]:
        pert, success = last[name]
        fb_norm = np.linalg.norm(pert.reshape(S, N, -1).astype(np.float64), axis=-1)
        both = ours.flipped & success
        rel = np.abs(ours.norm[both] - fb_norm[both]) / fb_norm[both]
        row["agreement"][name] = {"agree": float(np.mean(ours.flipped == success)),
                                  "max_norm_diff": float(rel.max()) if rel.size else float("nan"),
                                  "compared": int(both.sum())}
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller cases, 2 rounds")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per side (default 3)")
    ap.add_argument("--markdown", action="store_true", help="accepted; the table is always markdown")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    timing.pin_self(args.threads)
    rounds = args.rounds or (2 if args.quick else 3)
    rate = flops.fma_gflops()["float32"] * args.threads
    sizes = [("mlp", 10 if args.quick else 100), ("cnn", 100 if args.quick else 1000)]
    print(f"# DeepFool, float32; {timing.machine()}; pinned to CPUs {sorted(os.sched_getaffinity(0))}, "
          f"threads={args.threads}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# FMA probe (one core): {rate / args.threads:.0f} GFLOP/s float32")
    print(f"# every side: 1 warm-up call, {rounds} alternating rounds; pts/s: median [best]; "
          "ratios: the peer's time over ours, median of the per-round ratios (min-max)")
    head = ["case", "S x N", "falsestruct pts/s", "÷ floor", "numba engine ÷ native",
            "Foolbox ÷ numba engine (per network / batched)",
            "Foolbox per network", "Foolbox batched",
            "agree", "max norm diff", "ART per network", "ART batched"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for case, size in sizes:
        r = compare(case, size, "float32", args.threads, rounds)

        def ratio(name):
            q = r["ratios"].get(name)
            return "-" if q is None else f"{q['median']:.1f}x ({q['min']:.1f}-{q['max']:.1f})"

        batched = lambda peer: ratio(f"{peer} batched") if r["S"] > 1 else "= per network (S = 1)"
        agreement = [r["agreement"][k] for k in ("Foolbox per network", "Foolbox batched")
                     if k in r["agreement"]]
        pts = r["ours_pts_s"]
        floor_s = r["flops"] / (rate * 1e9)
        same = "" if r["numba_same"] else " (statuses differ!)"
        cells = [case, f"{r['S']} x {r['N']}", f"{statistics.median(pts):.0f} [{max(pts):.0f}]",
                 f"{statistics.median(r['ours_s']) / floor_s:.1f}", ratio("numba") + same,
                 " / ".join(ratio(f"Foolbox {tag} / numba") for tag in ("per network", "batched")
                            if f"Foolbox {tag} / numba" in r["ratios"]) or "-",
                 ratio("Foolbox per network"), batched("Foolbox"),
                 " / ".join(f"{a['agree']:.4f}" for a in agreement) or "-",
                 " / ".join(f"{a['max_norm_diff']:.1e}" for a in agreement) or "-",
                 ratio("ART per network"), batched("ART")]
        print("| " + " | ".join(cells) + " |", flush=True)
    print("(agree and max norm diff: per network / batched Foolbox. ART applies the overshoot "
          "once at the end, so its perturbations are not compared.)")


if __name__ == "__main__":
    main()
