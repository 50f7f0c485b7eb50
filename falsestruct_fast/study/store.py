"""The results store of a seed study: one SQLite file, one row per (setting, seed).

Rows are written a chunk of seeds at a time, in one transaction, so a study killed at any
moment (even ``kill -9``) leaves only whole chunks behind; rerunning the same command skips
the (setting, seed) pairs already stored. The primary key (setting_id, seed) makes a row
impossible to duplicate.

A setting is identified by a hash of its full definition (every field, as JSON), so the same
setting run again, from any command, lands in the same rows.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
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


class Store:
    """A study's SQLite file. Use as a context manager or call :meth:`close`.

    Tables: ``settings`` (setting_id, name, experiment, definition JSON, version, created_at)
    and ``results`` (:data:`COLUMN_NAMES`, primary key (setting_id, seed)).
    """

    def __init__(self, path):
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"store: {self.path} is a directory, expected a file path such as results.sqlite")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        self.db = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.db.execute("CREATE TABLE IF NOT EXISTS settings (setting_id TEXT PRIMARY KEY, name TEXT, "
                            "experiment TEXT, definition TEXT NOT NULL, version TEXT, created_at REAL)")
            cols = ", ".join(f"{c} {t}" for c, t in COLUMNS)
            self.db.execute(f"CREATE TABLE IF NOT EXISTS results ({cols}, PRIMARY KEY (setting_id, seed))")
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise ValueError(f"store: {self.path} is not a falsestruct_fast results database ({exc})") from None
        version = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        if int(version) != SCHEMA_VERSION:
            self.db.close()
            raise ValueError(f"store: {self.path} has schema version {version}, this library writes {SCHEMA_VERSION}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.db.close()

    def add_setting(self, sid: str, setting_dict: dict, version: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO settings VALUES (?, ?, ?, ?, ?, ?)",
                        (sid, setting_dict.get("name"), setting_dict.get("experiment"),
                         json.dumps(setting_dict, sort_keys=True), version, time.time()))

    def done_seeds(self, sid: str) -> set[int]:
        """Seeds of setting `sid` already stored."""
        return {s for (s,) in self.db.execute("SELECT seed FROM results WHERE setting_id=?", (sid,))}

    def write_rows(self, rows: list[dict]) -> int:
        """Insert rows (dicts with :data:`COLUMN_NAMES` keys) in one transaction; rows whose
        (setting_id, seed) is already stored are left as they are. Returns rows inserted."""
        values = [tuple(_plain(row.get(c)) for c in COLUMN_NAMES) for row in rows]
        marks = ", ".join("?" * len(COLUMN_NAMES))
        self.db.execute("BEGIN IMMEDIATE")
        try:
            before = self.db.total_changes
            self.db.executemany(f"INSERT OR IGNORE INTO results VALUES ({marks})", values)
            inserted = self.db.total_changes - before
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return inserted

    def settings(self) -> list[dict]:
        """Every setting in the store: dicts with setting_id, name and definition."""
        out = []
        for sid, name, definition in self.db.execute(
                "SELECT setting_id, name, definition FROM settings ORDER BY created_at, setting_id"):
            out.append({"setting_id": sid, "name": name, "definition": json.loads(definition)})
        return out

    def rows(self, setting: str | None = None) -> list[dict]:
        """All result rows (or those of one setting_id), ordered by setting and seed."""
        query = f"SELECT {', '.join(COLUMN_NAMES)} FROM results"
        args = ()
        if setting is not None:
            query += " WHERE setting_id=?"
            args = (setting,)
        cur = self.db.execute(query + " ORDER BY setting_id, seed", args)
        return [dict(zip(COLUMN_NAMES, r)) for r in cur]

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
        """Every row as a pandas DataFrame (pandas is imported here; install it to use this)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_dataframe needs pandas: pip install pandas") from None
        return pd.DataFrame(self.rows(), columns=list(COLUMN_NAMES))


__all__ = ["Store", "setting_id", "COLUMN_NAMES", "SCHEMA_VERSION"]
