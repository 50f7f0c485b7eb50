"""Forward pass, loss and gradients, and initialisation, against the NumPy reference."""
from __future__ import annotations

import math

import numpy as np
import pytest

import falsestruct_fast as fs
import reference as R
from helpers import assert_close, make_data, make_targets

# (widths, loss) cases: Experiment I net, a deeper sigmoid net, softmax nets, multi-logit sigmoid.
NETS = [
    ([2, 104, 1], None),
    ([3, 7, 5, 1], None),
    ([4, 6, 3], None),            # softmax (3 logits)
    ([3, 5, 4, 2], "softmax"),
    ([3, 5, 4], "sigmoid"),       # 4 independent sigmoid logits, targets (N, 4)
]
NET_IDS = ["2-104-1", "3-7-5-1", "4-6-3-softmax", "3-5-4-2-softmax", "3-5-4-sigmoid"]
SIZES = [1, 37, 50]


def random_params(net, S, dtype=np.float64, seed=0, bias_scale=0.3):
    """Glorot weights from the library plus nonzero biases (so bias paths are exercised)."""
    params = fs.init(net, seeds=range(100 + seed, 100 + seed + S), dtype="float64")
    rng = np.random.default_rng(seed)
    out = []
    for a in params:
        a = a.copy()
        if a.ndim == 2:
            a += bias_scale * rng.standard_normal(a.shape)
        out.append(a.astype(dtype))
    return out


def check_against_reference(net, params, X, y, rtol, y_per_seed=False):
    """Library forward / loss / grads / input grads vs the float64 reference, every network."""
    S = params[0].shape[0]
    z = fs.forward(net, params, X)
    loss, grads, dX = fs.loss_and_grad(net, params, X, y, wrt_input=True)
    loss2, grads2 = fs.loss_and_grad(net, params, X, y)
    assert z.dtype == params[0].dtype and loss.dtype == params[0].dtype
    assert z.shape == (S, X.shape[-2], net.n_logits)
    assert dX.shape == (S, X.shape[-2], net.n_inputs)
    np.testing.assert_array_equal(loss, loss2)
    for a, b in zip(grads, grads2):
        np.testing.assert_array_equal(a, b)
    for s in range(S):
        ps = R.split_params(params, s)
        Xs = np.asarray(X[s] if X.ndim == 3 else X, dtype=np.float64)
        ys = y[s] if y_per_seed else y
        zr = R.forward(ps, Xs)
        lr_, gr, dXr = R.loss_and_grad(net.loss, ps, Xs, ys)
        assert_close(z[s], zr, rtol, f"forward net {s}")
        assert_close(loss[s], lr_, rtol, f"loss net {s}")
        for i, (g, g_ref) in enumerate(zip(grads, gr)):
            assert g.shape == params[i].shape
            assert_close(g[s], g_ref, rtol, f"grad[{i}] net {s}")
        assert_close(dX[s], dXr, rtol, f"input grad net {s}")


@pytest.mark.parametrize("N", SIZES)
@pytest.mark.parametrize("widths,loss", NETS, ids=NET_IDS)
def test_float64_shared_X_matches_reference(widths, loss, N):
    net = fs.MLP(widths, loss=loss)
    params = random_params(net, S=3, seed=N)
    X = make_data(N, widths[0], seed=N)
    y = make_targets(net, N, seed=N)
    check_against_reference(net, params, X, y, rtol=1e-12)


@pytest.mark.parametrize("widths,loss", NETS, ids=NET_IDS)
def test_float64_per_seed_X_and_y_match_reference(widths, loss):
    net = fs.MLP(widths, loss=loss)
    S, N = 3, 37
    params = random_params(net, S=S, seed=7)
    X = make_data(N, widths[0], seed=8, S=S)
    y = make_targets(net, N, seed=9, S=S)
    check_against_reference(net, params, X, y, rtol=1e-12, y_per_seed=True)


def test_per_seed_X_with_shared_y_and_shared_X_with_per_seed_y():
    net = fs.MLP([3, 7, 5, 1])
    S, N = 4, 37
    params = random_params(net, S=S, seed=3)
    X3 = make_data(N, 3, seed=4, S=S)
    y1 = make_targets(net, N, seed=5)
    loss, grads = fs.loss_and_grad(net, params, X3, y1)
    X1 = make_data(N, 3, seed=6)
    y2 = make_targets(net, N, seed=7, S=S)
    loss_b, grads_b = fs.loss_and_grad(net, params, X1, y2)
    for s in range(S):
        ps = R.split_params(params, s)
        l_ref, g_ref, _ = R.loss_and_grad("sigmoid", ps, X3[s], y1)
        assert_close(loss[s], l_ref, 1e-12, "per-seed X, shared y")
        for g, gr in zip(grads, g_ref):
            assert_close(g[s], gr, 1e-12, "per-seed X, shared y grad")
        l_ref, g_ref, _ = R.loss_and_grad("sigmoid", ps, X1, y2[s])
        assert_close(loss_b[s], l_ref, 1e-12, "shared X, per-seed y")
        for g, gr in zip(grads_b, g_ref):
            assert_close(g[s], gr, 1e-12, "shared X, per-seed y grad")


def test_forward_many_rows_crosses_tiles():
    # forward evaluates rows in tiles of 512: 1100 rows = two full tiles and a short one
    net = fs.MLP([3, 9, 2], loss="softmax")
    params = random_params(net, S=2, seed=1)
    X = make_data(1100, 3, seed=2)
    z = fs.forward(net, params, X)
    for s in range(2):
        assert_close(z[s], R.forward(R.split_params(params, s), X), 1e-12, "forward 1100 rows")


def assert_chunked_equals_one_call(net, params, X, y, chunk_size, rtol=1e-12):
    """loss_and_grad with `chunk_size` rows per native call equals one call over all rows."""
    N = X.shape[-1 - len(net.input_shape)]
    loss, grads, dX = fs.loss_and_grad(net, params, X, y, wrt_input=True, chunk_size=N)
    loss_c, grads_c, dX_c = fs.loss_and_grad(net, params, X, y, wrt_input=True, chunk_size=chunk_size)
    loss_c2, grads_c2 = fs.loss_and_grad(net, params, X, y, chunk_size=chunk_size)
    assert loss_c.dtype == loss.dtype and dX_c.shape == dX.shape and dX_c.dtype == dX.dtype
    assert_close(loss_c, loss, rtol, "chunked loss")
    np.testing.assert_array_equal(loss_c, loss_c2)
    for i, (a, b, c) in enumerate(zip(grads_c, grads, grads_c2)):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert_close(a, b, rtol, f"chunked grad[{i}]")
        np.testing.assert_array_equal(a, c)
    assert_close(dX_c, dX, rtol, "chunked input grad")


@pytest.mark.parametrize("chunk_size", [1, 4, 10, 36])
@pytest.mark.parametrize("widths,loss", NETS, ids=NET_IDS)
def test_loss_and_grad_in_row_chunks_equals_one_call(widths, loss, chunk_size):
    # 37 rows: chunks of 4 and 10 leave a short last chunk, 36 leaves a single row
    net = fs.MLP(widths, loss=loss)
    params = random_params(net, S=3, seed=5)
    X = make_data(37, widths[0], seed=6)
    y = make_targets(net, 37, seed=7)
    assert_chunked_equals_one_call(net, params, X, y, chunk_size)


def test_loss_and_grad_in_row_chunks_per_seed_data_and_reference():
    net = fs.MLP([3, 7, 5, 1])
    S, N = 3, 23
    params = random_params(net, S=S, seed=2)
    X = make_data(N, 3, seed=3, S=S)
    y = make_targets(net, N, seed=4, S=S)
    assert_chunked_equals_one_call(net, params, X, y, chunk_size=5)
    loss, grads, dX = fs.loss_and_grad(net, params, X, y, wrt_input=True, chunk_size=5)
    for s in range(S):
        lr_, gr, dXr = R.loss_and_grad(net.loss, R.split_params(params, s), X[s], y[s])
        assert_close(loss[s], lr_, 1e-12, f"loss net {s}")
        for i, (g, g_ref) in enumerate(zip(grads, gr)):
            assert_close(g[s], g_ref, 1e-12, f"grad[{i}] net {s}")
        assert_close(dX[s], dXr, 1e-12, f"input grad net {s}")


def test_loss_and_grad_chunks_float32_close_to_one_call():
    net = fs.MLP([3, 7, 5, 1])
    params = random_params(net, S=2, seed=1, dtype=np.float32)
    X = make_data(37, 3, seed=2, dtype=np.float32)
    y = make_targets(net, 37, seed=3)
    assert_chunked_equals_one_call(net, params, X, y, chunk_size=8, rtol=1e-5)


def test_loss_and_grad_default_chunk_is_one_call_for_small_N_and_bounded():
    from falsestruct_fast.network import LOSS_GRAD_CHUNK_SCALARS, default_chunk_rows
    net = fs.MLP([2, 104, 1])
    params = random_params(net, S=2, seed=3)
    X = make_data(50, 2, seed=4)
    y = make_targets(net, 50, seed=5)
    a = fs.loss_and_grad(net, params, X, y, wrt_input=True)
    b = fs.loss_and_grad(net, params, X, y, wrt_input=True, chunk_size=50)
    np.testing.assert_array_equal(a[0], b[0])
    for g, h in zip(a[1], b[1]):
        np.testing.assert_array_equal(g, h)
    np.testing.assert_array_equal(a[2], b[2])
    # per-row workspace: activations 2 + 104 + 1, two buffers of the widest layer, target, 2 terms
    assert default_chunk_rows(net) == LOSS_GRAD_CHUNK_SCALARS // (107 + 208 + 1 + 2)
    # the paper's CNN: activations, two buffers of the widest layer (24 x 32 x 32), logit, 2
    # terms, and conv1's input gradient padded by 2 rows and columns on each side (36 x 36 x 24)
    cnn_row = (1024 + 24576 + 6144 + 12288 + 3072 + 10 + 1) + 2 * 24576 + 1 + 2 + 36 * 36 * 24
    assert default_chunk_rows(fs.paper_cnn()) == LOSS_GRAD_CHUNK_SCALARS // cnn_row
    assert default_chunk_rows(fs.paper_cnn()) >= 60      # one call for the paper's batch of 60


@pytest.mark.parametrize("chunk_size,exc,match", [
    (0, ValueError, r"chunk_size: must be >= 1, got 0"),
    (-3, ValueError, r"chunk_size: must be >= 1, got -3"),
    (2.5, TypeError, r"chunk_size: must be an integer, got float"),
    (True, TypeError, r"chunk_size: must be an integer, got bool"),
    ("8", TypeError, r"chunk_size: must be an integer, got str"),
])
def test_loss_and_grad_bad_chunk_size_raises(chunk_size, exc, match):
    net = fs.MLP([3, 5, 1])
    params = random_params(net, S=1)
    X = make_data(6, 3)
    with pytest.raises(exc, match=match):
        fs.loss_and_grad(net, params, X, make_targets(net, 6), chunk_size=chunk_size)


@pytest.mark.parametrize("N", [1, 37])
@pytest.mark.parametrize("widths,loss", NETS, ids=NET_IDS)
def test_float32_matches_reference(widths, loss, N):
    net = fs.MLP(widths, loss=loss)
    params = random_params(net, S=2, seed=N, dtype=np.float32)
    X = make_data(N, widths[0], seed=N, dtype=np.float32)
    y = make_targets(net, N, seed=N)
    # the reference sees exactly the float32 values, in float64
    check_against_reference(net, params, X, y, rtol=2e-5)


def test_predict_matches_reference():
    for widths, loss in NETS[:3]:
        net = fs.MLP(widths, loss=loss)
        params = random_params(net, S=2, seed=5)
        X = make_data(50, widths[0], seed=6)
        pred = fs.predict(net, params, X)
        assert pred.shape == (2, 50)
        for s in range(2):
            z = R.forward(R.split_params(params, s), X)
            want = (z[:, 0] > 0).astype(np.int64) if net.n_logits == 1 else np.argmax(z, axis=1)
            np.testing.assert_array_equal(pred[s], want)


# ---- finite differences on the library's own float64 loss ---------------------------------
@pytest.mark.parametrize("widths,loss", NETS, ids=NET_IDS)
def test_param_gradient_matches_finite_differences(widths, loss):
    net = fs.MLP(widths, loss=loss)
    params = random_params(net, S=1, seed=11)
    X = make_data(13, widths[0], seed=12)
    y = make_targets(net, 13, seed=13)
    _, grads = fs.loss_and_grad(net, params, X, y)
    for i in range(len(params)):
        def f(a, i=i):
            p = list(params)
            p[i] = a
            return float(fs.loss_and_grad(net, p, X, y)[0][0])
        num = R.numerical_grad(f, params[i], h=1e-6)
        assert_close(grads[i], num, 1e-6, f"finite differences, param array {i}")


@pytest.mark.parametrize("widths,loss", NETS, ids=NET_IDS)
def test_input_gradient_matches_finite_differences(widths, loss):
    net = fs.MLP(widths, loss=loss)
    params = random_params(net, S=2, seed=21)
    X = make_data(9, widths[0], seed=22)
    y = make_targets(net, 9, seed=23)
    _, _, dX = fs.loss_and_grad(net, params, X, y, wrt_input=True)
    for s in range(2):
        ps = [a[s:s + 1] for a in params]
        num = R.numerical_grad(lambda x: float(fs.loss_and_grad(net, ps, x, y)[0][0]), X, h=1e-6)
        assert_close(dX[s], num, 1e-6, f"input gradient net {s}")


def test_relu_derivative_zero_at_kink():
    # A hidden pre-activation exactly 0 gets derivative 0 (the output is then exactly 0).
    net = fs.MLP([1, 1, 1])
    W0 = np.array([[[1.0]]])
    b0 = np.array([[0.0]])
    W1 = np.array([[[2.0]]])
    b1 = np.array([[0.5]])
    X = np.array([[0.0], [1.0]])
    y = np.array([1.0, 0.0])
    loss, grads, dX = fs.loss_and_grad(net, [W0, b0, W1, b1], X, y, wrt_input=True)
    ref_loss, ref_g, ref_dX = R.loss_and_grad("sigmoid", [W0[0], b0[0], W1[0], b1[0]], X, y)
    assert ref_dX[0, 0] == 0.0
    assert_close(loss[0], ref_loss, 1e-14)
    for g, gr in zip(grads, ref_g):
        assert_close(g[0], gr, 1e-14)
    assert_close(dX[0], ref_dX, 1e-14)


def test_extreme_logits_give_finite_stable_loss():
    # the stable sigmoid CE form: huge |z| gives loss |z| (wrong side) or 0, never inf/NaN
    net = fs.MLP([1, 1])
    params = [np.array([[[1.0]]]), np.array([[0.0]])]
    X = np.array([[800.0], [-800.0], [800.0]])
    y = np.array([0.0, 0.0, 1.0])
    loss, grads = fs.loss_and_grad(net, params, X, y)
    assert np.isfinite(loss).all()
    assert_close(loss[0], 800.0 / 3, 1e-14)
    # dL/dW = mean((sigmoid(z) - y) * x) = (800 * 1 + 0 + 0) / 3
    assert_close(grads[0][0, 0, 0], 800.0 / 3, 1e-14)
    net3 = fs.MLP([1, 3])
    p3 = [np.array([[[1.0, -1.0, 0.0]]]), np.zeros((1, 3))]
    loss3, _ = fs.loss_and_grad(net3, p3, np.array([[1000.0]]), np.array([1]))
    assert_close(loss3[0], 2000.0, 1e-14)


# ---- initialisation -----------------------------------------------------------------------
@pytest.mark.parametrize("widths", [[2, 104, 1], [3, 7, 5, 1], [4, 6, 3]])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_init_shapes_zero_biases_and_bound(widths, dtype):
    net = fs.MLP(widths)
    params = fs.init(net, seeds=range(5), dtype=dtype)
    assert isinstance(params, fs.Params)
    assert len(params) == 2 * (len(widths) - 1)
    assert params.n_networks == 5
    assert params.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(params.seeds, np.arange(5, dtype=np.uint64))
    P = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
    assert net.n_params == P
    assert params.flat.shape == (5, P)
    for l, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        W, b = params[2 * l], params[2 * l + 1]
        assert W.shape == (5, n_in, n_out) and b.shape == (5, n_out)
        assert W.dtype == np.dtype(dtype) and b.dtype == np.dtype(dtype)
        assert np.all(b == 0)
        lim = math.sqrt(6.0 / (n_in + n_out))
        bound = float(np.float32(lim)) if dtype == "float32" else lim  # rounding may reach it
        assert np.abs(W).max() <= bound
        assert np.any(W != 0)
        assert np.all(np.isfinite(W))


def test_init_glorot_distribution():
    net = fs.MLP([300, 400, 1])
    W = fs.init(net, seeds=[0, 1], dtype="float64")[0].reshape(-1)   # 240000 weights
    lim = math.sqrt(6.0 / 700)
    assert np.abs(W).max() <= lim
    # the whole range is used: P(max |W| < (1 - 1e-4) lim) = (1 - 1e-4)^240000 ~ e^-24
    assert np.abs(W).max() > 0.9999 * lim
    assert abs(W.mean()) < 0.01 * lim
    assert abs(W.var() / (lim**2 / 3) - 1) < 0.01  # standard error of the ratio ~0.002
    # uniformity: 20 equal bins each hold 5% (+-0.5%) of the weights
    hist, _ = np.histogram(W, bins=20, range=(-lim, lim))
    frac = hist / W.size
    assert np.all(np.abs(frac - 0.05) < 0.005), frac
    # neighbouring weights are not correlated
    assert abs(np.corrcoef(W[:-1], W[1:])[0, 1]) < 0.02


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_init_seed_alone_equals_seed_among_many(dtype):
    net = fs.MLP([3, 7, 5, 1])
    seeds = [9, 0, 2**40 + 3, 17, 2**64 - 1, 5]
    many = fs.init(net, seeds=seeds, dtype=dtype)
    for i, s in enumerate(seeds):
        alone = fs.init(net, seeds=s, dtype=dtype)
        assert alone.n_networks == 1
        for a, b in zip(alone, many):
            assert np.array_equal(a[0], b[i]), f"seed {s}"
    one_thread = fs.init(net, seeds=seeds, dtype=dtype, threads=1)
    np.testing.assert_array_equal(one_thread.flat, many.flat)


def test_init_float32_is_float64_rounded():
    net = fs.MLP([2, 104, 1])
    p32 = fs.init(net, seeds=range(4), dtype="float32")
    p64 = fs.init(net, seeds=range(4), dtype="float64")
    np.testing.assert_array_equal(p32.flat, p64.flat.astype(np.float32))


def test_init_different_seeds_differ():
    net = fs.MLP([3, 7, 5, 1])
    p = fs.init(net, seeds=[0, 1, 2, 2**32, 2**33], dtype="float64")
    W = [p[0][i].reshape(-1) for i in range(5)]
    for i in range(5):
        for j in range(i + 1, 5):
            assert not np.any(W[i] == W[j]), (i, j)   # no weight in common
    # layers of one network are drawn independently too
    assert not np.array_equal(p[2][0][:3, :5], p[0][0][:, :5])


def test_init_matches_reference_generator():
    # init documents W = (2 u - 1) lim with u from philox(seed; stream 1, layer, element)
    net = fs.MLP([3, 7, 5, 1])
    for seed in (0, 123, 2**40 + 7):
        lib = fs.init(net, seeds=seed, dtype="float64")
        ref = R.glorot_init(net.widths, seed)
        for a, b in zip(lib, ref):
            np.testing.assert_array_equal(a[0], b)


@pytest.mark.parametrize("target", [0.0, 1.0])
@pytest.mark.parametrize("dtype,zmax,rtol", [(np.float64, 760.0, 1e-13), (np.float32, 110.0, 2e-6)])
def test_sigmoid_gradient_accurate_over_whole_logit_range(dtype, zmax, rtol, target):
    # The per-sample input gradient of a [1, 1] net with W = 1, b = 0 is (sigmoid(x) - y) / N:
    # this checks the exp used by the sigmoid gradient from underflow to overflow. With y = 0
    # there is no cancellation, so sigmoid(x) = 1 / (1 + exp(-x)) is checked relatively (for
    # x << 0 it is 1 / exp(|x|)); with y = 1, sigmoid(x) - 1 cancels for x >> 0 and only an
    # absolute error of about one ulp of 1 (divided by N) can be asked for.
    net = fs.MLP([1, 1])
    params = [np.ones((1, 1, 1), dtype), np.zeros((1, 1), dtype)]
    x = np.linspace(-zmax, zmax, 2001).astype(dtype)
    x = np.concatenate([x, np.array([0.0, 1e-3, -1e-3, 0.5, -0.5], dtype)])
    y = np.full(x.size, target)
    _, grads, dX = fs.loss_and_grad(net, params, x[:, None], y, wrt_input=True)
    assert np.all(np.isfinite(dX)) and np.all(np.isfinite(grads[0]))
    xd = x.astype(np.float64)
    e = np.exp(-np.abs(xd))                      # never overflows
    sig = np.where(xd >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    want = (sig - y) / x.size
    atol = np.finfo(dtype).tiny if target == 0.0 else 2 * np.finfo(dtype).eps / x.size
    np.testing.assert_allclose(dX[0, :, 0], want, rtol=rtol, atol=atol)
