"""The command line: one-line errors with exit status 2 (130 for Ctrl-C), help for every option,
the summary (exact 0%/100% intervals, diverged seeds, read-only store, skipped rows reported),
the settings command, and the figures' captions and frames."""
import dataclasses
import json
import os
import sqlite3
import subprocess
import sys

import pytest

from falsestruct_fast import cli, study
from falsestruct_fast.cli import main
from falsestruct_fast.experiments import preset
from falsestruct_fast.experiments.settings import Exp1Setting, Exp2Setting
from helpers import default_sigint_in_child

PSI1 = preset("psi1", epochs=5)


def _one_line_error(capsys, after: int = 0) -> str:
    """The error line on stderr; `after`: lines the command printed before it (a study
    describes its settings first)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == after + 1, err
    return lines[-1]


def _store_with_rows(path, verdicts, diverged=()):
    """A store of one psi1 setting whose seeds end as `verdicts` (the seeds in `diverged`
    diverged), written through the Store API rather than trained, so the fractions are exact."""
    d = PSI1.as_dict()
    sid = study.setting_id(d)
    rows = [{"setting_id": sid, "seed": seed, "name": PSI1.name, "experiment": "exp1",
             "verdict": "diverged" if seed in diverged else v, "diverged": seed in diverged,
             "radius_median": None if seed in diverged else 0.01 * (seed + 1)}
            for seed, v in enumerate(verdicts)]
    with study.Store(path) as db:
        db.add_setting(sid, d, "test")
        db.write_rows(rows)
    return sid


# ---- the summary ------------------------------------------------------------------------------
def test_summary_counts_diverged_seeds_in_their_own_column(tmp_path):
    path = tmp_path / "d.sqlite"
    _store_with_rows(path, ["false", "false", "neither", "neither"], diverged={3})
    s, = study.summarize(path)
    assert s.counts == {"original": 0, "false": 2, "neither": 1, "diverged": 1}
    assert s.fractions == {"original": 0.0, "false": 0.5, "neither": 0.25, "diverged": 0.25}
    assert s.intervals["diverged"] == study.wilson_interval(1, 4)
    assert s.radii.tolist() == [0.01, 0.02, 0.03]  # the diverged seed has no radius
    head, _, line = study.format_summary([s]).splitlines()
    assert head.split()[-4:-2] == ["neither", "diverged"]
    assert line.split()[-7:-5] == ["25.0%", "25.0%"]  # neither, diverged; then q10 / q50 / q90


def test_summary_plot_of_a_store_with_0_and_100_percent(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "all.sqlite"
    _store_with_rows(path, ["false"] * 5)
    s, = study.summarize(path)
    assert s.intervals["false"][1] == 1.0 and s.intervals["original"][0] == 0.0
    assert main(["summary", str(path), "--plot", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0
    fig = study.plot_summary([s])
    fractions, radii = fig.axes
    assert fig._suptitle.get_text() and fractions.get_xlabel() and radii.get_xlabel()
    assert "95% Wilson intervals" in fractions.get_title()


def test_summary_opens_the_store_read_only(tmp_path, capsys, monkeypatch):
    opened = []

    class Spy(study.Store):
        def __init__(self, path, readonly=False):
            opened.append(readonly)
            super().__init__(path, readonly=readonly)

    path = tmp_path / "spy.sqlite"
    _store_with_rows(path, ["original"])
    before = path.read_bytes()
    monkeypatch.setattr(study.summary, "Store", Spy)
    monkeypatch.setattr(study, "Store", Spy)
    assert main(["summary", str(path), "--csv", str(tmp_path / "s.csv")]) == 0
    assert main(["settings", str(path)]) == 0
    assert opened == [True, True, True] and path.read_bytes() == before
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("file permissions do not bind root: the read-only file is not tested")
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "r.sqlite"
    _store_with_rows(path, ["original", "neither"])
    os.chmod(path, 0o444)
    os.chmod(folder, 0o555)
    try:
        assert main(["summary", str(path)]) == 0
        assert "psi1" in capsys.readouterr().out
        assert main(["settings", str(path)]) == 0
    finally:
        os.chmod(folder, 0o755)


def _add_broken_parts(path):
    """A row whose setting is not recorded, and a setting whose definition is not JSON."""
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO results (setting_id, seed, verdict, diverged) VALUES ('0123456789abcdef', 0, "
                   "'false', 0)")
        db.execute("INSERT INTO settings (setting_id, name, definition) VALUES ('fedcba9876543210', 'bad', "
                   "'{not json')")
        db.execute("INSERT INTO results (setting_id, seed, verdict, diverged) VALUES ('fedcba9876543210', 0, "
                   "'false', 0)")


def test_summary_and_settings_report_skipped_rows(tmp_path, capsys):
    path = tmp_path / "p.sqlite"
    _store_with_rows(path, ["original", "neither"])
    _add_broken_parts(path)
    assert main(["summary", str(path)]) == 0
    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 2
    assert any("0123456789abcdef" in line for line in skipped)
    assert any("fedcba9876543210" in line and "JSON" in line for line in skipped)
    assert main(["settings", str(path)]) == 0
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("skipped: ")] == skipped


def test_settings_lists_definitions_and_row_counts(tmp_path, capsys):
    path = tmp_path / "s.sqlite"
    psi3 = preset("psi3", r=100, epochs=2)
    study.run([PSI1, psi3], seeds=3, store=path, radius_points=0, progress=False)
    study.run(psi3, seeds=range(3, 5), store=path, radius_points=0, progress=False)
    assert main(["settings", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    with study.Store(path, readonly=True) as db:
        stored = db.settings()
    for (head, definition), s, rows in zip((lines[0:2], lines[2:4]), stored, (3, 5)):
        assert head == f"{s['name']}  (id {s['setting_id']}): {rows} rows"
        assert json.loads(definition) == s["definition"]
    assert stored[1]["definition"]["r"] == 100 and stored[1]["definition"]["epochs"] == 2


# ---- errors: one line, exit status 2 ------------------------------------------------------
def test_summary_plot_without_matplotlib_fails_first_in_one_line(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from falsestruct_fast.cli import main\n"
            "sys.exit(main(['summary', 'missing.sqlite', '--plot', 'out.png']))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    # Refused before anything else: the missing store is not even looked at.
    assert proc.stderr == ('falsestruct-fast summary: --plot: plots need matplotlib: '
                           'pip install "falsestruct_fast[plots]"\n')
    assert not (tmp_path / "out.png").exists()


class _NoWork:
    """Stands in for study.run: a command that reaches it did work it should have refused."""

    def __call__(self, *args, **kwargs):
        raise AssertionError("study.run was called")


class _NoDevices:
    @staticmethod
    def device_count():
        return 0


def test_engine_cuda_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    from falsestruct_fast import _native_loader
    monkeypatch.setattr(study, "run", _NoWork())
    argv = ["study", "--preset", "psi1", "--store", str(tmp_path / "c.sqlite"), "--engine", "cuda"]
    monkeypatch.setattr(_native_loader, "_cuda", None)
    assert main(argv) == 2
    assert _one_line_error(capsys) == ("falsestruct-fast study: --engine cuda: this installation has no CUDA "
                                       "engine (it was built without a CUDA compiler); use --engine native")
    monkeypatch.setattr(_native_loader, "_cuda", _NoDevices())
    assert main(argv) == 2
    assert _one_line_error(capsys) == ("falsestruct-fast study: --engine cuda: no CUDA device is visible; "
                                       "use --engine native")
    assert not (tmp_path / "c.sqlite").exists()


def test_expected_errors_are_one_line_with_status_2(tmp_path, capsys):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    cases = [
        (["summary", str(tmp_path / "missing.sqlite")], "no such store"),
        (["settings", str(tmp_path / "missing.sqlite")], "no such store"),
        (["summary", str(junk)], "junk.sqlite"),
        (["study", "--grid", str(tmp_path / "missing.toml"), "--store", str(tmp_path / "x.sqlite")],
         "missing.toml"),
        (["study", "--preset", "psi1", "--delta", "0.5", "--store", str(tmp_path / "x.sqlite")], "delta"),
        (["study", "--preset", "psi1", "--layout", "authors", "--store", str(tmp_path / "x.sqlite")], "layout"),
    ]
    for argv, named in cases:
        assert main(argv) == 2, argv
        line = _one_line_error(capsys)
        assert line.startswith(f"falsestruct-fast {argv[0]}: ") and named in line, line
    assert not (tmp_path / "x.sqlite").exists()


def test_debug_shows_the_traceback(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ValueError, match="junk.sqlite"):
        main(["--debug", "summary", str(junk)])
    with pytest.raises(ValueError, match="junk.sqlite"):
        main(["summary", str(junk), "--debug"])


def test_unexpected_errors_and_ctrl_c(tmp_path, capsys, monkeypatch):
    argv = ["study", "--preset", "psi1", "--store", str(tmp_path / "i.sqlite"), "--no-progress"]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "run", interrupted)
    assert main(argv) == 130
    assert _one_line_error(capsys, after=1) == ("falsestruct-fast study: interrupted; finished chunks are stored: "
                                       "rerun the same command to resume")

    def broken(*args, **kwargs):
        raise RuntimeError("something\nunforeseen")

    monkeypatch.setattr(study, "run", broken)
    assert main(argv) == 2
    assert _one_line_error(capsys, after=1) == ("falsestruct-fast study: RuntimeError: something; unforeseen "
                                       "(unexpected; rerun with --debug for the traceback)")
    with pytest.raises(RuntimeError, match="unforeseen"):
        main(["--debug", *argv])


@pytest.mark.parametrize("argv, message", [
    (["study", "--preset", "psi1", "--hidden", "64,x"],
     "falsestruct-fast study: --hidden: expected comma-separated positive integers, got '64,x'"),
    (["study", "--preset", "psi1", "--hidden", "64,0"],
     "falsestruct-fast study: --hidden: expected comma-separated positive integers, got '64,0'"),
    (["study", "--preset", "psi1", "--epochs", "2.5"],
     "falsestruct-fast study: --epochs: expected an integer, got '2.5'"),
    (["study", "--preset", "psi1", "--threads", "0"],
     "falsestruct-fast study: --threads: expected an integer >= 1, got '0'"),
    (["study", "--preset", "psi1", "--delta", "tiny"],
     "falsestruct-fast study: --delta: expected a number, got 'tiny'"),
    (["study", "--epochs", "3"],
     "falsestruct-fast study: one of the arguments --preset --grid is required"),
    (["study", "--preset", "psi9"], "falsestruct-fast study: --preset: invalid choice: 'psi9'"),
])
def test_bad_arguments_are_one_line_naming_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    line = _one_line_error(capsys)
    assert line.startswith(message) and line.endswith("(see falsestruct-fast study --help)")


def test_overrides_take_the_type_of_each_settings_field():
    assert cli._with_overrides(preset("exp2"), {"a": 1}).a == 1.0
    assert type(cli._with_overrides(preset("exp2"), {"a": 1}).a) is float
    assert type(cli._with_overrides(preset("psi1"), {"a": 20.0}).a) is int
    with pytest.raises(cli.CommandError, match="--a: psi1 needs an integer, got 2.5"):
        cli._with_overrides(preset("psi1"), {"a": 2.5})


# ---- help ---------------------------------------------------------------------------------------
def _commands(parser):
    sub, = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return sub


def test_every_command_and_option_has_help(capsys, monkeypatch):
    parser = cli.build_parser()
    sub = _commands(parser)
    assert set(sub.choices) == {"demo", "reproduce", "study", "summary", "settings", "info"}
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        main(["--help"])
    top = [line.split() for line in capsys.readouterr().out.splitlines()]
    for choice in sub._choices_actions:  # every command on one line of the top-level help
        assert [choice.dest, *choice.help.split()] in top, choice.dest
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help and action.help.strip(), f"{name} {action.option_strings}: no help"
    fields = {f.name for cls in (Exp1Setting, Exp2Setting) for f in dataclasses.fields(cls)}
    assert fields - {"intervals", "paper_outcome"} == set(cli.FIELD_HELP)


# ---- figures and reproduce --quick ------------------------------------------------------------
def test_figures_name_their_bands_and_frame_their_images():
    pytest.importorskip("matplotlib")
    import falsestruct_fast as fs
    from falsestruct_fast.experiments import exp1, exp2, plots
    net, params = exp1.stable_network()
    fig = plots.figure2(net, params, titles=["stable"])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("S_eps" in t and "grey" in t for t in legend)
    cnn = fs.paper_cnn()
    X = exp2.stripe_images(0.01, [True, False, True], [3, 7, 9])
    fig = plots.figure3(cnn, fs.init(cnn), X, columns=2)
    framed = [ax for ax in fig.axes if ax.axison]
    assert len(framed) == 3 and not any(ax.get_xticks().size or ax.get_yticks().size for ax in framed)
    assert all(spine.get_visible() for ax in framed for spine in ax.spines.values())


def test_reproduce_quick_says_its_verdicts_differ_from_the_paper(tmp_path):
    from falsestruct_fast.experiments.reproduce import QUICK_NOTE, reproduce
    said = []
    reproduce(tmp_path / "rep", quick=True, seeds=1, progress=False, log=said.append)
    assert said[0] == QUICK_NOTE and "expected to differ" in QUICK_NOTE
    verdict_lines = {line.split("]")[0][1:]: line for line in said if "; verdicts " in line}
    assert "different verdict is expected" not in verdict_lines["psi1"]
    for name in ("psi2", "psi3", "psi4"):
        assert "at 100 epochs a different verdict is expected" in verdict_lines[name]
    assert QUICK_NOTE in (tmp_path / "rep" / "report.md").read_text()


def test_ctrl_c_during_training_exits_130_in_one_line(tmp_path):
    import signal
    store = tmp_path / "int.sqlite"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "falsestruct_fast.cli", "study", "--preset", "psi3",
                             "--epochs", "1000000", "--r", "400", "--seeds", "2", "--no-progress",
                             "--threads", "1", "--store", str(store)],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint_in_child)
    try:
        first = proc.stderr.readline()  # the setting's description: printed just before training
        assert first.startswith("psi3"), first
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert rest == ("falsestruct-fast study: interrupted; finished chunks are stored: rerun the same "
                    "command to resume\n")
