"""Plain float64 NumPy reference for the falsestruct_fast MLP (independent of the library).

Everything here is written from the specification (Keras layout ``y = x @ W + b``, ReLU hidden
layers, linear output, mean sigmoid / softmax cross-entropy, Adam in TensorFlow 1's form,
Philox4x32-10 + Fisher-Yates batch order). Nothing is imported from ``falsestruct_fast``.

Parameters of ONE network are a list ``[W0 (in, out), b0 (out,), W1, b1, ...]``; the helpers
``split_params`` / ``stack_params`` convert from / to the library's leading network axis S.
"""
from __future__ import annotations

import math

import numpy as np

# ----------------------------------------------------------------------------------------
# Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3",
# SC 2011), written from the published algorithm.
# ----------------------------------------------------------------------------------------
PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
MASK32 = 0xFFFFFFFF

STREAM_INIT = 1
STREAM_SHUFFLE = 2


def philox4x32_10(counter, key):
    """Philox4x32 with 10 rounds. counter: 4 uint32, key: 2 uint32 -> tuple of 4 uint32."""
    x0, x1, x2, x3 = (int(c) & MASK32 for c in counter)
    k0, k1 = (int(k) & MASK32 for k in key)
    for rnd in range(10):
        if rnd:  # the key is bumped between rounds
            k0 = (k0 + PHILOX_W0) & MASK32
            k1 = (k1 + PHILOX_W1) & MASK32
        p0 = PHILOX_M0 * x0
        p1 = PHILOX_M1 * x2
        hi0, lo0 = p0 >> 32, p0 & MASK32
        hi1, lo1 = p1 >> 32, p1 & MASK32
        x0, x1, x2, x3 = hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0
    return (x0, x1, x2, x3)


def philox_seeded(seed: int, c0: int, c1: int, c2: int, c3: int):
    """Philox with the key taken from a 64-bit seed: (low 32 bits, high 32 bits)."""
    seed = int(seed)
    return philox4x32_10((c0, c1, c2, c3), (seed & MASK32, (seed >> 32) & MASK32))


def uniform_below(words, n: int) -> int:
    """Integer in [0, n) from the 64 bits (words[2] << 32 | words[3]) by multiply-shift."""
    bits = (words[2] << 32) | words[3]
    return (bits * n) >> 64


def uniform01(words) -> float:
    """Double in [0, 1) from the top 53 of the 64 bits (words[0] << 32 | words[1])."""
    bits = (words[0] << 32) | words[1]
    return float(bits >> 11) * (1.0 / 9007199254740992.0)


def random_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """Fisher-Yates: position i = n-1 .. 1 swaps with j drawn from philox(seed; 2, epoch, i, 0)."""
    out = list(range(n))
    for i in range(n - 1, 0, -1):
        j = uniform_below(philox_seeded(seed, STREAM_SHUFFLE, epoch & MASK32, i, 0), i + 1)
        out[i], out[j] = out[j], out[i]
    return np.array(out, dtype=np.int64)


def batch_orders(shuffle: str, seed: int, N: int, batch_size: int, epochs: int,
                 first_epoch: int = 0) -> list[list[np.ndarray]]:
    """Rows of every batch of every epoch: ``orders[e][k]`` is the row index array of step k.

    ``first_epoch`` is the global epoch counter of the first epoch (continued runs).
    """
    n_batches = N // batch_size
    orders = []
    for e in range(epochs):
        g = first_epoch + e
        if shuffle == "none":
            rows = np.arange(n_batches * batch_size)
            batches = [rows[k * batch_size:(k + 1) * batch_size] for k in range(n_batches)]
        elif shuffle == "samples":
            perm = random_permutation(seed, g, N)
            batches = [perm[k * batch_size:(k + 1) * batch_size] for k in range(n_batches)]
        elif shuffle == "batches":
            perm = random_permutation(seed, g, n_batches)
            batches = [np.arange(p * batch_size, (p + 1) * batch_size) for p in perm]
        else:
            raise ValueError(shuffle)
        orders.append(batches)
    return orders


def glorot_init(widths, seed: int) -> list[np.ndarray]:
    """Glorot-uniform weights as the library's header documents them: weight e of layer l is
    (2 * uniform01(philox(seed; 1, l, e_lo, e_hi)) - 1) * sqrt(6 / (in + out)); zero biases."""
    params = []
    for l, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        lim = math.sqrt(6.0 / (n_in + n_out))
        w = np.empty(n_in * n_out)
        for e in range(n_in * n_out):
            r = philox_seeded(seed, STREAM_INIT, l, e & MASK32, e >> 32)
            w[e] = (2.0 * uniform01(r) - 1.0) * lim
        params += [w.reshape(n_in, n_out), np.zeros(n_out)]
    return params


# ----------------------------------------------------------------------------------------
# Network, losses, gradients (one network, float64)
# ----------------------------------------------------------------------------------------
def split_params(params, s: int) -> list[np.ndarray]:
    """Network s of a library-style params list (leading axis S), as float64 copies."""
    return [np.array(a[s], dtype=np.float64) for a in params]


def stack_params(per_net: list[list[np.ndarray]], dtype=np.float64) -> list[np.ndarray]:
    """Library-style params (leading axis S) from a list of per-network params."""
    return [np.ascontiguousarray(np.stack([p[i] for p in per_net]), dtype=dtype)
            for i in range(len(per_net[0]))]


def forward_all(params, X):
    """Activations of every layer: [x, h1, ..., logits] (h = ReLU outputs)."""
    acts = [np.asarray(X, dtype=np.float64)]
    n_layers = len(params) // 2
    for l in range(n_layers):
        z = acts[-1] @ params[2 * l] + params[2 * l + 1]
        acts.append(np.maximum(z, 0.0) if l + 1 < n_layers else z)
    return acts


def forward(params, X) -> np.ndarray:
    return forward_all(params, X)[-1]


def sigmoid_ce_terms(z, y):
    """Per-sample mean (over logits) sigmoid cross-entropy, stable form."""
    y = np.asarray(y, dtype=np.float64).reshape(z.shape)
    per = np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))
    return per.mean(axis=1)


def softmax_ce_terms(z, labels):
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    m = z.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return lse - z[np.arange(len(labels)), labels]


def loss_terms(loss: str, z, y):
    return sigmoid_ce_terms(z, y) if loss == "sigmoid" else softmax_ce_terms(z, y)


def correct_terms(loss: str, z, y):
    if loss == "sigmoid":
        y = np.asarray(y, dtype=np.float64).reshape(z.shape)
        return ((z > 0) == (y > 0.5)).mean(axis=1)
    labels = np.asarray(y).astype(np.int64).reshape(-1)
    return (np.argmax(z, axis=1) == labels).astype(np.float64)


def logit_grad(loss: str, z, y):
    """d(mean loss)/dz."""
    B, K = z.shape
    if loss == "sigmoid":
        y = np.asarray(y, dtype=np.float64).reshape(z.shape)
        return (1.0 / (1.0 + np.exp(-z)) - y) / (B * K)
    labels = np.asarray(y).astype(np.int64).reshape(-1)
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    p = e / e.sum(axis=1, keepdims=True)
    p[np.arange(B), labels] -= 1.0
    return p / B


def loss_value(loss: str, params, X, y) -> float:
    return float(loss_terms(loss, forward(params, X), y).mean())


def loss_and_grad(loss: str, params, X, y):
    """(mean loss, [dW0, db0, ...], dX) by backpropagation, float64."""
    acts = forward_all(params, X)
    z = acts[-1]
    value = float(loss_terms(loss, z, y).mean())
    delta = logit_grad(loss, z, y)
    n_layers = len(params) // 2
    grads = [None] * len(params)
    for l in range(n_layers - 1, -1, -1):
        a_in = acts[l]
        grads[2 * l] = a_in.T @ delta
        grads[2 * l + 1] = delta.sum(axis=0)
        delta = delta @ params[2 * l].T
        if l > 0:  # through the ReLU that produced a_in (derivative 0 where output is 0)
            delta = delta * (a_in > 0)
    return value, grads, delta


def logit_jacobian(params, X):
    """d z_k / d x for every point: (N, K, d)."""
    acts = forward_all(params, X)
    N, K = acts[-1].shape
    n_layers = len(params) // 2
    out = []
    for k in range(K):
        delta = np.zeros((N, K))
        delta[:, k] = 1.0
        for l in range(n_layers - 1, -1, -1):
            delta = delta @ params[2 * l].T
            if l > 0:
                delta = delta * (acts[l] > 0)
        out.append(delta)
    return np.stack(out, axis=1)


# ----------------------------------------------------------------------------------------
# Adam (TensorFlow 1 form) and the reference training loop
# ----------------------------------------------------------------------------------------
def adam_step_size(lr, beta1, beta2, t):
    return lr * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)


def adam_tf1_step(theta, g, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """One TF1 Adam update (t >= 1) of lists of arrays; returns new (theta, m, v)."""
    lr_t = adam_step_size(lr, beta1, beta2, t)
    new_theta, new_m, new_v = [], [], []
    for th, gg, mm, vv in zip(theta, g, m, v):
        mm = mm + (gg - mm) * (1.0 - beta1)
        vv = vv + (gg * gg - vv) * (1.0 - beta2)
        new_theta.append(th - lr_t * mm / (np.sqrt(vv) + eps))
        new_m.append(mm)
        new_v.append(vv)
    return new_theta, new_m, new_v


def train(loss: str, params, X, y, orders, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
          record_every: int = 1, state=None):
    """Reference fused training of ONE network.

    orders: per-epoch lists of row-index arrays (see :func:`batch_orders`). Each step computes
    the batch's per-sample losses with the parameters *before* its update. An epoch's record
    is the mean over all samples of the epoch, recorded every `record_every` epochs and at the
    last one. state: optional (m, v, t) to continue. Returns dict with params, loss, accuracy,
    epochs (1-based, local), state.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    theta = [np.array(p, dtype=np.float64) for p in params]
    if state is None:
        m = [np.zeros_like(p) for p in theta]
        v = [np.zeros_like(p) for p in theta]
        t = 0
    else:
        m, v, t = [a.copy() for a in state[0]], [a.copy() for a in state[1]], state[2]
    epochs = len(orders)
    losses, accs, recorded = [], [], []
    for e, batches in enumerate(orders):
        epoch_no = e + 1
        record = epoch_no % record_every == 0 or epoch_no == epochs
        l_sum = c_sum = 0.0
        count = 0
        for rows in batches:
            xb, yb = X[rows], y[rows]
            if record:
                z = forward(theta, xb)
                l_sum += loss_terms(loss, z, yb).sum()
                c_sum += correct_terms(loss, z, yb).sum()
                count += len(rows)
            _, g, _ = loss_and_grad(loss, theta, xb, yb)
            t += 1
            theta, m, v = adam_tf1_step(theta, g, m, v, t, lr, beta1, beta2, eps)
        if record:
            losses.append(l_sum / count)
            accs.append(c_sum / count)
            recorded.append(epoch_no)
    return {"params": theta, "loss": np.array(losses), "accuracy": np.array(accs),
            "epochs": np.array(recorded, dtype=np.int64), "state": (m, v, t)}


def numerical_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central finite differences of the scalar function f at x (float64, any shape)."""
    x = np.array(x, dtype=np.float64)
    g = np.empty_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f(x)
        flat[i] = old - h
        fm = f(x)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g
