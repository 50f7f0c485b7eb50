"""Experiment II: stripe images, colour codes, data sets, the pixel-sum structure and Table 1."""
from __future__ import annotations

import numpy as np
import pytest

import falsestruct_fast as fs
from falsestruct_fast.experiments import exp2

P = 30  # stripe positions for 32 x 32 images with a 3-pixel stripe


def decode(img):
    """(horizontal, position, background, stripe) of one (32, 32, 1) stripe image, read off
    the pixels alone (light pixels are > 0.5)."""
    img = np.asarray(img)[..., 0]
    light = img > 0.5
    rows = np.flatnonzero(light.all(axis=1))
    cols = np.flatnonzero(light.all(axis=0))
    horizontal = len(rows) == 3
    band = rows if horizontal else cols
    assert len(band) == 3 and np.all(np.diff(band) == 1), "not a single 3-pixel stripe"
    assert light.sum() == 3 * 32, "light pixels outside the stripe"
    bg, st = np.unique(img[~light]), np.unique(img[light])
    assert len(bg) == 1 and len(st) == 1, "background or stripe not uniform"
    return bool(horizontal), int(band[0]), float(bg[0]), float(st[0])


def threshold_net(dtype):
    """Flatten -> Dense(1) with kernel -1 and bias 96: logit 96 - sum, label 1 iff sum < 96."""
    net = fs.CNN((32, 32, 1), [fs.Flatten(), fs.Dense(1)])
    kernel, bias = fs.weight_names(net)
    params = fs.from_keras(net, {kernel: -np.ones((32 * 32, 1)), bias: np.array([96.0])}, dtype=dtype)
    return net, params


# ---- stripe images ------------------------------------------------------------------------
def test_constants():
    assert (exp2.SIZE, exp2.WIDTH, exp2.A_TRAIN, exp2.HORIZONTAL_LABEL) == (32, 3, 0.01, 1)
    assert exp2.n_positions() == P and exp2.n_positions(10, 4) == 7
    assert set(exp2.PAPER_TABLE1) == set(exp2.TABLE1_INTERVALS)
    assert exp2.PAPER_TABLE1[(0.006, 0.007)] == (0.985, 0.006)
    for name in exp2.__all__:
        assert hasattr(exp2, name)


@pytest.mark.parametrize("code, horizontal, bg_sign", [
    ("tilde", True, -1), ("tilde", False, +1), ("hat", True, +1), ("hat", False, -1)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stripe_colours_and_placement(code, horizontal, bg_sign, dtype):
    a, pos = 0.0075, 11
    X = exp2.stripe_images(a, horizontal, pos, code=code, dtype=dtype)
    assert X.shape == (1, 32, 32, 1) and X.dtype == np.dtype(dtype)
    img = X[0, :, :, 0]
    dt = np.dtype(dtype).type
    band = slice(pos, pos + 3)
    stripe = img[band, :] if horizontal else img[:, band]
    assert np.all(stripe == dt(1 + bg_sign * a))
    background = np.delete(img, np.arange(pos, pos + 3), axis=0 if horizontal else 1)
    assert background.shape == ((29, 32) if horizontal else (32, 29))
    assert np.all(background == dt(bg_sign * a))
    assert decode(X[0])[:2] == (horizontal, pos)


def test_stripe_broadcasting_and_positions():
    a = np.array([0.001, 0.002, 0.003])
    X = exp2.stripe_images(a, False, np.array([0, 13, 29]), dtype="float64")
    assert X.shape == (3, 32, 32, 1)
    assert [decode(x)[:3] for x in X] == [(False, 0, 0.001), (False, 13, 0.002), (False, 29, 0.003)]
    # 0/1 integers for the orientation, a scalar a broadcast against arrays
    Y = exp2.stripe_images(0.004, np.array([1, 0]), 29, dtype="float64")
    assert [decode(y)[:2] for y in Y] == [(True, 29), (False, 29)]
    # other geometries
    Z = exp2.stripe_images(0.1, True, 6, size=10, width=4, dtype="float64")
    assert Z.shape == (1, 10, 10, 1)
    assert np.all(Z[0, 6:10, :, 0] == 0.9) and np.all(Z[0, :6, :, 0] == -0.1)


def test_tilde_pixel_sums():
    a = np.linspace(0.001, 0.05, 17)
    pos = np.arange(17) % P
    for horizontal, sign in [(True, -1), (False, +1)]:
        X = exp2.stripe_images(a, horizontal, pos, dtype="float64")
        np.testing.assert_allclose(exp2.pixel_sum(X), 96 + sign * 1024 * a, rtol=0, atol=1e-9)
        Xh = exp2.stripe_images(a, horizontal, pos, code="hat", dtype="float64")
        np.testing.assert_allclose(exp2.pixel_sum(Xh), 96 - sign * 1024 * a, rtol=0, atol=1e-9)
    assert exp2.pixel_sum(X).dtype == np.float64
    assert exp2.pixel_sum(X[..., 0]).shape == (17,)
    assert exp2.pixel_sum(np.stack([X, X])).shape == (2, 17)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_hat_is_tilde_with_flipped_colour_code(dtype):
    rng = np.random.default_rng(3)
    a = rng.uniform(0.005, 0.02, 40)
    h = rng.random(40) < 0.5
    pos = rng.integers(0, P, 40)
    tilde = exp2.stripe_images(a, h, pos, "tilde", dtype=dtype)
    hat = exp2.stripe_images(a, h, pos, "hat", dtype=dtype)
    # M^ with orientation o is the M~ image of the other orientation, transposed (exactly)
    other = exp2.stripe_images(a, ~h, pos, "tilde", dtype=dtype)
    np.testing.assert_array_equal(hat, other.transpose(0, 2, 1, 3))
    # same stripe; every pixel shifted by +2a (horizontal) or -2a (vertical)
    shift = np.where(h, 2 * a, -2 * a)[:, None, None, None]
    tol = 4 * np.finfo(dtype).eps
    np.testing.assert_allclose(hat.astype(np.float64), tilde.astype(np.float64) + shift, rtol=0, atol=tol)
    # the background is exactly negated
    light = tilde > 0.5
    np.testing.assert_array_equal(hat > 0.5, light)
    np.testing.assert_array_equal(hat[~light], -tilde[~light])


# ---- training set -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_set_paper_layout(dtype):
    X, y = exp2.training_set(dtype=dtype)
    assert X.shape == (60, 32, 32, 1) and y.shape == (60,)
    assert X.dtype == y.dtype == np.dtype(dtype)
    assert len(np.unique(X.reshape(60, -1), axis=0)) == 60
    dt = np.dtype(dtype).type
    decoded = [decode(x) for x in X]
    assert [d[:2] for d in decoded[:P]] == [(True, p) for p in range(P)]
    assert [d[:2] for d in decoded[P:]] == [(False, p) for p in range(P)]
    assert all(d[2:] == (dt(-0.01), dt(0.99)) for d in decoded[:P])
    assert all(d[2:] == (dt(0.01), dt(1.01)) for d in decoded[P:])
    np.testing.assert_array_equal(y, [1] * P + [0] * P)
    _, y0 = exp2.training_set(horizontal_label=0, dtype=dtype)
    np.testing.assert_array_equal(y0, 1 - y)


def test_training_set_authors_layout():
    X, y = exp2.training_set(layout="authors", dtype="float64")
    Xp, yp = exp2.training_set(layout="paper", dtype="float64")
    assert X.shape == (60, 32, 32, 1)
    assert len(np.unique(X.reshape(60, -1), axis=0)) == 60
    decoded = [decode(x) for x in X]
    assert all(d[0] for d in decoded), "every stripe is horizontal"
    assert [d[1] for d in decoded] == list(range(P)) * 2
    assert all(d[2:] == (-0.01, 0.99) for d in decoded[:P])
    assert all(d[2:] == (0.01, 1.01) for d in decoded[P:])
    np.testing.assert_array_equal(y, yp)
    np.testing.assert_array_equal(X[:P], Xp[:P])
    # the two classes differ only in the colour code: the "vertical" class is M^ horizontal
    np.testing.assert_array_equal(X[P:], exp2.stripe_images(0.01, True, np.arange(P), "hat", dtype="float64"))
    np.testing.assert_allclose(X[P:] - X[:P], 0.02, rtol=0, atol=1e-15)
    _, y0 = exp2.training_set(layout="authors", horizontal_label=0)
    np.testing.assert_array_equal(y0, 1 - y)


# ---- test sets ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_test_set_draws(dtype):
    b, c = 0.006, 0.007
    X, y, a = exp2.test_set(b, c, n=1000, seed=5, dtype=dtype)
    assert X.shape == (1000, 32, 32, 1) and y.shape == (1000,) and a.shape == (1000,)
    assert X.dtype == y.dtype == np.dtype(dtype) and a.dtype == np.float64
    assert a.min() >= b and a.max() <= c and a.max() - a.min() > 0.9 * (c - b)
    decoded = [decode(x) for x in X]
    h = np.array([d[0] for d in decoded])
    pos = np.array([d[1] for d in decoded])
    assert 400 < h.sum() < 600
    assert set(pos) == set(range(P))
    np.testing.assert_array_equal(y, h.astype(int))
    np.testing.assert_array_equal(X, exp2.stripe_images(a, h, pos, dtype=dtype))
    # reproducible; another seed gives other draws
    X2, y2, a2 = exp2.test_set(b, c, n=1000, seed=5, dtype=dtype)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(a, a2)
    _, _, a3 = exp2.test_set(b, c, n=1000, seed=6, dtype=dtype)
    assert not np.array_equal(a, a3)
    # the hat set shares the draws and differs only in the colour code
    Xh, yh, ah = exp2.test_set(b, c, n=1000, code="hat", seed=5, dtype=dtype)
    np.testing.assert_array_equal(ah, a)
    np.testing.assert_array_equal(yh, y)
    np.testing.assert_array_equal(Xh, exp2.stripe_images(a, h, pos, code="hat", dtype=dtype))
    assert [decode(x)[:2] for x in Xh] == [d[:2] for d in decoded]
    # labels follow horizontal_label
    _, y0, _ = exp2.test_set(b, c, n=1000, seed=5, horizontal_label=0, dtype=dtype)
    np.testing.assert_array_equal(y0, 1 - y)


def test_test_set_degenerate_interval():
    _, _, a = exp2.test_set(0.005, 0.005, n=20)
    assert np.all(a == 0.005)


# ---- the false structure g ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("label", [0, 1])
def test_pixel_sum_structure(dtype, label):
    Xt, y, _ = exp2.test_set(0.006, 0.01, n=300, seed=1, horizontal_label=label, dtype=dtype)
    Xh, _, _ = exp2.test_set(0.006, 0.01, n=300, code="hat", seed=1, horizontal_label=label, dtype=dtype)
    y = y.astype(np.int64)
    g = exp2.pixel_sum_structure(Xt, horizontal_label=label)
    assert g.dtype == np.int64 and g.shape == (300,)
    np.testing.assert_array_equal(g, y)                      # right on every M~ image
    np.testing.assert_array_equal(exp2.pixel_sum_structure(Xh, label), 1 - y)  # wrong on every M^ image
    np.testing.assert_array_equal(exp2.pixel_sum_structure(Xt[..., 0], label), y)
    both = exp2.pixel_sum_structure(np.stack([Xt, Xh]), label)
    assert both.shape == (2, 300)
    np.testing.assert_array_equal(both, np.stack([y, 1 - y]))
    Xtr, ytr = exp2.training_set(horizontal_label=label, dtype=dtype)
    np.testing.assert_array_equal(exp2.pixel_sum_structure(Xtr, label), ytr.astype(np.int64))


def test_pixel_sum_structure_boundary_is_beta0():
    # sum exactly 96 (a blank image with a stripe of ones): beta_0, i.e. "horizontal"
    X = np.zeros((1, 32, 32, 1))
    X[0, 4:7] = 1.0
    assert exp2.pixel_sum_structure(X)[0] == 1
    assert exp2.pixel_sum_structure(X, horizontal_label=0)[0] == 0


# ---- Table 1 ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_table1_threshold_network(dtype):
    net, params = threshold_net(dtype)
    t = exp2.table1(net, params)
    assert isinstance(t, exp2.Table1)
    assert t.intervals == exp2.TABLE1_INTERVALS
    assert t.tilde.shape == t.hat.shape == (1, 4)
    assert t.tilde.dtype == t.hat.dtype == np.float64
    np.testing.assert_array_equal(t.tilde, 1.0)
    np.testing.assert_array_equal(t.hat, 0.0)
    assert (t.size, t.seed, t.horizontal_label) == (1000, 0, 1)
    # labels numbered the other way: the same network is then always wrong on C~, right on C^
    t0 = exp2.table1(net, params, size=100, horizontal_label=0)
    np.testing.assert_array_equal(t0.tilde, 0.0)
    np.testing.assert_array_equal(t0.hat, 1.0)
    with pytest.raises(ValueError):
        t.tilde[0, 0] = 0.5


def test_table1_format():
    net, params = threshold_net("float32")
    text = str(exp2.table1(net, params, size=50))
    lines = text.splitlines()
    assert len(lines) == 2 + 4
    assert "paper C~" in lines[1] and "acc C^" in lines[1]
    assert lines[2].split() == ["0.009", "0.010", "100.0%", "0.0%", "100.0%", "0.0%"]
    assert lines[5].split() == ["0.006", "0.007", "100.0%", "0.0%", "98.5%", "0.6%"]
    custom = exp2.table1(net, params, intervals=[(0.001, 0.002)], size=50)
    assert custom.intervals == ((0.001, 0.002),)
    text = custom.format(network=None)
    assert "paper" not in text and "mean of 1 networks" in text
    assert text.splitlines()[-1].split() == ["0.001", "0.002", "100.0%", "0.0%"]
    with pytest.raises(ValueError, match="network"):
        custom.format(network=1)


def test_table1_random_paper_cnns():
    net = fs.paper_cnn()
    params = fs.init(net, seeds=[0, 1], dtype="float32")
    n, seed = 40, 7
    t = exp2.table1(net, params, size=n, seed=seed, threads=2)
    assert t.tilde.shape == t.hat.shape == (2, 4)
    # every entry is the accuracy counted directly; interval i uses seed + i, for both codes
    for i, (b, c) in enumerate(exp2.TABLE1_INTERVALS):
        for code, acc in (("tilde", t.tilde), ("hat", t.hat)):
            X, y, _ = exp2.test_set(b, c, n=n, code=code, seed=seed + i, dtype="float32")
            direct = (fs.predict(net, params, X) == y.astype(np.int64)).mean(axis=1)
            np.testing.assert_array_equal(acc[:, i], direct, err_msg=f"{code} interval {i}")


# ---- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("call, name", [
    (lambda: exp2.stripe_images(0.01, True, 0, code="bar"), "code"),
    (lambda: exp2.test_set(0.001, 0.002, code="Tilde"), "code"),
    (lambda: exp2.training_set(layout="keras"), "layout"),
    (lambda: exp2.stripe_images(0.01, True, 30), "position"),
    (lambda: exp2.stripe_images(0.01, True, [0, -1]), "position"),
    (lambda: exp2.stripe_images(0.0, True, 0), "a"),
    (lambda: exp2.stripe_images(np.nan, True, 0), "a"),
    (lambda: exp2.stripe_images(0.01, 2, 0), "horizontal"),
    (lambda: exp2.stripe_images(0.01, True, 0, size=3, width=3), "size"),
    (lambda: exp2.stripe_images(0.01, True, 0, width=0), "width"),
    (lambda: exp2.stripe_images([0.01, 0.02], True, [1, 2, 3]), "position"),
    (lambda: exp2.training_set(a=-0.01), "a"),
    (lambda: exp2.test_set(0.002, 0.001), "b"),
    (lambda: exp2.test_set(0.0, 0.001), "b"),
    (lambda: exp2.test_set(0.001, 0.002, n=0), "n"),
    (lambda: exp2.training_set(horizontal_label=2), "horizontal_label"),
    (lambda: exp2.test_set(0.001, 0.002, horizontal_label=-1), "horizontal_label"),
    (lambda: exp2.pixel_sum_structure(np.zeros((2, 32, 32, 1)), horizontal_label=3), "horizontal_label"),
    (lambda: exp2.pixel_sum_structure(np.zeros((32, 32))[0]), "X"),
    (lambda: exp2.table1(*threshold_net("float32"), horizontal_label=2), "horizontal_label"),
    (lambda: exp2.table1(*threshold_net("float32"), intervals=[(0.01, 0.009)]), "b"),
    (lambda: exp2.table1(*threshold_net("float32"), intervals=[]), "intervals"),
    (lambda: exp2.table1(*threshold_net("float32"), size=0), "size"),
])
def test_bad_input(call, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        call()


def test_bad_types():
    with pytest.raises(TypeError, match="position"):
        exp2.stripe_images(0.01, True, 1.5)
    with pytest.raises(TypeError, match="dtype"):
        exp2.training_set(dtype="int32")
    with pytest.raises(TypeError, match="horizontal_label"):
        exp2.test_set(0.001, 0.002, horizontal_label=True)
