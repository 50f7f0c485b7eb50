"""Summaries of a study store: per setting, how often each structure was learned (with 95%
Wilson intervals), DeepFool radius quantiles, and Experiment II accuracies."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from ..experiments.plots import new_figure
from ..experiments.verdict import VERDICTS
from .store import Store

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal


def wilson_interval(k, n, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (95% by default): (low, high).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at k = 0 or n.
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
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class SettingSummary:
    """One setting of a store: counts and fractions per verdict (with Wilson intervals),
    radius quantiles (10%, 50%, 90% of the per-network median DeepFool radius), and for
    Experiment II the mean accuracy on C~ and C^ per interval."""

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


def summarize(store) -> list[SettingSummary]:
    """A :class:`SettingSummary` per setting of `store` (a path or an open :class:`Store`)."""
    if not isinstance(store, Store):
        with Store(store) as db:
            return summarize(db)
    out = []
    for s in store.settings():
        rows = store.rows(s["setting_id"])
        if not rows:
            continue
        n = len(rows)
        experiment = s["definition"].get("experiment")
        summ = SettingSummary(s["setting_id"], s["name"], experiment, n,
                              sum(bool(r["diverged"]) for r in rows),
                              wall_time=float(sum(r["wall_time"] or 0.0 for r in rows)))
        if experiment == "exp1":
            for v in VERDICTS:
                k = sum(r["verdict"] == v for r in rows)
                summ.counts[v] = k
                summ.fractions[v] = k / n
                summ.intervals[v] = wilson_interval(k, n)
        else:
            tables = [json.loads(r["metrics"]) for r in rows if r["metrics"]]
            if tables:
                summ.table1 = {"intervals": tables[0]["intervals"],
                               "tilde": np.mean([t["tilde"] for t in tables], axis=0).tolist(),
                               "hat": np.mean([t["hat"] for t in tables], axis=0).tolist()}
        radii = np.array([r["radius_median"] for r in rows if r["radius_median"] is not None], float)
        summ.radii = radii
        finite = radii[np.isfinite(radii)]
        if finite.size:
            summ.radius_quantiles = tuple(np.quantile(finite, [0.1, 0.5, 0.9]).tolist())
        out.append(summ)
    return out


def format_summary(summaries: list[SettingSummary]) -> str:
    """The summary as a text table: one line per setting."""
    head = (f"{'setting':<28} {'seeds':>6} {'div':>4}  {'original [95% CI]':>22}  {'false [95% CI]':>22}  "
            f"{'neither':>8}  {'radius q10/q50/q90':>26}")
    lines = [head, "-" * len(head)]
    names = [s.name for s in summaries]
    for s in summaries:
        # Settings that differ only in fields outside their name: tell them apart by id.
        label = s.name if names.count(s.name) == 1 else f"{s.name}#{s.setting_id[:6]}"
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
        q = s.radius_quantiles
        radius = " / ".join("-" if not np.isfinite(v) else f"{v:.2g}" for v in q)
        lines.append(f"{label[:28]:<28} {s.n:>6} {s.diverged:>4}  {verdicts}  {radius:>26}")
    return "\n".join(lines)


def plot_summary(summaries: list[SettingSummary]):
    """Two panels: verdict fractions per setting with 95% Wilson error bars (Experiment I),
    and histograms of the per-network median DeepFool radius. Returns a matplotlib Figure."""
    fig = new_figure(11, 4)
    ax1, ax2 = fig.subplots(1, 2)
    exp1_rows = [s for s in summaries if s.experiment == "exp1"]
    x = np.arange(len(exp1_rows))
    for j, v in enumerate(VERDICTS):
        frac = np.array([s.fractions[v] for s in exp1_rows])
        lo = np.array([s.intervals[v][0] for s in exp1_rows])
        hi = np.array([s.intervals[v][1] for s in exp1_rows])
        ax1.errorbar(x + (j - 1) * 0.2, frac, yerr=[frac - lo, hi - frac], fmt="o", capsize=3, label=v)
    ax1.set_xticks(x, [s.name for s in exp1_rows], rotation=30, ha="right", fontsize=8)
    ax1.set_ylabel("fraction of seeds")
    ax1.set_ylim(-0.05, 1.05)
    ax1.legend(fontsize=8)
    finite = [s.radii[np.isfinite(s.radii) & (s.radii > 0)] for s in summaries]
    values = np.concatenate(finite) if finite else np.zeros(0)
    if values.size:
        edges = np.geomspace(values.min(), values.max() * 1.0001, 31)
        for s, r in zip(summaries, finite):
            if r.size:
                ax2.hist(r, bins=edges, histtype="step", lw=1.4, label=s.name)
        ax2.set_xscale("log")
        ax2.legend(fontsize=8)
    ax2.set_xlabel("median DeepFool radius per network")
    ax2.set_ylabel("networks")
    return fig


__all__ = ["wilson_interval", "SettingSummary", "summarize", "format_summary", "plot_summary"]
