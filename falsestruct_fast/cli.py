"""Command line of falsestruct_fast: ``demo`` (a small Experiment I seed study), ``reproduce``
(the paper's experiments with a report), ``study`` (a seed study into an SQLite store),
``summary`` (the table, CSV and plot of a store), ``settings`` (what a store holds) and
``info`` (how the engines were built).

Expected failures (bad values, a missing file, a store that cannot be read, a missing extra,
no GPU for ``--engine cuda``) print one line to stderr and exit with status 2; ``--debug``
shows the traceback instead. Ctrl-C exits with status 130.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from . import __version__, build_info
from .experiments import preset

PROG = "falsestruct-fast"
EXIT_ERROR = 2  # as argparse uses for bad arguments
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class CommandError(Exception):
    """An expected failure of a command: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """Bad arguments as one line naming the option (argparse prints the usage first)."""

    def error(self, message):
        message = message.removeprefix("argument ")
        self.exit(EXIT_ERROR, f"{self.prog}: {message} (see {self.prog} --help)\n")


# ---- argument parsers: each names its option in the message -------------------------------
def _integer(minimum: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value
    return parse


def _number(text: str) -> int | float:
    """An int when the text is one (so integer fields stay ints), else a float."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _widths(text: str) -> tuple:
    try:
        widths = tuple(int(v) for v in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return widths


def _seed_range(text: str) -> range:
    try:
        if ":" in text:
            lo, hi = (int(v) for v in text.split(":"))
        else:
            lo, hi = 0, int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or START:STOP, got {text!r}") from None
    if not 0 <= lo < hi:
        raise argparse.ArgumentTypeError(f"empty or negative range {text!r}")
    return range(lo, hi)


def _check_engine(engine: str) -> None:
    """Refuse ``--engine cuda`` before any work when it cannot run here."""
    if engine != "cuda":
        return
    from . import _native_loader
    if _native_loader._cuda is None:
        raise CommandError("--engine cuda: this installation has no CUDA engine (it was built without "
                           "a CUDA compiler); use --engine native")
    try:
        devices = _native_loader._cuda.device_count()
    except Exception as exc:  # a driver problem: report it as "no device"
        raise CommandError(f"--engine cuda: no usable CUDA device ({exc}); use --engine native") from None
    if devices < 1:
        raise CommandError("--engine cuda: no CUDA device is visible; use --engine native")
    try:
        from .device_arrays import cupy
        cupy()
    except RuntimeError as exc:
        raise CommandError(f"--engine cuda: {exc}") from None


def _require_store(path: str) -> None:
    if not os.path.exists(path):
        raise CommandError(f"no such store {path}")
    if os.path.isdir(path):
        raise CommandError(f"{path} is a directory, expected the SQLite file of a study")


def _require_plots() -> None:
    from .experiments.plots import require_matplotlib
    try:
        require_matplotlib()
    except ImportError as exc:
        raise CommandError(f"--plot: {exc}") from None


# ---- commands ---------------------------------------------------------------------------
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
          "predicts 0 on C_0 (reads the tiny x2); 'original' = agrees on both; 'diverged' = training "
          "ended with NaN/inf weights; radius = median DeepFool radius per network (delta = 1e-4).")
    return 0


def reproduce_command(args) -> int:
    from .experiments.reproduce import reproduce
    reproduce(args.out, quick=args.quick, seeds=args.seeds, threads=args.threads,
              progress=not args.no_progress)
    return 0


# ---- study and summary ------------------------------------------------------------------
# The meaning of every setting field on the command line (from the docstrings of
# Exp1Setting and Exp2Setting); tests/test_cli.py checks that no field lacks one.
FIELD_HELP = {
    "name": "label of the setting in tables and in the store (default: named after the preset)",
    "kind": 'Experiment I training set: "delta" (T^r_delta, x2 = delta f_a(x1)) or "zero" (T^r_0, x2 = 0)',
    "r": "Experiment I: training set size (psi1 7, psi2/psi3 5000, psi4 10000)",
    "delta": "Experiment I: delta of T^r_delta and of the evaluation set C_delta, 0 < delta < eps "
             "(paper 1e-4)",
    "batch_size": "mini-batch size (psi1 7, psi2..psi4 50, exp2 60)",
    "shuffle": 'order of the samples each epoch: "none", "samples" (every sample) or "batches" '
               "(the order of fixed batches, as in the authors' code)",
    "epochs": "training epochs (paper: 30000 for Experiment I, 10 for Experiment II)",
    "learning_rate": "Adam learning rate (default 1e-3)",
    "dtype": "float32 or float64: parameters, data and arithmetic (Experiment I float64, II float32)",
    "sampler": 'Experiment I: how x1 is drawn in S_eps: "interval" (the paper: evenly over the '
               'stable intervals), "random" (the authors\' code) or "half" (half of each)',
    "distribution": 'Experiment I with --sampler random/half: "uniform" on [b, 1] or "beta" (b + Beta(1, 3))',
    "a": "Experiment I: the integer a of f_a(x1) = ceil(a / x1) mod 2 (paper 20); Experiment II: the "
         "colour amplitude of the training images (paper 0.01)",
    "K": "Experiment I: the constant K: domain [a / (K + 1), 1], hidden layer of 4K units (paper 26)",
    "eps": "Experiment I: width of the margin that defines the stable region S_eps (paper 1e-2)",
    "hidden": "Experiment I: hidden widths, comma-separated, e.g. 64,64 (default: one layer of 4K units)",
    "layout": 'Experiment II training set: "paper" (30 horizontal and 30 vertical stripe images) or '
              '"authors" (all 60 drawn horizontal, as the authors\' code did)',
    "horizontal_label": "Experiment II: label (0 or 1) of the horizontal stripes (1, as in the authors' code)",
    "test_size": "Experiment II: images per test set of Table 1 (default 1000)",
}


def _field_kinds() -> dict:
    """Every settable field of the experiment settings -> its types across the settings."""
    from .experiments.settings import Exp1Setting, Exp2Setting
    kinds: dict = {}
    for cls in (Exp1Setting, Exp2Setting):
        for f in dataclasses.fields(cls):
            if f.name not in ("intervals", "paper_outcome"):  # TOML only / not a protocol field
                kinds.setdefault(f.name, set()).add(str(f.type).replace("'", ""))
    return kinds


def _setting_fields() -> dict:
    """Every settable field of the experiment settings -> a parser of its command-line text."""
    out = {}
    for name, types in _field_kinds().items():
        if name == "hidden":
            out[name] = _widths
        elif types == {"int"}:
            out[name] = _integer()
        elif types <= {"int", "float"}:
            out[name] = _number
        else:
            out[name] = str
    return out


def _overrides(args) -> dict:
    out = {}
    for name in _setting_fields():
        value = getattr(args, f"field_{name}", None)
        if value is not None:
            out[name] = value
    return out


def _with_overrides(setting, overrides: dict):
    """`setting` with the command-line overrides, each as the type of that setting's field
    (`--a 20` is an int for Experiment I and a float for Experiment II), so that the same
    values give the same stored setting as in Python."""
    if not overrides:
        return setting
    types = {f.name: str(f.type).replace("'", "") for f in dataclasses.fields(setting)}
    typed = {}
    for name, value in overrides.items():
        if types.get(name) == "float" and isinstance(value, int):
            value = float(value)
        elif types.get(name) == "int" and isinstance(value, float):
            if not value.is_integer():
                raise CommandError(f"--{name.replace('_', '-')}: {setting.name} needs an integer, got {value}")
            value = int(value)
        typed[name] = value
    from .experiments.settings import named_variant
    return named_variant(setting, **typed)  # named after the fields that differ: psi3[epochs=20]


def study_command(args) -> int:
    from . import study
    from .experiments import preset as make_preset
    _check_engine(args.engine)
    overrides = _overrides(args)
    if args.grid:
        settings = [_with_overrides(s, overrides) for s in study.load_toml(args.grid)]
    else:
        settings = [_with_overrides(make_preset(name), overrides) for name in args.preset]
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
    if args.plot:
        _require_plots()
    _require_store(args.store)
    summaries = study.summarize(args.store)
    print(study.format_summary(summaries))
    if args.csv:
        with study.Store(args.store, readonly=True) as db:
            n = db.to_csv(args.csv)
        print(f"wrote {n} rows to {args.csv}", file=sys.stderr)
    if args.plot:
        study.plot_summary(summaries).savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def settings_command(args) -> int:
    """Every setting of a store: its name, id and row count, then its full definition."""
    from . import study
    _require_store(args.store)
    with study.Store(args.store, readonly=True) as db:
        settings, counts, problems = db.settings(), db.row_counts(), db.problems()
    if not settings:
        print(f"no settings in {args.store}")
    for s in settings:
        print(f"{s['name']}  (id {s['setting_id']}): {counts.get(s['setting_id'], 0)} rows")
        print(f"  {json.dumps(s['definition'], sort_keys=True)}")
    for problem in problems:
        print(f"skipped: {problem}")
    return 0


def info(_args) -> int:
    for key, value in build_info().items():
        print(f"{key}: {value}")
    return 0


# ---- parser and main -------------------------------------------------------------------------
class _Formatter(argparse.HelpFormatter):
    """argparse's help, with each command's line starting beside its name: argparse measures
    the command names without their extra indent, so "reproduce" would go on a line of its own."""

    def add_argument(self, action):
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            longest = max(map(len, action.choices), default=0)
            self._action_max_length = max(self._action_max_length, self._current_indent + 2 + longest)


def _formatter(prog):
    return _Formatter(prog, max_help_position=30)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (every command and option, with help)."""
    from .experiments.settings import PRESETS
    parser = _Parser(prog=PROG, formatter_class=_formatter,
                     description="Seed studies of the false structures of Thesing, Antun & Hansen "
                                 "(2019): thousands of small ReLU networks trained and attacked at once.",
                     epilog=f"Run '{PROG} COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    debug_help = "show the full traceback of an error instead of one line"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")

    def command(name, func, summary):
        p = sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".",
                           formatter_class=_formatter)
        # default=SUPPRESS: a subcommand's --debug adds to, never resets, the top-level one.
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
        p.set_defaults(func=func)
        return p

    threads_help = "CPU threads of the native engine (default: all cores)"
    p = command("demo", demo, "small Experiment I seed study (psi1, psi3) with a summary table")
    p.add_argument("--seeds", type=_seed_range, default=range(64), help="N or START:STOP (default 64)")
    p.add_argument("--epochs-psi1", type=_integer(0), default=30000,
                   help="epochs for T^7_delta (paper: 30000)")
    p.add_argument("--epochs-psi3", type=_integer(0), default=3000,
                   help="epochs for T^r_delta (default 3000; paper: 30000)")
    p.add_argument("--r", type=_integer(1), default=5000, help="training set size of the psi3 setting")
    p.add_argument("--threads", type=_integer(1), default=None, help=threads_help)
    p.add_argument("--store", default="falsestruct_demo.sqlite", help="SQLite results file; rerun to resume")

    p = command("reproduce", reproduce_command, "train and evaluate the paper's networks; write a report")
    p.add_argument("--out", default="reproduction", help="output folder (default ./reproduction)")
    p.add_argument("--quick", action="store_true",
                   help="reduced protocol (psi2..psi4 for 100 epochs): a smoke test, not a reproduction")
    p.add_argument("--seeds", type=_integer(1), default=None,
                   help="networks per setting (default 4, quick 2)")
    p.add_argument("--threads", type=_integer(1), default=None, help=threads_help)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = command("study", study_command, "seed study of presets or a TOML grid, persisted to SQLite")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--preset", nargs="+", choices=sorted(PRESETS), metavar="PRESET",
                      help=f"one or more of the paper's settings: {', '.join(sorted(PRESETS))}")
    what.add_argument("--grid", help="TOML file of settings (see falsestruct_fast.study.grid)")
    p.add_argument("--seeds", type=_seed_range, default=range(64), help="N or START:STOP (default 64)")
    p.add_argument("--store", default="results.sqlite", help="SQLite file (default results.sqlite); rerun to resume")
    p.add_argument("--engine", default="native", choices=["native", "numba", "cuda"],
                   help="engine: native (CPU, default), numba (CPU, the Numba kernels; compiled on "
                        "first use) or cuda (training and evaluation on a GPU; needs the CUDA "
                        "build and CuPy; its rows are stored apart from the CPU engines')")
    p.add_argument("--threads", type=_integer(1), default=None, help=threads_help)
    p.add_argument("--workers", type=_integer(1), default=None,
                   help="run on a local Dask cluster of N processes (needs the [dask] extra)")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://host:8786")
    p.add_argument("--chunk-size", type=_integer(1), default=None,
                   help="seeds per native call: the unit of work and of storing (default 64)")
    p.add_argument("--radius-points", type=_integer(0), default=None,
                   help="DeepFool points per network (default: Experiment I all 231 points of C_delta "
                        "in S_eps, Experiment II 32 images; 0: no DeepFool)")
    p.add_argument("--no-progress", action="store_true", help="no progress line")
    fields = p.add_argument_group("setting fields (override the preset or every grid entry)")
    for name, parse in _setting_fields().items():
        fields.add_argument(f"--{name.replace('_', '-')}", dest=f"field_{name}", type=parse, default=None,
                            metavar=name.upper(), help=FIELD_HELP.get(name, "a field of the experiment settings"))

    p = command("summary", summary_command, "summary table of a study store (read-only), with CSV and plot")
    p.add_argument("store", help="the SQLite file of a study")
    p.add_argument("--csv", help="also export every row to this CSV file")
    p.add_argument("--plot", help="also draw outcome fractions and radius histograms to this image "
                                  "(needs the [plots] extra)")

    p = command("settings", settings_command,
                "every setting in a store: name, id, row count, full definition")
    p.add_argument("store", help="the SQLite file of a study")

    p = command("info", info, "how the engines were built (source hash, CUDA, threads)")
    return parser


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines) or type(exc).__name__


def main(argv=None) -> int:
    """Run the command line with `argv` (default: sys.argv[1:]); returns the exit status."""
    args = build_parser().parse_args(argv)
    where = f"{PROG} {args.command}"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        if sys.stderr.isatty():
            sys.stderr.write("\n")  # end a progress line
        resume = "; finished chunks are stored: rerun the same command to resume" \
            if args.command in ("study", "demo") else ""
        print(f"{where}: interrupted{resume}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            raise
        expected = (CommandError, ValueError, TypeError, OSError, ImportError, MemoryError)
        if isinstance(exc, expected) or type(exc).__module__ == "sqlite3":
            print(f"{where}: {_one_line(exc)}", file=sys.stderr)
        else:
            print(f"{where}: {type(exc).__name__}: {_one_line(exc)} (unexpected; rerun with --debug "
                  f"for the traceback)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
