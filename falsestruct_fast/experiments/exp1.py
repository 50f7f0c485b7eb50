"""Experiment I (section 3.1): the function f_a, its stable sampling region and data sets.

f_a(x) = ceil(a / x1) mod 2 on M = [b, 1] x [0, 1] with b = a / (K + 1). Training points are
drawn from the stable region S_eps = U_{k=a..K} (a/(k+1) + eps, a/k - eps), where f_a is
constant on each interval. The "false structure" is g(x) = 0 iff x2 = 0: on T_delta the label
is written into x2 = delta * f_a(x1), a tiny (unstable) feature that correlates with it.
"""
from __future__ import annotations

import numpy as np

from .. import _validate as V

A, K, EPS, DELTA = 20, 26, 1e-2, 1e-4


def lower_bound(a: int = A, K: int = K) -> float:
    """b = a / (K + 1), the left end of the domain."""
    return a / (K + 1)


def f_a(x1, a: int = A) -> np.ndarray:
    """ceil(a / x1) mod 2, as int64 (x1 > 0)."""
    x1 = np.asarray(x1, dtype=np.float64)
    return (np.ceil(a / x1) % 2).astype(np.int64)


def stable_intervals(a: int = A, K: int = K, eps: float = EPS) -> np.ndarray:
    """(K - a + 1, 2) array of the intervals (a/(k+1) + eps, a/k - eps), k = a..K.

    Raises ValueError when eps >= b^2 / (2 (a - b)), where some interval would be empty.
    """
    a = V.integer(a, "a", minimum=1)
    K = V.integer(K, "K", minimum=a)
    b = lower_bound(a, K)
    limit = b * b / (2 * (a - b))
    if not 0 < eps < limit:
        raise ValueError(f"eps: must be in (0, b^2/(2(a-b)) = {limit:.4g}) for a={a}, K={K}; got {eps}")
    k = np.arange(a, K + 1, dtype=np.float64)
    return np.stack([a / (k + 1) + eps, a / k - eps], axis=1)


def in_stable_region(x1, a: int = A, K: int = K, eps: float = EPS) -> np.ndarray:
    """Boolean mask: x1 lies in S_eps."""
    iv = stable_intervals(a, K, eps)
    x1 = np.asarray(x1, dtype=np.float64)[..., None]
    return ((x1 > iv[:, 0]) & (x1 < iv[:, 1])).any(axis=-1)


def training_set(r: int, delta: float = DELTA, seed: int = 0, a: int = A, K: int = K,
                 eps: float = EPS, dtype="float64"):
    """T^r_delta (or T^r_0 with delta=0) with the paper's "interval" sampler.

    m = r // (K - a + 1) uniform draws in every stable interval, the remainder in randomly
    chosen intervals (for r = 7 with a=20, K=26: one point per interval).

    Returns X (r, 2) with X[:, 1] = delta * f_a(x1), and y (r,) = f_a(x1), both `dtype`.
    The draw is a function of `seed` alone (NumPy's counter-based Philox generator).
    """
    r = V.integer(r, "r", minimum=1)
    dt = V.float_dtype(dtype)
    iv = stable_intervals(a, K, eps)
    rng = np.random.Generator(np.random.Philox(key=V.integer(seed, "seed", minimum=0)))
    n_iv = len(iv)
    which = np.concatenate([np.repeat(np.arange(n_iv), r // n_iv),
                            rng.choice(n_iv, size=r % n_iv, replace=False)])
    lo, hi = iv[which, 0], iv[which, 1]
    x1 = lo + (hi - lo) * rng.random(r)
    y = f_a(x1, a)
    X = np.stack([x1, delta * y], axis=1).astype(dt)
    return X, y.astype(dt)


def evaluation_set(n: int = 501, delta: float = DELTA, a: int = A, K: int = K, dtype="float64"):
    """C_delta (C_0 with delta=0): t = linspace(b, 1 - 1e-8, n), X = (t, delta * f_a(t)).

    Returns X (n, 2) and the labels f_a(t) (n,) as int64.
    """
    t = np.linspace(lower_bound(a, K), 1 - 1e-8, V.integer(n, "n", minimum=1))
    y = f_a(t, a)
    return np.stack([t, delta * y], axis=1).astype(V.float_dtype(dtype)), y
