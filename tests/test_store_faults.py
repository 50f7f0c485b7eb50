"""Study stores under faults: a full disk, read-only files, foreign and corrupted files, two
processes on one store, diverged networks, memory-sized chunks; setting names and progress."""
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from falsestruct_fast import study
from falsestruct_fast.experiments import preset
from falsestruct_fast.study import runner, store as store_mod
from falsestruct_fast.study.store import Store, StoreError

# Tiny settings: a study of a few seeds takes a fraction of a second.
PSI1 = preset("psi1", epochs=5)
PSI3 = preset("psi3", r=100, epochs=2)


def _run(settings, seeds, path, **kw):
    return study.run(settings, seeds=seeds, store=path, progress=False, **kw)


def _rows(path):
    with Store(path, readonly=True) as db:
        return db.rows()


def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ---- full disk -------------------------------------------------------------------------
def _fake_row(sid, seed):
    return {"setting_id": sid, "seed": seed, "name": "x" * 200, "metrics": "y" * 500}


def test_full_disk_write_says_the_cause_and_keeps_rows(tmp_path):
    path = tmp_path / "full.sqlite"
    with Store(path) as db:
        assert db.write_rows([_fake_row("s", i) for i in range(3)]) == 3
        pages = db.db.execute("PRAGMA page_count").fetchone()[0]
        db.db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from here on
        with pytest.raises(StoreError) as err:
            db.write_rows([_fake_row("s", i) for i in range(3, 200)])
        text = _one_line(err)
        assert "database or disk is full" in text and str(path) in text and "rollback" not in text
        assert not db.db.in_transaction
        assert [r["seed"] for r in db.rows()] == [0, 1, 2]  # the whole chunk is rolled back
        db.db.execute(f"PRAGMA max_page_count = {2**30}")  # space again: the store still works
        assert db.write_rows([_fake_row("s", 3)]) == 1


def test_study_on_full_disk_fails_in_one_line(tmp_path, monkeypatch):
    path = tmp_path / "full.sqlite"
    _run(PSI1, [0, 1], path)
    before = _rows(path)
    connect = sqlite3.connect

    def full_disk(*args, **kwargs):  # every connection of the store sees a full disk
        db = connect(*args, **kwargs)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        return db

    monkeypatch.setattr(store_mod.sqlite3, "connect", full_disk)
    with pytest.raises(StoreError) as err:
        _run(PSI1, range(120), path, chunk_size=120)
    assert "database or disk is full" in _one_line(err)
    monkeypatch.undo()
    assert _rows(path) == before


# ---- read-only -------------------------------------------------------------------------
def test_finished_study_only_reads_the_store(tmp_path, monkeypatch):
    path = tmp_path / "done.sqlite"
    _run(PSI1, 3, path)
    opened = []
    init = Store.__init__

    def spy(self, p, readonly=False):
        opened.append(readonly)
        init(self, p, readonly)

    monkeypatch.setattr(Store, "__init__", spy)
    report = _run(PSI1, 3, path)
    assert (report.written, report.skipped) == (0, 3) and opened == [True]
    report = _run(PSI1, 4, path)  # one seed to train: opened for writing
    assert (report.written, report.skipped) == (1, 3) and opened == [True, True, False]


def test_readonly_store_refuses_writes_and_missing_files(tmp_path):
    path = tmp_path / "ro.sqlite"
    _run(PSI1, 2, path)
    with Store(path, readonly=True) as db:
        assert len(db.rows()) == 2 and db.row_counts() == {db.settings()[0]["setting_id"]: 2}
        with pytest.raises(StoreError, match="read-only"):
            db.write_rows([_fake_row("s", 0)])
    with pytest.raises(StoreError, match="no such store"):
        Store(tmp_path / "missing.sqlite", readonly=True)
    assert not (tmp_path / "missing.sqlite").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions")
def test_store_in_readonly_directory_is_summarised(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "s.sqlite"
    _run(PSI1, 2, path)
    os.chmod(path, 0o444)
    os.chmod(folder, 0o555)
    try:
        report = _run(PSI1, 2, path)  # nothing left to train
        assert (report.written, report.skipped) == (0, 2)
        assert study.summarize(Store(path, readonly=True))[0].n == 2
        with pytest.raises(StoreError) as err:  # a seed to train: the cause in one line
            _run(PSI1, 3, path)
        assert "readonly" in _one_line(err) or "read-only" in _one_line(err)
    finally:
        os.chmod(folder, 0o755)
        os.chmod(path, 0o644)


READONLY_MOUNT = textwrap.dedent("""
    import sys
    from falsestruct_fast import study
    from falsestruct_fast.experiments import preset
    s = preset("psi1", epochs=5)
    report = study.run(s, seeds=2, store=sys.argv[1], progress=False)
    print(report.written, report.skipped, study.summarize(sys.argv[1])[0].n)
    try:
        study.run(s, seeds=3, store=sys.argv[1], progress=False)
    except study.StoreError as exc:
        print(exc)
""")


def test_store_on_readonly_mount_is_summarised(tmp_path):
    """The real read-only case where root is not exempt: a read-only bind mount (needs a
    mount namespace; skipped where unshare/mount are not permitted)."""
    import shutil
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "s.sqlite"
    _run(PSI1, 2, path)
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount --bind {folder} {folder} && mount -o remount,ro,bind {folder}"],
            capture_output=True).returncode != 0:
        pytest.skip("no permission for a read-only bind mount")
    script = tmp_path / "ro.py"
    script.write_text(READONLY_MOUNT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {folder} {folder} && mount -o remount,ro,bind "
                          f"{folder} && exec {sys.executable} {script} {path}"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "0 2 2"                      # nothing to train: read, and summarised
    assert len(lines) == 2 and str(path) in lines[1] and "read-only" in lines[1]


# ---- foreign, corrupted and inconsistent stores ------------------------------------------
def test_foreign_results_table_is_refused_before_training(tmp_path, monkeypatch):
    path = tmp_path / "foreign.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE results (id INTEGER, value REAL)")
    db.commit()
    db.close()
    monkeypatch.setattr(runner, "run_chunk", lambda *a, **k: pytest.fail("trained before the schema check"))
    with pytest.raises(StoreError) as err:
        _run(PSI1, 2, path)
    text = _one_line(err)
    assert str(path) in text and "not a falsestruct_fast results database" in text
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("results",)]  # nothing was added to someone else's file


def test_results_table_of_another_schema_is_refused(tmp_path):
    path = tmp_path / "old.sqlite"
    _run(PSI1, 1, path)
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE results DROP COLUMN radius_flipped")
    db.commit()
    db.close()
    for readonly in (False, True):
        with pytest.raises(StoreError, match="results table of another schema"):
            Store(path, readonly=readonly)


def test_corrupted_store_gives_one_line_naming_it(tmp_path):
    path = tmp_path / "bad.sqlite"
    _run([PSI1, PSI3], 8, path)
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 3 * page
    data[2 * page:] = b"\xa5" * (len(data) - 2 * page)  # every page after the second
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as err:
        with Store(path, readonly=True) as db:
            db.rows()
            db.settings()
    text = _one_line(err)
    assert str(path) in text and "malformed" in text


def test_orphan_rows_and_bad_definitions_are_reported(tmp_path):
    path = tmp_path / "odd.sqlite"
    _run([PSI1, PSI3], 3, path)
    with Store(path) as db:
        ids = {s["name"]: s["setting_id"] for s in db.settings()}
    db = sqlite3.connect(path)
    db.execute("DELETE FROM settings WHERE setting_id=?", (ids[PSI1.name],))
    db.execute("UPDATE settings SET definition='{not json' WHERE setting_id=?", (ids[PSI3.name],))
    db.commit()
    db.close()
    with Store(path, readonly=True) as db:
        assert db.settings() == []
        assert db.row_counts() == {ids[PSI1.name]: 3, ids[PSI3.name]: 3}
        problems = db.problems()
    assert len(problems) == 2
    assert ids[PSI3.name] in problems[0] and "not a JSON object" in problems[0] and "3 rows" in problems[0]
    assert ids[PSI1.name] in problems[1] and "not recorded" in problems[1] and "3 rows" in problems[1]


# ---- two processes on one store ----------------------------------------------------------
WRITER = textwrap.dedent("""
    import json, os, sys, time
    import falsestruct_fast as fs
    from falsestruct_fast.study import runner
    trained = []
    chunk = runner.run_chunk
    def counting(d, seeds, **kw):
        trained.extend(seeds)
        return chunk(d, seeds, **kw)
    runner.run_chunk = counting
    store, ready, go = sys.argv[1:4]
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.01)
    s = fs.experiments.preset("psi3", r=400, epochs=20)
    report = fs.study.run(s, seeds=range(40), store=store, chunk_size=2, radius_points=2, progress=False)
    print(json.dumps({"trained": trained, "written": report.written, "by_others": report.by_others}))
""")


def test_two_processes_share_the_seeds(tmp_path):
    path = tmp_path / "shared.sqlite"
    Store(path).close()  # both processes find the tables made
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [subprocess.Popen([sys.executable, str(script), str(path), str(tmp_path / f"ready{i}"),
                               str(tmp_path / "go")], env=env, stdout=subprocess.PIPE, text=True)
             for i in range(2)]
    deadline = time.time() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)) and time.time() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        reports.append(json.loads(out.strip().splitlines()[-1]))
    trained = sorted(s for r in reports for s in r["trained"])
    assert trained == list(range(40))                     # every seed trained exactly once
    assert sum(r["written"] for r in reports) == 40
    assert all(r["written"] == len(r["trained"]) for r in reports)
    assert [r["seed"] for r in _rows(path)] == list(range(40))
    with Store(path, readonly=True) as db:
        assert db.leases() == []                          # both released what they held


def test_leases_of_dead_or_silent_processes_are_taken_over(tmp_path):
    path = tmp_path / "lease.sqlite"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host, now = socket.gethostname(), time.time()
    with Store(path) as db:
        db.db.executemany("INSERT INTO leases VALUES (?, ?, ?, ?, ?, ?, ?)", [
            ("s", 0, "a", host, dead.pid, now, now),                  # this host, process gone
            ("s", 1, "b", "elsewhere", 1, now - 3600, now - 3600),     # no heartbeat for an hour
            ("s", 2, "c", "elsewhere", 1, now, now),                   # alive on another machine
            ("s", 3, "d", host, os.getppid(), now, now),               # alive on this machine
        ])
        db.write_rows([_fake_row("s", 4)])
        claimed, held, examined = db.claim("s", [0, 1, 2, 3, 4, 5], limit=10)
        assert (claimed, held, examined) == ([0, 1, 5], [2, 3], 6)
        assert db.claim("s", [0, 1, 2, 3, 4, 5], limit=10)[0] == [0, 1, 5]  # still mine
        again = Store(path)                                            # another process' view
        assert again.claim("s", [0, 1, 2, 5], limit=10) == ([], [0, 1, 2, 5], 4)
        again.close()
        db.release("s", [5])
        assert sorted(l["seed"] for l in db.leases() if l["owner"] == db.owner) == [0, 1]
    with Store(path) as db:  # closing released the rest of its leases
        assert sorted(l["seed"] for l in db.leases()) == [2, 3]


def test_heartbeat_keeps_leases_fresh(tmp_path):
    with Store(tmp_path / "beat.sqlite") as db:
        db.claim("s", [0, 1], limit=2)
        first = {l["heartbeat"] for l in db.leases()}
        db.start_heartbeat(every=0.01)
        deadline = time.time() + 30
        while {l["heartbeat"] for l in db.leases()} == first and time.time() < deadline:
            time.sleep(0.01)
        db.stop_heartbeat()
        beats = {l["heartbeat"] for l in db.leases()}
        assert len(beats) == 1 and beats.pop() > first.pop()


def test_study_waits_for_seeds_another_process_holds(tmp_path, monkeypatch):
    path = tmp_path / "wait.sqlite"
    d = runner.study_definition(PSI1)
    sid = study.setting_id(d)
    other = Store(path)
    other.add_setting(sid, d, "")
    assert other.claim(sid, [1], limit=1)[0] == [1]
    rows = runner.run_chunk(d, [1])
    monkeypatch.setattr(runner, "POLL_SECONDS", 0.05)
    slept = []

    def sleep(seconds):  # the other process finishes seed 1 while this one waits
        slept.append(seconds)
        if len(slept) == 2:
            other.write_rows(rows)

    monkeypatch.setattr(runner.time, "sleep", sleep)
    report = _run(PSI1, 3, path)
    assert (report.written, report.by_others, report.skipped) == (2, 1, 0) and len(slept) >= 2
    assert [r["seed"] for r in _rows(path)] == [0, 1, 2]
    other.close()


# ---- diverged networks -------------------------------------------------------------------
def test_diverged_rows_carry_no_numbers(tmp_path):
    bad = preset("psi3", r=100, epochs=2, learning_rate=1e30, dtype="float32")
    path = tmp_path / "div.sqlite"
    _run(bad, 2, path)
    for row in _rows(path):
        assert row["diverged"] == 1 and row["verdict"] == "diverged"
        for column in ("final_loss", "train_accuracy", "agreement_delta", "agreement_0", "ones_0",
                       "radius_median", "radius_min", "radius_flipped", "metrics"):
            assert row[column] is None, column


# ---- memory ------------------------------------------------------------------------------
def test_chunks_are_sized_from_the_memory_estimate(tmp_path, monkeypatch):
    from falsestruct_fast.memory import estimate_train_bytes
    s = PSI3
    net = s.network()
    per_net_data = s.r * 3 * 8

    def need(n):
        return estimate_train_bytes(net, n, s.r, s.batch_size, s.dtype, 1) + n * per_net_data

    monkeypatch.setattr(runner, "available_bytes", lambda: 2 * need(5) + 1)
    assert runner.chunk_size_for(s, 64, False, 1) == 5
    assert runner.chunk_size_for(s, 4, True, 1) == 4
    with pytest.raises(MemoryError, match=r"chunk_size: 64 networks .* chunk_size <= 5"):
        runner.chunk_size_for(s, 64, True, 1)
    sizes = []
    chunk = runner.run_chunk
    monkeypatch.setattr(runner, "run_chunk", lambda d, seeds, **kw: sizes.append(len(seeds)) or chunk(d, seeds, **kw))
    _run(s, 12, tmp_path / "m.sqlite", threads=1)
    assert sizes == [5, 5, 2]
    monkeypatch.setattr(runner, "available_bytes", lambda: need(1))
    with pytest.raises(MemoryError, match="one network"):
        _run(s, 2, tmp_path / "m2.sqlite", threads=1)
    assert not (tmp_path / "m2.sqlite").exists()  # refused before the store was made


# ---- names and identity ------------------------------------------------------------------
def test_setting_names_show_their_overrides():
    assert preset("psi3", epochs=20, dtype="float32").name == "psi3[epochs=20,dtype=float32]"
    assert preset("psi3", dtype="float32", epochs=20) == preset("psi3", epochs=20, dtype="float32")
    assert preset("psi3", r=5000).name == "psi3"  # the preset's own value: nothing differs
    assert preset("psi1", learning_rate=1e-2, hidden=(8, 8)).name == "psi1[learning_rate=0.01,hidden=(8,8)]"
    assert preset("psi1", epochs=5, name="mine").name == "mine"
    assert [s.name for s in study.grid("psi3", {"r": [100]}, epochs=20)] == ["psi3[epochs=20,r=100]"]
    ids = {study.setting_id(preset("psi3", **{k: v}).as_dict())
           for k, v in [("epochs", 20), ("shuffle", "samples"), ("dtype", "float32")]}
    assert len(ids) == 3


def test_radius_points_decide_whether_rows_are_reused(tmp_path):
    path = tmp_path / "rp.sqlite"
    assert _run(PSI1, 2, path, radius_points=2).written == 2
    assert _run(PSI1, 2, path, radius_points=2).written == 0      # same evaluation: reused
    assert _run(PSI1, 2, path, radius_points=3).written == 2      # another one: new rows
    assert _run(PSI1, 2, path, radius_points=231).written == 2    # 231 = all points = default
    assert _run(PSI1, 2, path, radius_points=None).written == 0
    with Store(path, readonly=True) as db:
        names = sorted(s["name"] for s in db.settings())
        counts = db.row_counts()
    assert names == sorted([PSI1.name, f"{PSI1.name[:-1]},radius_points=2]", f"{PSI1.name[:-1]},radius_points=3]"])
    assert sorted(counts.values()) == [2, 2, 2]


def test_grid_of_none_names_base():
    with pytest.raises(TypeError, match="base"):
        study.grid(None, {"r": [100]})
    with pytest.raises(TypeError, match="axes"):
        study.grid("psi3", [("r", [100])])


# ---- progress ----------------------------------------------------------------------------
def test_work_estimate_counts_steps_and_weighs_cnn_steps():
    w = [runner.work_per_seed(preset("psi3", r=100, epochs=e), 0) for e in (10, 20, 30)]
    assert w[2] - w[1] == pytest.approx(w[1] - w[0]) and w[1] - w[0] > 0  # linear in epochs
    per_step = (w[1] - w[0]) / (10 * 2)                                    # r=100, batch 50
    cnn = [runner.work_per_seed(preset("exp2", epochs=e), 0) for e in (1, 2)]
    assert cnn[1] - cnn[0] > 100 * per_step                                # one step of 60 images
    batch7 = runner.work_per_seed(preset("psi1", epochs=20), 0) - runner.work_per_seed(preset("psi1", epochs=10), 0)
    assert batch7 / 10 < per_step                                          # batch 7 < batch 50


def test_progress_eta_from_work_and_one_final_line():
    out = io.StringIO()
    bar = runner.StudyProgress(total_work=100.0, total_seeds=20, stream=out, interval=0)
    bar.update(25.0, 10, "psi1[epochs=5]", 10, 10)  # half the seeds but a quarter of the work
    line = bar.line(elapsed=10.0)
    assert "ETA 30s" in line and "10/20 seeds" in line and " 25%" in line and "| psi1[epochs=5] 10/10" in line
    bar.update(100.0, 20, "psi3", 10, 10)
    bar.finish()
    bar.finish()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and text.count("done in") == 1


def test_study_progress_line_on_stderr(tmp_path, capsys):
    study.run([PSI1, PSI3], seeds=3, store=tmp_path / "p.sqlite", progress=True)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.count("done in") == 1 and err.endswith("\n")
    assert "0/6 seeds" in err and f"| {PSI1.name} 0/3" in err and "6/6 seeds" in err.split("\r")[-1]


# ---- pandas ------------------------------------------------------------------------------
def test_to_dataframe_without_pandas_says_how_to_get_it(tmp_path, monkeypatch):
    path = tmp_path / "df.sqlite"
    _run(PSI1, 1, path)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas fails
    with Store(path, readonly=True) as db, pytest.raises(ImportError) as err:
        db.to_dataframe()
    assert 'pip install "falsestruct_fast[dask]"' in _one_line(err)
