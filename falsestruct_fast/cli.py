"""Command line: ``falsestruct-fast demo`` (a small Experiment I seed study), ``reproduce``
(the paper's experiments with a report) and ``info``."""
from __future__ import annotations

import argparse
import sys

import numpy as np

from . import __version__, build_info
from .experiments import preset


def _seed_range(text: str) -> range:
    try:
        if ":" in text:
            lo, hi = (int(v) for v in text.split(":"))
        else:
            lo, hi = 0, int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds: expected N or START:STOP, got {text!r}") from None
    if not 0 <= lo < hi:
        raise argparse.ArgumentTypeError(f"--seeds: empty or negative range {text!r}")
    return range(lo, hi)


def demo(args) -> int:
    """Train psi1 (T^7_delta, batch 7, no shuffle, 30000 epochs) and psi3-like (T^r_delta,
    batch 50, batch-order shuffle, reduced epochs) networks for many seeds, then tabulate
    which structure they learned."""
    settings = [preset("psi1", epochs=args.epochs_psi1),
                preset("psi3", r=args.r, epochs=args.epochs_psi3)]
    print(f"falsestruct_fast {__version__}: Experiment I seed study, {len(args.seeds)} seeds per "
          f"setting, float64, {args.threads or build_info()['default_threads']} threads")
    rows = []
    for setting in settings:
        fit = setting.train(args.seeds, threads=args.threads, progress=True)
        net = setting.network()
        v = setting.evaluate(net, fit.params, threads=args.threads, agreement=args.threshold,
                             zero=args.threshold)
        steps = len(args.seeds) * setting.epochs * (setting.r // setting.batch_size)
        f = v.fractions()
        rows.append((f"{setting.name} T^{setting.r}_delta", setting.epochs, np.nanmedian(fit.final_loss),
                     np.nanmean(fit.accuracy[:, -1]), np.nanmean(v.agreement_delta), f["false"],
                     f["original"], f["neither"], int(fit.diverged.sum()), fit.wall_time,
                     steps / fit.wall_time))
    head = ("setting", "epochs", "loss(med)", "train acc", "acc C_d", "false", "original",
            "neither", "diverged", "wall s", "net-steps/s")
    print(" | ".join(f"{h:>18}" if i == 0 else f"{h:>10}" for i, h in enumerate(head)))
    for row in rows:
        cells = [f"{row[0]:>18}", f"{row[1]:>10d}", f"{row[2]:>10.2e}"]
        cells += [f"{v:>10.2%}" for v in row[3:8]]
        cells += [f"{row[8]:>10d}", f"{row[9]:>10.2f}", f"{row[10]:>10.3g}"]
        print(" | ".join(cells))
    print(f"verdicts on the points of S_eps with threshold {args.threshold:.0%}: 'false' = agrees "
          "with f_a on C_delta and predicts 0 on C_0; 'original' = agrees on both.")
    return 0


def reproduce_command(args) -> int:
    from .experiments.reproduce import reproduce
    reproduce(args.out, quick=args.quick, seeds=args.seeds, threads=args.threads,
              progress=not args.no_progress)
    return 0


def info(_args) -> int:
    for key, value in build_info().items():
        print(f"{key}: {value}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="falsestruct-fast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="small Experiment I seed study with a summary table")
    p.add_argument("--seeds", type=_seed_range, default=range(64), help="N or START:STOP (default 64)")
    p.add_argument("--epochs-psi1", type=int, default=30000, help="epochs for T^7_delta (paper: 30000)")
    p.add_argument("--epochs-psi3", type=int, default=200, help="epochs for T^r_delta (paper: 30000)")
    p.add_argument("--r", type=int, default=5000, help="training set size of the psi3 setting")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--threshold", type=float, default=0.95, help="agreement needed for a verdict")
    p.set_defaults(func=demo)
    p = sub.add_parser("reproduce", help="train and evaluate the paper's networks; write a report")
    p.add_argument("--out", default="reproduction", help="output folder (default ./reproduction)")
    p.add_argument("--quick", action="store_true", help="reduced protocol (seconds): a smoke test")
    p.add_argument("--seeds", type=int, default=None, help="networks per setting (default 4, quick 2)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=reproduce_command)
    p = sub.add_parser("info", help="how the engines were built")
    p.set_defaults(func=info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
