"""The paper's figures, drawn with matplotlib (``pip install "falsestruct_fast[plots]"``).

Every function returns a ``matplotlib.figure.Figure`` (made without pyplot, so nothing opens a
window); save it with ``fig.savefig(path)``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..network import Network, predict
from . import exp1, exp2


PLOTS_EXTRA_HINT = 'plots need matplotlib: pip install "falsestruct_fast[plots]"'


def require_matplotlib() -> None:
    """Raise an ImportError naming the [plots] extra when matplotlib cannot be imported, so
    that a command can refuse before it does any work."""
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise ImportError(PLOTS_EXTRA_HINT) from None


def new_figure(width: float, height: float):
    """A matplotlib Figure (no pyplot), or an ImportError that names the [plots] extra."""
    require_matplotlib()
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), layout="constrained")


def log_count_axes(ax) -> None:
    """After drawing histograms: a log x axis labelled in plain numbers at powers of ten, or
    also at 2 and 5 times them when the data span less than two decades (matplotlib's own
    minor labels overlap there), and whole-number counts on y."""
    from matplotlib import ticker
    ax.set_xscale("log")
    lo, hi = ax.dataLim.intervalx
    subs = (1.0, 2.0, 5.0) if hi < 100 * lo else (1.0,)
    ax.xaxis.set_major_locator(ticker.LogLocator(subs=subs))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))


def figure2(net: Network, params, titles: Sequence[str] | None = None, n: int = exp1.N_EVAL,
            delta: float = exp1.DELTA, a: int = exp1.A, K: int = exp1.K, eps: float = exp1.EPS):
    """Figure 2: f_a(t) and the prediction round(sigmoid(Psi(x))) on C_0 (top row) and C_delta
    (bottom row), one column per network of `params` (S networks of an Experiment I MLP).

    titles : one per network (default "net s"). The stable region S_eps (where the structure
    verdicts are taken) is shaded grey and named in the legend below the panels.
    """
    S = params.n_networks if hasattr(params, "n_networks") else len(params[0])
    titles = list(titles) if titles is not None else [f"net {s}" for s in range(S)]
    if len(titles) != S:
        raise ValueError(f"titles: {len(titles)} titles for {S} networks")
    X0, labels = exp1.evaluation_set(n, 0.0, a, K, dtype=params[0].dtype)
    Xd, _ = exp1.evaluation_set(n, delta, a, K, dtype=params[0].dtype)
    preds = {"C_0": predict(net, params, X0), "C_delta": predict(net, params, Xd)}
    t = X0[:, 0].astype(np.float64)
    fig = new_figure(max(2.6 * S + 0.6, 3.6), 4.8)
    axes = fig.subplots(2, S, squeeze=False, sharex=True, sharey=True)
    for row, (set_name, pred) in enumerate(preds.items()):
        for s in range(S):
            ax = axes[row, s]
            for lo, hi in exp1.stable_intervals(a, K, eps):
                band = ax.axvspan(lo, hi, color="0.92", lw=0)
            truth, = ax.plot(t, labels, color="0.4", lw=1.0)
            network, = ax.plot(t, pred[s], color="C3", lw=1.0, ls="--")
            ax.set_ylim(-0.15, 1.15)
            if row == 0:
                ax.set_title(titles[s], fontsize=10)
            if s == 0:
                ax.set_ylabel(set_name)
            if row == 1:
                ax.set_xlabel("x1")
    fig.legend([truth, network, band],
               ["f_a (the true label)", "network: round(sigmoid(Psi(x)))",
                f"grey: S_eps, x1 at least eps = {eps:g}\nfrom a jump of f_a (verdicts use these)"],
               loc="outside lower center", ncols=3 if S >= 3 else 1, fontsize=8, frameon=False)
    return fig


def figure3(net: Network, params, X, network: int = 0, horizontal_label: int = exp2.HORIZONTAL_LABEL,
            columns: int = 4):
    """Figure 3: stripe images with network `network`'s label ("horizontal"/"vertical"),
    each framed so that one can see where an image ends.

    X : (N, 32, 32, 1) images, e.g. four from C~ and four from C^.
    """
    X = np.asarray(X)
    labels = predict(net, params, X)[network]
    names = {horizontal_label: "horizontal", 1 - horizontal_label: "vertical"}
    rows = -(-len(X) // columns)
    fig = new_figure(2.0 * columns, 2.2 * rows)
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(X):
            ax.set_axis_off()
            continue
        ax.imshow(X[i, ..., 0], cmap="gray", vmin=-0.01, vmax=1.01)
        ax.set_title(f"Phi(x{i + 1}) = {names[int(labels[i])]}", fontsize=9)
        # A frame instead of axes: the images are mostly black or white up to their edges.
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set(visible=True, color="C0", lw=1.5)
    return fig


def radius_histogram(radii: Mapping[str, np.ndarray], bins: int = 40, xlabel: str = "DeepFool radius ||r||_2"):
    """Histograms of DeepFool radii on a log axis, one per entry of `radii` (name -> array;
    non-finite values, i.e. points DeepFool could not flip, are left out and counted in the legend)."""
    fig = new_figure(6.0, 3.6)
    ax = fig.subplots()
    finite_all = [np.asarray(v, float)[np.isfinite(v) & (np.asarray(v) > 0)] for v in radii.values()]
    values = np.concatenate(finite_all) if finite_all else np.zeros(0)
    if values.size:
        edges = np.geomspace(values.min(), values.max() * 1.0001 + 1e-300, bins + 1)
        for (name, v), fin in zip(radii.items(), finite_all):
            missing = np.size(v) - fin.size
            label = f"{name} ({missing} not flipped)" if missing else name
            ax.hist(fin, bins=edges, histtype="step", lw=1.4, label=label)
        log_count_axes(ax)
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("points")
    return fig


__all__ = ["figure2", "figure3", "radius_histogram", "new_figure", "require_matplotlib",
           "log_count_axes"]
