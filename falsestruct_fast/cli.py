"""Command line: ``falsestruct-fast demo`` (a small Experiment I seed study), ``reproduce``
(the paper's experiments with a report) and ``info``."""
from __future__ import annotations

import argparse
import os
import sys


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
    """The README's main job: a small seed study of psi1 (T^7_delta, batch 7, no shuffle, the
    paper's 30000 epochs) and of psi3 (T^5000_delta, batch 50, batch-order shuffle) with a
    reduced number of epochs, stored in an SQLite file (rerun: resumes), then the summary."""
    from . import study
    settings = [preset("psi1", epochs=args.epochs_psi1, name=f"psi1 ({args.epochs_psi1} ep)"),
                preset("psi3", r=args.r, epochs=args.epochs_psi3, name=f"psi3 ({args.epochs_psi3} ep)")]
    print(f"falsestruct_fast {__version__}: Experiment I seed study, {len(args.seeds)} seeds per "
          f"setting, float64, {args.threads or build_info()['default_threads']} threads, store {args.store}")
    for s in settings:
        print(f"  {s.name}: {s.describe()}")
    report = study.run(settings, args.seeds, args.store, threads=args.threads, progress=True)
    print(f"{report}\n")
    print(study.format_summary(study.summarize(args.store)))
    print("\nverdicts on the points of S_eps (95% thresholds): 'false' = agrees with f_a on C_delta and "
          "predicts 0 on C_0 (reads the tiny x2); 'original' = agrees on both; radius = median DeepFool "
          "radius per network (delta = 1e-4).")
    return 0


def reproduce_command(args) -> int:
    from .experiments.reproduce import reproduce
    reproduce(args.out, quick=args.quick, seeds=args.seeds, threads=args.threads,
              progress=not args.no_progress)
    return 0


# ---- study and summary ------------------------------------------------------------------
def _setting_fields() -> dict:
    """Every settable field of the experiment settings -> a parser of its command-line text."""
    import dataclasses
    from .experiments.settings import Exp1Setting, Exp2Setting
    kinds = {"int": int, "float": float, "str": str}
    out = {}
    for cls in (Exp1Setting, Exp2Setting):
        for f in dataclasses.fields(cls):
            if f.name in ("intervals", "paper_outcome"):
                continue  # TOML only / not a protocol field
            if f.name == "hidden":
                out[f.name] = lambda text: tuple(int(v) for v in text.split(",") if v)
            else:
                out[f.name] = kinds.get(str(f.type).replace("'", ""), str)
    return out


def _overrides(args) -> dict:
    out = {}
    for name in _setting_fields():
        value = getattr(args, f"field_{name}", None)
        if value is not None:
            out[name] = value
    return out


def study_command(args) -> int:
    from . import study
    from .experiments import preset as make_preset
    overrides = _overrides(args)
    try:
        if args.grid:
            settings = study.load_toml(args.grid)
            settings = [s.replace(**overrides) for s in settings] if overrides else settings
        else:
            settings = [make_preset(name, **overrides) for name in args.preset]
    except (TypeError, ValueError) as exc:
        print(f"falsestruct-fast study: {exc}", file=sys.stderr)
        return 2
    for s in settings:
        print(f"{s.name}: {s.describe()}", file=sys.stderr)
    report = study.run(settings, args.seeds, args.store, engine=args.engine, threads=args.threads,
                       chunk_size=args.chunk_size, radius_points=args.radius_points,
                       scheduler=args.scheduler, workers=args.workers, progress=not args.no_progress)
    print(report, file=sys.stderr)
    print(study.format_summary(study.summarize(args.store)))
    return 0


def summary_command(args) -> int:
    from . import study
    if not os.path.exists(args.store):
        print(f"falsestruct-fast summary: no such store {args.store}", file=sys.stderr)
        return 2
    summaries = study.summarize(args.store)
    print(study.format_summary(summaries))
    if args.csv:
        with study.Store(args.store) as db:
            n = db.to_csv(args.csv)
        print(f"wrote {n} rows to {args.csv}", file=sys.stderr)
    if args.plot:
        study.plot_summary(summaries).savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}", file=sys.stderr)
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
    p.add_argument("--epochs-psi3", type=int, default=3000, help="epochs for T^r_delta (paper: 30000)")
    p.add_argument("--r", type=int, default=5000, help="training set size of the psi3 setting")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--store", default="falsestruct_demo.sqlite", help="SQLite results file")
    p.set_defaults(func=demo)
    p = sub.add_parser("reproduce", help="train and evaluate the paper's networks; write a report")
    p.add_argument("--out", default="reproduction", help="output folder (default ./reproduction)")
    p.add_argument("--quick", action="store_true", help="reduced protocol (seconds): a smoke test")
    p.add_argument("--seeds", type=int, default=None, help="networks per setting (default 4, quick 2)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=reproduce_command)
    p = sub.add_parser("study", help="seed study of presets or a TOML grid, persisted to SQLite")
    p.add_argument("--preset", nargs="+", default=["psi1"], help="psi1..psi4, exp2 (several allowed)")
    p.add_argument("--grid", help="TOML file of settings (see falsestruct_fast.study.grid)")
    p.add_argument("--seeds", type=_seed_range, default=range(64), help="N or START:STOP (default 64)")
    p.add_argument("--store", default="results.sqlite", help="SQLite file; rerun to resume")
    p.add_argument("--engine", default="native", choices=["native", "cuda"])
    p.add_argument("--threads", type=int, default=None, help="native threads (default: all cores)")
    p.add_argument("--workers", type=int, default=None, help="run on a local Dask cluster of N processes")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://host:8786")
    p.add_argument("--chunk-size", type=int, default=None, help="seeds per native call (default 64)")
    p.add_argument("--radius-points", type=int, default=None, help="DeepFool points per network (0: none)")
    p.add_argument("--no-progress", action="store_true")
    fields = p.add_argument_group("setting fields (override the preset or every grid entry)")
    for name, parse in _setting_fields().items():
        fields.add_argument(f"--{name.replace('_', '-')}", dest=f"field_{name}", type=parse, default=None)
    p.set_defaults(func=study_command)
    p = sub.add_parser("summary", help="summary table of a study store")
    p.add_argument("store", help="the SQLite file of a study")
    p.add_argument("--csv", help="also export every row to this CSV file")
    p.add_argument("--plot", help="also draw verdict fractions and radius histograms to this image")
    p.set_defaults(func=summary_command)
    p = sub.add_parser("info", help="how the engines were built")
    p.set_defaults(func=info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
