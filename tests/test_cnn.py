"""fs.CNN: the NumPy layer reference against finite differences (and PyTorch), the library's
forward / loss / gradients / fused training against that reference, Keras 'same' pooling
shapes, determinism, and bad input."""
from __future__ import annotations

import re

import numpy as np
import pytest

import falsestruct_fast as fs
from falsestruct_fast import _native
import reference as R
import reference_cnn as RC
from helpers import assert_close, assert_params_equal, make_targets

RTOL = 1e-10


def small_nets():
    """Small CNN specs: odd sizes, pools on odd sizes, conv without activation, Dense(relu),
    softmax and multi-logit sigmoid heads, k > image size, Dense on a 1x1 image."""
    C, P, F, D = fs.Conv2D, fs.MaxPool2D, fs.Flatten, fs.Dense
    return {
        "7x9x2-softmax3": fs.CNN((7, 9, 2), [C(3, 3), P(), C(4, 5, activation=None), P(), F(),
                                             D(5, activation="relu"), D(3)], loss="softmax"),
        "5x7x1-k1": fs.CNN((5, 7, 1), [C(2, 1), P(), F(), D(1)]),
        "6x5x3-pool-first-sigmoid2": fs.CNN((6, 5, 3), [P(), C(2, 3, activation=None), P(), P(), F(),
                                                        D(4, activation="relu"), D(2)], loss="sigmoid"),
        "3x3x2-k5": fs.CNN((3, 3, 2), [C(3, 5), P(), F(), D(1)]),
        "2x2x3-dense-on-1x1": fs.CNN((2, 2, 3), [C(4, 3), P(), D(2)], loss="softmax"),
        # inputs of 9 and 10 channels: the input gradient as a convolution with the flipped
        # kernel (fewer than 8 channels take per-tap products); the first kernel gradient from
        # the pool's routed terms only, with clipped windows; k = 5 wider than a 4 x 3 image
        "7x5x9-wide-inputs": fs.CNN((7, 5, 9), [C(10, 3), P(), C(3, 5, activation=None), F(),
                                                D(2)], loss="softmax"),
    }


NETS = small_nets()


def random_params(net, S, seed=0, noise=0.2):
    """Plain float64 arrays (leading axis S): library Glorot weights plus noise on every array
    (nonzero biases), different for each network."""
    rng = np.random.default_rng(seed)
    return [np.ascontiguousarray(a + noise * rng.standard_normal(a.shape))
            for a in fs.init(net, seeds=range(10 + seed, 10 + seed + S), dtype="float64")]


def images(N, shape, *, seed=0, S=None):
    rng = np.random.default_rng(seed)
    lead = (N,) if S is None else (S, N)
    return rng.standard_normal(lead + tuple(shape))


# ---- the reference layers against finite differences ----------------------------------------
@pytest.mark.parametrize("H,W,cin,cout,k", [(5, 7, 2, 3, 1), (5, 7, 3, 2, 3), (7, 9, 1, 4, 5),
                                            (4, 6, 2, 2, 3), (3, 2, 2, 3, 5)])
def test_reference_conv2d_gradients_match_finite_differences(H, W, cin, cout, k):
    rng = np.random.default_rng(H * 100 + W * 10 + k)
    N = 2
    x = rng.standard_normal((N, H, W, cin))
    K = rng.standard_normal((k, k, cin, cout))
    b = rng.standard_normal(cout)
    dy = rng.standard_normal((N, H, W, cout))       # L = sum(dy * conv(x))
    y = RC.conv2d_forward(x, K, b)
    assert y.shape == (N, H, W, cout)
    dx, dK, db = RC.conv2d_backward(x, K, dy)
    assert_close(dx, R.numerical_grad(lambda v: np.sum(dy * RC.conv2d_forward(v, K, b)), x),
                 1e-7, "conv dx")
    assert_close(dK, R.numerical_grad(lambda v: np.sum(dy * RC.conv2d_forward(x, v, b)), K),
                 1e-7, "conv dK")
    assert_close(db, R.numerical_grad(lambda v: np.sum(dy * RC.conv2d_forward(x, K, v)), b),
                 1e-7, "conv db")


@pytest.mark.parametrize("k", [1, 3, 5])
def test_reference_conv2d_forward_is_same_padded_cross_correlation(k):
    # a kernel with a single 1 at tap (kh, kw), channel c -> o, shifts channel c of the image by
    # (kh - p, kw - p) with zeros outside: checks orientation (no flip) and the padding
    rng = np.random.default_rng(k)
    x = rng.standard_normal((2, 5, 7, 2))
    p = k // 2
    for kh in range(k):
        for kw in range(k):
            K = np.zeros((k, k, 2, 3))
            K[kh, kw, 1, 2] = 1.0
            y = RC.conv2d_forward(x, K, np.array([0.0, 0.5, 0.0]))
            expected = np.zeros((2, 5, 7))
            for h in range(5):
                for w in range(7):
                    ih, iw = h + kh - p, w + kw - p
                    if 0 <= ih < 5 and 0 <= iw < 7:
                        expected[:, h, w] = x[:, ih, iw, 1]
            np.testing.assert_array_equal(y[..., 2], expected)
            np.testing.assert_array_equal(y[..., 0], 0.0)
            np.testing.assert_array_equal(y[..., 1], 0.5)


def _pool_by_reshape(x):
    """'same' 2x2/2 max-pool by -inf padding to even size (no zero padding)."""
    N, H, W, C = x.shape
    xp = np.pad(x, ((0, 0), (0, H % 2), (0, W % 2), (0, 0)), constant_values=-np.inf)
    return xp.reshape(N, xp.shape[1] // 2, 2, xp.shape[2] // 2, 2, C).max(axis=(2, 4))


@pytest.mark.parametrize("H,W,C", [(5, 7, 3), (6, 4, 2), (1, 1, 2), (3, 5, 1), (7, 9, 2)])
def test_reference_maxpool_forward_and_gradient(H, W, C):
    rng = np.random.default_rng(H * 10 + W)
    x = rng.standard_normal((2, H, W, C))
    y = RC.maxpool_forward(x)
    assert y.shape == (2, -(-H // 2), -(-W // 2), C)
    np.testing.assert_array_equal(y, _pool_by_reshape(x))
    dy = rng.standard_normal(y.shape)
    dx = RC.maxpool_backward(x, dy)
    assert_close(dx, R.numerical_grad(lambda v: np.sum(dy * RC.maxpool_forward(v)), x),
                 1e-7, "maxpool dx")
    # each window passes its gradient to exactly one element
    assert np.count_nonzero(dx) == dy.size


def test_reference_maxpool_ties_go_to_first_maximum():
    x = np.zeros((1, 3, 3, 1))
    x[0, 0, 1, 0] = x[0, 1, 0, 0] = x[0, 1, 1, 0] = 2.0        # window (0,0): max at (0,1) first
    x[0, 2, :, 0] = -1.0                                       # windows clipped to one row
    dy = np.arange(1.0, 5.0).reshape(1, 2, 2, 1)
    dx = RC.maxpool_backward(x, dy)
    expected = np.zeros((3, 3))
    expected[0, 1] = 1.0        # (0,0) window: first of the three 2.0s in row-major order
    expected[0, 2] = 2.0        # (0,1) window: clipped to column 2, 0.0 at (0,2) first
    expected[2, 0] = 3.0        # (1,0) window: row 2 only, tie -1, -1: first
    expected[2, 2] = 4.0        # (1,1) window: the single element
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


# ---- library vs reference ---------------------------------------------------------------------
def check_net_against_reference(net, params, X, y, rtol=RTOL, per_seed=False):
    """X and y shared, or (per_seed) with a leading network axis S."""
    S = params[0].shape[0]
    N = X.shape[-4]
    z = fs.forward(net, params, X)
    loss, grads, dX = fs.loss_and_grad(net, params, X, y, wrt_input=True)
    loss2, grads2 = fs.loss_and_grad(net, params, X, y)
    assert z.shape == (S, N, net.n_logits) and z.dtype == np.float64
    assert dX.shape == (S, N) + tuple(net.input_shape)
    np.testing.assert_array_equal(loss, loss2)
    for a, b in zip(grads, grads2):
        np.testing.assert_array_equal(a, b)
    assert (X.ndim == 5) == per_seed
    for s in range(S):
        ps = R.split_params(params, s)
        Xs = X[s] if per_seed else X
        ys = y[s] if per_seed else y
        zr = RC.forward(net, ps, Xs)
        lr_, gr, dXr = RC.loss_and_grad(net, ps, Xs, ys)
        assert_close(z[s], zr, rtol, f"forward net {s}")
        assert_close(loss[s], lr_, rtol, f"loss net {s}")
        assert len(grads) == len(gr) == len(net.param_shapes())
        for i, (g, g_ref) in enumerate(zip(grads, gr)):
            assert g.shape == params[i].shape
            assert_close(g[s], g_ref, rtol, f"grad[{i}] net {s}")
        assert_close(dX[s], dXr, rtol, f"input grad net {s}")
    return z, loss, grads, dX


@pytest.mark.parametrize("name", list(NETS))
def test_forward_and_gradients_match_reference_shared_X(name):
    net = NETS[name]
    params = random_params(net, S=2, seed=1)
    X = images(5, net.input_shape, seed=2)
    y = make_targets(net, 5, seed=3)
    z, loss, grads, dX = check_net_against_reference(net, params, X, y)
    # the two networks really differ (per-network params are used)
    assert not np.allclose(z[0], z[1])
    assert all(np.any(g != 0) for g in grads)


@pytest.mark.parametrize("name", list(NETS))
def test_forward_and_gradients_match_reference_per_seed_X(name):
    net = NETS[name]
    S, N = 2, 4
    params = random_params(net, S=S, seed=4)
    X = images(N, net.input_shape, seed=5, S=S)
    y = make_targets(net, N, seed=6, S=S)
    check_net_against_reference(net, params, X, y, per_seed=True)
    # the per-seed images are really used: network 0 on X[1] differs from on X[0]
    z0 = fs.forward(net, [a[:1].copy() for a in params], X[0])
    z1 = fs.forward(net, [a[:1].copy() for a in params], X[1])
    np.testing.assert_array_equal(fs.forward(net, params, X)[0], z0[0])
    assert not np.allclose(z0, z1)


@pytest.mark.parametrize("per_seed", [False, True], ids=["shared-X", "per-seed-X"])
@pytest.mark.parametrize("name", ["7x9x2-softmax3", "6x5x3-pool-first-sigmoid2", "3x3x2-k5"])
def test_loss_and_grad_in_row_chunks_equals_one_call(name, per_seed):
    # 11 images in chunks of 3 (last chunk 2) and 1: same loss, gradients and input gradient
    net = NETS[name]
    S, N = 2, 11
    params = random_params(net, S=S, seed=7)
    X = images(N, net.input_shape, seed=8, S=S if per_seed else None)
    y = make_targets(net, N, seed=9, S=S if per_seed else None)
    loss, grads, dX = fs.loss_and_grad(net, params, X, y, wrt_input=True, chunk_size=N)
    for chunk_size in (3, 1):
        loss_c, grads_c, dX_c = fs.loss_and_grad(net, params, X, y, wrt_input=True, chunk_size=chunk_size)
        assert dX_c.shape == (S, N) + tuple(net.input_shape)
        assert_close(loss_c, loss, 1e-12, f"loss, chunks of {chunk_size}")
        for i, (a, b) in enumerate(zip(grads_c, grads)):
            assert_close(a, b, 1e-12, f"grad[{i}], chunks of {chunk_size}")
        assert_close(dX_c, dX, 1e-12, f"input grad, chunks of {chunk_size}")
    lr_, gr, _ = RC.loss_and_grad(net, R.split_params(params, 1), X[1] if per_seed else X,
                                  y[1] if per_seed else y)
    assert_close(loss_c[1], lr_, RTOL, "chunked loss vs reference")
    for i, (g, g_ref) in enumerate(zip(grads_c, gr)):
        assert_close(g[1], g_ref, RTOL, f"chunked grad[{i}] vs reference")


def test_paper_cnn_loss_and_grad_in_chunks_float32():
    net = fs.paper_cnn()
    params = fs.init(net, seeds=[3], dtype="float32")
    X = images(20, net.input_shape, seed=1).astype(np.float32)
    y = np.arange(20) % 2
    loss, grads, dX = fs.loss_and_grad(net, params, X, y, wrt_input=True)   # one call (20 <= 87)
    loss_c, grads_c, dX_c = fs.loss_and_grad(net, params, X, y, wrt_input=True, chunk_size=7)
    assert loss_c.dtype == np.float32 and dX_c.dtype == np.float32
    assert_close(loss_c, loss, 1e-5, "loss")
    for i, (a, b) in enumerate(zip(grads_c, grads)):
        assert_close(a, b, 1e-4, f"grad[{i}]")
    assert_close(dX_c, dX, 1e-4, "input grad")


@pytest.mark.parametrize("name", ["7x9x2-softmax3", "6x5x3-pool-first-sigmoid2"])
def test_library_gradients_match_finite_differences(name):
    net = NETS[name]
    S, N, h = 2, 3, 1e-6
    params = random_params(net, S=S, seed=7)
    X = images(N, net.input_shape, seed=8)
    y = make_targets(net, N, seed=9)
    _, grads, dX = fs.loss_and_grad(net, params, X, y, wrt_input=True)
    rng = np.random.default_rng(10)

    def loss_at(ps, Xv):
        return fs.loss_and_grad(net, ps, Xv, y)[0]

    for i, a in enumerate(params):
        scale = np.max(np.abs(grads[i]))
        for flat_idx in rng.choice(a[0].size, size=min(4, a[0].size), replace=False):
            idx = np.unravel_index(flat_idx, a.shape[1:])
            plus = [p.copy() for p in params]
            minus = [p.copy() for p in params]
            plus[i][(slice(None),) + idx] += h          # the same entry in both networks
            minus[i][(slice(None),) + idx] -= h
            fd = (loss_at(plus, X) - loss_at(minus, X)) / (2 * h)
            assert_close(grads[i][(slice(None),) + idx], fd, 1e-6, f"params[{i}]{idx}",
                         scale=scale)
    scale = np.max(np.abs(dX))
    for flat_idx in rng.choice(X.size, size=8, replace=False):
        idx = np.unravel_index(flat_idx, X.shape)
        Xp, Xm = X.copy(), X.copy()
        Xp[idx] += h
        Xm[idx] -= h
        fd = (loss_at(params, Xp) - loss_at(params, Xm)) / (2 * h)   # (S,): dX of each net
        assert_close(dX[(slice(None),) + idx], fd, 1e-6, f"X{idx}", scale=scale)


# ---- against PyTorch --------------------------------------------------------------------------
def torch_loss_and_grads(net, params_one, X, y):
    """(logits, loss, grads, dX) of one network by PyTorch autograd (NCHW / OIHW layouts)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    ps = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params_one]
    x0 = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    x = x0.permute(0, 3, 1, 2)                         # NHWC -> NCHW
    i = 0
    for layer in net.layers:
        if isinstance(layer, fs.Conv2D):
            K, b = ps[i], ps[i + 1]
            x = F.conv2d(x, K.permute(3, 2, 0, 1), b, padding=layer.kernel_size // 2)  # HWIO -> OIHW
            i += 2
        elif isinstance(layer, fs.MaxPool2D):
            x = F.max_pool2d(x, 2, ceil_mode=True)     # odd sizes: clipped last window
        else:
            if x.dim() == 4:                            # Flatten (or Dense on a 1x1 image)
                x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)   # (h, w, c) order
            if isinstance(layer, fs.Dense):
                x = x @ ps[i] + ps[i + 1]
                i += 2
        if getattr(layer, "activation", None) == "relu":
            x = torch.relu(x)
    z = x
    if net.loss == "sigmoid":
        target = torch.tensor(np.asarray(y, dtype=np.float64).reshape(z.shape))
        loss = F.binary_cross_entropy_with_logits(z, target)
    else:
        loss = F.cross_entropy(z, torch.tensor(np.asarray(y).astype(np.int64)))
    loss.backward()
    return (z.detach().numpy(), float(loss.detach()), [p.grad.numpy() for p in ps], x0.grad.numpy())


def check_against_torch(net, params, X, y):
    z = fs.forward(net, params, X)
    loss, grads, dX = fs.loss_and_grad(net, params, X, y, wrt_input=True)
    for s in range(params[0].shape[0]):
        zt, lt, gt, dXt = torch_loss_and_grads(net, R.split_params(params, s), X, y)
        assert_close(z[s], zt, RTOL, f"forward net {s}")
        assert_close(loss[s], lt, RTOL, f"loss net {s}")
        for i, g in enumerate(gt):
            assert_close(grads[i][s], g, RTOL, f"grad[{i}] net {s}")
        assert_close(dX[s], dXt, RTOL, f"input grad net {s}")


def test_paper_cnn_matches_torch():
    pytest.importorskip("torch")
    net = fs.paper_cnn()
    assert net.param_shapes() == [(5, 5, 1, 24), (24,), (5, 5, 24, 48), (48,), (3072, 10), (10,),
                                  (10, 1), (1,)]
    params = random_params(net, S=1, seed=11, noise=0.05)
    X = images(3, (32, 32, 1), seed=12)
    y = np.array([0.0, 1.0, 1.0])
    check_against_torch(net, params, X, y)
    # and the NumPy reference agrees with both
    check_net_against_reference(net, params, X, y)


@pytest.mark.parametrize("name", list(NETS))
def test_small_nets_match_torch(name):
    pytest.importorskip("torch")
    net = NETS[name]
    params = random_params(net, S=2, seed=13)
    X = images(3, net.input_shape, seed=14)
    y = make_targets(net, 3, seed=15)
    check_against_torch(net, params, X, y)


# ---- Keras 'same' pooling ----------------------------------------------------------------------
def identity_head_net(H, W, C, pools=1):
    """MaxPool2D x pools, Flatten, Dense(identity): the logits are the pooled image itself."""
    h, w = H, W
    for _ in range(pools):
        h, w = -(-h // 2), -(-w // 2)
    K = h * w * C
    net = fs.CNN((H, W, C), [fs.MaxPool2D()] * pools + [fs.Flatten(), fs.Dense(K)], loss="sigmoid")
    params = [np.eye(K)[None].copy(), np.zeros((1, K))]
    return net, params, (h, w)


@pytest.mark.parametrize("H,W", [(1, 1), (2, 3), (5, 7), (7, 9), (32, 32), (33, 17)])
def test_pool_shapes_follow_keras_same(H, W):
    C = 2
    net = fs.CNN((H, W, C), [fs.MaxPool2D(), fs.Conv2D(3, 3), fs.MaxPool2D(), fs.Flatten(),
                             fs.Dense(1)])
    h1, w1 = (H + 1) // 2, (W + 1) // 2       # ceil
    h2, w2 = (h1 + 1) // 2, (w1 + 1) // 2
    assert net.layer_shapes() == [(h1, w1, C), (h1, w1, 3), (h2, w2, 3), (h2 * w2 * 3,), (1,)]
    assert net.param_shapes() == [(3, 3, C, 3), (3,), (h2 * w2 * 3, 1), (1,)]
    params = fs.init(net, seeds=range(2), dtype="float64")
    assert fs.forward(net, params, images(3, (H, W, C))).shape == (2, 3, 1)
    # the pooled image itself (identity Dense head), against -inf-padded pooling
    net2, params2, (h, w) = identity_head_net(H, W, C, pools=2)
    X = images(3, (H, W, C), seed=H * W)
    z = fs.forward(net2, params2, X)
    np.testing.assert_array_equal(z[0].reshape(3, h, w, C),
                                  _pool_by_reshape(_pool_by_reshape(X)))


def test_clipped_pool_window_uses_only_existing_elements():
    H, W, C = 5, 7, 2
    net, params, (h, w) = identity_head_net(H, W, C)
    X = images(2, (H, W, C), seed=3)
    X[:, H - 1, :, :] = -300.0 - np.abs(X[:, H - 1, :, :])   # last row: large negative
    X[:, :, W - 1, :] = -400.0 - np.abs(X[:, :, W - 1, :])   # last column too
    z = fs.forward(net, params, X)[0].reshape(2, h, w, C)
    # clipped windows are the max over the existing (negative) elements, never 0
    np.testing.assert_array_equal(z[:, h - 1, :w - 1, :],
                                  np.maximum(X[:, H - 1, 0:W - 1:2, :], X[:, H - 1, 1:W - 1:2, :]))
    np.testing.assert_array_equal(z[:, :h - 1, w - 1, :],
                                  np.maximum(X[:, 0:H - 1:2, W - 1, :], X[:, 1:H - 1:2, W - 1, :]))
    np.testing.assert_array_equal(z[:, h - 1, w - 1, :], X[:, H - 1, W - 1, :])
    assert np.all(z[:, h - 1, :, :] < -100) and np.all(z[:, :, w - 1, :] < -100)
    np.testing.assert_array_equal(z, RC.maxpool_forward(X))
    # the gradient of the clipped windows goes to the existing elements only (targets 1: every
    # logit has a nonzero gradient, also the very negative ones)
    y = np.ones((2, net.n_logits))
    _, _, dX = fs.loss_and_grad(net, params, X, y, wrt_input=True)
    _, _, dXr = RC.loss_and_grad(net, R.split_params(params, 0), X, y)
    assert_close(dX[0], dXr, RTOL, "pool input grad")
    assert np.count_nonzero(dX[0]) == z.size


def test_pool_gradient_ties_go_to_first_maximum():
    # every 2x2 window (and clipped window) holds one repeated value: the gradient must go to
    # the window's first element (even h, even w) only
    H, W, C = 5, 6, 2
    net, params, (h, w) = identity_head_net(H, W, C)
    base = images(3, (h, w, C), seed=5)
    X = np.repeat(np.repeat(base, 2, axis=1), 2, axis=2)[:, :H, :W, :].copy()
    y = make_targets(net, 3, seed=6)
    _, _, dX = fs.loss_and_grad(net, params, X, y, wrt_input=True)
    _, _, dXr = RC.loss_and_grad(net, R.split_params(params, 0), X, y)
    assert_close(dX[0], dXr, RTOL, "input grad with ties")
    mask = np.zeros((H, W), dtype=bool)
    mask[::2, ::2] = True
    assert np.all(dX[0][:, ~mask, :] == 0)
    assert np.all(dX[0][:, mask, :] != 0)


@pytest.mark.parametrize("emulate", [0, 7])
def test_pool_propagates_nan_and_routes_its_gradient_to_the_first_nan(emulate):
    # NaN is taken as a window's maximum (divergence stays visible), also in clipped windows.
    # The native binding is called directly because the public API rejects NaN input.
    def native(net, params, X):
        theta = np.concatenate([a.reshape(1, -1) for a in params], axis=1)
        Xf = np.ascontiguousarray(X.reshape(len(X), -1))
        z = np.zeros((1, len(X), net.n_logits))
        _native.net_forward(net.spec, theta, Xf, z, 1, emulate)
        loss, grad, dX = np.zeros(1), np.zeros_like(theta), np.zeros((1,) + Xf.shape)
        _native.net_loss_and_grad(net.spec, 0, theta, Xf, np.zeros_like(z[0]), loss, grad, dX, 1,
                                  emulate)
        return z[0, :, 0], dX[0].reshape(X.shape)

    # forward: one window (one channel, one logit), full or clipped, with a NaN at each place
    for H, W in [(2, 2), (1, 2), (2, 1), (1, 1)]:
        net, params, _ = identity_head_net(H, W, 1)
        X = np.repeat(images(1, (H, W, 1), seed=H + W), H * W + 1, axis=0)
        for i in range(H * W):
            X[i + 1].flat[i] = np.nan
        z, _ = native(net, params, X)
        np.testing.assert_array_equal(np.isnan(z), [False] + [True] * (H * W))
        assert z[0] == X[0].max()
    # backward: every logit gradient is NaN, and each window's goes to one element only: its
    # first NaN (row-major in the window), else its first maximum
    H, W, C = 5, 7, 3
    net, params, (h, w) = identity_head_net(H, W, C)
    X = images(2, (H, W, C), seed=9)
    for p in [(0, 0, 1, 0), (0, 1, 1, 2), (0, 1, 0, 2), (1, 4, 6, 1), (1, 3, 0, 0), (1, 2, 3, 1)]:
        X[p] = np.nan
    _, dX = native(net, params, X)
    for n in range(2):
        for oh in range(h):
            for ow in range(w):
                for c in range(C):
                    window = X[n, 2 * oh:2 * oh + 2, 2 * ow:2 * ow + 2, c].ravel()
                    nans = np.flatnonzero(np.isnan(window))
                    chosen = nans[0] if nans.size else int(np.argmax(window))
                    d = dX[n, 2 * oh:2 * oh + 2, 2 * ow:2 * ow + 2, c].ravel()
                    assert np.flatnonzero(d).tolist() == [chosen], (n, oh, ow, c, window, d)
                    assert np.isnan(d[chosen])


# ---- fused training ----------------------------------------------------------------------------
def training_net():
    return fs.CNN((6, 7, 1), [fs.Conv2D(3, 3), fs.MaxPool2D(), fs.Conv2D(4, 3), fs.Flatten(),
                              fs.Dense(5, activation="relu"), fs.Dense(1)])


@pytest.mark.parametrize("shuffle", ["samples", "batches"])
def test_training_matches_reference(shuffle):
    net = training_net()
    seeds = [3, 2**40 + 1]
    S, N, B, epochs = 2, 12, 4, 5
    params = fs.init(net, seeds=seeds, dtype="float64")
    X = images(N, (6, 7, 1), seed=20)
    y = make_targets(net, N, seed=21)
    adam = fs.Adam(lr=1e-2)
    fit = fs.train(net, params, X, y, epochs=epochs, batch_size=B, optimizer=adam,
                   shuffle=shuffle, record_every=1, progress=False)
    np.testing.assert_array_equal(fit.epochs, np.arange(1, epochs + 1))
    assert fit.loss.shape == (S, epochs)
    assert fit.opt_state.step == epochs * (N // B)
    for s, seed in enumerate(seeds):
        orders = R.batch_orders(shuffle, seed, N, B, epochs)
        ref = RC.train(net, R.split_params(params, s), X, y, orders, lr=adam.lr,
                       beta1=adam.beta1, beta2=adam.beta2, eps=adam.eps)
        for i, p in enumerate(ref["params"]):
            assert_close(fit.params[i][s], p, RTOL, f"net {s} param {i}")
        assert_close(fit.loss[s], ref["loss"], RTOL, f"net {s} loss history")
        assert_close(fit.accuracy[s], ref["accuracy"], 1e-12, f"net {s} accuracy history")
    assert not np.array_equal(fit.params.flat, params.flat)


def test_threads_bitwise_identical_and_seed_alone():
    net = training_net()
    seeds = [5, 6, 7]
    params = fs.init(net, seeds=seeds, dtype="float64")
    X = images(12, (6, 7, 1), seed=22)
    y = make_targets(net, 12, seed=23)
    kw = dict(epochs=4, batch_size=4, shuffle="samples", optimizer=fs.Adam(lr=1e-2),
              record_every=1, progress=False)
    a = fs.train(net, params, X, y, threads=1, **kw)
    b = fs.train(net, params, X, y, threads=2, **kw)
    assert_params_equal(a.params, b.params, "threads 1 vs 2")
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.accuracy, b.accuracy)
    np.testing.assert_array_equal(a.opt_state.m, b.opt_state.m)
    np.testing.assert_array_equal(a.opt_state.v, b.opt_state.v)
    np.testing.assert_array_equal(fs.forward(net, a.params, X, threads=1),
                                  fs.forward(net, a.params, X, threads=2))
    g1 = fs.loss_and_grad(net, a.params, X, y, wrt_input=True, threads=1)
    g2 = fs.loss_and_grad(net, a.params, X, y, wrt_input=True, threads=2)
    np.testing.assert_array_equal(g1[0], g2[0])
    np.testing.assert_array_equal(g1[1].flat, g2[1].flat)
    np.testing.assert_array_equal(g1[2], g2[2])
    # seed s among S == seed s trained alone
    for s, seed in enumerate(seeds):
        alone = fs.train(net, fs.init(net, seeds=seed, dtype="float64"), X, y, threads=1, **kw)
        for i, (p_alone, p_many) in enumerate(zip(alone.params, a.params)):
            assert np.array_equal(p_alone[0], p_many[s]), f"seed {seed} param {i}"
        np.testing.assert_array_equal(alone.loss[0], a.loss[s])
        np.testing.assert_array_equal(alone.accuracy[0], a.accuracy[s])
    # the networks differ (different init and batch order)
    assert not np.array_equal(a.params.flat[0], a.params.flat[1])


# ---- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4, 6, 7), (4, 7, 6, 1), (4, 6, 7, 2), (2, 3, 4, 6, 7, 1)])
def test_wrong_image_shape_raises_naming_X(shape):
    net = training_net()
    params = fs.init(net, seeds=range(3), dtype="float64")
    X = np.zeros(shape)
    y = np.zeros(4)
    with pytest.raises(ValueError, match=r"^X: expected shape \(N, 6, 7, 1\) or \(S, N, 6, 7, 1\)"):
        fs.forward(net, params, X)
    with pytest.raises(ValueError, match=r"^X: "):
        fs.loss_and_grad(net, params, X, y)
    with pytest.raises(ValueError, match=r"^X: "):
        fs.train(net, params, X, y, epochs=1, batch_size=2, progress=False)


def test_per_seed_X_with_wrong_S_raises():
    net = training_net()
    params = fs.init(net, seeds=range(3), dtype="float64")
    with pytest.raises(ValueError, match=r"^X: leading axis 2 differs .* S = 3"):
        fs.forward(net, params, np.zeros((2, 4, 6, 7, 1)))


@pytest.mark.parametrize("i", range(8))
def test_wrong_param_shape_raises_naming_the_array(i):
    net = training_net()
    params = [np.array(a) for a in fs.init(net, seeds=range(2), dtype="float64")]
    bad = list(params)
    shape = list(bad[i].shape)
    shape[-1] += 1
    bad[i] = np.zeros(shape)
    X = images(4, (6, 7, 1))
    expected = (2,) + net.param_shapes()[i]
    with pytest.raises(ValueError, match=rf"^params\[{i}\]: expected shape {re.escape(str(expected))}"):
        fs.forward(net, bad, X)
    with pytest.raises(ValueError, match=rf"^params\[{i}\]: "):
        fs.loss_and_grad(net, bad, X, np.zeros(4))
    # a kernel in the wrong layout (OIHW instead of HWIO) is rejected too
    if i == 2:
        with pytest.raises(ValueError, match=r"^params\[2\]: expected shape \(2, 3, 3, 3, 4\)"):
            fs.forward(net, params[:2] + [np.ascontiguousarray(params[2].transpose(0, 4, 3, 1, 2))]
                       + params[3:], X)


def test_wrong_number_of_params_raises():
    net = training_net()
    params = list(fs.init(net, seeds=range(2), dtype="float64"))
    with pytest.raises(ValueError, match=r"^params: .* has 8 arrays"):
        fs.forward(net, params[:-2], images(4, (6, 7, 1)))


@pytest.mark.parametrize("make,message", [
    (lambda: fs.Conv2D(4, 4), r"Conv2D\.kernel_size: must be odd .*got 4"),
    (lambda: fs.Conv2D(4, 2), r"Conv2D\.kernel_size: must be odd .*got 2"),
    (lambda: fs.CNN((6, 7, 1), [fs.Conv2D(3, 3), fs.Dense(1)]),
     r"layers\[1\]: Dense on an 6x7 image needs a Flatten before it"),
    (lambda: fs.CNN((6, 7, 1), [fs.MaxPool2D(), fs.Dense(4), fs.Dense(1)]),
     r"layers\[1\]: Dense on an 3x4 image needs a Flatten"),
    (lambda: fs.CNN((6, 7, 1), [fs.Conv2D(3, 3), fs.Flatten(), fs.Dense(4, activation="relu")]),
     r"the last layer must be a Dense layer without activation"),
    (lambda: fs.CNN((6, 7, 1), [fs.Conv2D(3, 3), fs.Flatten()]),
     r"the last layer must be a Dense layer without activation"),
    (lambda: fs.CNN((6, 7, 1), [fs.Conv2D(3, 3, activation=None)]),
     r"the last layer must be a Dense layer without activation"),
    (lambda: fs.CNN((6, 7, 1), [fs.Flatten(), fs.Conv2D(3, 3), fs.Flatten(), fs.Dense(1)]),
     r"layers\[1\]: Conv2D after Flatten/Dense"),
    (lambda: fs.CNN((6, 7, 1), [fs.Flatten(), fs.Dense(3), fs.MaxPool2D(), fs.Dense(1)]),
     r"layers\[2\]: MaxPool2D after Flatten/Dense"),
    (lambda: fs.CNN((6, 7), [fs.Flatten(), fs.Dense(1)]), r"input_shape: expected \(H, W, C\)"),
    (lambda: fs.CNN((6, 7, 1), [fs.Flatten(), fs.Dense(1)], loss="softmax"),
     r"'softmax' needs at least 2 output logits"),
])
def test_bad_cnn_spec_raises(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_valid_edge_specs_are_accepted():
    # Dense directly on a 1x1 image needs no Flatten; a Dense(relu) hidden layer is fine
    net = fs.CNN((2, 2, 3), [fs.MaxPool2D(), fs.Dense(4, activation="relu"), fs.Dense(2)])
    assert net.loss == "softmax" and net.n_logits == 2
    assert net.param_shapes() == [(3, 4), (4,), (4, 2), (2,)]


# ---- threads within one network (HostTeamBlock) and the CUDA index mapping (EmulatedBlock) ----
def team_net():
    # big enough per step (units per sample x batch >= 2**16) for a team of threads per network
    return fs.CNN((16, 16, 2), [fs.Conv2D(8, 3), fs.MaxPool2D(), fs.Conv2D(6, 3), fs.Flatten(),
                                fs.Dense(4, activation="relu"), fs.Dense(1)])


def pooled_team_net():
    # inputs of 9 and 8 channels, each conv behind a pool (kernel gradients from the routed
    # terms, in blocks of output channels), clipped pool windows (13 and 7 columns)
    return fs.CNN((12, 13, 9), [fs.Conv2D(8, 3), fs.MaxPool2D(), fs.Conv2D(8, 3), fs.MaxPool2D(),
                                fs.Flatten(), fs.Dense(1)])


def odd_team_net():
    # groups of rows that end in 4-, 2- and 1-row tiles (15 and 63 rows), odd image sizes
    return fs.CNN((15, 13, 3), [fs.Conv2D(7, 5), fs.MaxPool2D(), fs.Conv2D(5, 3), fs.Flatten(),
                                fs.Dense(3, activation="relu"), fs.Dense(1)])


# A team of 3 on 2 cores: home ranges of uneven size, and the threads take from each
# other's (one is always descheduled).
@pytest.mark.parametrize("team", [2, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make_net,B", [(team_net, 24), (odd_team_net, 32), (pooled_team_net, 24)])
def test_team_of_threads_on_one_network_is_bitwise_identical(make_net, B, dtype, team):
    net = make_net()
    params = fs.init(net, seeds=[5], dtype=dtype)
    X = images(2 * B, net.input_shape, seed=3).astype(dtype)
    y = make_targets(net, 2 * B, seed=4)
    kw = dict(epochs=3, batch_size=B, shuffle="samples", optimizer=fs.Adam(lr=1e-2),
              record_every=1, progress=False)
    one = fs.train(net, params, X, y, threads=1, **kw)
    trained = fs.train(net, params, X, y, threads=team, **kw)
    assert_params_equal(trained.params, one.params)
    np.testing.assert_array_equal(trained.loss, one.loss)
    assert not np.array_equal(one.params.flat, params.flat)
    l1, g1, d1 = fs.loss_and_grad(net, params, X[:B], y[:B], wrt_input=True, threads=1)
    l2, g2, d2 = fs.loss_and_grad(net, params, X[:B], y[:B], wrt_input=True, threads=team)
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(g1.flat, g2.flat)
    np.testing.assert_array_equal(d1, d2)
    ref_loss, ref_grads, _ = RC.loss_and_grad(net, [a[0].astype(np.float64) for a in params],
                                              X[:B].astype(np.float64), y[:B])
    assert_close(l2[0], ref_loss, 1e-10 if dtype == "float64" else 1e-4, "team loss vs reference")


def wide_pooled_net():
    # a conv on 9 channels behind a pool: the element form of the routed kernel gradient
    return fs.CNN((7, 5, 9), [fs.Conv2D(10, 3), fs.MaxPool2D(), fs.Conv2D(3, 3), fs.Flatten(),
                              fs.Dense(5, activation="relu"), fs.Dense(1)])


@pytest.mark.parametrize("make_net", [training_net, wide_pooled_net])
@pytest.mark.parametrize("emulate", [7, 128])
def test_emulated_block_runs_the_conv_kernels_like_the_host(emulate, make_net):
    from falsestruct_fast import _native
    from helpers import native_train

    net = make_net()
    S, N = 2, 8
    arrays = random_params(net, S, seed=11)
    params = fs.network.unflatten(net, np.concatenate([a.reshape(S, -1) for a in arrays], axis=1))
    X = images(N, net.input_shape, seed=12, S=S)
    y = make_targets(net, N, seed=13, S=S)
    Xf = np.ascontiguousarray(X.reshape(S, N, -1))
    kw = dict(shuffle="samples", epochs=3, batch_size=4, record_every=1, adam=fs.Adam(lr=1e-2))
    host = native_train(net, params, Xf, y, emulate=0, **kw)
    emulated = native_train(net, params, Xf, y, emulate=emulate, **kw)
    for name, a, b in zip(("theta", "m", "v", "loss", "acc"), emulated, host):
        assert_close(a, b, 1e-12, f"emulate={emulate}: {name}")
    out_h, out_e = (np.zeros((S, N, 1)) for _ in range(2))
    _native.net_forward(net.spec, params.flat, Xf, out_h, 1, 0)
    _native.net_forward(net.spec, params.flat, Xf, out_e, 1, emulate)
    assert_close(out_e, out_h, 1e-12, "emulated forward")
    Y = np.ascontiguousarray(y.reshape(S, N, 1))
    res = {}
    for e in (0, emulate):
        loss, grad, dX = np.zeros(S), np.zeros_like(params.flat), np.zeros_like(Xf)
        _native.net_loss_and_grad(net.spec, 0, params.flat, Xf, Y, loss, grad, dX, 1, e)
        res[e] = (loss, grad, dX)
    for a, b in zip(res[emulate], res[0]):
        assert_close(a, b, 1e-12, "emulated loss_and_grad")


def routed_input_grad_net():
    # a conv on the 37 ReLU channels of another, behind a pool, with the input gradient: the CPU
    # engine sums only the routed terms (one per window and channel), in blocks of input
    # channels (37 = 3 float32 / 4 + 1 float64 vectors, with padding lanes), then relu'(x);
    # odd sizes clip the last windows; k = 5
    return fs.CNN((7, 9, 3), [fs.Conv2D(37, 3), fs.Conv2D(6, 5), fs.MaxPool2D(), fs.Flatten(),
                              fs.Dense(1)])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_routed_conv_input_gradient_behind_a_pool(dtype):
    net = routed_input_grad_net()
    N = 5
    params = fs.init(net, seeds=[2], dtype=dtype)
    X = images(N, net.input_shape, seed=21).astype(dtype)
    y = make_targets(net, N, seed=22)
    _, _, d1 = fs.loss_and_grad(net, params, X, y, wrt_input=True, threads=1)
    _, _, d3 = fs.loss_and_grad(net, params, X, y, wrt_input=True, threads=3)
    np.testing.assert_array_equal(d1, d3)  # a team splits the images: same sums
    p64 = [a[0].astype(np.float64) for a in params]
    _, _, dX_ref = RC.loss_and_grad(net, p64, X.astype(np.float64), y)
    assert np.count_nonzero(dX_ref) > dX_ref.size // 2
    assert_close(d1[0], dX_ref, 1e-10 if dtype == "float64" else 2e-5, "routed input grad")
    # the emulated CUDA block takes the dense form (every term, zeros included)
    flat = np.ascontiguousarray(params.flat)
    Xf = np.ascontiguousarray(X.reshape(1, N, -1))
    Y = np.ascontiguousarray(np.asarray(y).reshape(1, N, -1).astype(dtype))
    dense = {}
    for e in (0, 7):
        loss, grad, dX = np.zeros(1, dtype), np.zeros_like(flat), np.zeros_like(Xf)
        _native.net_loss_and_grad(net.spec, 0, flat, Xf, Y, loss, grad, dX, 1, e)
        dense[e] = dX
    np.testing.assert_array_equal(dense[0].reshape(d1.shape), d1)
    assert_close(dense[0], dense[7], 1e-12 if dtype == "float64" else 2e-6, "routed vs dense")
