"""Side-by-side DeepFool timing against Foolbox 3 and ART (PyTorch, CPU), with ratios and a
check that the results agree, in one run.

    python benchmarks/compare_deepfool.py [--quick] [--markdown] [--threads 1]

MLP: Experiment I networks, S seeds x 501 points (S = 100, --quick: 10). CNN: the paper's CNN,
1 network x 1000 stripe images (--quick: 100). Reports points per second and the peers' time
over ours; "agree" is the share of points with the same flipped decision as Foolbox, and
"norm diff" the median relative difference of the perturbation norms where both flipped.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deepfool_cases as cases  # noqa: E402


def best_time(run, repeats):
    out = run()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - t0)
    return best, out


def compare(case: str, size: int, dtype: str, threads: int, repeats: int):
    net, params, X, bounds = (cases.mlp_case(size, dtype) if case == "mlp"
                              else cases.cnn_case(size, dtype))
    S, N = params[0].shape[0], X.shape[0]
    ours_t, ours = best_time(cases.falsestruct_runner(net, params, X, bounds, threads), repeats)
    row = {"case": case, "dtype": dtype, "S": S, "N": N, "threads": threads,
           "ours_pts_s": S * N / ours_t}
    try:
        fb_t, (fb_pert, fb_ok) = best_time(cases.foolbox_runner(net, params, X, bounds, dtype, threads), 1)
        both = ours.flipped & fb_ok
        fb_norm = np.linalg.norm(fb_pert.reshape(S, N, -1).astype(np.float64), axis=-1)
        row.update(foolbox_ratio=fb_t / ours_t, agree=float(np.mean(ours.flipped == fb_ok)),
                   norm_diff=float(np.median(np.abs(ours.norm[both] - fb_norm[both]) / fb_norm[both]))
                   if both.any() else float("nan"))
    except ImportError:
        row.update(foolbox_ratio=None, agree=None, norm_diff=None)
    try:
        art_t, _ = best_time(cases.art_runner(net, params, X, bounds, dtype, threads), 1)
        row["art_ratio"] = art_t / ours_t
    except ImportError:
        row["art_ratio"] = None
    return row


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller cases, one repeat")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    cases_ = [("mlp", 10 if args.quick else 100), ("cnn", 100 if args.quick else 1000)]
    rows = [compare(c, n, "float32", args.threads, 1 if args.quick else 3) for c, n in cases_]
    print(f"# machine: {platform.processor() or platform.machine()}, threads={args.threads}")
    head = ["case", "S x N", "falsestruct pts/s", "Foolbox ratio", "agree", "norm diff", "ART ratio"]
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["case"], f"{r['S']} x {r['N']}", f"{r['ours_pts_s']:.0f}",
                 fmt(r["foolbox_ratio"], ".1f") + ("x" if r["foolbox_ratio"] else ""),
                 fmt(r["agree"], ".4f"), fmt(r["norm_diff"], ".1e"),
                 fmt(r["art_ratio"], ".1f") + ("x" if r["art_ratio"] else "")]
        print(("| " + " | ".join(cells) + " |") if args.markdown else "  ".join(cells))


if __name__ == "__main__":
    main()
