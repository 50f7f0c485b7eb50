"""Summaries of a study store: per setting, how often each structure was learned and how
often training diverged (with 95% Wilson intervals), DeepFool radius quantiles, and
Experiment II accuracies."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from ..experiments.plots import log_count_axes, new_figure
from ..experiments.verdict import VERDICTS
from .store import Store

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal


def wilson_interval(k, n, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (95% by default): (low, high).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at k = 0 or n:
    k = 0 gives a lower bound of exactly 0.0 and k = n an upper bound of exactly 1.0, and
    low <= k / n <= high always holds (so error bars drawn from it are never negative).
    n = 0 gives (0, 1).
    """
    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"k, n: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # The closed form is exact at k = 0 and k = n (0 and 1), but rounding leaves ~1e-17 there.
    low = 0.0 if k == 0 else min(p, max(0.0, centre - half))
    high = 1.0 if k == n else max(p, min(1.0, centre + half))
    return low, high


# What a seed of an Experiment I setting can end as: one of the verdicts, or a diverged
# training (NaN/inf weights), which is counted on its own rather than as "neither".
OUTCOMES = (*VERDICTS, "diverged")


@dataclass
class SettingSummary:
    """One setting of a store: counts and fractions per outcome (the verdicts and "diverged",
    with Wilson intervals; fractions of all `n` seeds, so they add up to 1), radius quantiles
    (10%, 50%, 90% of the per-network median DeepFool radius), and for Experiment II the mean
    accuracy on C~ and C^ per interval over the seeds that did not diverge."""

    setting_id: str
    name: str
    experiment: str
    n: int
    diverged: int
    counts: dict = field(default_factory=dict)
    fractions: dict = field(default_factory=dict)
    intervals: dict = field(default_factory=dict)
    radius_quantiles: tuple = (np.nan, np.nan, np.nan)
    radii: np.ndarray = field(default_factory=lambda: np.zeros(0))
    table1: dict | None = None
    wall_time: float = 0.0


class StudySummary(list):
    """The :class:`SettingSummary` of every setting (a list), and `skipped`: one line per
    part of the store that could not be summarised (e.g. rows whose setting is missing), so
    that nothing is dropped silently."""

    def __init__(self, summaries=(), skipped=()):
        super().__init__(summaries)
        self.skipped = list(skipped)


def _summarize_setting(setting: dict, rows: list[dict]) -> SettingSummary:
    n = len(rows)
    diverged = [bool(r["diverged"]) for r in rows]
    experiment = setting["definition"].get("experiment")
    summ = SettingSummary(setting["setting_id"], setting["name"], experiment, n, sum(diverged),
                          wall_time=float(sum(r["wall_time"] or 0.0 for r in rows)))
    if experiment == "exp1":
        for v in OUTCOMES:
            k = summ.diverged if v == "diverged" else \
                sum(r["verdict"] == v and not d for r, d in zip(rows, diverged))
            summ.counts[v] = k
            summ.fractions[v] = k / n
            summ.intervals[v] = wilson_interval(k, n)
    else:
        tables = [json.loads(r["metrics"]) for r, d in zip(rows, diverged) if r["metrics"] and not d]
        if tables:
            summ.table1 = {"intervals": tables[0]["intervals"],
                           "tilde": np.mean([t["tilde"] for t in tables], axis=0).tolist(),
                           "hat": np.mean([t["hat"] for t in tables], axis=0).tolist()}
    radii = np.array([r["radius_median"] for r, d in zip(rows, diverged)
                      if r["radius_median"] is not None and not d], float)
    summ.radii = radii
    finite = radii[np.isfinite(radii)]
    if finite.size:
        summ.radius_quantiles = tuple(np.quantile(finite, [0.1, 0.5, 0.9]).tolist())
    return summ


def summarize(store) -> StudySummary:
    """A :class:`SettingSummary` per setting of `store` (a path or an open :class:`Store`),
    in a :class:`StudySummary` whose `skipped` lists what could not be summarised. A path
    is opened read-only: summarising never writes to the store."""
    if not isinstance(store, Store):
        with Store(store, readonly=True) as db:
            return summarize(db)
    out = StudySummary(skipped=store.problems())
    for s in store.settings():
        rows = store.rows(s["setting_id"])
        if rows:
            out.append(_summarize_setting(s, rows))
    return out


def _label_width(labels) -> int:
    return max([12, *map(len, labels)])


def format_summary(summaries: list[SettingSummary]) -> str:
    """The summary as a text table: one line per setting, then one line per skipped part of
    the store (see :class:`StudySummary`)."""
    names = [s.name for s in summaries]
    # Settings that differ only in fields outside their name: tell them apart by id.
    labels = [s.name if names.count(s.name) == 1 else f"{s.name}#{s.setting_id[:6]}" for s in summaries]
    w = _label_width(labels)
    head = (f"{'setting':<{w}} {'seeds':>6}  {'original [95% CI]':>22}  {'false [95% CI]':>22}  "
            f"{'neither':>8}  {'diverged':>8}  {'radius q10/q50/q90':>26}")
    lines = [head, "-" * len(head)]
    for label, s in zip(labels, summaries):
        if s.experiment == "exp1":
            cells = []
            for v in ("original", "false"):
                lo, hi = s.intervals[v]
                cells.append(f"{s.fractions[v]:6.1%} [{lo:5.1%}, {hi:5.1%}]")
            verdicts = f"{cells[0]:>22}  {cells[1]:>22}  {s.fractions['neither']:>8.1%}"
        else:
            t = s.table1
            verdicts = (f"{'C~ ' + format(t['tilde'][0], '.1%') + ' / C^ ' + format(t['hat'][0], '.1%'):>22}"
                        f"  {'(first interval)':>22}  {'':>8}") if t else f"{'':>56}"
        diverged = f"{s.diverged / s.n:>8.1%}" if s.n else f"{'-':>8}"
        q = s.radius_quantiles
        radius = " / ".join("-" if not np.isfinite(v) else f"{v:.2g}" for v in q)
        lines.append(f"{label:<{w}} {s.n:>6}  {verdicts}  {diverged}  {radius:>26}")
    for problem in getattr(summaries, "skipped", ()):
        lines.append(f"skipped: {problem}")
    return "\n".join(lines)


def plot_summary(summaries: list[SettingSummary]):
    """Two panels: the fraction of seeds per outcome (verdict, or diverged when any seed
    diverged) per Experiment I setting with 95% Wilson intervals as error bars, and
    histograms of the per-network median DeepFool radius. Returns a matplotlib Figure."""
    fig = new_figure(11, 4.4)
    fig.suptitle("Seed study: which structure the networks learned, and how robust they are")
    ax1, ax2 = fig.subplots(1, 2)
    exp1_rows = [s for s in summaries if s.experiment == "exp1"]
    outcomes = OUTCOMES if any(s.diverged for s in exp1_rows) else VERDICTS
    x = np.arange(len(exp1_rows))
    offsets = np.linspace(-0.3, 0.3, len(outcomes))
    for dx, v in zip(offsets, outcomes):
        frac = np.array([s.fractions[v] for s in exp1_rows])
        lo = np.array([s.intervals[v][0] for s in exp1_rows])
        hi = np.array([s.intervals[v][1] for s in exp1_rows])
        ax1.errorbar(x + dx, frac, yerr=[frac - lo, hi - frac], fmt="o", capsize=3, label=v)
    ax1.set_xticks(x, [s.name for s in exp1_rows], rotation=30, ha="right", fontsize=8)
    ax1.set_xlim(-0.6, max(len(exp1_rows), 1) - 0.4)
    ax1.set_xlabel("setting (Experiment I)")
    ax1.set_ylabel("fraction of seeds")
    ax1.set_ylim(-0.05, 1.05)
    ax1.set_title("outcome per seed; error bars: 95% Wilson intervals", fontsize=10)
    if exp1_rows:
        ax1.legend(fontsize=8)
    else:
        ax1.text(0.5, 0.5, "no Experiment I settings", transform=ax1.transAxes, ha="center")
    finite = [s.radii[np.isfinite(s.radii) & (s.radii > 0)] for s in summaries]
    values = np.concatenate(finite) if finite else np.zeros(0)
    if values.size:
        edges = np.geomspace(values.min(), values.max() * 1.0001, 31)
        for s, r in zip(summaries, finite):
            if r.size:
                ax2.hist(r, bins=edges, histtype="step", lw=1.4, label=s.name)
        log_count_axes(ax2)
        ax2.legend(fontsize=8)
    else:
        ax2.text(0.5, 0.5, "no DeepFool radii stored", transform=ax2.transAxes, ha="center")
    ax2.set_title("DeepFool radius (median over a network's points)", fontsize=10)
    ax2.set_xlabel("median DeepFool radius ||r||_2 per network")
    ax2.set_ylabel("networks")
    return fig


__all__ = ["wilson_interval", "OUTCOMES", "SettingSummary", "StudySummary", "summarize", "format_summary",
           "plot_summary"]
