"""The seed-study runner: every (setting, seed) of a grid, in chunks of seeds, into a store.

Each chunk of seeds of one setting is one fused native training call followed by the
evaluation of every network (structure verdict or Table 1, DeepFool radii). A chunk's rows
are written in one transaction when it finishes; a rerun of the same study skips the seeds
already in the store. Chunks run in this process or, with ``scheduler=``/``workers=``, as
tasks on a Dask cluster whose workers run the native engine; the rows always go into the
store from this process.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

import numpy as np

from .. import _validate as V
from ..attacks import stability
from ..network import finite_networks
from ..training import ENGINES
from ..experiments.settings import PRESETS, Exp1Setting, Exp2Setting, preset
from .store import Store, setting_id

DEFAULT_CHUNK = 64


def setting_from_dict(d: dict):
    """The setting an ``as_dict()`` describes (the inverse of ``setting.as_dict()``)."""
    fields = {k: v for k, v in d.items() if k != "experiment"}
    kind = d.get("experiment")
    if kind == "exp1":
        return Exp1Setting(**fields)
    if kind == "exp2":
        return Exp2Setting(**fields)
    raise ValueError(f"setting: unknown experiment {kind!r} (expected 'exp1' or 'exp2')")


def as_settings(setting_or_grid) -> list:
    """A list of settings from a setting, a preset name, or an iterable of those."""
    if isinstance(setting_or_grid, (Exp1Setting, Exp2Setting)):
        return [setting_or_grid]
    if isinstance(setting_or_grid, str):
        return [preset(setting_or_grid)]
    if isinstance(setting_or_grid, dict):
        raise TypeError("setting_or_grid: a dict is ambiguous; use study.grid(base, {...}) or a list of settings")
    try:
        items = list(setting_or_grid)
    except TypeError:
        raise TypeError(f"setting_or_grid: expected a setting, a preset name {sorted(PRESETS)} or a "
                        f"list of them, got {type(setting_or_grid).__name__}") from None
    if not items:
        raise ValueError("setting_or_grid: no settings")
    out = [s for item in items for s in as_settings(item)]
    names = [s.name for s in out]
    ids = [setting_id(s.as_dict()) for s in out]
    if len(set(ids)) != len(ids):
        dup = next(n for n, i in zip(names, ids) if ids.count(i) > 1)
        raise ValueError(f"setting_or_grid: setting {dup!r} appears twice")
    return out


def seed_list(seeds) -> list[int]:
    """Seeds as a sorted list of distinct non-negative ints (an int n means 0..n-1)."""
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = range(V.integer(seeds, "seeds", minimum=1))
    try:
        values = [V.integer(s, "seeds", minimum=0, maximum=2**63 - 1) for s in seeds]
    except TypeError as exc:
        raise TypeError(f"seeds: expected an int or an iterable of ints ({exc})") from None
    if not values:
        raise ValueError("seeds: no seeds")
    if len(set(values)) != len(values):
        raise ValueError("seeds: repeated seeds")
    return sorted(values)


# ---- one chunk: train, evaluate, rows --------------------------------------------------
def run_chunk(setting_dict: dict, seeds: list[int], engine: str = "native", threads: int | None = None,
              radius_points: int | None = None, version: str = "", progress=None) -> list[dict]:
    """Train and evaluate the networks of `seeds` for one setting; one row dict per seed.

    A top-level function of plain arguments, so that Dask can ship it to workers. Networks
    that diverge (NaN/inf weights) get diverged=1 and NaN scores instead of an error.
    """
    setting = setting_from_dict(setting_dict)
    sid = setting_id(setting_dict)
    start = time.perf_counter()
    # progress(fraction of the chunk's training done), called by the engine every few seconds
    on_train = None if progress is None else (lambda done, total: progress(done / total if total else 1.0))
    fit = setting.train(seeds, threads=threads, progress=on_train or False, engine=engine)
    net = setting.network()
    ok = finite_networks(fit.params)
    good = fit.params.select(ok) if not ok.all() else fit.params
    S = len(seeds)
    scores = {k: np.full(S, np.nan) for k in ("agreement_delta", "agreement_0", "ones_0",
                                              "radius_median", "radius_min", "radius_flipped")}
    verdict = np.full(S, "neither" if setting.experiment == "exp1" else None, dtype=object)
    metrics = [None] * S
    if ok.any():
        if setting.experiment == "exp1":
            v = setting.evaluate(net, good, threads=threads)
            verdict[ok] = v.verdict
            for k in ("agreement_delta", "agreement_0", "ones_0"):
                scores[k][ok] = getattr(v, k)
        else:
            table = setting.evaluate(net, good, threads=threads)
            idx = np.flatnonzero(ok)
            for j, s in enumerate(idx):
                metrics[s] = {"intervals": [list(iv) for iv in table.intervals],
                              "tilde": table.tilde[j].tolist(), "hat": table.hat[j].tolist()}
        if radius_points != 0:
            summary = stability(net, good, setting.attack_points(radius_points), threads=threads)
            scores["radius_median"][ok] = summary.median_radius
            scores["radius_min"][ok] = summary.min_radius
            scores["radius_flipped"][ok] = summary.flipped_fraction
    wall = time.perf_counter() - start
    rows = []
    for i, seed in enumerate(seeds):
        rows.append({
            "setting_id": sid, "seed": int(seed), "name": setting.name, "experiment": setting.experiment,
            "final_loss": fit.final_loss[i], "train_accuracy": fit.accuracy[i, -1] if fit.accuracy.size else np.nan,
            "diverged": bool(fit.diverged[i]), "verdict": verdict[i],
            **{k: v[i] for k, v in scores.items()},
            "metrics": None if metrics[i] is None else json.dumps(metrics[i]),
            "wall_time": wall / S, "engine": engine, "version": version, "finished_at": time.time(),
        })
    return rows


# ---- the study --------------------------------------------------------------------------
@dataclass
class StudyReport:
    """What :func:`run` did: the store's path, rows written now, seeds skipped (already in
    the store), and the wall time."""

    store: str
    written: int
    skipped: int
    wall_time: float
    settings: list

    def __str__(self) -> str:
        return (f"{self.written} rows written, {self.skipped} already in {self.store}, "
                f"{self.wall_time:.1f} s")


class StudyProgress:
    """One line on stderr: seeds done / total, networks per second, ETA."""

    def __init__(self, total: int, stream=None, enabled: bool = True):
        self.total, self.done = total, 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.start = time.perf_counter()

    def update(self, done: float, label: str = "") -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        eta_text = "done" if done >= self.total else ("ETA ?" if eta == float("inf") else f"ETA {eta:.0f}s")
        frac = done / self.total if self.total else 1.0
        bar = "#" * int(round(20 * frac)) + "-" * (20 - int(round(20 * frac)))
        self.stream.write(f"\rstudy {label:<12} [{bar}] {int(done)}/{self.total} seeds "
                          f"{rate:8.2f} nets/s {eta_text}   ")
        if done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def run(setting_or_grid, seeds, store, *, engine: str = "native", threads: int | None = None,
        chunk_size: int | None = None, radius_points: int | None = None, scheduler=None,
        workers: int | None = None, progress: bool = True) -> StudyReport:
    """Run a seed study: every (setting, seed), persisted to an SQLite store as it goes.

    Parameters
    ----------
    setting_or_grid : a setting (:func:`falsestruct_fast.experiments.preset`), a preset name,
        or a list of settings (e.g. from :func:`grid` or :func:`load_toml`).
    seeds : int n (seeds 0..n-1) or an iterable of distinct ints.
    store : path of the SQLite file (created if missing). Seeds already stored for a setting
        are skipped, so rerunning an interrupted study resumes it.
    engine : "native" (CPU) or "cuda" (training on the GPU; evaluation on the CPU).
    threads : native threads per chunk (default: all cores).
    chunk_size : seeds per native call (default 64): the unit of work, of persistence and of
        Dask tasks.
    radius_points : points per network for DeepFool radii (Experiment I: default all 231 grid
        points of C_delta in S_eps; Experiment II: 32 images of C~); 0 skips DeepFool.
    scheduler : Dask scheduler address ("tcp://host:8786") or a ``distributed.Client``: run
        chunks as tasks on that cluster.
    workers : without `scheduler`, run on a local Dask cluster of this many worker processes.
    progress : a progress line on stderr (seeds done, networks/s, ETA).

    Returns
    -------
    StudyReport. Every argument is checked before any work starts.
    """
    from .. import __version__
    settings = as_settings(setting_or_grid)
    seeds = seed_list(seeds)
    V.option(engine, "engine", ENGINES)
    chunk_size = V.integer(chunk_size if chunk_size is not None else DEFAULT_CHUNK, "chunk_size", minimum=1)
    if radius_points is not None:
        radius_points = V.integer(radius_points, "radius_points", minimum=0)
    if threads is not None:
        threads = V.integer(threads, "threads", minimum=1)
    if workers is not None:
        workers = V.integer(workers, "workers", minimum=1)
    if engine == "cuda":
        from .._native_loader import _cuda
        if _cuda is None:
            raise RuntimeError("engine: 'cuda' is not available (built without a CUDA compiler)")
    start = time.perf_counter()
    with Store(store) as db:
        tasks, skipped = [], 0
        for s in settings:
            d = s.as_dict()
            sid = setting_id(d)
            db.add_setting(sid, d, __version__)
            done = db.done_seeds(sid)
            todo = [x for x in seeds if x not in done]
            skipped += len(seeds) - len(todo)
            tasks += [(s.name, d, todo[i:i + chunk_size]) for i in range(0, len(todo), chunk_size)]
        total = sum(len(t[2]) for t in tasks)
        bar = StudyProgress(total, enabled=progress and total > 0)
        options = dict(engine=engine, threads=threads, radius_points=radius_points, version=__version__)
        if scheduler is None and workers is None:
            written = _run_local(tasks, options, db, bar)
        else:
            written = _run_dask(tasks, options, db, bar, scheduler, workers)
    return StudyReport(str(store), written, skipped, time.perf_counter() - start, [s.name for s in settings])


def _run_local(tasks, options, db: Store, bar: StudyProgress) -> int:
    written = done = 0
    for name, d, chunk in tasks:
        bar.update(done, name)
        within = (lambda frac, done=done, n=len(chunk), name=name: bar.update(done + frac * n, name))
        written += db.write_rows(run_chunk(d, chunk, progress=within, **options))
        done += len(chunk)
        bar.update(done, name)
    return written


def _run_dask(tasks, options, db: Store, bar: StudyProgress, scheduler, workers) -> int:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ImportError('scheduler/workers need Dask: pip install "falsestruct_fast[dask]"') from None
    cluster = None
    if scheduler is None:
        import os
        per_worker = max(1, (os.cpu_count() or 1) // workers)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
        if options["threads"] is None:
            options = dict(options, threads=per_worker)
    elif isinstance(scheduler, str):
        client = Client(scheduler)
    else:
        client = scheduler
    try:
        futures = {client.submit(run_chunk, d, chunk, pure=False, **options): (name, len(chunk))
                   for name, d, chunk in tasks}
        written = done = 0
        for future in as_completed(futures):
            name, n = futures[future]
            written += db.write_rows(future.result())
            done += n
            bar.update(done, name)
        return written
    finally:
        if client is not scheduler:
            client.close()
        if cluster is not None:
            cluster.close()


__all__ = ["run", "run_chunk", "StudyReport", "setting_from_dict", "as_settings", "seed_list"]
