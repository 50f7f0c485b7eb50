"""Networks (any :class:`Network`: MLP or CNN), their parameters, forward and gradients.

Parameters of S networks are kept as a :class:`Params` list in Keras ``get_weights()`` order
(kernel, bias per layer with parameters), each array with a leading network axis S.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from . import _validate as V
from ._native_loader import _native

LOSSES = ("sigmoid", "softmax")
_LOSS_KIND = {"sigmoid": 0, "softmax": 1}
_MAX_LAYERS = 16
# Layer kinds of the native spec (src/falsestruct/net_shape.h): per layer [kind, units, k, relu].
DENSE, CONV2D, MAXPOOL2 = 0, 1, 2


class Network:
    """Base of the network specs (:class:`~falsestruct_fast.MLP`, :class:`~falsestruct_fast.CNN`).

    A spec is immutable and holds no weights: parameters of S networks live in a
    :class:`Params` list. Subclasses define ``input_shape`` (one sample's shape), ``n_logits``,
    ``loss``, ``param_shapes()`` (one network's arrays in Keras order) and ``spec`` (the
    layer encoding passed to the native engine).
    """

    input_shape: tuple
    loss: str

    @property
    def n_inputs(self) -> int:
        """Values per input sample (product of ``input_shape``)."""
        return int(np.prod(self.input_shape))

    @property
    def n_params(self) -> int:
        """Parameters of one network."""
        return int(_native.n_params(self.spec))

    @property
    def n_logits(self) -> int:
        raise NotImplementedError

    @property
    def spec(self) -> list[int]:
        raise NotImplementedError

    def param_shapes(self) -> list[tuple[int, ...]]:
        raise NotImplementedError


class Params(list):
    """Parameters of S networks: ``[W0, b0, W1, b1, ...]``, each with a leading axis S.

    A plain list of NumPy arrays (so ``W0, b0, W1, b1 = params`` works) with two extras:
    ``seeds`` (uint64, shape (S,)) records the seed of each network when known, and
    ``flat`` is the (S, P) array the arrays are views of, when they were made by this library.
    """

    def __init__(self, arrays: Iterable[np.ndarray], seeds=None, flat: np.ndarray | None = None):
        super().__init__(arrays)
        self.seeds = None if seeds is None else np.asarray(seeds, dtype=np.uint64)
        self.flat = flat

    @property
    def n_networks(self) -> int:
        return int(self[0].shape[0])

    @property
    def dtype(self) -> np.dtype:
        return self[0].dtype

    def network(self, s: int) -> list[np.ndarray]:
        """The arrays of network s alone (views, without the seed axis)."""
        return [a[s] for a in self]

    def select(self, index) -> "Params":
        """Params of a subset of networks (copies), e.g. ``params.select([3, 5])``."""
        idx = np.arange(self.n_networks)[index]
        return Params([np.ascontiguousarray(a[idx]) for a in self],
                      None if self.seeds is None else self.seeds[idx])


def finite_networks(params) -> np.ndarray:
    """(S,) bool: every weight of network s is finite (a diverged network has NaN/inf)."""
    ok = None
    for a in params:
        a = np.asarray(a)
        good = np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
        ok = good if ok is None else ok & good
    return ok


def _seed_array(seeds) -> np.ndarray:
    if isinstance(seeds, (int, np.integer)):
        seeds = [seeds]
    try:
        values = [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise TypeError(f"seeds: must be an integer or an iterable of integers, got {seeds!r}") from None
    if not values:
        raise ValueError("seeds: at least one seed is needed")
    if min(values) < 0 or max(values) >= 2**64:
        raise ValueError("seeds: must be in [0, 2**64)")
    return np.array(values, dtype=np.uint64)


def unflatten(net: Network, flat: np.ndarray, seeds=None) -> Params:
    """Views of a flat (S, P) parameter array as a :class:`Params` list."""
    S = flat.shape[0]
    arrays, offset = [], 0
    for shape in net.param_shapes():
        size = int(np.prod(shape))
        arrays.append(flat[:, offset:offset + size].reshape((S,) + shape))
        offset += size
    return Params(arrays, seeds, flat)


def check_net(net) -> None:
    if not isinstance(net, Network):
        raise TypeError(f"net: expected falsestruct_fast.MLP or CNN, got {type(net).__name__}")


def flatten(net: Network, params, name: str = "params") -> np.ndarray:
    """Checks `params` against `net` and returns a new C-contiguous (S, P) array."""
    check_net(net)
    if not isinstance(params, (list, tuple)):
        raise TypeError(f"{name}: expected a list of arrays (kernel, bias per layer), got {type(params).__name__}")
    shapes = net.param_shapes()
    if len(params) != len(shapes):
        raise ValueError(f"{name}: {net!r} has {len(shapes)} arrays (kernel and bias per layer), got {len(params)}")
    first = params[0]
    if not isinstance(first, np.ndarray):
        raise TypeError(f"{name}[0]: expected a NumPy array, got {type(first).__name__}")
    dtype = V.float_dtype(first.dtype, f"{name}[0].dtype")
    if first.ndim != len(shapes[0]) + 1:
        raise ValueError(
            f"{name}[0]: expected shape (S, {', '.join(map(str, shapes[0]))}) with a leading network axis S, got "
            f"{first.shape}; for a single network use W[None]"
        )
    S = first.shape[0]
    if S < 1:
        raise ValueError(f"{name}: no networks (S = 0)")
    for i, (a, shape) in enumerate(zip(params, shapes)):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name}[{i}]: expected a NumPy array, got {type(a).__name__}")
        if a.dtype != dtype:
            raise TypeError(f"{name}[{i}]: dtype {a.dtype} differs from {name}[0]'s {dtype}")
        if a.shape != (S,) + shape:
            raise ValueError(f"{name}[{i}]: expected shape {(S,) + shape}, got {a.shape}")
        V.finite(a, f"{name}[{i}]")
    return np.concatenate([a.reshape(S, -1) for a in params], axis=1)


def init(net: Network, seeds=0, dtype="float32", threads: int | None = None) -> Params:
    """Glorot-uniform weights and zero biases for one network per seed.

    Parameters
    ----------
    net : MLP or CNN
    seeds : int or iterable of int
        One network per seed (S = number of seeds). Weight e of layer l of seed s is drawn
        from a counter-based generator as a function of (s, l, e) alone, so a seed gives the
        same network alone or among others, for both dtypes (float32 = rounded float64).
    dtype : "float32" or "float64"
    threads : int, optional
        CPU threads (default: all cores).

    Returns
    -------
    Params
        One network's arrays (``net.param_shapes()``, Keras order) with a leading axis S, of
        `dtype`, views of one (S, P) array.
    """
    check_net(net)
    dt = V.float_dtype(dtype)
    seed_arr = _seed_array(seeds)
    flat = np.empty((len(seed_arr), net.n_params), dtype=dt)
    _native.net_init(net.spec, seed_arr, flat, _threads(threads))
    return unflatten(net, flat, seed_arr)


def _threads(threads) -> int:
    if threads is None:
        return 0
    return V.integer(threads, "threads", minimum=1)


def data_arrays(net: Network, S: int, dtype: np.dtype, X, y=None, check_finite: bool = True):
    """Validated (X, Y) for the native engine.

    X: (N, *input_shape) shared by all networks or (S, N, *input_shape); for an MLP
    input_shape = (d,), for a CNN (H, W, C). y (sigmoid loss): (N,) or (N, K), or with a
    leading S; values in [0, 1]. y (softmax loss): class indices (N,) or (S, N).
    Returns X flattened per sample, (N, D) or (S, N, D), and Y as (N, t) or (S, N, t), in `dtype`.
    NaN/inf in X is an error unless check_finite is False (attacks report such points).
    """
    X = V.float_array(X, "X", dtype, check_finite)
    shape = tuple(net.input_shape)
    k = len(shape)
    if X.ndim not in (k + 1, k + 2) or tuple(X.shape[X.ndim - k:]) != shape:
        want = ", ".join(str(v) for v in shape)
        raise ValueError(f"X: expected shape (N, {want}) or (S, N, {want}), got {X.shape}")
    if X.ndim == k + 2 and X.shape[0] != S:
        raise ValueError(f"X: leading axis {X.shape[0]} differs from the number of networks S = {S}")
    N = X.shape[X.ndim - k - 1]
    X = X.reshape(X.shape[:X.ndim - k] + (net.n_inputs,))
    if N == 0:
        raise ValueError("X: no data rows (N = 0)")
    if y is None:
        return X, None
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"y: must be numeric, got dtype {y.dtype}")
    K = net.n_logits
    per_sample = (K,) if (net.loss == "sigmoid" and K > 1) else ()
    if y.shape == (N,) + per_sample:
        per_seed = False
    elif y.shape == (S, N) + per_sample:
        per_seed = True
    else:
        want = (N,) + per_sample
        raise ValueError(f"y: expected shape {want} or {(S,) + want}, got {y.shape}")
    V.finite(y.astype(np.float64, copy=False), "y")
    if net.loss == "sigmoid":
        if y.size and (y.min() < 0 or y.max() > 1):
            raise ValueError("y: sigmoid cross-entropy targets must lie in [0, 1]")
    else:
        if y.size and (np.any(y != np.round(y)) or y.min() < 0 or y.max() >= K):
            raise ValueError(f"y: softmax labels must be integer class indices in [0, {K})")
    t = K if net.loss == "sigmoid" else 1
    Y = np.ascontiguousarray(y, dtype=dtype).reshape(((S,) if per_seed else ()) + (N, t))
    if Y.ndim != X.ndim:  # one of them per network, the other shared: give both the S axis
        if X.ndim == 2:
            X = np.ascontiguousarray(np.broadcast_to(X, (S,) + X.shape))
        else:
            Y = np.ascontiguousarray(np.broadcast_to(Y, (S,) + Y.shape))
    return X, Y


def forward(net: Network, params, X, threads: int | None = None) -> np.ndarray:
    """Logits of every network on X.

    Parameters
    ----------
    net : MLP or CNN
    params : Params or list of arrays with leading axis S
    X : array (N, *input_shape) shared by all networks, or (S, N, *input_shape); dtype must
        equal the params'. MLP: (N, d); CNN: (N, H, W, C) images (NHWC).
    threads : int, optional

    Returns
    -------
    ndarray (S, N, K) of the params' dtype. Rows are evaluated in tiles, so memory use does
    not grow with N beyond the output.
    """
    flat = flatten(net, params)
    X, _ = data_arrays(net, flat.shape[0], flat.dtype, X)
    return logits_of_rows(net, flat, X, threads)


def logits_of_rows(net: Network, flat: np.ndarray, X: np.ndarray, threads=None) -> np.ndarray:
    """forward() on already validated arrays: flat (S, P), X (N, D) or (S, N, D) flattened rows
    of the same dtype (NaN/inf allowed: they propagate to the logits)."""
    out = np.empty((flat.shape[0], X.shape[-2], net.n_logits), dtype=flat.dtype)
    _native.net_forward(net.spec, flat, X, out, _threads(threads))
    return out


def predict(net: Network, params, X, threads: int | None = None) -> np.ndarray:
    """Predicted labels (S, N): round(sigmoid(z)) for one logit, argmax otherwise (int64)."""
    z = forward(net, params, X, threads)
    if net.n_logits == 1:
        return (z[..., 0] > 0).astype(np.int64)
    return np.argmax(z, axis=-1)


def input_grad(net: Network, params, X, logit: int | None = None, threads: int | None = None) -> np.ndarray:
    """Gradient of the logits with respect to the input, for every network and point.

    Parameters
    ----------
    net : MLP or CNN
    params : Params (S networks)
    X : array (N, *input_shape) or (S, N, *input_shape), the params' dtype
    logit : int, optional
        Which logit to differentiate. None: all of them.

    Returns
    -------
    ndarray of the params' dtype: (S, N, *input_shape) for one logit (``logit`` given, or a
    single-logit network), else (S, N, K, *input_shape) with ``[s, n, k]`` = d z_k / d x_n.
    Computed natively (forward once, then one backward pass per logit).
    """
    flat = flatten(net, params)
    S, K = flat.shape[0], net.n_logits
    if logit is not None:
        logit = V.integer(logit, "logit", 0, K - 1)
    Xf, _ = data_arrays(net, S, flat.dtype, X)
    N = Xf.shape[-2]
    out = np.empty((S, N, K, net.n_inputs), dtype=flat.dtype)
    _native.net_logit_input_grads(net.spec, flat, Xf, out, _threads(threads))
    out = out.reshape((S, N, K) + tuple(net.input_shape))
    if logit is not None:
        return np.ascontiguousarray(out[:, :, logit])
    return out[:, :, 0] if K == 1 else out


def _row_scalars(net: Network) -> int:
    """Workspace scalars one data row needs in the native loss/gradient pass (activations of
    every layer, gradient buffers, conv padding: NetWorkspace::scalars_per_row)."""
    return int(_native.workspace_scalars_per_row(net.spec))


# Rows per native loss/gradient call are chosen so that about this many scalars of per-row
# workspace (activations and gradient buffers) are live per network being worked on; the same
# budget the native forward pass uses for its row tiles. Experiment II's CNN: 67 images per call.
LOSS_GRAD_CHUNK_SCALARS = 1 << 23


def default_chunk_rows(net: Network) -> int:
    """Rows per native call of :func:`loss_and_grad` when no ``chunk_size`` is given."""
    return max(1, LOSS_GRAD_CHUNK_SCALARS // _row_scalars(net))


def loss_and_grad(net: Network, params, X, y, *, wrt_input: bool = False, threads: int | None = None,
                  chunk_size: int | None = None):
    """Mean loss over all rows and its gradient, for every network.

    Parameters
    ----------
    net : MLP or CNN
    params : Params (S networks)
    X : array (N, *input_shape) or (S, N, *input_shape), the params' dtype
    y : targets, see :func:`data_arrays` (0/1 for sigmoid, class indices for softmax)
    wrt_input : bool
        Also return the gradient of each network's mean loss with respect to X.
    threads : int, optional
        CPU threads (default: all cores).
    chunk_size : int, optional
        Rows per native call. The native pass holds the activations of every layer for the
        rows of one call, so the rows are processed in chunks to keep that memory bounded;
        the default (:func:`default_chunk_rows`) keeps about ``LOSS_GRAD_CHUNK_SCALARS``
        scalars of activations per network in flight (67 images for :func:`paper_cnn`,
        tens of thousands of rows for small MLPs). When N fits in one chunk there is a single
        call; otherwise the chunks' mean losses and gradients are weighted by their row
        counts, summed in float64 and rounded to the params' dtype once, so the result equals
        the one-call result up to rounding.

    Returns
    -------
    loss : ndarray (S,)
    grads : Params, same shapes as `params`
    dX : ndarray (S, N, *input_shape), only with ``wrt_input=True``
    """
    if chunk_size is not None:
        chunk_size = V.integer(chunk_size, "chunk_size", minimum=1)
    flat = flatten(net, params)
    S = flat.shape[0]
    X, Y = data_arrays(net, S, flat.dtype, X, y)
    N = X.shape[-2]
    n_threads = _threads(threads)
    chunk = default_chunk_rows(net) if chunk_size is None else chunk_size
    dX = np.empty((S, N, net.n_inputs), dtype=flat.dtype) if wrt_input else None
    if N <= chunk:
        loss = np.empty(S, dtype=flat.dtype)
        grad = np.empty_like(flat)
        _native.net_loss_and_grad(net.spec, _LOSS_KIND[net.loss], flat, X, Y, loss, grad, dX,
                                  n_threads)
    else:
        loss, grad = _chunked_loss_and_grad(net, flat, X, Y, dX, chunk, n_threads)
    grads = unflatten(net, grad, getattr(params, "seeds", None))
    if not wrt_input:
        return loss, grads
    return loss, grads, dX.reshape((S, N) + tuple(net.input_shape))


def _chunked_loss_and_grad(net: Network, flat: np.ndarray, X: np.ndarray, Y: np.ndarray,
                           dX: np.ndarray | None, chunk: int, n_threads: int):
    """loss_and_grad over row chunks of validated arrays (X (N, D) / (S, N, D), Y alike).

    The native call returns the mean loss of its rows and that mean's gradients, so chunk c
    with n_c rows contributes n_c / N of its loss and parameter gradient, and its input
    gradient is scaled by n_c / N. dX (S, N, D), when given, is filled in place.
    """
    S, dtype = flat.shape[0], flat.dtype
    N = X.shape[-2]
    loss_sum = np.zeros(S, dtype=np.float64)
    grad_sum = np.zeros(flat.shape, dtype=np.float64)
    loss_c = np.empty(S, dtype=dtype)
    grad_c = np.empty_like(flat)
    for r0 in range(0, N, chunk):
        r1 = min(N, r0 + chunk)
        n = r1 - r0
        # shared rows slice contiguously; per-network rows (S, N, D) need a copy per chunk
        Xc = np.ascontiguousarray(X[..., r0:r1, :])
        Yc = np.ascontiguousarray(Y[..., r0:r1, :])
        dXc = np.empty((S, n, X.shape[-1]), dtype=dtype) if dX is not None else None
        _native.net_loss_and_grad(net.spec, _LOSS_KIND[net.loss], flat, Xc, Yc, loss_c, grad_c,
                                  dXc, n_threads)
        loss_sum += n * loss_c.astype(np.float64)
        grad_sum += n * grad_c.astype(np.float64)
        if dX is not None:
            dX[:, r0:r1] = dXc.astype(np.float64) * (n / N)
    return (loss_sum / N).astype(dtype), (grad_sum / N).astype(dtype)
