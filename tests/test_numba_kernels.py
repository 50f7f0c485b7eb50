"""The Numba kernels (falsestruct_fast.numba_kernels) against the float64 NumPy references and
the native engine: Philox and batch orders bitwise, Glorot init bitwise for every seed, layer
kernels against the references, whole-network forward / gradients / input gradients against the
native engine (1e-12 relative in float64, 1e-5 in float32), 200 epochs of training (1e-7), and
DeepFool statuses, iterations and norms (1e-9).

Shapes are small: compiling the kernels (once per dtype, cached on disk) is most of the cost.
"""
from __future__ import annotations

import numpy as np
import pytest

import falsestruct_fast as fs
import reference as R
import reference_cnn as RC
from falsestruct_fast import _native, engines
from falsestruct_fast import numba_kernels as nk
from falsestruct_fast.network import data_arrays
from helpers import assert_close, make_data, make_targets

NUMBA, NATIVE = engines.get("numba"), engines.get("native")
RTOL = {"float64": 1e-12, "float32": 1e-5}
C, P, F, D = fs.Conv2D, fs.MaxPool2D, fs.Flatten, fs.Dense


def small_cnn(loss_logits=3):
    # odd image sizes: the second pool clips its last window
    return fs.CNN((7, 6, 2), [C(3, 3), P(), C(4, 1), P(), F(), D(5, "relu"), D(loss_logits)])


NETS = {
    "mlp-binary": lambda: fs.MLP([3, 6, 5, 1]),
    "mlp-softmax": lambda: fs.MLP([4, 7, 3]),
    "mlp-multi-sigmoid": lambda: fs.MLP([3, 5, 2], loss="sigmoid"),
    "cnn-softmax": small_cnn,
}


def spec_of(net):
    return np.asarray(net.spec, dtype=np.int64)


def trained_problem(name, dtype, N):
    """problem() with networks trained 100 epochs (native engine): decision boundaries through
    the data, where DeepFool has something to find."""
    net, params, X, Y = problem(name, dtype, N=N)
    X_in = X.reshape((N,) + tuple(net.input_shape))
    fit = fs.train(net, params, X_in, Y[..., 0] if net.n_logits == 1 or net.loss == "softmax" else Y,
                   epochs=100, batch_size=10, optimizer=fs.Adam(lr=0.01), progress=False)
    return net, fit.params, X, Y


def problem(name, dtype, S=2, N=9, seed=0):
    net = NETS[name]()
    params = fs.init(net, seeds=[seed, 2**40 + 7][:S], dtype=dtype)
    rng = np.random.default_rng(seed)
    for b in params[1::2]:  # nonzero biases: a network that is not positively homogeneous
        b[...] = rng.uniform(-0.5, 0.5, b.shape)
    X = make_data(N, net.n_inputs, seed=seed + 1).astype(dtype)
    y = make_targets(net, N, seed=seed + 2)
    Xf, Y = data_arrays(net, S, np.dtype(dtype), X.reshape((N,) + tuple(net.input_shape)), y)
    return net, params, Xf, Y


# ---------------------------------------------------------------- random numbers and init
def test_philox_bitwise_native_and_reference():
    rng = np.random.default_rng(5)
    for _ in range(20):
        counter = [int(c) for c in rng.integers(0, 2**32, 4, dtype=np.uint64)]
        key = [int(k) for k in rng.integers(0, 2**32, 2, dtype=np.uint64)]
        seed = key[0] + (key[1] << 32)
        got = tuple(int(w) for w in nk.philox4x32(np.uint64(seed), *counter))
        assert got == tuple(_native.philox4x32_10(counter, key)) == R.philox4x32_10(counter, key)


@pytest.mark.parametrize("seed,epoch,n", [(0, 0, 1), (3, 1, 10), (2**64 - 1, 2**32 - 1, 37), (2**40, 7, 1000)])
def test_epoch_permutation_bitwise_reference(seed, epoch, n):
    out = np.empty(n, dtype=np.int64)
    nk.epoch_permutation(np.uint64(seed), epoch, out)
    np.testing.assert_array_equal(out, R.random_permutation(seed, epoch, n))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["mlp-binary", "cnn-softmax"])
def test_init_bitwise_equal_to_native(name, dtype):
    net = NETS[name]()
    seeds = np.array([0, 1, 2, 12345, 2**32, 2**63 + 11, 2**64 - 1], dtype=np.uint64)
    ref = fs.init(net, seeds=seeds, dtype=dtype)
    theta = np.empty_like(ref.flat)
    nk.glorot_init_networks(spec_of(net), seeds, theta)
    np.testing.assert_array_equal(theta, ref.flat)
    assert nk.parameter_count(spec_of(net)) == net.n_params


# ---------------------------------------------------------------- layer kernels vs references
def test_conv2d_and_pool_kernels_match_reference():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 7, 3))
    K = rng.standard_normal((3, 3, 3, 4))
    b = rng.standard_normal(4)
    y = np.empty((2, 5, 7, 4))
    nk.conv2d_forward(x, K, b, y, False)
    assert_close(y, RC.conv2d_forward(x, K, b), 1e-12, "conv forward")
    dy = rng.standard_normal(y.shape)
    dx, dK, db = RC.conv2d_backward(x, K, dy)
    got_dx, got_dK, got_db = np.empty_like(x), np.empty_like(K), np.empty_like(b)
    nk.conv2d_backward_input(K, dy, x, got_dx, False)
    nk.conv2d_backward_params(x, dy, got_dK, got_db)
    assert_close(got_dx, dx, 1e-12, "conv dx")
    assert_close(got_dK, dK, 1e-12, "conv dK")
    assert_close(got_db, db, 1e-12, "conv db")
    yp = np.empty((2, 3, 4, 3))
    nk.maxpool2_forward(x, yp)
    assert_close(yp, RC.maxpool_forward(x), 0, "pool forward")
    dyp = rng.standard_normal(yp.shape)
    dxp = np.empty_like(x)
    nk.maxpool2_backward_input(x, dyp, dxp, False)
    assert_close(dxp, RC.maxpool_backward(x, dyp), 0, "pool backward")


def test_maxpool_routes_nan_and_ties_as_native():
    # windows: a NaN wins over larger numbers, the first of two NaNs wins, ties go to the first
    x = np.array([[1.0, np.nan, 5.0], [7.0, 2.0, 2.0], [np.nan, np.nan, 4.0]])[None, :, :, None]
    y = np.empty((1, 2, 2, 1))
    nk.maxpool2_forward(x, y)
    np.testing.assert_array_equal(y[0, :, :, 0], [[np.nan, 5.0], [np.nan, 4.0]])
    dx = np.empty_like(x)
    nk.maxpool2_backward_input(x, np.array([10.0, 20.0, 30.0, 40.0]).reshape(1, 2, 2, 1), dx, False)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 10, 20], [0, 0, 0], [30, 0, 40]])


def test_dense_relu_and_adam_kernels_match_reference():
    rng = np.random.default_rng(1)
    x, W, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal(5)
    y = np.empty((4, 5))
    nk.dense_forward(x, W, b, y, True)
    assert_close(y, np.maximum(x @ W + b, 0), 1e-12, "dense relu forward")
    dy = rng.standard_normal((4, 5))
    dx, dW, db = np.empty_like(x), np.empty_like(W), np.empty_like(b)
    nk.dense_backward_input(W, dy, np.abs(x) * (x > 0), dx, True)
    nk.dense_backward_params(x, dy, dW, db)
    assert_close(dx, (dy @ W.T) * (x > 0), 1e-12, "dense dx through relu")
    assert_close(dW, x.T @ dy, 1e-12, "dense dW")
    assert_close(db, dy.sum(axis=0), 1e-12, "dense db")
    r, g = np.empty_like(y), np.empty_like(y)
    nk.relu(y - 0.5, r)
    nk.relu_backward(r, dy, g)
    np.testing.assert_array_equal(r, np.maximum(y - 0.5, 0))
    np.testing.assert_array_equal(g, np.where(r > 0, dy, 0))
    theta, grad = rng.standard_normal(6), rng.standard_normal(6)
    m, v = rng.standard_normal(6) * 0.1, rng.random(6) * 0.1
    ref = R.adam_tf1_step([theta.copy()], [grad], [m.copy()], [v.copy()], 3, lr=0.01)
    nk.adam_update(0.01, 0.9, 0.999, 1e-8, 3, grad, theta, m, v)
    for got, want, what in zip((theta, m, v), ref, ("theta", "m", "v")):
        assert_close(got, want[0], 1e-14, f"adam {what}")


# ---------------------------------------------------------------- whole network vs native
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(NETS))
def test_forward_gradients_input_grads_match_native(name, dtype):
    net, params, X, Y = problem(name, dtype)
    flat, S, N, K = params.flat, 2, X.shape[-2], net.n_logits
    rtol = RTOL[dtype]
    outs = {}
    for eng in (NUMBA, NATIVE):
        z = np.empty((S, N, K), dtype=dtype)
        eng.forward(net, flat, X, z, 0)
        loss, grad = np.empty(S, dtype=dtype), np.empty_like(flat)
        dX = np.empty((S, N, net.n_inputs), dtype=dtype)
        eng.loss_and_grad(net, flat, X, Y, loss, grad, dX, 0)
        loss2, grad2 = np.empty(S, dtype=dtype), np.empty_like(flat)
        eng.loss_and_grad(net, flat, X, Y, loss2, grad2, None, 0)
        J = np.empty((S, N, K, net.n_inputs), dtype=dtype)
        eng.input_grads(net, flat, X, J, 0)
        outs[eng.name] = dict(logits=z, loss=loss, grad=grad, input_grad=dX, loss2=loss2,
                              grad2=grad2, jacobian=J)
    for key, want in outs["native"].items():
        assert_close(outs["numba"][key], want, rtol, f"{name} {dtype} {key}")
    if dtype == "float64" and isinstance(net, fs.MLP):  # and the plain float64 reference
        p = R.split_params(params, 1)
        assert_close(outs["numba"]["logits"][1], R.forward(p, X), 1e-12, "reference logits")


def test_forward_of_per_network_rows_and_many_tiles():
    net = fs.MLP([2, 3, 1])
    params = fs.init(net, seeds=range(3), dtype="float64")
    X = make_data(1100, 2, S=3)  # 3 tiles of 512 rows per network
    z_numba, z_native = np.empty((3, 1100, 1)), np.empty((3, 1100, 1))
    NUMBA.forward(net, params.flat, X, z_numba, 0)
    NATIVE.forward(net, params.flat, X, z_native, 0)
    assert_close(z_numba, z_native, 1e-12, "per-network rows")


# ---------------------------------------------------------------- training vs native
def train_both(net, params, X, Y, *, shuffle, epochs, batch_size, record_every, step0=0):
    out = {}
    for eng in (NUMBA, NATIVE):
        flat = params.flat.copy()
        m, v = np.full_like(flat, 0.01 * bool(step0)), np.full_like(flat, 0.02 * bool(step0))
        R_ = -(-epochs // record_every)
        lh, ah = np.full((flat.shape[0], R_), np.nan), np.full((flat.shape[0], R_), np.nan)
        eng.train(net, shuffle, (0.01, 0.9, 0.999, 1e-8), X, Y, flat, m, v, params.seeds, epochs,
                  batch_size, step0, record_every, lh, ah, 0, None, 2.0)
        out[eng.name] = (flat, m, v, lh, ah)
    return out


@pytest.mark.parametrize("shuffle", [0, 1, 2])
def test_mlp_training_200_epochs_matches_native(shuffle):
    net, params, X, Y = problem("mlp-binary", "float64", N=23)
    out = train_both(net, params, X, Y, shuffle=shuffle, epochs=200, batch_size=5, record_every=30,
                     step0=7 if shuffle == 2 else 0)
    for i, what in enumerate(("theta", "m", "v", "loss", "accuracy")):
        assert_close(out["numba"][i], out["native"][i], 1e-7, f"shuffle {shuffle}: {what}")


def test_softmax_per_network_data_training_matches_native():
    net = fs.MLP([4, 7, 3])
    params = fs.init(net, seeds=[4, 9], dtype="float64")
    X = make_data(12, 4, S=2, seed=3)
    y = make_targets(net, 12, S=2, seed=4)
    Xf, Y = data_arrays(net, 2, np.dtype("float64"), X, y)
    out = train_both(net, params, Xf, Y, shuffle=1, epochs=200, batch_size=4, record_every=50)
    for i, what in enumerate(("theta", "m", "v", "loss", "accuracy")):
        assert_close(out["numba"][i], out["native"][i], 1e-7, what)


def test_paper_cnn_training_200_epochs_matches_native():
    net = fs.paper_cnn((9, 9, 1))  # the paper's layers on small images (odd pool sizes)
    params = fs.init(net, seeds=[1], dtype="float64")
    X = make_data(4, 81, seed=5).reshape(4, 9, 9, 1)
    y = np.array([0.0, 1.0, 1.0, 0.0])
    Xf, Y = data_arrays(net, 1, np.dtype("float64"), X, y)
    out = train_both(net, params, Xf, Y, shuffle=1, epochs=200, batch_size=2, record_every=20)
    for i, what in enumerate(("theta", "m", "v", "loss", "accuracy")):
        assert_close(out["numba"][i], out["native"][i], 1e-7, f"paper CNN {what}")


def test_float32_training_matches_native():
    net, params, X, Y = problem("mlp-binary", "float32", N=20)
    out = train_both(net, params, X, Y, shuffle=1, epochs=20, batch_size=4, record_every=5)
    assert_close(out["numba"][0], out["native"][0], 1e-4, "float32 theta after 20 epochs")
    assert_close(out["numba"][3], out["native"][3], 1e-5, "float32 loss history")


# ---------------------------------------------------------------- DeepFool vs native
def deepfool_both(net, params, X, **options):
    """DeepFool on both engines, compared at every point where the native engine's result is
    well-conditioned: it finished within 10 steps, and gives the same result for the point
    alone (a tile of one row: other sums, so other rounding). Elsewhere a rounding can decide
    the outcome: a point creeping along the boundary doubles a rounding difference with every
    step (1e-16 grows to 1e-8 in 27 steps), and one that needs 46 of 50 steps may need 51 after
    another rounding. There, statuses and iterations must be equal, perturbations equal to
    1e-9. Returns the Numba engine's statuses."""
    S, N = params.flat.shape[0], X.shape[-2]
    opts = dict(overshoot=0.02, max_iter=50, linf=False, candidates=max(1, net.n_logits - 1),
                foolbox=False, clip=None)
    opts.update(options)

    def run(eng, rows):
        n = len(range(N)[rows])
        pert = np.empty((S, n, net.n_inputs), dtype=params.dtype)
        iters = np.empty((S, n), dtype=np.int32)
        status = np.empty((S, n), dtype=np.int32)
        eng.deepfool(net, params.flat, np.ascontiguousarray(X[..., rows, :]), pert, iters, status,
                     threads=0, progress=None, **opts)
        return np.nan_to_num(pert), iters, status, np.isnan(pert)

    numba, native = run(NUMBA, slice(None)), run(NATIVE, slice(None))
    alone = [np.concatenate(parts, axis=1) for parts in zip(*(run(NATIVE, slice(n, n + 1)) for n in range(N)))]
    scale = np.abs(native[0]).max()
    settled = ((native[1] <= 10) & (native[2] != 1) & (native[1] == alone[1]) & (native[2] == alone[2])
               & (np.abs(native[0] - alone[0]) <= 1e-9 * scale).all(axis=-1))
    assert settled.mean() > 0.5, f"only {settled.sum()} of {settled.size} points are well-conditioned"
    np.testing.assert_array_equal(numba[2][settled], native[2][settled])
    np.testing.assert_array_equal(numba[1][settled], native[1][settled])
    np.testing.assert_array_equal(numba[3][settled], native[3][settled])
    assert_close(numba[0][settled], native[0][settled], 1e-9, f"perturbation {options}", scale=scale)
    return numba[2]


@pytest.mark.parametrize("variant", ["slides", "foolbox"])
@pytest.mark.parametrize("linf", [False, True])
@pytest.mark.parametrize("name", ["mlp-binary", "mlp-softmax"])
def test_deepfool_matches_native(name, linf, variant):
    net, params, X, _ = trained_problem(name, "float64", N=70)  # two tiles of points
    X = X.copy()
    X[3, 1] = np.nan  # NON_FINITE
    status = deepfool_both(net, params, X, linf=linf, foolbox=variant == "foolbox")
    assert (status == 3)[:, 3].all() and (status == 0).sum() >= 20


def test_deepfool_clip_candidates_and_cnn_match_native():
    net, params, X, _ = problem("mlp-softmax", "float64", N=20)
    Xc = np.ascontiguousarray(np.clip(X, -1, 1))
    deepfool_both(net, params, Xc, clip=(-1.0, 1.0), candidates=1, overshoot=0.1, max_iter=3)
    net, params, X, _ = problem("cnn-softmax", "float64", N=6)
    deepfool_both(net, params, X)


def test_deepfool_zero_gradient_matches_native():
    net = fs.MLP([2, 3, 1])
    params = fs.init(net, seeds=[0], dtype="float64")
    params[0][...] = 0.0  # every hidden unit is dead: zero gradient everywhere
    params[3][...] = 1.0
    status = deepfool_both(net, params, make_data(5, 2))
    assert (status == 2).all()


def test_deepfool_float32_matches_native():
    net, params, X, _ = problem("mlp-binary", "float32", N=30)
    S, N = 2, 30
    res = {}
    for eng in (NUMBA, NATIVE):
        pert = np.empty((S, N, 3), dtype=np.float32)
        iters, status = np.empty((S, N), np.int32), np.empty((S, N), np.int32)
        eng.deepfool(net, params.flat, X, pert, iters, status, 0.02, 50, False, 1, False, None, 0, None)
        res[eng.name] = (pert, status)
    np.testing.assert_array_equal(res["numba"][1], res["native"][1])
    assert_close(res["numba"][0], res["native"][0], 1e-4, "float32 perturbation")


def test_thread_count_does_not_change_results():
    net, params, X, Y = problem("mlp-binary", "float64", S=2, N=40)
    out = []
    for threads in (1, 2):
        flat = params.flat.copy()
        m, v = np.zeros_like(flat), np.zeros_like(flat)
        lh, ah = np.empty((2, 1)), np.empty((2, 1))
        NUMBA.train(net, 1, (0.01, 0.9, 0.999, 1e-8), X, Y, flat, m, v, params.seeds, 5, 4, 0, 5,
                    lh, ah, threads, None, 2.0)
        out.append((flat, lh))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])


# ---------------------------------------------------------------- baselines' search vs native
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_flipping_scale_search_matches_native_search(dtype):
    from falsestruct_fast.attacks.baselines import smallest_flipping_scale

    net, params, X, _ = trained_problem("mlp-softmax", dtype, N=40)
    X = X.copy()
    X[2, 0] = np.nan  # NON_FINITE
    directions = np.random.default_rng(3).standard_normal((2, 40, net.n_inputs))
    directions[1, 5] = 0.0  # ZERO_GRADIENT
    directions[0, 7] = -directions[0, 7] * 1e-300  # too short to flip within the doublings: MAX_ITER
    r_nb, st_nb, ev_nb = NUMBA.flipping_scale(net, params.flat, X, directions, 1e-3, 48, 0)
    r, st, ev = smallest_flipping_scale(net, params, X, directions)  # the native engine's search
    np.testing.assert_array_equal(st_nb, st)
    np.testing.assert_array_equal(ev_nb, ev)
    np.testing.assert_array_equal(np.isnan(r_nb), np.isnan(r))
    assert_close(np.nan_to_num(r_nb), np.nan_to_num(r), 1e-12 if dtype == "float64" else 1e-6, "r")
    assert {0, 1, 2, 3} <= set(np.unique(st).tolist())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("d", [2, 3])
def test_fused_shallow_step_equals_the_layer_kernels(dtype, d):
    from falsestruct_fast.numba_kernels.losses import loss_grad
    from falsestruct_fast.numba_kernels.network import layers_backward, layers_forward, logits_of
    from falsestruct_fast.numba_kernels.shallow import is_shallow_binary, shallow_forward_backward
    from falsestruct_fast.numba_kernels.shape import layer_table, max_width, row_width

    # 13 hidden units: SIMD loops and their remainder; d = 2 takes the two-input loops (and
    # 9 samples their blocks of four plus one), d = 3 the loops over any number of inputs
    net = fs.MLP([d, 13, 1])
    layers = layer_table(spec_of(net))
    assert is_shallow_binary(layers) and not is_shallow_binary(layer_table(spec_of(fs.MLP([3, 4, 4, 1]))))
    theta = fs.init(net, seeds=[2], dtype=dtype).flat[0].copy()
    theta[13 * d:13 * d + 13] = np.random.default_rng(1).uniform(-1.0, 1.0, 13)  # hidden biases: some units dead
    B = 9
    X = make_data(B, d, seed=4).astype(dtype)
    Y = (X[:, :1] > 0).astype(dtype)
    fused_acts = np.zeros(B * row_width(layers), dtype=dtype)
    fused_acts[:B * d] = X.ravel()
    fused_grad = np.empty_like(theta)
    fused_dz = np.empty(B, dtype=dtype)
    shallow_forward_backward(layers, theta, fused_acts, Y, fused_dz, fused_grad)
    acts = np.zeros_like(fused_acts)
    acts[:B * d] = X.ravel()
    grad = np.empty_like(theta)
    delta_a, delta_b = np.empty(B * max_width(layers), dtype=dtype), np.empty(B * max_width(layers), dtype=dtype)
    layers_forward(layers, theta, acts, B)
    loss_grad(0, logits_of(layers, acts, B), Y, delta_a[:B].reshape(B, 1))
    layers_backward(layers, theta, acts, delta_a, delta_b, grad, B, False, True)
    assert 0 < np.count_nonzero(acts[B * d:B * (d + 13)]) < B * 13  # live and dead hidden units
    np.testing.assert_array_equal(fused_grad, grad)
    np.testing.assert_array_equal(fused_dz, delta_a[:B])
    np.testing.assert_array_equal(logits_of(layers, fused_acts, B), logits_of(layers, acts, B))


def test_cached_kernels_dropped_when_any_kernel_source_changes(tmp_path):
    """Numba checks only a kernel's own file; the package drops its whole cache when any of
    its sources changes (a callee edited in another file must not load old machine code)."""
    from falsestruct_fast.numba_kernels._jit import clear_stale_cache

    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    compiled = [cache / "a.f-1.py311.nbi", cache / "a.f-1.py311.1.nbc"]
    for path in compiled:
        path.write_bytes(b"old")
    assert clear_stale_cache(tmp_path)                 # no record yet: dropped, then recorded
    for path in compiled:
        path.write_bytes(b"compiled from these sources")
    assert not clear_stale_cache(tmp_path)             # unchanged sources: kept
    assert all(path.exists() for path in compiled)
    (tmp_path / "b.py").write_text("y = 3\n")         # only the callee's file changes
    assert clear_stale_cache(tmp_path)
    assert not any(path.exists() for path in compiled)
    assert not clear_stale_cache(tmp_path)
