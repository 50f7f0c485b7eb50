"""Plain float64 NumPy reference for the falsestruct_fast CNN layers (independent of the library).

Written from the specification, for clarity rather than speed:

* Conv2D: k x k kernel (k odd), stride 1, 'same' zero padding (k // 2 on every side), NHWC
  activations, HWIO kernel ``K[kh, kw, c_in, c_out]``, bias ``(c_out,)``; a cross-correlation
  as in Keras/TensorFlow: ``y[n, h, w, o] = b[o] + sum x[n, h + kh - p, w + kw - p, c] K[kh, kw, c, o]``.
* MaxPool2D: 2 x 2 windows, stride 2, Keras/TF 'same' padding: output ceil(H/2) x ceil(W/2);
  on odd sizes the last window is clipped (only existing elements count, no zero padding).
  The gradient goes to the FIRST maximum of each window in row-major window order
  (0, 0), (0, 1), (1, 0), (1, 1).
* Flatten: C-order reshape of NHWC, i.e. (h, w, c) order. Dense: ``x @ W + b``.
* ReLU; its gradient masks by (output > 0).
* Losses: mean sigmoid cross-entropy over the N*K logits, or mean softmax cross-entropy with
  class indices (the loss helpers of :mod:`reference` are reused).

Nothing is imported from ``falsestruct_fast``; the whole-network functions only read the plain
attributes ``net.input_shape``, ``net.layers`` (objects named Conv2D / MaxPool2D / Flatten /
Dense with ``filters``, ``kernel_size``, ``units``, ``activation``) and ``net.loss``.
Parameters of ONE network are a list in Keras order: conv ``K (k, k, c_in, c_out), b (c_out,)``,
dense ``W (in, out), b (out,)``.
"""
from __future__ import annotations

import numpy as np

import reference as R


# ----------------------------------------------------------------------------------------
# single layers (x: (N, H, W, C) float64)
# ----------------------------------------------------------------------------------------
def relu(x):
    return np.maximum(x, 0.0)


def _pad(x, p):
    return np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))


def conv2d_forward(x, K, b):
    """'same' convolution, stride 1: (N, H, W, Cin) -> (N, H, W, Cout), no activation."""
    x = np.asarray(x, dtype=np.float64)
    N, H, W, _ = x.shape
    k = K.shape[0]
    assert K.shape[1] == k and k % 2 == 1
    xp = _pad(x, k // 2)
    y = np.zeros((N, H, W, K.shape[3])) + b
    for kh in range(k):
        for kw in range(k):
            # the input pixel (h + kh - p, w + kw - p) is xp[h + kh, w + kw]
            y += np.einsum("nhwc,co->nhwo", xp[:, kh:kh + H, kw:kw + W, :], K[kh, kw])
    return y


def conv2d_backward(x, K, dy):
    """Gradients (dx, dK, db) of sum(dy * conv2d_forward(x, K, b))."""
    x = np.asarray(x, dtype=np.float64)
    N, H, W, _ = x.shape
    k = K.shape[0]
    p = k // 2
    xp = _pad(x, p)
    dxp = np.zeros_like(xp)
    dK = np.zeros_like(K, dtype=np.float64)
    for kh in range(k):
        for kw in range(k):
            dxp[:, kh:kh + H, kw:kw + W, :] += np.einsum("nhwo,co->nhwc", dy, K[kh, kw])
            dK[kh, kw] = np.einsum("nhwc,nhwo->co", xp[:, kh:kh + H, kw:kw + W, :], dy)
    db = dy.sum(axis=(0, 1, 2))
    return dxp[:, p:p + H, p:p + W, :], dK, db


def pool_output_size(H, W):
    """Keras/TF 'same' 2x2 stride-2 pooling: ceil(H/2) x ceil(W/2)."""
    return -(-H // 2), -(-W // 2)


def maxpool_forward(x):
    """2x2 stride-2 'same' max-pooling; the last window of an odd size is clipped."""
    x = np.asarray(x, dtype=np.float64)
    N, H, W, C = x.shape
    OH, OW = pool_output_size(H, W)
    y = np.empty((N, OH, OW, C))
    for i in range(OH):
        for j in range(OW):
            window = x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2, :]   # slicing clips at the edge
            y[:, i, j, :] = window.max(axis=(1, 2))
    return y


def maxpool_backward(x, dy):
    """dx: dy routed to the first maximum (row-major window order) of each window."""
    x = np.asarray(x, dtype=np.float64)
    N, H, W, C = x.shape
    OH, OW = pool_output_size(H, W)
    dx = np.zeros_like(x)
    for i in range(OH):
        for j in range(OW):
            rows = range(2 * i, min(2 * i + 2, H))
            cols = range(2 * j, min(2 * j + 2, W))
            cells = [(h, w) for h in rows for w in cols]          # row-major window order
            for n in range(N):
                for c in range(C):
                    values = [x[n, h, w, c] for h, w in cells]
                    h, w = cells[int(np.argmax(values))]          # argmax: first maximum
                    dx[n, h, w, c] += dy[n, i, j, c]
    return dx


# ----------------------------------------------------------------------------------------
# whole network (one network, float64)
# ----------------------------------------------------------------------------------------
def _kind(layer) -> str:
    return type(layer).__name__


def forward_all(net, params, X):
    """Per layer (layer, input, output) records; output is after the activation."""
    x = np.asarray(X, dtype=np.float64)
    assert x.shape[1:] == tuple(net.input_shape), (x.shape, net.input_shape)
    records = []
    i = 0
    for layer in net.layers:
        kind = _kind(layer)
        if kind == "Conv2D":
            out = conv2d_forward(x, params[i], params[i + 1])
            i += 2
        elif kind == "MaxPool2D":
            out = maxpool_forward(x)
        elif kind == "Flatten":
            out = x.reshape(x.shape[0], -1)
        elif kind == "Dense":
            out = x.reshape(x.shape[0], -1) @ params[i] + params[i + 1]   # 1x1 image: flat
            i += 2
        else:
            raise TypeError(layer)
        if getattr(layer, "activation", None) == "relu":
            out = relu(out)
        records.append((layer, x, out))
        x = out
    assert i == len(params), "params do not match the layers"
    return records


def forward(net, params, X):
    """Logits (N, K) of one network."""
    return forward_all(net, params, X)[-1][2]


def loss_value(net, params, X, y) -> float:
    return float(R.loss_terms(net.loss, forward(net, params, X), y).mean())


def loss_and_grad(net, params, X, y):
    """(mean loss, grads in the params' order, dX (N, H, W, C)) by backpropagation."""
    records = forward_all(net, params, X)
    z = records[-1][2]
    value = float(R.loss_terms(net.loss, z, y).mean())
    grads, delta = backward(net, params, records, R.logit_grad(net.loss, z, y))
    return value, grads, delta


def backward(net, params, records, delta):
    """(grads in the params' order, dX (N, H, W, C)) for the logit gradient delta (N, K)."""
    grads = [None] * len(params)
    i = len(params)
    for layer, x_in, out in reversed(records):
        kind = _kind(layer)
        if getattr(layer, "activation", None) == "relu":
            delta = delta * (out > 0)
        if kind == "Conv2D":
            i -= 2
            delta, grads[i], grads[i + 1] = conv2d_backward(x_in, params[i], delta)
        elif kind == "MaxPool2D":
            delta = maxpool_backward(x_in, delta)
        elif kind == "Flatten":
            delta = delta.reshape(x_in.shape)
        elif kind == "Dense":
            i -= 2
            a = x_in.reshape(x_in.shape[0], -1)
            grads[i] = a.T @ delta
            grads[i + 1] = delta.sum(axis=0)
            delta = (delta @ params[i].T).reshape(x_in.shape)
    assert i == 0
    return grads, delta


def logit_jacobian(net, params, X):
    """d z_k / d x for every point: (N, K, H, W, C)."""
    records = forward_all(net, params, X)
    N, K = records[-1][2].shape
    return np.stack([backward(net, params, records, np.eye(K)[[k] * N])[1] for k in range(K)], axis=1)


# ----------------------------------------------------------------------------------------
# reference training loop (one network): same scheme as reference.train, CNN forward/grad
# ----------------------------------------------------------------------------------------
def train(net, params, X, y, orders, *, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam (TF1 form) over the given batch orders, recording every epoch.

    Returns dict with params, loss (per-epoch mean of the batch losses before each update)
    and accuracy.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    theta = [np.array(p, dtype=np.float64) for p in params]
    m = [np.zeros_like(p) for p in theta]
    v = [np.zeros_like(p) for p in theta]
    t = 0
    losses, accs = [], []
    for batches in orders:
        l_sum = c_sum = 0.0
        count = 0
        for rows in batches:
            xb, yb = X[rows], y[rows]
            z = forward(net, theta, xb)
            l_sum += R.loss_terms(net.loss, z, yb).sum()
            c_sum += R.correct_terms(net.loss, z, yb).sum()
            count += len(rows)
            _, g, _ = loss_and_grad(net, theta, xb, yb)
            t += 1
            theta, m, v = R.adam_tf1_step(theta, g, m, v, t, lr, beta1, beta2, eps)
        losses.append(l_sum / count)
        accs.append(c_sum / count)
    return {"params": theta, "loss": np.array(losses), "accuracy": np.array(accs)}
