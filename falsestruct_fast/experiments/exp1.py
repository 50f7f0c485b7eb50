"""Experiment I (section 3.1): the function f_a, its stable sampling region and data sets.

f_a(x) = ceil(a / x1) mod 2 on M = [b, 1] x [0, 1] with b = a / (K + 1). Training points are
drawn from the stable region S_eps = U_{k=a..K} (a/(k+1) + eps, a/k - eps), where f_a is
constant on each interval. The "false structure" is g(x) = 0 iff x2 = 0 (Proposition 3.2):
on T_delta the label is written into x2 = delta * f_a(x1), a tiny (unstable) feature that
correlates with it.

Seeding: the training set of seed s is a function of s alone (NumPy's counter-based Philox
generator keyed by s), so seed s gives the same set alone or among others.
"""
from __future__ import annotations

import numpy as np

from .. import _validate as V
from .. import memory
from ..mlp import MLP
from ..network import MAX_ROWS, unflatten

A, K, EPS, DELTA = 20, 26, 1e-2, 1e-4
N_EVAL = 501  # the authors' evaluation grid: linspace(b, 1 - 1e-8, 501)
SAMPLERS = ("interval", "random", "half")
DISTRIBUTIONS = ("uniform", "beta")


def lower_bound(a: int = A, K: int = K) -> float:
    """b = a / (K + 1), the left end of the domain."""
    return a / (K + 1)


def f_a(x1, a: int = A) -> np.ndarray:
    """ceil(a / x1) mod 2, as int64 (x1 > 0), elementwise over any shape."""
    x1 = np.asarray(x1, dtype=np.float64)
    return (np.ceil(a / x1) % 2).astype(np.int64)


def false_structure(X) -> np.ndarray:
    """g(x) = 0 iff x2 = 0 (Proposition 3.2), as int64 over the leading axes of X (..., 2)."""
    X = np.asarray(X)
    if X.ndim < 1 or X.shape[-1] != 2:
        raise ValueError(f"X: expected points (..., 2), got shape {X.shape}")
    return (X[..., 1] != 0).astype(np.int64)


def eps_limit(a: int = A, K: int = K) -> float:
    """b^2 / (2 (a - b)): every interval of S_eps is non-empty iff eps is below it."""
    b = lower_bound(a, K)
    return b * b / (2 * (a - b))


def stable_intervals(a: int = A, K: int = K, eps: float = EPS) -> np.ndarray:
    """(K - a + 1, 2) float64 array of the intervals (a/(k+1) + eps, a/k - eps), k = a..K.

    Raises ValueError when eps >= b^2 / (2 (a - b)), where some interval would be empty.
    """
    a = V.integer(a, "a", minimum=1)
    K = V.integer(K, "K", minimum=a)
    eps = V.real(eps, "eps")
    limit = eps_limit(a, K)
    if not 0 < eps < limit:
        raise ValueError(f"eps: must be in (0, b^2/(2(a-b)) = {limit:.4g}) for a={a}, K={K}; got {eps}")
    k = np.arange(a, K + 1, dtype=np.float64)
    return np.stack([a / (k + 1) + eps, a / k - eps], axis=1)


def in_stable_region(x1, a: int = A, K: int = K, eps: float = EPS) -> np.ndarray:
    """Boolean mask of x1's shape: x1 lies in S_eps (open intervals)."""
    iv = stable_intervals(a, K, eps)
    x1 = np.asarray(x1, dtype=np.float64)[..., None]
    return ((x1 > iv[:, 0]) & (x1 < iv[:, 1])).any(axis=-1)


def _interval_draws(rng, iv: np.ndarray, r: int) -> np.ndarray:
    """The paper's sampler: r // n uniform draws in each of the n intervals, the remainder
    in distinct, randomly chosen intervals."""
    n_iv = len(iv)
    which = np.concatenate([np.repeat(np.arange(n_iv), r // n_iv),
                            rng.choice(n_iv, size=r % n_iv, replace=False)])
    lo, hi = iv[which, 0], iv[which, 1]
    return lo + (hi - lo) * rng.random(r)


def _random_draws(rng, iv: np.ndarray, r: int, b: float, distribution: str) -> np.ndarray:
    """The authors' "random" sampler: uniform on [b, 1] or b + Beta(1, 3), keeping the draws
    that fall in S_eps (rejection), until there are r of them."""
    out = np.empty(0)
    while len(out) < r:
        n = 2 * (r - len(out)) + 16  # S_eps covers about half of [b, 1] for the paper's a, K
        x = rng.uniform(b, 1.0, n) if distribution == "uniform" else b + rng.beta(1.0, 3.0, n)
        keep = ((x[:, None] > iv[:, 0]) & (x[:, None] < iv[:, 1])).any(axis=1)
        out = np.concatenate([out, x[keep]])
    return out[:r]


def sample_x1(r: int, seed: int = 0, sampler: str = "interval", a: int = A, K: int = K,
              eps: float = EPS, distribution: str = "uniform") -> np.ndarray:
    """r points x1 in S_eps, (r,) float64, in random order; a function of `seed` alone.

    sampler
        "interval" (the paper's): m = r // (K - a + 1) uniform draws in every stable interval,
        the remainder in distinct, randomly chosen intervals (r = 7 with a = 20, K = 26: one
        point per interval).
        "random" (the authors' code): `distribution` "uniform" on [b, 1] or "beta" = b +
        Beta(1, 3), rejecting draws outside S_eps.
        "half": r - r // 2 points from "interval" and r // 2 from "random".
    The points are returned shuffled, so that fixed batches (shuffle="batches") mix intervals.
    """
    r = V.integer(r, "r", minimum=1, maximum=MAX_ROWS)
    V.option(sampler, "sampler", SAMPLERS)
    V.option(distribution, "distribution", DISTRIBUTIONS)
    iv = stable_intervals(a, K, eps)
    rng = np.random.Generator(np.random.Philox(key=V.integer(seed, "seed", minimum=0)))
    b = lower_bound(a, K)
    if sampler == "interval":
        x1 = _interval_draws(rng, iv, r)
    elif sampler == "random":
        x1 = _random_draws(rng, iv, r, b, distribution)
    else:
        x1 = np.concatenate([_interval_draws(rng, iv, r - r // 2),
                             _random_draws(rng, iv, r // 2, b, distribution)])
    return rng.permutation(x1)


def training_set(r: int, delta: float = DELTA, seed=0, sampler: str = "interval", a: int = A,
                 K: int = K, eps: float = EPS, distribution: str = "uniform", dtype="float64"):
    """T^r_delta (T^r_0 with delta=0): points (x1, delta * f_a(x1)) with x1 in S_eps.

    Parameters
    ----------
    r : int in [1, 2**31 - 1], number of points (the most rows the native engine trains on);
        a MemoryError when the sets of all seeds would not fit in the available memory.
    delta : float in [0, eps), the height of the false feature x2.
    seed : int, or a sequence of ints (one set per seed, stacked).
    sampler, distribution : see :func:`sample_x1`.
    dtype : "float32" or "float64" (the authors trained in float64).

    Returns
    -------
    X : (r, 2) or (S, r, 2) `dtype`, with X[..., 1] = delta * f_a(X[..., 0]).
    y : (r,) or (S, r) `dtype`, the labels f_a(x1).
    """
    dt = V.float_dtype(dtype)
    delta = _delta(delta, eps)
    r = V.integer(r, "r", minimum=1, maximum=MAX_ROWS)
    n_sets = 1 if np.ndim(seed) == 0 else len(seed)
    # x1, its labels and X in float64 while drawing, then X and y in dtype
    memory.check_fits(n_sets * r * (5 * 8 + 3 * dt.itemsize),
                      f"r: {n_sets} training sets of {r} points", "use a smaller r or fewer seeds")
    if np.ndim(seed) == 0:
        x1 = sample_x1(r, seed, sampler, a, K, eps, distribution)
    else:
        seeds = [V.integer(s, "seed", minimum=0) for s in seed]
        if not seeds:
            raise ValueError("seed: empty sequence of seeds")
        x1 = np.stack([sample_x1(r, s, sampler, a, K, eps, distribution) for s in seeds])
    y = f_a(x1, a)
    X = np.stack([x1, delta * y], axis=-1).astype(dt)
    return X, y.astype(dt)


def _delta(delta, eps) -> float:
    delta = V.real(delta, "delta")
    if not 0 <= delta < eps:
        raise ValueError(f"delta: must be in [0, eps = {eps}) (the paper takes 0 < delta < eps), got {delta}")
    return delta


def evaluation_set(n: int = N_EVAL, delta: float = DELTA, a: int = A, K: int = K, dtype="float64"):
    """C_delta (C_0 with delta=0): t = linspace(b, 1 - 1e-8, n), X = (t, delta * f_a(t)).

    n : int in [1, 2**31 - 1]; delta : a finite real number >= 0.
    Returns X (n, 2) `dtype` and the labels f_a(t) (n,) int64.
    """
    dt = V.float_dtype(dtype)
    n = V.integer(n, "n", minimum=1, maximum=MAX_ROWS)
    delta = V.real(delta, "delta", minimum=0.0)
    memory.check_fits(n * (5 * 8 + 2 * dt.itemsize), f"n: an evaluation set of {n} points",
                      "use a smaller n")
    t = np.linspace(lower_bound(a, K), 1 - 1e-8, n)
    y = f_a(t, a)
    return np.stack([t, delta * y], axis=1).astype(dt), y


STABLE_FORMS = ("proof", "printed")


def stable_network(a: int = A, K: int = K, eps: float = EPS, margin: float = 10.0,
                   form: str = "proof", dtype="float64"):
    """The stable, accurate network of Proposition 3.3 as ordinary weights of MLP([2, 4K, 1]).

    Psi = 2 N Phi - N with Phi = sum_{k=a..K} ((-1)^k + 1)/2 * phi^{c(k), d(k)}_eps,
    c(k) = a/(k+1) + eps, d(k) = a/k - eps, each phi a combination of four ReLUs of x1.
    Hidden units 4(k - a) .. 4(k - a) + 3 belong to interval k; the others and every x2
    weight are zero, and the intervals with odd k keep their units with output weight 0, as
    in the paper's proof.

    form
        "proof" (default): phi = rho((x1-c)/eps + 1) - rho((x1-c)/eps) - rho((x1-d)/eps)
        + rho((x1-d)/eps - 1), the function with the properties the proof uses: support
        [c - eps, d + eps] = [a/(k+1), a/k] and phi = 1 on [c, d]. Psi then agrees with f_a
        on the closed S_eps x [0, 1], and every point of S_eps is at least eps/2 from the
        decision boundary Psi = 0 (the network reads x1 only, and is constant, with zero
        gradient, on the label-0 intervals).
        "printed": equation (15) as printed, rho((x1-c)/(2 eps) + 1/2) - rho((x1-c)/(2 eps)
        - 1/2) - rho((x1-d)/(2 eps) + 1/2) + rho((x1-d)/(2 eps) - 1/2). Its ramps are 2 eps
        wide and centred on c and d, so Psi = 0 on the edges of S_eps, and on an interval
        shorter than 2 eps (k = 26 for the paper's a, K, eps) Phi stays below 1/2: that
        network misclassifies a whole interval. Kept to document the discrepancy.

    Parameters
    ----------
    a, K, eps : the experiment's constants (eps must satisfy eps < b^2 / (2 (a - b))).
    margin : N > 0, |logit| on S_eps away from the ramps (loss <= log(1 + e^-N) per point).
    form : "proof" or "printed", see above.
    dtype : "float32" or "float64".

    Returns
    -------
    (MLP([2, 4K, 1]), Params with S = 1)
    """
    iv = stable_intervals(a, K, eps)
    margin = V.real(margin, "margin")
    if not margin > 0:
        raise ValueError(f"margin: must be a positive finite number, got {margin}")
    V.option(form, "form", STABLE_FORMS)
    dt = V.float_dtype(dtype)
    if form == "proof":
        scale, c_offsets, d_offsets = 1.0 / eps, (1.0, 0.0), (0.0, -1.0)
    else:
        scale, c_offsets, d_offsets = 1.0 / (2.0 * eps), (0.5, -0.5), (0.5, -0.5)
    width = 4 * K
    W1 = np.zeros((2, width))
    b1 = np.zeros(width)
    W2 = np.zeros((width, 1))
    for i, (c, d) in enumerate(iv):
        k = a + i
        units = slice(4 * i, 4 * i + 4)
        W1[0, units] = scale
        # unit j computes rho(scale * (x1 - edge) + offset)
        b1[units] = [-c * scale + c_offsets[0], -c * scale + c_offsets[1],
                     -d * scale + d_offsets[0], -d * scale + d_offsets[1]]
        W2[units, 0] = margin * ((-1) ** k + 1) * np.array([1.0, -1.0, -1.0, 1.0])
    b2 = np.array([-margin])
    net = MLP([2, width, 1])
    flat = np.concatenate([W1.ravel(), b1, W2.ravel(), b2])[None].astype(dt)
    return net, unflatten(net, flat)


def x2_network(delta: float = DELTA, margin: float = 10.0, dtype="float64"):
    """A network that reads only x2: logit = N (2 x2 / delta - 1), i.e. the false structure
    g with its threshold at delta / 2. MLP([2, 1]) with S = 1; for tests and comparisons."""
    delta = V.real(delta, "delta")
    margin = V.real(margin, "margin")
    if not delta > 0:
        raise ValueError(f"delta: must be > 0, got {delta}")
    net = MLP([2, 1])
    flat = np.array([[0.0, 2.0 * margin / delta, -margin]], dtype=V.float_dtype(dtype))
    return net, unflatten(net, flat)


__all__ = [
    "A", "K", "EPS", "DELTA", "N_EVAL", "SAMPLERS", "lower_bound", "f_a", "false_structure", "eps_limit",
    "stable_intervals", "in_stable_region", "sample_x1", "training_set", "evaluation_set",
    "STABLE_FORMS", "stable_network", "x2_network",
]
