"""The dense ReLU network, its parameters, and forward / gradient evaluation.

Parameters of S networks are kept as a :class:`Params` list in Keras ``get_weights()`` order,
``[W0, b0, W1, b1, ...]`` with ``W_l`` of shape (S, n_in, n_out) and ``b_l`` of shape (S, n_out):
a layer computes ``x @ W + b``. Hidden layers use ReLU, the last layer is linear (logits).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from . import _validate as V
from ._native_loader import _native

LOSSES = ("sigmoid", "softmax")
_LOSS_KIND = {"sigmoid": 0, "softmax": 1}
_MAX_LAYERS = 16


class MLP:
    """A fully connected ReLU network with a linear output layer.

    Parameters
    ----------
    widths : sequence of int
        Layer widths from input to output, e.g. ``[2, 104, 1]`` (the Experiment I network:
        2 inputs, 104 ReLU units, one logit). 2 to 17 entries, all positive.
    loss : {"sigmoid", "softmax"}, optional
        Training loss. Default: mean sigmoid cross-entropy for one logit, softmax
        cross-entropy (labels are class indices) for several.
    """

    def __init__(self, widths: Sequence[int], loss: str | None = None):
        try:
            widths = [V.integer(w, f"widths[{i}]", minimum=1) for i, w in enumerate(widths)]
        except TypeError as exc:
            if "widths[" in str(exc):
                raise
            raise TypeError(f"widths: must be a sequence of positive integers, got {widths!r}") from None
        if not 2 <= len(widths) <= _MAX_LAYERS + 1:
            raise ValueError(f"widths: need 2 to {_MAX_LAYERS + 1} layer widths, got {len(widths)}")
        self.widths = tuple(widths)
        if loss is None:
            loss = "sigmoid" if widths[-1] == 1 else "softmax"
        self.loss = V.option(loss, "loss", LOSSES)
        if self.loss == "softmax" and widths[-1] < 2:
            raise ValueError("loss: 'softmax' needs at least 2 output logits")

    @property
    def n_inputs(self) -> int:
        return self.widths[0]

    @property
    def n_logits(self) -> int:
        return self.widths[-1]

    @property
    def n_layers(self) -> int:
        return len(self.widths) - 1

    @property
    def n_params(self) -> int:
        """Parameters of one network."""
        return int(_native.n_params(list(self.widths)))

    def param_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of one network's arrays in Keras order: (in, out), (out,), ..."""
        shapes = []
        for n_in, n_out in zip(self.widths[:-1], self.widths[1:]):
            shapes += [(n_in, n_out), (n_out,)]
        return shapes

    def __repr__(self) -> str:
        return f"MLP({list(self.widths)}, loss={self.loss!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, MLP) and other.widths == self.widths and other.loss == self.loss

    def __hash__(self) -> int:
        return hash((self.widths, self.loss))


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


def unflatten(net: MLP, flat: np.ndarray, seeds=None) -> Params:
    """Views of a flat (S, P) parameter array as a :class:`Params` list."""
    S = flat.shape[0]
    arrays, offset = [], 0
    for shape in net.param_shapes():
        size = int(np.prod(shape))
        arrays.append(flat[:, offset:offset + size].reshape((S,) + shape))
        offset += size
    return Params(arrays, seeds, flat)


def flatten(net: MLP, params, name: str = "params") -> np.ndarray:
    """Checks `params` against `net` and returns a new C-contiguous (S, P) array."""
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected falsestruct_fast.MLP, got {type(net).__name__}")
    if not isinstance(params, (list, tuple)):
        raise TypeError(f"{name}: expected a list of arrays [W0, b0, W1, b1, ...], got {type(params).__name__}")
    shapes = net.param_shapes()
    if len(params) != len(shapes):
        raise ValueError(f"{name}: {net!r} has {len(shapes)} arrays (W and b per layer), got {len(params)}")
    first = params[0]
    if not isinstance(first, np.ndarray):
        raise TypeError(f"{name}[0]: expected a NumPy array, got {type(first).__name__}")
    dtype = V.float_dtype(first.dtype, f"{name}[0].dtype")
    if first.ndim != 3:
        raise ValueError(
            f"{name}[0]: expected shape (S, {shapes[0][0]}, {shapes[0][1]}) with a leading network "
            f"axis S, got {first.shape}; for a single network use W[None]"
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


def init(net: MLP, seeds=0, dtype="float32", threads: int | None = None) -> Params:
    """Glorot-uniform weights and zero biases for one network per seed.

    Parameters
    ----------
    net : MLP
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
        ``[W0 (S, n0, n1), b0 (S, n1), ...]`` of `dtype`, views of one (S, P) array.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected falsestruct_fast.MLP, got {type(net).__name__}")
    dt = V.float_dtype(dtype)
    seed_arr = _seed_array(seeds)
    flat = np.empty((len(seed_arr), net.n_params), dtype=dt)
    _native.mlp_init(list(net.widths), seed_arr, flat, _threads(threads))
    return unflatten(net, flat, seed_arr)


def _threads(threads) -> int:
    if threads is None:
        return 0
    return V.integer(threads, "threads", minimum=1)


def data_arrays(net: MLP, S: int, dtype: np.dtype, X, y=None):
    """Validated (X, Y) for the native engine.

    X: (N, d) shared by all networks or (S, N, d). y (sigmoid loss): (N,) or (N, K), or with a
    leading S; values in [0, 1]. y (softmax loss): class indices (N,) or (S, N).
    Returns X as (N, d) or (S, N, d) and Y as (N, t) or (S, N, t) in `dtype`.
    """
    X = V.float_array(X, "X", dtype)
    d = net.n_inputs
    if X.ndim not in (2, 3) or X.shape[-1] != d:
        raise ValueError(f"X: expected shape (N, {d}) or (S, N, {d}), got {X.shape}")
    if X.ndim == 3 and X.shape[0] != S:
        raise ValueError(f"X: leading axis {X.shape[0]} differs from the number of networks S = {S}")
    N = X.shape[-2]
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


def forward(net: MLP, params, X, threads: int | None = None) -> np.ndarray:
    """Logits of every network on X.

    Parameters
    ----------
    net : MLP
    params : Params or list of arrays with leading axis S
    X : array (N, d) shared by all networks, or (S, N, d); dtype must equal the params'.
    threads : int, optional

    Returns
    -------
    ndarray (S, N, K) of the params' dtype. Rows are evaluated in tiles, so memory use does
    not grow with N beyond the output.
    """
    flat = flatten(net, params)
    X, _ = data_arrays(net, flat.shape[0], flat.dtype, X)
    out = np.empty((flat.shape[0], X.shape[-2], net.n_logits), dtype=flat.dtype)
    _native.mlp_forward(list(net.widths), flat, X, out, _threads(threads))
    return out


def predict(net: MLP, params, X, threads: int | None = None) -> np.ndarray:
    """Predicted labels (S, N): round(sigmoid(z)) for one logit, argmax otherwise (int64)."""
    z = forward(net, params, X, threads)
    if net.n_logits == 1:
        return (z[..., 0] > 0).astype(np.int64)
    return np.argmax(z, axis=-1)


def loss_and_grad(net: MLP, params, X, y, *, wrt_input: bool = False, threads: int | None = None):
    """Mean loss over all rows and its gradient, for every network.

    Parameters
    ----------
    net : MLP
    params : Params (S networks)
    X : array (N, d) or (S, N, d), the params' dtype
    y : targets, see :func:`data_arrays` (0/1 for sigmoid, class indices for softmax)
    wrt_input : bool
        Also return the gradient of each network's mean loss with respect to X.

    Returns
    -------
    loss : ndarray (S,)
    grads : Params, same shapes as `params`
    dX : ndarray (S, N, d), only with ``wrt_input=True``
    """
    flat = flatten(net, params)
    S = flat.shape[0]
    X, Y = data_arrays(net, S, flat.dtype, X, y)
    N = X.shape[-2]
    loss = np.empty(S, dtype=flat.dtype)
    grad = np.empty_like(flat)
    dX = np.empty((S, N, net.n_inputs), dtype=flat.dtype) if wrt_input else None
    _native.mlp_loss_and_grad(list(net.widths), _LOSS_KIND[net.loss], flat, X, Y, loss, grad, dX,
                              _threads(threads))
    grads = unflatten(net, grad, getattr(params, "seeds", None))
    return (loss, grads, dX) if wrt_input else (loss, grads)
