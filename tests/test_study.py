"""Seed studies: rows, resume after kill -9, Wilson intervals, grids, TOML, Dask."""
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from falsestruct_fast import study
from falsestruct_fast.cli import main as cli_main
from falsestruct_fast.experiments import preset

# Small but real settings: a few epochs so that a study takes well under a second.
PSI1 = preset("psi1", epochs=300)
PSI3 = preset("psi3", r=400, epochs=3)
EXP2 = preset("exp2", epochs=1, test_size=20)
COMPARED = ("final_loss", "train_accuracy", "diverged", "verdict", "agreement_delta", "agreement_0",
            "ones_0", "radius_median", "radius_min", "radius_flipped", "metrics")


def _rows(path):
    with study.Store(path) as db:
        return db.rows()


def _key(rows):
    return {(r["name"], r["seed"]): tuple(r[c] for c in COMPARED) for r in rows}


def test_rows_equal_each_seed_alone(tmp_path):
    report = study.run([PSI1, PSI3], seeds=[0, 3, 5, 8], store=tmp_path / "a.sqlite", chunk_size=3,
                       progress=False)
    assert (report.written, report.skipped) == (8, 0)
    together = _key(_rows(tmp_path / "a.sqlite"))
    alone = {}
    for seed in (0, 3, 5, 8):
        study.run([PSI1, PSI3], seeds=[seed], store=tmp_path / f"s{seed}.sqlite", progress=False)
        alone.update(_key(_rows(tmp_path / f"s{seed}.sqlite")))
    assert together == alone
    # and the values are those of the library functions
    fit = PSI1.train([5], progress=False)
    v = PSI1.evaluate(PSI1.network(), fit.params)
    row = together[(PSI1.name, 5)]
    assert row[0] == fit.final_loss[0] and row[3] == v.verdict[0] and row[4] == v.agreement_delta[0]


def test_exp2_rows_hold_table1(tmp_path):
    study.run(EXP2, seeds=2, store=tmp_path / "e.sqlite", radius_points=4, progress=False)
    rows = _rows(tmp_path / "e.sqlite")
    assert len(rows) == 2 and rows[0]["verdict"] is None
    fit = EXP2.train([1], progress=False)
    table = EXP2.evaluate(EXP2.network(), fit.params)
    import json
    m = json.loads(rows[1]["metrics"])
    assert m["tilde"] == table.tilde[0].tolist() and m["hat"] == table.hat[0].tolist()
    s = study.summarize(tmp_path / "e.sqlite")[0]
    assert s.experiment == "exp2" and len(s.table1["tilde"]) == 4


def test_rerun_skips_finished_seeds(tmp_path):
    path = tmp_path / "r.sqlite"
    study.run(PSI1, seeds=range(4), store=path, progress=False)
    first = _rows(path)
    report = study.run(PSI1, seeds=range(6), store=path, progress=False)
    assert (report.written, report.skipped) == (2, 4)
    rows = _rows(path)
    assert [r["seed"] for r in rows] == list(range(6))
    assert rows[:4] == first  # untouched


def test_diverged_seed_is_flagged_not_fatal(tmp_path):
    bad = preset("psi3", r=400, epochs=3, learning_rate=1e30, dtype="float32")  # overflows
    study.run(bad, seeds=2, store=tmp_path / "d.sqlite", progress=False)
    rows = _rows(tmp_path / "d.sqlite")
    assert all(r["diverged"] == 1 for r in rows)
    assert all(r["verdict"] == "diverged" and r["final_loss"] is None for r in rows)


STUDY_SCRIPT = textwrap.dedent("""
    import sys
    import falsestruct_fast as fs
    s = fs.experiments.preset("psi3", r=400, epochs=30)
    fs.study.run(s, seeds=range(int(sys.argv[2])), store=sys.argv[1], chunk_size=2, progress=False)
""")


def test_killed_study_resumes_without_loss_or_duplicates(tmp_path):
    path = tmp_path / "k.sqlite"
    script = tmp_path / "run_study.py"
    script.write_text(STUDY_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, str(script), str(path), "400"], env=env)
    # Wait until some chunks are stored, then kill -9 mid-run.
    deadline = time.time() + 120
    n = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if path.exists():
            try:
                n = sqlite3.connect(path, timeout=5).execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.OperationalError:
                n = 0
            if n >= 6:
                break
    assert proc.poll() is None, "the study finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _rows(path)
    assert 6 <= len(partial) < 400 and len(partial) % 2 == 0  # whole chunks only
    subprocess.run([sys.executable, str(script), str(path), "400"], env=env, check=True)
    rows = _rows(path)
    seeds = [r["seed"] for r in rows]
    assert seeds == list(range(400))                       # none lost, none duplicated
    done_before = {r["seed"]: r["finished_at"] for r in partial}
    assert all(r["finished_at"] == done_before[r["seed"]] for r in rows if r["seed"] in done_before)


@pytest.mark.parametrize("k, n, low, high", [
    # Newcombe (1998), Stat. Med. 17:857, Table I, method 3 (Wilson score), 4 decimals.
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
    # closed forms: k = 0 gives (0, z^2 / (n + z^2)), k = n its mirror image
    (0, 10, 0.0, 1.959964**2 / (10 + 1.959964**2)), (10, 10, 10 / (10 + 1.959964**2), 1.0),
])
def test_wilson_interval_known_values(k, n, low, high):
    lo, hi = study.wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=6e-5) and hi == pytest.approx(high, abs=6e-5)


def test_wilson_interval_edge_cases():
    assert study.wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="k, n"):
        study.wilson_interval(3, 2)
    # a lower confidence (z = 1) gives a narrower interval
    lo, hi = study.wilson_interval(5, 10, z=1.0)
    assert hi - lo < study.wilson_interval(5, 10)[1] - study.wilson_interval(5, 10)[0]


def test_grid_expansion():
    settings = study.grid("psi3", {"r": [100, 200], "delta": [1e-4, 1e-3]}, epochs=5)
    assert len(settings) == 4
    assert {(s.r, s.delta, s.epochs) for s in settings} == {(r, d, 5) for r in (100, 200) for d in (1e-4, 1e-3)}
    assert settings[0].name == "psi3[epochs=5,r=100,delta=0.0001]"
    assert len({study.setting_id(s.as_dict()) for s in settings}) == 4
    with pytest.raises(ValueError, match="batch_size"):
        study.grid("psi3", {"r": [10, 100]})  # batch 50 > r = 10: refused up front
    with pytest.raises(TypeError, match="r"):
        study.grid("psi3", {"r": 100})


def test_toml_settings(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(textwrap.dedent("""
        [[study]]
        preset = "psi3"
        epochs = 7
        [study.grid]
        r = [100, 200]
        shuffle = ["samples", "batches"]

        [[study]]
        preset = "exp2"
        layout = "authors"
        intervals = [[0.009, 0.01]]
    """))
    settings = study.load_toml(path)
    assert len(settings) == 5
    assert {(s.r, s.shuffle) for s in settings[:4]} == {(r, m) for r in (100, 200) for m in ("samples", "batches")}
    assert all(s.epochs == 7 for s in settings[:4])
    assert settings[4].layout == "authors" and settings[4].intervals == ((0.009, 0.01),)
    path.write_text('[[study]]\npreset = "psi3"\nbogus = 1\n')
    with pytest.raises(ValueError, match="bogus"):
        study.load_toml(path)
    path.write_text('[[study]]\nepochs = 1\n')
    with pytest.raises(ValueError, match="preset"):
        study.load_toml(path)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(seeds=[]), ValueError, "seeds"), (dict(seeds=[1, 1]), ValueError, "seeds"),
    (dict(seeds=[-1]), ValueError, "seeds"), (dict(chunk_size=0), ValueError, "chunk_size"),
    (dict(engine="tpu"), ValueError, "engine"), (dict(radius_points=-1), ValueError, "radius_points"),
    (dict(setting_or_grid="psi9"), ValueError, "preset"), (dict(setting_or_grid=[PSI1, PSI1]), ValueError, "twice"),
    (dict(setting_or_grid={"r": 1}), TypeError, "setting_or_grid"),
])
def test_bad_study_arguments_refused_before_work(tmp_path, kwargs, err, match):
    args = dict(setting_or_grid=PSI1, seeds=2, store=tmp_path / "x.sqlite")
    args.update(kwargs)
    with pytest.raises(err, match=match):
        study.run(args.pop("setting_or_grid"), args.pop("seeds"), args.pop("store"), progress=False, **args)
    if (tmp_path / "x.sqlite").exists():
        assert _rows(tmp_path / "x.sqlite") == []


def test_store_rejects_foreign_file_and_exports(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ValueError, match="store"):
        study.Store(junk)
    path = tmp_path / "e.sqlite"
    study.run(PSI1, seeds=3, store=path, progress=False)
    with study.Store(path) as db:
        assert db.to_csv(tmp_path / "e.csv") == 3
        header = (tmp_path / "e.csv").read_text().splitlines()[0].split(",")
        assert tuple(header) == study.COLUMN_NAMES
        pd = pytest.importorskip("pandas")
        df = db.to_dataframe()
        assert isinstance(df, pd.DataFrame) and len(df) == 3 and list(df.seed) == [0, 1, 2]
        assert db.settings()[0]["definition"] == PSI1.as_dict()


def test_summary_fractions_and_intervals(tmp_path):
    path = tmp_path / "s.sqlite"
    study.run(PSI1, seeds=8, store=path, progress=False)
    rows = _rows(path)
    s = study.summarize(path)[0]
    k = sum(r["verdict"] == "false" for r in rows)
    assert s.n == 8 and s.counts["false"] == k and s.fractions["false"] == k / 8
    assert s.intervals["false"] == study.wilson_interval(k, 8)
    med = np.quantile([r["radius_median"] for r in rows], 0.5)
    assert s.radius_quantiles[1] == pytest.approx(med)
    text = study.format_summary([s])
    assert "psi1" in text and "95% CI" in text
    pytest.importorskip("matplotlib")
    study.plot_summary([s]).savefig(tmp_path / "s.png")


def test_cli_study_and_summary(tmp_path, capsys):
    path = tmp_path / "c.sqlite"
    code = cli_main(["study", "--preset", "psi3", "--epochs", "3", "--r", "400", "--seeds", "2:5",
                     "--store", str(path), "--no-progress"])
    assert code == 0
    assert [r["seed"] for r in _rows(path)] == [2, 3, 4]
    assert _rows(path)[0]["name"] == "psi3[r=400,epochs=3]"  # fields in the setting's order
    assert cli_main(["summary", str(path), "--csv", str(tmp_path / "c.csv")]) == 0
    assert "psi3" in capsys.readouterr().out
    assert cli_main(["study", "--preset", "psi3", "--layout", "authors", "--store", str(path)]) == 2
    assert "layout" in capsys.readouterr().err


def test_dask_local_cluster_gives_the_same_rows(tmp_path):
    pytest.importorskip("dask.distributed")
    local = tmp_path / "local.sqlite"
    dask = tmp_path / "dask.sqlite"
    study.run([PSI1, PSI3], seeds=6, store=local, chunk_size=2, progress=False)
    study.run([PSI1, PSI3], seeds=6, store=dask, chunk_size=2, workers=2, threads=1, progress=False)
    assert _key(_rows(local)) == _key(_rows(dask))


def test_wilson_interval_is_exact_at_0_and_n():
    z2 = study.summary.Z95 ** 2
    for n in (1, 3, 7, 64, 1000, 10**6):
        low, high = study.wilson_interval(0, n)
        assert low == 0.0 and high == pytest.approx(z2 / (n + z2), rel=1e-12)  # closed form at k = 0
        low, high = study.wilson_interval(n, n)
        assert high == 1.0 and low == pytest.approx(n / (n + z2), rel=1e-12)
        for k in range(0, n + 1, max(1, n // 50)):
            low, high = study.wilson_interval(k, n)
            assert 0.0 <= low <= k / n <= high <= 1.0
            mirrored = study.wilson_interval(n - k, n)
            assert (low, high) == pytest.approx((1 - mirrored[1], 1 - mirrored[0]), abs=1e-15)
