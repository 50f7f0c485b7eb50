"""Which structure did an Experiment I network learn: the original f_a, the false g, or neither.

A network is scored on the evaluation sets C_0 = {(t, 0)} and C_delta = {(t, delta f_a(t))}
(by default only on the points whose t lies in S_eps, since near a jump of f_a every
classifier may err):

- agreement with f_a on C_delta and on C_0,
- the fraction of C_0 predicted 1.

The false structure g (g = 0 iff x2 = 0) agrees with f_a on C_delta and predicts 0 on all of
C_0; the original structure agrees with f_a on both.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _validate as V
from ..network import Network, Params, check_net, finite_networks, flatten, forward
from . import exp1

VERDICTS = ("original", "false", "neither")


@dataclass
class StructureVerdict:
    """Per network (seed) of a set of S: the verdict and the scores behind it.

    Attributes
    ----------
    verdict : (S,) array of str, "original", "false" or "neither"
        ("neither" also for a network with NaN/inf outputs).
    agreement_delta : (S,) float64, fraction of C_delta points where the prediction equals f_a.
    agreement_0 : (S,) float64, the same on C_0.
    ones_0 : (S,) float64, fraction of C_0 points predicted 1.
    n_points : int, points scored per set.
    agreement, zero : the thresholds used (see :func:`classify_structure`).
    """

    verdict: np.ndarray
    agreement_delta: np.ndarray
    agreement_0: np.ndarray
    ones_0: np.ndarray
    n_points: int
    agreement: float
    zero: float

    def fractions(self) -> dict[str, float]:
        """Share of the networks with each verdict."""
        return {v: float(np.mean(self.verdict == v)) for v in VERDICTS}

    def __str__(self) -> str:
        rows = [f"{'net':>4} {'verdict':>9} {'agree C_d':>10} {'agree C_0':>10} {'ones C_0':>9}"]
        for s, v in enumerate(self.verdict):
            rows.append(f"{s:>4} {v:>9} {self.agreement_delta[s]:>10.2%} {self.agreement_0[s]:>10.2%} "
                        f"{self.ones_0[s]:>9.2%}")
        return "\n".join(rows)


def _threshold(value, name: str) -> float:
    value = V.real(value, name)
    # Above 1/2 the "false" and "original" verdicts exclude each other: f_a takes both values
    # on large parts of S_eps.
    if not 0.5 < value <= 1.0:
        raise ValueError(f"{name}: must be in (0.5, 1], got {value}")
    return value


def classify_structure(net: Network, params, *, agreement: float = 0.95, zero: float = 0.95,
                       n: int = exp1.N_EVAL, delta: float = exp1.DELTA, a: int = exp1.A,
                       K: int = exp1.K, eps: float = exp1.EPS, stable_only: bool = True,
                       threads: int | None = None, engine: str = "native") -> StructureVerdict:
    """Classify what each of S Experiment I networks learned.

    Verdicts (thresholds are fractions of the scored points):
      "false"    : agreement with f_a on C_delta >= `agreement` and predicts 0 on at least a
                   fraction `zero` of C_0 (the false structure g of Proposition 3.2);
      "original" : agreement with f_a >= `agreement` on both C_delta and C_0;
      "neither"  : anything else, including networks with NaN/inf outputs.

    Parameters
    ----------
    net, params : an MLP with 2 inputs and 1 logit, and its parameters (S networks): Params
        or a list of arrays [W0, b0, W1, b1] with a leading network axis S.
    agreement, zero : thresholds in (0.5, 1]; defaults 0.95.
    n : size of the grid t = linspace(b, 1 - 1e-8, n) (the authors' 501).
    delta : height of x2 in C_delta (the training sets' delta).
    a, K, eps : the experiment's constants; eps defines S_eps.
    stable_only : score only grid points with t in S_eps (default), else every point.
    threads : CPU threads for the forward passes, in [1, 1024] (default: all cores).
    engine : "native" (default), "numba" or "cuda": the engine of the forward passes.

    Returns
    -------
    StructureVerdict
    """
    check_net(net)
    if net.n_inputs != 2 or net.n_logits != 1:
        raise ValueError(f"net: expected 2 inputs and 1 logit (Experiment I), got {net!r}")
    agreement = _threshold(agreement, "agreement")
    zero = _threshold(zero, "zero")
    V.threads(threads)
    delta = V.real(delta, "delta")
    if delta <= 0:
        raise ValueError(f"delta: must be > 0 (C_delta must differ from C_0), got {delta}")
    # Checks params against net (NaN weights allowed: such networks are "neither"); a list of
    # arrays is accepted like everywhere else.
    dtype = flatten(net, params, check_finite=False).dtype
    X_d, labels = exp1.evaluation_set(n, delta, a, K, dtype=dtype)
    X_0, _ = exp1.evaluation_set(n, 0.0, a, K, dtype=dtype)
    keep = exp1.in_stable_region(X_d[:, 0], a, K, eps) if stable_only else np.ones(len(labels), bool)
    if not keep.any():
        raise ValueError(f"n: no grid point of {n} falls in S_eps; use a larger n")
    X_d, X_0, labels = X_d[keep], X_0[keep], labels[keep]
    S = len(params[0])
    ok = finite_networks(params)
    agree_d, agree_0, ones_0 = (np.full(S, np.nan) for _ in range(3))
    if ok.any():
        # Diverged networks (NaN/inf weights) are flagged "neither", not an error.
        good = params if ok.all() else Params([np.ascontiguousarray(a[ok]) for a in params])
        z_d = forward(net, good, X_d, threads=threads, engine=engine)[..., 0]
        z_0 = forward(net, good, X_0, threads=threads, engine=engine)[..., 0]
        finite = np.isfinite(z_d).all(axis=1) & np.isfinite(z_0).all(axis=1)
        pred_d, pred_0 = (z_d > 0).astype(np.int64), (z_0 > 0).astype(np.int64)
        agree_d[ok] = (pred_d == labels).mean(axis=1)
        agree_0[ok] = (pred_0 == labels).mean(axis=1)
        ones_0[ok] = pred_0.mean(axis=1)
        ok[ok] = finite
    verdict = np.full(S, "neither", dtype=object)
    verdict[ok & (agree_d >= agreement) & (1.0 - ones_0 >= zero)] = "false"
    verdict[ok & (agree_d >= agreement) & (agree_0 >= agreement)] = "original"
    return StructureVerdict(verdict.astype(str), agree_d, agree_0, ones_0, int(keep.sum()),
                            agreement, zero)


__all__ = ["VERDICTS", "StructureVerdict", "classify_structure"]
