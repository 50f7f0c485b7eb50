"""The results store of a seed study: one SQLite file, one row per (setting, seed).

Rows are written a chunk of seeds at a time, in one transaction, so a study killed at any
moment (even ``kill -9``) leaves only whole chunks behind; rerunning the same command skips
the (setting, seed) pairs already stored. The primary key (setting_id, seed) makes a row
impossible to duplicate.

A setting is identified by a hash of its full definition (every field, as JSON, plus the
evaluation options that change a row), so the same setting run again, from any command,
lands in the same rows.

Several processes (or Dask clients) may work on one store: before training a chunk, a
process claims its seeds in the ``leases`` table (one row per seed with the owner's host,
pid and a heartbeat), so the others train other seeds. A lease whose process is gone (its
pid no longer runs on this host) or whose heartbeat is older than :data:`LEASE_TIMEOUT`
seconds is free again, so a study killed with ``kill -9`` resumes at once.

Every SQLite failure surfaces as a :class:`StoreError` that names the store and says the
cause in one line (e.g. "database or disk is full").
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1

# Per-row columns, in order, with SQLite types. `metrics` holds what is specific to the
# experiment (e.g. Table 1 accuracies) as JSON.
COLUMNS = (
    ("setting_id", "TEXT NOT NULL"), ("seed", "INTEGER NOT NULL"), ("name", "TEXT"),
    ("experiment", "TEXT"), ("final_loss", "REAL"), ("train_accuracy", "REAL"),
    ("diverged", "INTEGER"), ("verdict", "TEXT"), ("agreement_delta", "REAL"),
    ("agreement_0", "REAL"), ("ones_0", "REAL"), ("radius_median", "REAL"), ("radius_min", "REAL"),
    ("radius_flipped", "REAL"), ("metrics", "TEXT"), ("wall_time", "REAL"), ("engine", "TEXT"),
    ("version", "TEXT"), ("finished_at", "REAL"),
)
COLUMN_NAMES = tuple(c for c, _ in COLUMNS)
SETTINGS_COLUMNS = (("setting_id", "TEXT PRIMARY KEY"), ("name", "TEXT"), ("experiment", "TEXT"),
                    ("definition", "TEXT NOT NULL"), ("version", "TEXT"), ("created_at", "REAL"))
LEASE_COLUMNS = (("setting_id", "TEXT NOT NULL"), ("seed", "INTEGER NOT NULL"), ("owner", "TEXT NOT NULL"),
                 ("host", "TEXT"), ("pid", "INTEGER"), ("claimed_at", "REAL"), ("heartbeat", "REAL"))
# The columns each table of this schema must have (a table with other columns is foreign).
TABLES = {"meta": ("key", "value"), "settings": tuple(c for c, _ in SETTINGS_COLUMNS),
          "results": COLUMN_NAMES, "leases": tuple(c for c, _ in LEASE_COLUMNS)}

# A lease whose heartbeat is older than this is free again, whatever its process: long enough
# that a busy machine never loses a live lease (heartbeats come every LEASE_HEARTBEAT s).
LEASE_TIMEOUT = 300.0
LEASE_HEARTBEAT = 20.0


class StoreError(ValueError):
    """A study store that cannot be used: not a results database, a foreign schema, a
    corrupted file, or a write that failed (full disk, read-only file). The message names
    the store and the cause in one line."""


def setting_id(setting_dict: dict) -> str:
    """A stable 16-hex-digit id of a setting's full definition."""
    text = json.dumps(setting_dict, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value):
    """SQLite-ready Python value (NaN stays NaN: SQLite stores it as NULL, read back as None)."""
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer, np.bool_, bool)):
        return int(value)
    return value


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class Store:
    """A study's SQLite file. Use as a context manager or call :meth:`close`.

    Tables: ``settings`` (setting_id, name, experiment, definition JSON, version, created_at),
    ``results`` (:data:`COLUMN_NAMES`, primary key (setting_id, seed)) and ``leases`` (seeds
    being trained now: setting_id, seed, owner, host, pid, claimed_at, heartbeat).

    Parameters
    ----------
    path : the SQLite file; created (with its directory) unless `readonly`.
    readonly : open for reading only (``mode=ro``): works on a read-only file or directory,
        never writes; the file must exist. Summaries open stores this way.

    Raises :class:`StoreError` (a ValueError) when the file is not a results database of this
    schema, is corrupted, or cannot be opened.
    """

    def __init__(self, path, readonly: bool = False):
        self.path = Path(path)
        self.readonly = bool(readonly)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._heartbeat = None
        if self.path.is_dir():
            raise StoreError(f"store: {self.path} is a directory, expected a file path such as results.sqlite")
        if self.readonly and not self.path.exists():
            raise StoreError(f"store: no such store {self.path}")
        try:
            if self.readonly:
                self.db = self._connect_readonly()
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
                self.db = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"store: cannot open {self.path} ({_one_line(exc)})") from None
        try:
            self._open_schema()
        except StoreError:
            self.db.close()
            raise
        except sqlite3.Error as exc:
            self.db.close()
            if not self.readonly and not (os.access(self.path.parent, os.W_OK)
                                          and (not self.path.exists() or os.access(self.path, os.W_OK))):
                raise StoreError(f"store: {self.path} cannot be written, its file or directory is read-only "
                                 f"({_one_line(exc)}); reading it (summaries, a study with nothing left "
                                 f"to train) works") from None
            raise StoreError(f"store: {self.path} is corrupted or not a falsestruct_fast results "
                             f"database ({_one_line(exc)})") from None

    def _connect_readonly(self) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri()
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60.0, isolation_level=None)
        try:
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError:
            # A WAL-mode file in a read-only directory without its -shm file cannot be read
            # "live"; nobody can be writing it there, so read it as an immutable file.
            db.close()
            return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None)

    def _open_schema(self) -> None:
        """Creates the tables of a new store; checks an existing one's schema before any work."""
        tables = {name for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables and not self.readonly:
            self.db.execute("PRAGMA journal_mode=WAL")
        if not self.readonly:
            self.db.execute("PRAGMA synchronous=NORMAL")
        if tables:
            if "meta" not in tables or "results" not in tables:
                raise StoreError(f"store: {self.path} is not a falsestruct_fast results database "
                                 f"(its tables: {', '.join(sorted(tables))})")
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None or str(row[0]) != str(SCHEMA_VERSION):
                raise StoreError(f"store: {self.path} has schema version {None if row is None else row[0]}, "
                                 f"this library reads and writes {SCHEMA_VERSION}")
            for table, expected in TABLES.items():
                if table not in tables:
                    continue
                columns = tuple(r[1] for r in self.db.execute(f"PRAGMA table_info({table})"))
                if columns != expected:
                    raise StoreError(f"store: {self.path} has a {table} table of another schema (columns "
                                     f"{', '.join(columns)}; expected {', '.join(expected)})")
        if self.readonly:
            if not tables:
                raise StoreError(f"store: {self.path} is an empty database, not a study store")
            return
        with self._transaction("open it for writing"):
            for table, columns in (("settings", SETTINGS_COLUMNS), ("leases", LEASE_COLUMNS)):
                self.db.execute(f"CREATE TABLE IF NOT EXISTS {table} "
                                f"({', '.join(f'{c} {t}' for c, t in columns)})")
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            cols = ", ".join(f"{c} {t}" for c, t in COLUMNS)
            self.db.execute(f"CREATE TABLE IF NOT EXISTS results ({cols}, PRIMARY KEY (setting_id, seed))")
            self.db.execute("CREATE UNIQUE INDEX IF NOT EXISTS leases_seed ON leases (setting_id, seed)")
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    # ---- plumbing: every SQLite error becomes one StoreError line naming the store --------
    @contextmanager
    def _transaction(self, what: str):
        if self.readonly:
            raise StoreError(f"store: {self.path} is open read-only; cannot {what}")
        try:
            self.db.execute("BEGIN IMMEDIATE")
            yield
            self.db.execute("COMMIT")
        except BaseException as exc:
            # SQLite has already rolled back after some errors (SQLITE_FULL): a ROLLBACK then
            # would fail and hide the real cause.
            if self.db.in_transaction:
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"store: {self.path}: cannot {what} ({_one_line(exc)}); "
                                 f"the rows stored before are intact") from None
            raise

    def _query(self, sql: str, args=()) -> list:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"store: {self.path}: cannot read ({_one_line(exc)})") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Stops the lease heartbeat, releases this store object's leases, closes the file."""
        self.stop_heartbeat()
        if not self.readonly:
            try:
                self.release()
            except (StoreError, sqlite3.Error):
                pass  # an expired lease is reclaimed by the next process anyway
        self.db.close()

    # ---- settings and rows -----------------------------------------------------------------
    def add_setting(self, sid: str, setting_dict: dict, version: str) -> None:
        """Records a setting's definition (once; later calls with the same id are no-ops)."""
        with self._transaction("record a setting"):
            self.db.execute("INSERT OR IGNORE INTO settings VALUES (?, ?, ?, ?, ?, ?)",
                            (sid, setting_dict.get("name"), setting_dict.get("experiment"),
                             json.dumps(setting_dict, sort_keys=True), version, time.time()))

    def has_setting(self, sid: str) -> bool:
        return bool(self._query("SELECT 1 FROM settings WHERE setting_id=?", (sid,)))

    def done_seeds(self, sid: str) -> set[int]:
        """Seeds of setting `sid` already stored."""
        return {s for (s,) in self._query("SELECT seed FROM results WHERE setting_id=?", (sid,))}

    def write_rows(self, rows: list[dict]) -> int:
        """Insert rows (dicts with :data:`COLUMN_NAMES` keys) in one transaction; rows whose
        (setting_id, seed) is already stored are left as they are. This store object's leases
        on those seeds end in the same transaction. Returns rows inserted."""
        values = [tuple(_plain(row.get(c)) for c in COLUMN_NAMES) for row in rows]
        marks = ", ".join("?" * len(COLUMN_NAMES))
        with self._transaction(f"write {len(values)} rows"):
            before = self.db.total_changes
            self.db.executemany(f"INSERT OR IGNORE INTO results VALUES ({marks})", values)
            inserted = self.db.total_changes - before
            self.db.executemany("DELETE FROM leases WHERE setting_id=? AND seed=? AND owner=?",
                                [(v[0], v[1], self.owner) for v in values])
        return inserted

    def _settings_rows(self) -> list:
        return self._query("SELECT setting_id, name, definition FROM settings ORDER BY created_at, setting_id")

    def settings(self) -> list[dict]:
        """Every readable setting in the store: dicts with setting_id, name and definition
        (a dict). Settings whose definition is not JSON are left out; :meth:`problems` lists
        them."""
        out = []
        for sid, name, definition in self._settings_rows():
            parsed = _parse_definition(definition)
            if parsed is not None:
                out.append({"setting_id": sid, "name": name, "definition": parsed})
        return out

    def row_counts(self) -> dict[str, int]:
        """setting_id -> number of stored rows (also for rows whose setting is missing)."""
        return dict(self._query("SELECT setting_id, COUNT(*) FROM results GROUP BY setting_id ORDER BY setting_id"))

    def problems(self) -> list[str]:
        """What a summary of this store leaves out, one line each: settings whose definition
        is not a JSON object, and rows whose setting is not recorded. Empty when all is well."""
        out = []
        known = set()
        for sid, name, definition in self._settings_rows():
            known.add(sid)
            if _parse_definition(definition) is None:
                n = self.row_counts().get(sid, 0)
                out.append(f"setting {sid} ({name}): definition is not a JSON object; its {n} rows are skipped")
        for sid, n in self.row_counts().items():
            if sid not in known:
                out.append(f"setting {sid}: {n} rows whose setting is not recorded in the store are skipped")
        return out

    def rows(self, setting: str | None = None) -> list[dict]:
        """All result rows (or those of one setting_id), ordered by setting and seed."""
        query = f"SELECT {', '.join(COLUMN_NAMES)} FROM results"
        args = ()
        if setting is not None:
            query += " WHERE setting_id=?"
            args = (setting,)
        return [dict(zip(COLUMN_NAMES, r)) for r in self._query(query + " ORDER BY setting_id, seed", args)]

    def to_csv(self, path) -> int:
        """Write every row to a CSV file (header = column names); returns the row count."""
        import csv
        rows = self.rows()
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMN_NAMES)
            writer.writeheader()
            writer.writerows(rows)
        return len(rows)

    def to_dataframe(self):
        """Every row as a pandas DataFrame, columns :data:`COLUMN_NAMES`.

        pandas is not part of the base install: ``pip install "falsestruct_fast[dask]"`` (or
        ``pip install pandas``); without it this raises ImportError. :meth:`rows` and
        :meth:`to_csv` need nothing extra."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError('to_dataframe needs pandas, which the base install lacks: '
                              'pip install "falsestruct_fast[dask]" (or pip install pandas); '
                              'Store.rows() and Store.to_csv() work without it') from None
        return pd.DataFrame(self.rows(), columns=list(COLUMN_NAMES))

    # ---- leases: which process trains which seeds ------------------------------------------
    def claim(self, sid: str, candidates, limit: int, timeout: float | None = None) -> tuple[list[int], list[int], int]:
        """Claims up to `limit` seeds of setting `sid` for this store object, taking
        `candidates` in order and skipping seeds already stored or leased by a live process.
        A lease of a dead process (gone from this host, or without heartbeat for `timeout` s,
        default :data:`LEASE_TIMEOUT`) is taken over.

        Returns (claimed, held, examined): the seeds claimed, the examined seeds that other
        live processes hold, and how many of `candidates` (a prefix) were examined; examined
        seeds in neither list are stored already."""
        timeout = LEASE_TIMEOUT if timeout is None else timeout
        host, pid, now = socket.gethostname(), os.getpid(), time.time()

        def live(owner, lease_host, lease_pid, beat):
            if owner == self.owner or (beat or 0.0) < now - timeout:
                return False
            return lease_host != host or lease_pid == pid or process_alive(lease_pid)

        claimed, held, examined = [], [], 0
        with self._transaction("claim seeds"):
            while examined < len(candidates) and len(claimed) < limit:
                part = [int(s) for s in candidates[examined:examined + 500]]
                where = f"setting_id=? AND seed IN ({', '.join('?' * len(part))})"
                stored = {s for (s,) in self.db.execute(f"SELECT seed FROM results WHERE {where}", (sid, *part))}
                leased = {r[0]: r[1:] for r in self.db.execute(
                    f"SELECT seed, owner, host, pid, heartbeat FROM leases WHERE {where}", (sid, *part))}
                for seed in part:
                    examined += 1
                    if seed in stored:
                        continue
                    if seed in leased and live(*leased[seed]):
                        held.append(seed)
                        continue
                    claimed.append(seed)
                    if len(claimed) == limit:
                        break
            self.db.executemany("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?, ?)",
                                [(sid, s, self.owner, host, pid, now, now) for s in claimed])
        return claimed, held, examined

    def release(self, sid: str | None = None, seeds=None) -> None:
        """Ends this store object's leases (all, those of one setting, or of some seeds)."""
        with self._transaction("release leases"):
            if sid is None:
                self.db.execute("DELETE FROM leases WHERE owner=?", (self.owner,))
            elif seeds is None:
                self.db.execute("DELETE FROM leases WHERE owner=? AND setting_id=?", (self.owner, sid))
            else:
                self.db.executemany("DELETE FROM leases WHERE owner=? AND setting_id=? AND seed=?",
                                    [(self.owner, sid, int(s)) for s in seeds])

    def leases(self) -> list[dict]:
        """Every lease in the store (dicts of the leases table's columns)."""
        names = TABLES["leases"]
        if not self._query("SELECT 1 FROM sqlite_master WHERE type='table' AND name='leases'"):
            return []
        return [dict(zip(names, r)) for r in self._query(f"SELECT {', '.join(names)} FROM leases ORDER BY setting_id, seed")]

    def start_heartbeat(self, every: float = LEASE_HEARTBEAT) -> None:
        """Refreshes this store object's leases every `every` s from a background thread (its
        own connection), so that a chunk that trains for long keeps its seeds."""
        if self._heartbeat is not None or self.readonly:
            return
        stop = threading.Event()

        def beat():
            db = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None)
            try:
                while not stop.wait(every):
                    try:
                        db.execute("UPDATE leases SET heartbeat=? WHERE owner=?", (time.time(), self.owner))
                    except sqlite3.Error:
                        pass  # a busy or full store: the next beat tries again
            finally:
                db.close()

        thread = threading.Thread(target=beat, name="falsestruct-store-heartbeat", daemon=True)
        thread.start()
        self._heartbeat = (stop, thread)

    def stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            stop, thread = self._heartbeat
            stop.set()
            thread.join()
            self._heartbeat = None


def _parse_definition(text):
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


__all__ = ["Store", "StoreError", "setting_id", "process_alive", "COLUMN_NAMES", "SCHEMA_VERSION",
           "LEASE_TIMEOUT"]
