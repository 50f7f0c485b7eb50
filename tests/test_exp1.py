"""Experiment I: data generators, the false structure, and the stable network of Prop. 3.3."""
import numpy as np
import pytest

import falsestruct_fast as fs
from falsestruct_fast.experiments import exp1

A, K, EPS, DELTA = exp1.A, exp1.K, exp1.EPS, exp1.DELTA


def test_f_a_on_each_interval():
    # On (a/(k+1), a/k), a/x1 lies in (k, k+1): ceil = k+1, so f_a = (k+1) mod 2.
    for k in range(A, K + 1):
        mid = 0.5 * (A / (k + 1) + A / k)
        assert exp1.f_a(mid) == (k + 1) % 2
    assert exp1.f_a(np.array([[0.99, 0.96]])).shape == (1, 2)


def test_stable_intervals_and_eps_limit():
    b = A / (K + 1)
    assert exp1.lower_bound() == pytest.approx(b)
    assert exp1.eps_limit() == pytest.approx(b * b / (2 * (A - b)))
    iv = exp1.stable_intervals()
    assert iv.shape == (K - A + 1, 2)
    np.testing.assert_allclose(iv[:, 1] - iv[:, 0], A / (np.arange(A, K + 1) * np.arange(A + 1, K + 2)) - 2 * EPS)
    assert (iv[:, 1] > iv[:, 0]).all()
    with pytest.raises(ValueError, match="eps"):
        exp1.stable_intervals(eps=exp1.eps_limit())
    with pytest.raises(ValueError, match="eps"):
        exp1.stable_intervals(eps=0.0)


@pytest.mark.parametrize("sampler", exp1.SAMPLERS)
@pytest.mark.parametrize("distribution", exp1.DISTRIBUTIONS)
def test_training_set_invariants(sampler, distribution):
    X, y = exp1.training_set(777, DELTA, seed=5, sampler=sampler, distribution=distribution)
    assert X.shape == (777, 2) and y.shape == (777,) and X.dtype == y.dtype == np.float64
    assert exp1.in_stable_region(X[:, 0]).all()
    np.testing.assert_array_equal(y, exp1.f_a(X[:, 0]))
    np.testing.assert_array_equal(X[:, 1], DELTA * y)          # x2 = delta f_a(x1) exactly
    X0, _ = exp1.training_set(777, 0.0, seed=5, sampler=sampler, distribution=distribution)
    np.testing.assert_array_equal(X0[:, 1], 0.0)                # T_0
    np.testing.assert_array_equal(X0[:, 0], X[:, 0])            # same x1 for the same seed


def test_interval_sampler_counts():
    iv = exp1.stable_intervals()
    which = lambda x1: np.argmax((x1[:, None] > iv[:, 0]) & (x1[:, None] < iv[:, 1]), axis=1)
    for seed in range(5):
        X, _ = exp1.training_set(7, seed=seed)
        np.testing.assert_array_equal(np.sort(which(X[:, 0])), np.arange(7))  # one per interval
    X, _ = exp1.training_set(5000, seed=1)
    counts = np.bincount(which(X[:, 0]), minlength=7)
    assert set(counts) <= {5000 // 7, 5000 // 7 + 1} and counts.sum() == 5000


@pytest.mark.parametrize("distribution", exp1.DISTRIBUTIONS)
def test_random_sampler_follows_its_distribution(distribution):
    """Rejection sampling keeps the shape of the proposal on S_eps: the share of draws per
    stable interval equals its probability mass (uniform: length; b + Beta(1, 3): CDF
    1 - (1 - u)^3), within 4 standard errors."""
    n = 20000
    X, _ = exp1.training_set(n, seed=2, sampler="random", distribution=distribution)
    iv, b = exp1.stable_intervals(), A / (K + 1)
    cdf = (lambda x: (x - b) / (1 - b)) if distribution == "uniform" else \
        (lambda x: 1 - (1 - (x - b)) ** 3)
    mass = cdf(iv[:, 1]) - cdf(iv[:, 0])
    expected = mass / mass.sum()
    observed = np.array([((X[:, 0] > lo) & (X[:, 0] < hi)).mean() for lo, hi in iv])
    np.testing.assert_array_less(np.abs(observed - expected), 4 * np.sqrt(expected * (1 - expected) / n))
    h, _ = exp1.training_set(4000, seed=0, sampler="half", distribution=distribution)
    assert exp1.in_stable_region(h[:, 0]).all()


def test_training_set_per_seed_stack_and_reproducibility():
    X, y = exp1.training_set(50, seed=[3, 0, 7], dtype="float32")
    assert X.shape == (3, 50, 2) and y.shape == (3, 50) and X.dtype == np.float32
    for i, s in enumerate([3, 0, 7]):
        Xs, ys = exp1.training_set(50, seed=s, dtype="float32")
        np.testing.assert_array_equal(X[i], Xs)
        np.testing.assert_array_equal(y[i], ys)
    assert not np.array_equal(X[0], X[1])


@pytest.mark.parametrize("kwargs, name", [
    (dict(r=0), "r"), (dict(r=7, sampler="grid"), "sampler"), (dict(r=7, delta=0.02), "delta"),
    (dict(r=7, delta=-1e-4), "delta"), (dict(r=7, seed=-1), "seed"), (dict(r=7, seed=[]), "seed"),
    (dict(r=7, distribution="normal"), "distribution"), (dict(r=7, eps=0.05), "eps"),
])
def test_training_set_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        exp1.training_set(**kwargs)


def test_evaluation_sets_and_false_structure():
    Xd, labels = exp1.evaluation_set()
    X0, _ = exp1.evaluation_set(delta=0.0)
    assert Xd.shape == (501, 2)
    assert Xd[0, 0] == pytest.approx(A / (K + 1)) and Xd[-1, 0] == pytest.approx(1 - 1e-8)
    np.testing.assert_array_equal(Xd[:, 1], DELTA * labels)
    # g reads x2 only: on C_delta it equals f_a, on C_0 it is 0.
    np.testing.assert_array_equal(exp1.false_structure(Xd), labels)
    np.testing.assert_array_equal(exp1.false_structure(X0), 0)
    with pytest.raises(ValueError, match="X"):
        exp1.false_structure(np.zeros((4, 3)))


def _grid(n=20001, x2=None, seed=0):
    """Points of S_eps x [0, 1]: a dense grid in x1, random x2 (a function of n and seed:
    a fresh generator per call, so no test depends on which ran before it)."""
    x1 = np.linspace(A / (K + 1), 1.0, n)
    x1 = x1[exp1.in_stable_region(x1)]
    x2 = np.random.default_rng(seed).random(len(x1)) if x2 is None else np.full(len(x1), x2)
    return np.stack([x1, x2], axis=1)


def _distance_to_boundary(x1):
    """Exact distance from x1 to the decision boundary of the "proof" network: Phi = 1/2 at
    a/(k+1) + eps/2 and a/k - eps/2 for the label-1 intervals (even k)."""
    edges = [e for k in range(A, K + 1, 2) for e in (A / (k + 1) + EPS / 2, A / k - EPS / 2)]
    return np.abs(x1[:, None] - np.array(edges)).min(axis=1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_stable_network_agrees_with_f_a_on_s_eps(dtype):
    net, params = exp1.stable_network(dtype=dtype)
    assert list(net.widths) == [2, 4 * K, 1] and params[0].dtype == dtype and params.n_networks == 1
    X = _grid().astype(dtype)
    z = fs.forward(net, params, X)[0, :, 0]
    np.testing.assert_array_equal((z > 0).astype(int), exp1.f_a(X[:, 0]))
    # Phi is exactly 0 or 1 on S_eps, so the logit is +-N and the loss log(1 + e^-N) per point.
    # (float32: the hidden units are ~100 x1, so rounding leaves ~1e-5 relative.)
    np.testing.assert_allclose(np.abs(z), 10.0, rtol=1e-4 if dtype == "float32" else 1e-9)
    loss, _ = fs.loss_and_grad(net, params, X, exp1.f_a(X[:, 0]).astype(dtype))
    assert loss[0] == pytest.approx(np.log1p(np.exp(-10.0)), rel=1e-4)


def test_stable_network_margin_scales_logit():
    net, params = exp1.stable_network(margin=3.0)
    X = _grid(2001)
    np.testing.assert_allclose(np.abs(fs.forward(net, params, X)), 3.0, rtol=1e-12)


def test_stable_network_radius_is_of_order_eps():
    net, params = exp1.stable_network()
    X = _grid(4001)
    # The network is constant around every point of S_eps: DeepFool has no gradient there,
    # and reports it rather than a (fake) flip.
    adv = fs.deepfool(net, params, X)
    assert (adv.status == fs.AttackStatus.ZERO_GRADIENT).all()
    # Any flipping perturbation is at least the distance to the boundary, >= eps / 2.
    rand = fs.random_attack(net, params, X, seed=1)
    assert rand.flipped.mean() > 0.9
    assert (rand.norm[rand.flipped] >= 0.5 * EPS * (1 - 1e-3)).all()
    np.testing.assert_array_less(_distance_to_boundary(X[rand.flipped[0], 0]) * (1 - 1e-12),
                                 rand.norm[rand.flipped] * (1 + 2e-3))
    # On the ramps (outside S_eps) the network is affine in x1, so DeepFool is exact:
    # (1 + eta) times the distance to the boundary, along x1.
    t = np.concatenate([A / (k + 1) + np.array([0.2, 0.4, 0.7]) * EPS for k in range(A, K + 1, 2)])
    Xr = np.stack([t, np.full_like(t, 0.3)], axis=1)
    ramp = fs.deepfool(net, params, Xr)
    assert ramp.flipped.all()
    np.testing.assert_allclose(ramp.norm[0], 1.02 * _distance_to_boundary(t), rtol=1e-9)
    assert np.abs(ramp.perturbation[0, :, 1]).max() == 0.0


def test_x2_network_radius_is_delta_over_two():
    net, params = exp1.x2_network()
    X = _grid(4001, x2=DELTA)
    adv = fs.deepfool(net, params, X)
    assert adv.flipped.all()
    # Threshold at delta / 2: every point of C_delta with label 1 is delta / 2 from a flip.
    np.testing.assert_allclose(adv.norm, 1.02 * DELTA / 2, rtol=1e-9)


def test_printed_formula_network():
    """Eq. (15) as printed, evaluated in NumPy, equals the "printed" network, and (as the
    docstring says) it misses the interval k = 26, which is shorter than 2 eps."""
    net, params = exp1.stable_network(form="printed")
    X = _grid(20001)
    rho = lambda t: np.maximum(t, 0.0)
    phi_sum = np.zeros(len(X))
    for k in range(A, K + 1):
        c, d = A / (k + 1) + EPS, A / k - EPS
        tc, td = (X[:, 0] - c) / (2 * EPS), (X[:, 0] - d) / (2 * EPS)
        phi = rho(tc + 0.5) - rho(tc - 0.5) - rho(td + 0.5) + rho(td - 0.5)
        phi_sum += 0.5 * ((-1) ** k + 1) * phi
    np.testing.assert_allclose(fs.forward(net, params, X)[0, :, 0], 2 * 10.0 * phi_sum - 10.0, atol=1e-9)
    wrong = (fs.predict(net, params, X)[0] != exp1.f_a(X[:, 0]))
    in_k26 = X[:, 0] < A / K
    assert wrong[in_k26].all() and not wrong[~in_k26].any()


@pytest.mark.parametrize("kwargs, name", [(dict(margin=0.0), "margin"), (dict(margin=np.inf), "margin"),
                                          (dict(form="exact"), "form"), (dict(eps=0.1), "eps")])
def test_stable_network_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        exp1.stable_network(**kwargs)
