"""The seed-study runner: every (setting, seed) of a grid, in chunks of seeds, into a store.

Each chunk of seeds of one setting is one fused native training call followed by the
evaluation of every network (structure verdict or Table 1, DeepFool radii). A chunk's rows
are written in one transaction when it finishes; a rerun of the same study skips the seeds
already in the store. Before training a chunk the runner claims its seeds in the store (a
lease per seed), so several processes on one store share the work; a study whose every seed
is stored only reads the store. Chunks run in this process or, with ``scheduler=``/
``workers=``, as tasks on a Dask cluster whose workers run the native engine; the rows always
go into the store from this process.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _validate as V
from ..attacks import stability
from ..memory import available_bytes, estimate_train_bytes
from ..training import ENGINES
from ..experiments.settings import PRESETS, Exp1Setting, Exp2Setting, preset, with_label
from .store import Store, setting_id

DEFAULT_CHUNK = 64
# engine="cuda": seeds per chunk by default, enough one-block-per-network launches to fill a
# large GPU (132 SMs x several blocks); fewer when memory says so (chunk_size_for).
DEFAULT_CUDA_CHUNK = 1024
# Options of run() that change a row's numbers; a stored definition records them (when they
# differ from the default), so rows evaluated one way are never reused for another. The CPU
# engines (native, numba) share rows; the GPU's rows (engine="cuda": other rounding of sums)
# are a setting of their own, so CPU and GPU results are never mixed, and stores written
# before the engine was recorded keep their rows as CPU rows.
EVALUATION_KEYS = ("radius_points", "engine")
# Seconds between looks at the store while other processes hold the only seeds left.
POLL_SECONDS = 1.0


def setting_from_dict(d: dict):
    """The setting an ``as_dict()`` describes (the inverse of ``setting.as_dict()``; the
    evaluation options of a stored definition, such as radius_points, are ignored)."""
    fields = {k: v for k, v in d.items() if k != "experiment" and k not in EVALUATION_KEYS}
    kind = d.get("experiment")
    if kind == "exp1":
        return Exp1Setting(**fields)
    if kind == "exp2":
        return Exp2Setting(**fields)
    raise ValueError(f"setting: unknown experiment {kind!r} (expected 'exp1' or 'exp2')")


def default_radius_points(setting) -> int:
    """DeepFool points per network when radius_points is None: every point of C_delta in
    S_eps (Experiment I, 231 for the paper's constants) or 32 images (Experiment II)."""
    return len(setting.attack_points()) if setting.experiment == "exp1" else 32


def study_definition(setting, radius_points: int | None = None, engine: str = "native") -> dict:
    """What identifies a setting's rows in a store: ``setting.as_dict()`` plus radius_points
    when it differs from the default (the name then says so, e.g. ``psi3[radius_points=8]``)
    and ``engine="cuda"`` for rows computed on the GPU (named e.g. ``psi3[engine=cuda]``)."""
    d = setting.as_dict()
    if radius_points is not None and radius_points != default_radius_points(setting) and not (
            setting.experiment == "exp1" and radius_points > default_radius_points(setting)):
        d["radius_points"] = int(radius_points)
        d["name"] = with_label(d["name"], f"radius_points={int(radius_points)}")
    if engine == "cuda":
        d["engine"] = "cuda"
        d["name"] = with_label(d["name"], "engine=cuda")
    return d


def _check_definition_engine(setting_dict: dict, engine: str) -> None:
    """ValueError when rows of a GPU definition would be computed on a CPU engine or the
    other way round (they would be stored under the wrong identity)."""
    if (setting_dict.get("engine") == "cuda") != (engine == "cuda"):
        where = "the GPU" if setting_dict.get("engine") == "cuda" else "a CPU engine"
        raise ValueError(f"engine: {engine!r} cannot compute rows of a setting defined for {where} "
                         f"({setting_dict.get('name')!r}); build it with study_definition(..., engine={engine!r})")


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

    `setting_dict` is a :func:`study_definition` (or ``setting.as_dict()``); its
    radius_points, when present, wins over the argument. A top-level function of plain
    arguments, so that Dask can ship it to workers. A network that diverges (NaN/inf loss or
    weights) gets diverged=1, verdict "diverged" and no numbers (final_loss, accuracy, scores
    and radii NULL) instead of an error: nothing in its row looks like a result.
    """
    setting = setting_from_dict(setting_dict)
    if "radius_points" not in setting_dict and radius_points is not None:
        setting_dict = dict(study_definition(setting, radius_points, setting_dict.get("engine", "native")),
                            name=setting_dict.get("name", setting.name))
        setting = setting_from_dict(setting_dict)
    _check_definition_engine(setting_dict, engine)
    radius_points = setting_dict.get("radius_points")
    sid = setting_id(setting_dict)
    start = time.perf_counter()
    # progress(fraction of the chunk's training done), called by the engine every few seconds
    on_train = None if progress is None else (lambda done, total: progress(done / total if total else 1.0))
    fit = setting.train(seeds, threads=threads, progress=on_train or False, engine=engine)
    net = setting.network()
    evaluate_on = engine
    diverged = np.asarray(fit.diverged, bool)
    ok = ~diverged
    good = fit.params.select(ok) if diverged.any() else fit.params
    S = len(seeds)
    scores = {k: np.full(S, np.nan) for k in ("agreement_delta", "agreement_0", "ones_0",
                                              "radius_median", "radius_min", "radius_flipped")}
    verdict = np.full(S, None, dtype=object)
    verdict[diverged] = "diverged"
    metrics = [None] * S
    if ok.any():
        if setting.experiment == "exp1":
            v = setting.evaluate(net, good, threads=threads, engine=evaluate_on)
            verdict[ok] = v.verdict
            for k in ("agreement_delta", "agreement_0", "ones_0"):
                scores[k][ok] = getattr(v, k)
        else:
            table = setting.evaluate(net, good, threads=threads, engine=evaluate_on)
            for j, s in enumerate(np.flatnonzero(ok)):
                metrics[s] = {"intervals": [list(iv) for iv in table.intervals],
                              "tilde": table.tilde[j].tolist(), "hat": table.hat[j].tolist()}
        if radius_points != 0:
            summary = stability(net, good, setting.attack_points(radius_points), threads=threads,
                                engine=evaluate_on)
            scores["radius_median"][ok] = summary.median_radius
            scores["radius_min"][ok] = summary.min_radius
            scores["radius_flipped"][ok] = summary.flipped_fraction
    final_loss = np.where(ok, fit.final_loss, np.nan)
    accuracy = np.where(ok, fit.accuracy[:, -1], np.nan) if fit.accuracy.size else np.full(S, np.nan)
    wall = time.perf_counter() - start
    rows = []
    for i, seed in enumerate(seeds):
        rows.append({
            "setting_id": sid, "seed": int(seed), "name": setting.name, "experiment": setting.experiment,
            "final_loss": final_loss[i], "train_accuracy": accuracy[i], "diverged": bool(diverged[i]),
            "verdict": verdict[i], **{k: v[i] for k, v in scores.items()},
            "metrics": None if metrics[i] is None else json.dumps(metrics[i]),
            "wall_time": wall / S, "engine": engine, "version": version, "finished_at": time.time(),
        })
    return rows


# ---- cost and memory of a setting ---------------------------------------------------------
# Per training step and network, on top of the batch's multiply-adds: the Adam update (a few
# operations per parameter) and a fixed cost of the step itself, in multiply-add units;
# measured on the CPU engine with psi1 (batch 7) against psi3 (batch 50).
STEP_FIXED_WORK = 10000
ADAM_WORK_PER_PARAM = 4
# A convolution's multiply-adds run about 3-7x faster than those of Experiment I's narrow
# dense layers (long SIMD lanes, cached tiles): measured with exp2 against psi3.
CONV_WORK_WEIGHT = 0.3
# DeepFool per attacked point: iterations assumed (each a forward and a gradient per logit)
# and a fixed cost, which dominates for Experiment I's small MLP (measured with psi1).
DEEPFOOL_ITERATIONS = 10
DEEPFOOL_FIXED_WORK = 250_000


def multiply_adds_per_sample(net, conv_weight: float = 1.0) -> float:
    """Multiply-adds of one forward pass of one sample: a dense layer's weights, a conv
    layer's kernel times its output positions (times `conv_weight`)."""
    if not hasattr(net, "layers"):
        return float(net.n_params)
    total = 0.0
    c = net.input_shape[2]
    for layer, out in zip(net.layers, net.layer_shapes()):
        if hasattr(layer, "kernel_size"):
            total += conv_weight * out[0] * out[1] * layer.kernel_size ** 2 * c * layer.filters
        elif hasattr(layer, "units"):
            total += c * layer.units
        c = out[-1]
    return total


def _training_rows(setting) -> int:
    return setting.r if setting.experiment == "exp1" else 60


def work_per_seed(setting, radius_points: int | None = None) -> float:
    """The cost of one seed of `setting`, in multiply-adds: epochs x steps per epoch x (3
    forward passes of a batch + the Adam update + a fixed cost per step), plus the evaluation
    (verdict or Table 1 passes, DeepFool radii). A relative measure: a paper CNN step counts
    about 10^4 times an Experiment I MLP step, as on the CPU engine."""
    net = setting.network()
    macs = multiply_adds_per_sample(net, CONV_WORK_WEIGHT)
    rows = _training_rows(setting)
    steps = setting.epochs * math.ceil(rows / setting.batch_size)
    step = 3 * setting.batch_size * macs + ADAM_WORK_PER_PARAM * net.n_params + STEP_FIXED_WORK
    if setting.experiment == "exp1":
        evaluation = 2 * 501 * macs
    else:
        evaluation = 2 * len(setting.intervals) * setting.test_size * macs
    points = default_radius_points(setting) if radius_points is None else radius_points
    evaluation += points * (DEEPFOOL_ITERATIONS * 2 * macs + DEEPFOOL_FIXED_WORK)
    return float(steps * step + evaluation)


def chunk_size_for(setting, chunk_size: int, explicit: bool, threads: int | None) -> int:
    """Seeds per chunk for `setting`: `chunk_size`, or fewer so that one chunk's training
    needs at most half of the memory available now (:func:`memory.estimate_train_bytes`,
    plus each network's own training set in Experiment I). An explicit `chunk_size` that
    does not fit, or a single network that does not, raises MemoryError before any work."""
    net = setting.network()
    rows = _training_rows(setting)
    itemsize = np.dtype(setting.dtype).itemsize
    per_network_data = rows * (net.n_inputs + 1) * itemsize if setting.experiment == "exp1" else 0

    def need(n):
        return estimate_train_bytes(net, n, rows, setting.batch_size, setting.dtype, threads) + n * per_network_data

    budget = available_bytes() // 2
    if need(chunk_size) <= budget:
        return chunk_size
    fits = 0
    lo, hi = 1, chunk_size
    while lo <= hi:
        mid = (lo + hi) // 2
        if need(mid) <= budget:
            fits, lo = mid, mid + 1
        else:
            hi = mid - 1
    if explicit or fits == 0:
        what = f"chunk_size: {chunk_size} networks" if explicit else "one network"
        raise MemoryError(f"{what} of {setting.name} need about {need(max(1, chunk_size if explicit else 1)) / 1e9:.3g} GB "
                          f"to train, more than half of the {budget * 2 / 1e9:.3g} GB available"
                          + (f"; use chunk_size <= {fits}" if fits else ""))
    return fits


# ---- the study --------------------------------------------------------------------------
@dataclass
class StudyReport:
    """What :func:`run` did: the store's path, rows written by this call, seeds skipped
    (already in the store when it started), the wall time, the settings' names, and rows
    that other processes working on the same store wrote meanwhile."""

    store: str
    written: int
    skipped: int
    wall_time: float
    settings: list
    by_others: int = 0

    def __str__(self) -> str:
        others = f", {self.by_others} written by other processes" if self.by_others else ""
        return (f"{self.written} rows written, {self.skipped} already in {self.store}{others}, "
                f"{self.wall_time:.1f} s")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


class StudyProgress:
    """One line on stderr: the whole study's progress (by work, so that cheap and expensive
    settings count for what they cost), its seeds done / total, networks per second and an
    ETA from the work left; then the current setting's label and its seeds done / total.

    `total_work` is the sum of :func:`work_per_seed` over the seeds to train. The final line
    is written once, by :meth:`finish`.
    """

    def __init__(self, total_work: float, total_seeds: int, stream=None, enabled: bool = True,
                 interval: float = 0.2):
        self.total_work, self.total_seeds = float(total_work), int(total_seeds)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.interval = interval
        self.start = time.perf_counter()
        self.work = self.seeds = 0.0
        self.label, self.label_done, self.label_total = "", 0, 0
        self._last = -math.inf
        self._width = 0
        self.finished = False

    def update(self, work: float, seeds: float, label: str = "", label_done: float = 0,
               label_total: int = 0) -> None:
        """Work and seeds done so far (by anyone, since the start), and the current setting."""
        self.work, self.seeds = float(work), float(seeds)
        self.label, self.label_done, self.label_total = label, label_done, label_total
        now = time.perf_counter()
        if self.enabled and not self.finished and now - self._last >= self.interval:
            self._last = now
            self._write(self.line(now - self.start))

    def line(self, elapsed: float, final: bool = False) -> str:
        frac = min(1.0, self.work / self.total_work) if self.total_work > 0 else 1.0
        rate = self.seeds / elapsed if elapsed > 0 else 0.0
        if final:
            eta = f"done in {_duration(elapsed)}"
        elif frac <= 0:
            eta = "ETA ?"
        else:
            eta = f"ETA {_duration(elapsed * (1 - frac) / frac)}"
        filled = int(20 * frac)
        text = (f"study [{'#' * filled}{'-' * (20 - filled)}] {frac:4.0%} {int(self.seeds)}/{self.total_seeds} "
                f"seeds {rate:.3g} nets/s {eta}")
        if self.label and not final:
            text += f" | {self.label[:40]} {int(self.label_done)}/{self.label_total}"
        return text

    def _write(self, text: str, end: str = "") -> None:
        pad = " " * max(0, self._width - len(text))
        self._width = len(text)
        self.stream.write(f"\r{text}{pad}{end}")
        self.stream.flush()

    def finish(self) -> None:
        """Writes the final line (once) and ends it with a newline."""
        if self.enabled and not self.finished:
            self._write(self.line(time.perf_counter() - self.start, final=True), "\n")
        self.finished = True


@dataclass
class _Planned:
    """One setting of a study: its stored definition, id, seeds to train, chunk size and
    the work of one seed."""

    definition: dict
    sid: str
    todo: list
    chunk_size: int
    work: float

    @property
    def name(self) -> str:
        return self.definition["name"]


class _WorkQueue:
    """Hands out chunks of seeds, claimed in the store (leases) just before they are trained,
    so that other processes on the same store get other seeds. Seeds stored by another
    process meanwhile count as done; seeds another live process holds are looked at again
    (every `poll` s) until they are stored or their lease is free."""

    def __init__(self, db: Store, plan: list[_Planned], bar: StudyProgress, poll: float = POLL_SECONDS):
        self.db, self.plan, self.bar, self.poll = db, plan, bar, poll
        self.pending = [list(p.todo) for p in plan]
        self.waiting = [[] for _ in plan]
        self.work = self.seeds = 0.0
        self.label_done = [0] * len(plan)
        self.by_others = 0
        self._rechecked = time.monotonic()

    def done(self, i: int, n: int, label: bool = True) -> None:
        """`n` seeds of setting `i` are stored (by this process or another)."""
        self.work += n * self.plan[i].work
        self.seeds += n
        self.label_done[i] += n
        if label:
            self.show(i)

    def show(self, i: int, extra_work: float = 0.0, extra_seeds: float = 0.0) -> None:
        p = self.plan[i]
        self.bar.update(self.work + extra_work, self.seeds + extra_seeds, p.name,
                        self.label_done[i] + extra_seeds, len(p.todo))

    @property
    def finished(self) -> bool:
        return not any(self.pending) and not any(self.waiting)

    def next_chunk(self, block: bool = True):
        """(setting index, seeds) of a newly claimed chunk; None when every seed is stored, or
        (with block=False) when nothing can be claimed now."""
        while True:
            for i, p in enumerate(self.plan):
                while self.pending[i]:
                    claimed, held, examined = self.db.claim(p.sid, self.pending[i], p.chunk_size)
                    self.pending[i] = self.pending[i][examined:]
                    self.waiting[i] += held
                    stored = examined - len(claimed) - len(held)
                    if stored:
                        self.by_others += stored
                        self.done(i, stored)
                    if claimed:
                        return i, claimed
            if self.finished:
                return None
            wait = self.poll - (time.monotonic() - self._rechecked)
            if wait > 0:
                if not block:
                    return None
                time.sleep(wait)
            self._rechecked = time.monotonic()
            self.pending, self.waiting = self.waiting, [[] for _ in self.plan]


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
        are skipped, so rerunning an interrupted study resumes it; a study with nothing left
        to train only reads the store (which may then be read-only). Several processes may
        run studies on one store at once: each claims a chunk's seeds before training them,
        and waits at the end for seeds the others hold.
    engine : "native" (CPU), "numba" (CPU, the Numba kernels) or "cuda" (training and
        evaluation on the GPU; its rows are stored as a setting of their own, named e.g.
        ``psi3[engine=cuda]``, so CPU and GPU rows never mix; native and numba share rows).
    threads : native threads per chunk (default: all cores).
    chunk_size : seeds per native call (default 64, with engine="cuda" 1024; fewer when they
        would need more than half of the available memory): the unit of work, of persistence, of leases and
        of Dask tasks.
    radius_points : points per network for DeepFool radii (Experiment I: default all 231 grid
        points of C_delta in S_eps; Experiment II: 32 images of C~); 0 skips DeepFool. Any
        other value is part of the setting's identity in the store (named e.g.
        ``psi3[radius_points=8]``), so its rows never mix with the default's.
    scheduler : Dask scheduler address ("tcp://host:8786") or a ``distributed.Client``: run
        chunks as tasks on that cluster.
    workers : without `scheduler`, run on a local Dask cluster of this many worker processes.
    progress : a progress line on stderr (work and seeds done, networks/s, ETA, the current
        setting).

    Returns
    -------
    StudyReport. Every argument is checked, and the store opened and its schema checked,
    before any work starts; store failures raise :class:`StoreError` (a ValueError).
    """
    from .. import __version__
    settings = as_settings(setting_or_grid)
    seeds = seed_list(seeds)
    V.option(engine, "engine", ENGINES)
    explicit_chunk = chunk_size is not None
    default_chunk = DEFAULT_CUDA_CHUNK if engine == "cuda" else DEFAULT_CHUNK
    chunk_size = V.integer(chunk_size if explicit_chunk else default_chunk, "chunk_size", minimum=1)
    if radius_points is not None:
        radius_points = V.integer(radius_points, "radius_points", minimum=0)
    if threads is not None:
        threads = V.integer(threads, "threads", minimum=1)
    if workers is not None:
        workers = V.integer(workers, "workers", minimum=1)
    if engine == "cuda":
        from ..engines import get
        get("cuda").require()  # RuntimeError without the CUDA build, a GPU or CuPy
    start = time.perf_counter()
    definitions = [study_definition(s, radius_points, engine) for s in settings]
    ids = [setting_id(d) for d in definitions]
    names = [d["name"] for d in definitions]
    path = Path(store)
    if path.is_file():
        # Nothing to train: read only, so that a finished study on a read-only file or
        # directory still runs (and summarises).
        with Store(path, readonly=True) as db:
            skipped = sum(len(db.done_seeds(sid).intersection(seeds)) for sid in ids)
        if skipped == len(ids) * len(seeds):
            return StudyReport(str(store), 0, skipped, time.perf_counter() - start, names)
    chunks = [chunk_size_for(s, chunk_size, explicit_chunk, threads) for s in settings]
    with Store(path) as db:
        plan, skipped = [], 0
        for s, d, sid, chunk in zip(settings, definitions, ids, chunks):
            db.add_setting(sid, d, __version__)
            done = db.done_seeds(sid)
            todo = [x for x in seeds if x not in done]
            skipped += len(seeds) - len(todo)
            if todo:
                plan.append(_Planned(d, sid, todo, chunk, work_per_seed(s, d.get("radius_points"))))
        total = sum(len(p.todo) for p in plan)
        bar = StudyProgress(sum(p.work * len(p.todo) for p in plan), total, enabled=progress and total > 0)
        queue = _WorkQueue(db, plan, bar)
        options = dict(engine=engine, threads=threads, version=__version__)
        db.start_heartbeat()
        try:
            if scheduler is None and workers is None:
                written = _run_local(queue, options)
            else:
                written = _run_dask(queue, options, scheduler, workers)
        finally:
            db.stop_heartbeat()
        bar.finish()
    return StudyReport(str(store), written, skipped, time.perf_counter() - start, names, queue.by_others)


def _run_local(queue: _WorkQueue, options) -> int:
    written = 0
    while (claim := queue.next_chunk()) is not None:
        i, chunk = claim
        p = queue.plan[i]
        queue.show(i)
        within = (lambda frac, i=i, n=len(chunk), w=p.work: queue.show(i, frac * n * w, frac * n))
        written += queue.db.write_rows(run_chunk(p.definition, chunk, progress=within, **options))
        queue.done(i, len(chunk))
    return written


def _run_dask(queue: _WorkQueue, options, scheduler, workers) -> int:
    try:
        from dask.distributed import Client, LocalCluster, wait
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
        # Chunks are claimed as workers free up (two per worker in flight), so that other
        # clients on the same store can claim the rest.
        in_flight = 2 * max(1, len(client.scheduler_info().get("workers", {})) or workers or 1)
        futures = {}
        written = 0
        while True:
            while len(futures) < in_flight:
                claim = queue.next_chunk(block=not futures)
                if claim is None:
                    break
                i, chunk = claim
                futures[client.submit(run_chunk, queue.plan[i].definition, chunk, pure=False, **options)] = (i, len(chunk))
            if not futures:
                return written
            finished, _ = wait(list(futures), timeout=None if queue.finished else POLL_SECONDS,
                               return_when="FIRST_COMPLETED")
            for future in finished:
                i, n = futures.pop(future)
                written += queue.db.write_rows(future.result())
                queue.done(i, n)
    finally:
        if client is not scheduler:
            client.close()
        if cluster is not None:
            cluster.close()


__all__ = ["run", "run_chunk", "StudyReport", "StudyProgress", "setting_from_dict", "study_definition",
           "as_settings", "seed_list", "work_per_seed", "chunk_size_for", "multiply_adds_per_sample"]
