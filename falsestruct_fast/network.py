"""Networks (any :class:`Network`: MLP or CNN), their parameters, forward and gradients.

Parameters of S networks are kept as a :class:`Params` list in Keras ``get_weights()`` order
(kernel, bias per layer with parameters), each array with a leading network axis S.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from . import _validate as V
from . import device_arrays, engines, memory
from ._native_loader import _native

LOSSES = ("sigmoid", "softmax")
_MAX_LAYERS = 16
# Layer kinds of the native spec (src/falsestruct/net_shape.h): per layer [kind, units, k, relu].
DENSE, CONV2D, MAXPOOL2 = 0, 1, 2

# Sizes the native kernels can hold: they count rows, networks, parameters and per-sample
# workspace in 32 bits, and src/falsestruct/net_shape.h bounds layer widths. Larger inputs
# and networks are refused here, before any work, rather than overflowing there.
INT32_MAX = 2**31 - 1
MAX_ROWS = INT32_MAX             # data rows per call
MAX_NETWORKS = INT32_MAX         # networks (seeds) per call
MAX_PARAMS = INT32_MAX           # parameters of one network
MAX_LAYER_WIDTH = 2**28          # values per sample of one layer's input or output
MAX_ROW_ACTIVATIONS = 2**30      # values per sample of all layers together
MAX_ROW_SCALARS = INT32_MAX      # workspace scalars per sample (activations, gradients, padding)


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
        return math.prod(self.input_shape)

    @property
    def n_params(self) -> int:
        """Parameters of one network (exact, from ``param_shapes()``)."""
        return sum(math.prod(shape) for shape in self.param_shapes())

    def activation_widths(self) -> list[int]:
        """Values per sample of the input and of each layer's output (Flatten excluded)."""
        raise NotImplementedError

    def _check_size(self, name: str) -> None:
        """Refuses (ValueError naming `name` and the limit) a network the kernels cannot hold."""
        P = self.n_params
        if P > MAX_PARAMS:
            raise ValueError(f"{name}: the network has {P} parameters; the native engine holds at "
                             f"most {MAX_PARAMS} (2**31 - 1) per network")
        widths = self.activation_widths()
        if max(widths) > MAX_LAYER_WIDTH:
            raise ValueError(f"{name}: a layer has {max(widths)} values per sample; the native "
                             f"engine holds at most {MAX_LAYER_WIDTH} (2**28) per layer")
        if sum(widths) > MAX_ROW_ACTIVATIONS:
            raise ValueError(f"{name}: the layers have {sum(widths)} values per sample in all; the "
                             f"native engine holds at most {MAX_ROW_ACTIVATIONS} (2**30)")
        # Only now is the spec small enough for the native shape code to size it.
        try:
            row = _native.workspace_scalars_per_row(self.spec)
        except ValueError as exc:  # a limit only the native shape code checks (conv padding)
            raise ValueError(f"{name}: {exc}") from None
        if row > MAX_ROW_SCALARS:
            raise ValueError(f"{name}: one sample needs {row} workspace scalars (activations, "
                             f"gradients, padded conv inputs); the native engine holds at most "
                             f"{MAX_ROW_SCALARS} (2**31 - 1)")

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

    A plain list of arrays (so ``W0, b0, W1, b1 = params`` works): NumPy arrays, or CuPy
    arrays when made by the CUDA engine from GPU inputs (they stay on the GPU between calls).
    Two extras:
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

    def to_device(self) -> "Params":
        """These parameters as CuPy arrays on the current GPU (for ``engine="cuda"``: they then
        stay there between calls). Arrays already on the GPU are not copied."""
        return Params([device_arrays.to_device(a) for a in self], self.seeds)

    def to_host(self) -> "Params":
        """These parameters as NumPy arrays (copied from the GPU when they are CuPy arrays)."""
        return Params([device_arrays.to_host(a) for a in self], self.seeds)

    def select(self, index) -> "Params":
        """Params of a subset of networks (copies), e.g. ``params.select([3, 5])``."""
        idx = np.arange(self.n_networks)[index]
        return Params([np.ascontiguousarray(a[idx]) for a in self],
                      None if self.seeds is None else self.seeds[idx])


def finite_networks(params) -> np.ndarray:
    """(S,) bool: every weight of network s is finite (a diverged network has NaN/inf).
    NumPy for NumPy params, CuPy for CuPy params."""
    ok = None
    for a in params:
        a = a if device_arrays.is_array(a) else np.asarray(a)
        good = np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
        ok = good if ok is None else ok & good
    return ok


def n_seeds(seeds) -> int | None:
    """Number of networks `seeds` (an int, or a sized iterable of ints) stands for, without
    materialising it (``range(10**10)`` is 10**10); ValueError beyond MAX_NETWORKS."""
    if isinstance(seeds, (bool, np.bool_)):
        raise TypeError(f"seeds: must be an integer or an iterable of integers, got bool {seeds!r}")
    if isinstance(seeds, (int, np.integer)):
        return 1
    try:
        S = len(seeds)
    except TypeError:
        return None  # an iterator: counted once materialised
    if S > MAX_NETWORKS:
        raise ValueError(f"seeds: {S} seeds; at most {MAX_NETWORKS} (2**31 - 1) networks per call")
    return S


def _seed_array(seeds) -> np.ndarray:
    """(S,) uint64 seeds from an int, a range, an integer array or an iterable of ints.
    Non-integers (1.5, '3', True) are a TypeError: a seed is never rounded."""
    n_seeds(seeds)
    if isinstance(seeds, (int, np.integer)):
        seeds = [seeds]
    if isinstance(seeds, range):
        if len(seeds) and (min(seeds) < 0 or max(seeds) >= 2**64):
            raise ValueError("seeds: must be in [0, 2**64)")
        values = np.arange(seeds.start, seeds.stop, seeds.step, dtype=np.uint64) if len(seeds) else []
    elif isinstance(seeds, np.ndarray):
        if seeds.dtype.kind not in "iu" or seeds.ndim != 1:
            raise TypeError(f"seeds: must be a 1-D integer array, got dtype {seeds.dtype} shape {seeds.shape}")
        if seeds.size and seeds.dtype.kind == "i" and seeds.min() < 0:
            raise ValueError("seeds: must be in [0, 2**64)")
        values = seeds
    else:
        try:
            items = list(seeds)
        except TypeError:
            raise TypeError(f"seeds: must be an integer or an iterable of integers, got {seeds!r}") from None
        values = []
        for i, s in enumerate(items):
            if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
                raise TypeError(f"seeds: must be an integer or an iterable of integers; got "
                                f"{type(s).__name__} {s!r} at position {i}")
            values.append(int(s))
        if values and (min(values) < 0 or max(values) >= 2**64):
            raise ValueError("seeds: must be in [0, 2**64)")
        n_seeds(values)
    if len(values) == 0:
        raise ValueError("seeds: at least one seed is needed")
    return np.asarray(values, dtype=np.uint64)


def unflatten(net: Network, flat: np.ndarray, seeds=None) -> Params:
    """Views of a flat (S, P) parameter array as a :class:`Params` list."""
    S = flat.shape[0]
    arrays, offset = [], 0
    for shape in net.param_shapes():
        size = int(np.prod(shape))
        arrays.append(flat[:, offset:offset + size].reshape((S,) + shape))
        offset += size
    return Params(arrays, seeds, flat)


def engine_arrays(engine: str, params, **arrays):
    """The engine called `engine` and the arrays it works on: (engine, params, arrays,
    on_device). The CPU engines take the arguments as they are and refuse GPU arrays
    (TypeError naming the argument). The CUDA engine (RuntimeError without its build or a GPU)
    takes every array argument as a CuPy array: GPU arrays without a copy, host arrays copied;
    on_device says whether any argument was on the GPU, i.e. whether results are returned as
    CuPy arrays (else NumPy, see :func:`output`)."""
    eng = engines.get(engine)
    device_arrays.refuse_on_host_engine(engine, params=params, **arrays)
    if engine != "cuda":
        return eng, params, arrays, False
    eng.require()
    on_device = device_arrays.any_on_device(params, *arrays.values())
    if isinstance(params, (list, tuple)):
        params = Params([device_arrays.to_device(a) for a in params], getattr(params, "seeds", None))
    return eng, params, {k: device_arrays.to_device(v) for k, v in arrays.items()}, on_device


def host_arrays(engine: str, params, **arrays):
    """As :func:`engine_arrays`, for work done on the host around GPU kernels (the baselines'
    search): (params, arrays, on_device) with GPU arrays copied to NumPy."""
    _, params, arrays, on_device = engine_arrays(engine, params, **arrays)
    if isinstance(params, (list, tuple)):
        params = Params([device_arrays.to_host(a) for a in params], getattr(params, "seeds", None))
    return params, {k: device_arrays.to_host(v) if device_arrays.is_array(v) else v
                    for k, v in arrays.items()}, on_device


def output(x, on_device: bool):
    """A result as the caller's arrays were: unchanged on the GPU, else as a NumPy array."""
    return x if on_device else device_arrays.to_host(x)


def check_net(net) -> None:
    if not isinstance(net, Network):
        raise TypeError(f"net: expected falsestruct_fast.MLP or CNN, got {type(net).__name__}")


def flatten(net: Network, params, name: str = "params", check_finite: bool = True) -> np.ndarray:
    """Checks `params` against `net` and returns a new C-contiguous (S, P) array (NaN/inf
    weights are an error unless check_finite is False)."""
    check_net(net)
    if not isinstance(params, (list, tuple)):
        raise TypeError(f"{name}: expected a list of arrays (kernel, bias per layer), got {type(params).__name__}")
    shapes = net.param_shapes()
    if len(params) != len(shapes):
        raise ValueError(f"{name}: {net!r} has {len(shapes)} arrays (kernel and bias per layer), got {len(params)}")
    first = params[0]
    if not device_arrays.is_array(first):
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
    if S > MAX_NETWORKS:
        raise ValueError(f"{name}: {S} networks; at most {MAX_NETWORKS} (2**31 - 1) per call")
    for i, (a, shape) in enumerate(zip(params, shapes)):
        if not device_arrays.is_array(a):
            raise TypeError(f"{name}[{i}]: expected a NumPy array, got {type(a).__name__}")
        if device_arrays.is_device_array(a) != device_arrays.is_device_array(first):
            raise TypeError(f"{name}[{i}]: host and GPU arrays mixed (all on the host or all on the GPU)")
        if a.dtype != dtype:
            raise TypeError(f"{name}[{i}]: dtype {a.dtype} differs from {name}[0]'s {dtype}")
        if a.shape != (S,) + shape:
            raise ValueError(f"{name}[{i}]: expected shape {(S,) + shape}, got {a.shape}")
        if check_finite:
            V.finite(a, f"{name}[{i}]")
    memory.check_fits(S * net.n_params * dtype.itemsize,
                      f"{name}: a working copy of {S} networks x {net.n_params} parameters",
                      "pass fewer networks per call")
    return np.concatenate([a.reshape(S, -1) for a in params], axis=1)


def init(net: Network, seeds=0, dtype="float32", threads: int | None = None) -> Params:
    """Glorot-uniform weights and zero biases for one network per seed.

    Parameters
    ----------
    net : MLP or CNN
    seeds : int, range, integer array or iterable of int, each in [0, 2**64)
        One network per seed (S = number of seeds, at most 2**31 - 1). Weight e of layer l
        of seed s is drawn from a counter-based generator as a function of (s, l, e) alone,
        so a seed gives the same network alone or among others, for both dtypes (float32 =
        rounded float64). Non-integers (1.5, "3", True) are a TypeError.
    dtype : "float32" or "float64"
    threads : int in [1, 1024], optional
        CPU threads (default: all cores).

    Returns
    -------
    Params
        One network's arrays (``net.param_shapes()``, Keras order) with a leading axis S, of
        `dtype`, views of one (S, P) array.

    Raises
    ------
    MemoryError
        When the (S, P) array would not fit in the available memory (estimated from
        ``len(seeds)`` before a range or array of seeds is materialised).
    """
    check_net(net)
    dt = V.float_dtype(dtype)
    n_threads = _threads(threads)
    S = n_seeds(seeds)
    if S is not None:  # before materialising the seeds: range(10**10) is refused here
        memory.check_fits(S * (net.n_params * dt.itemsize + 8),
                          f"seeds: {S} networks of {net.n_params} parameters ({dt})",
                          "initialise fewer seeds per call")
    seed_arr = _seed_array(seeds)
    flat = np.empty((len(seed_arr), net.n_params), dtype=dt)
    _native.net_init(net.spec, seed_arr, flat, n_threads)
    return unflatten(net, flat, seed_arr)


def _threads(threads) -> int:
    return V.threads(threads)


def data_arrays(net: Network, S: int, dtype: np.dtype, X, y=None, check_finite: bool = True,
                xp=np):
    """Validated (X, Y) for the engines (xp: numpy, or cupy for the CUDA engine's GPU arrays).

    X: (N, *input_shape) shared by all networks or (S, N, *input_shape); for an MLP
    input_shape = (d,), for a CNN (H, W, C). y (sigmoid loss): (N,) or (N, K), or with a
    leading S; values in [0, 1]. y (softmax loss): class indices (N,) or (S, N).
    Returns X flattened per sample, (N, D) or (S, N, D), and Y as (N, t) or (S, N, t), in `dtype`.
    NaN/inf in X is an error unless check_finite is False (attacks report such points).
    """
    # Shape checks first: the finite check below reads every value.
    X = V.float_array(X, "X", dtype, check_finite=False, xp=xp)
    shape = tuple(net.input_shape)
    k = len(shape)
    if X.ndim not in (k + 1, k + 2) or tuple(X.shape[X.ndim - k:]) != shape:
        want = ", ".join(str(v) for v in shape)
        raise ValueError(f"X: expected shape (N, {want}) or (S, N, {want}), got {X.shape}")
    if X.ndim == k + 2 and X.shape[0] != S:
        raise ValueError(f"X: leading axis {X.shape[0]} differs from the number of networks S = {S}")
    N = X.shape[X.ndim - k - 1]
    if N > MAX_ROWS:
        raise ValueError(f"X: {N} rows; the native engine takes at most {MAX_ROWS} (2**31 - 1) "
                         f"rows per call: split X")
    X = X.reshape(X.shape[:X.ndim - k] + (net.n_inputs,))
    if N == 0:
        raise ValueError("X: no data rows (N = 0)")
    if check_finite:
        V.finite(X, "X")
    if y is None:
        return X, None
    y = xp.asarray(y if device_arrays.is_array(y) else np.asarray(y))
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
    Y = xp.ascontiguousarray(y, dtype=dtype).reshape(((S,) if per_seed else ()) + (N, t))
    if Y.ndim != X.ndim:  # one of them per network, the other shared: give both the S axis
        if X.ndim == 2:
            X = xp.ascontiguousarray(xp.broadcast_to(X, (S,) + X.shape))
        else:
            Y = xp.ascontiguousarray(xp.broadcast_to(Y, (S,) + Y.shape))
    return X, Y


def forward(net: Network, params, X, threads: int | None = None, engine: str = "native") -> np.ndarray:
    """Logits of every network on X.

    Parameters
    ----------
    net : MLP or CNN
    params : Params or list of arrays with leading axis S
    X : array (N, *input_shape) shared by all networks, or (S, N, *input_shape); dtype must
        equal the params'. MLP: (N, d); CNN: (N, H, W, C) images (NHWC). N at most
        2**31 - 1 (:data:`MAX_ROWS`).
    threads : int in [1, 1024], optional
    engine : "native" (default), "numba" or "cuda" (see :mod:`falsestruct_fast.engines`)

    Returns
    -------
    ndarray (S, N, K) of the params' dtype (a CuPy array with ``engine="cuda"`` when params
    or X are on the GPU). Rows are evaluated in tiles, so memory use does not grow with N
    beyond the output; a MemoryError before any work when the output would not fit in the
    available memory.
    """
    check_net(net)
    _, params, a, on_device = engine_arrays(engine, params, X=X)
    flat = flatten(net, params)
    X, _ = data_arrays(net, flat.shape[0], flat.dtype, a["X"], xp=device_arrays.array_module(flat))
    return output(logits_of_rows(net, flat, X, threads, engine), on_device)


def logits_of_rows(net: Network, flat: np.ndarray, X: np.ndarray, threads=None,
                   engine: str = "native") -> np.ndarray:
    """forward() on already validated arrays: flat (S, P), X (N, D) or (S, N, D) flattened rows
    of the same dtype (NaN/inf allowed: they propagate to the logits). NumPy arrays with
    engine="cuda" go through the GPU and come back as NumPy (the baselines' search)."""
    eng = engines.get(engine)
    host_in = engine == "cuda" and isinstance(flat, np.ndarray)
    if host_in:
        flat, X = device_arrays.to_device(flat), device_arrays.to_device(X)
    _check_eval_memory(net, flat, X.shape[-2], net.n_logits, threads, "forward")
    out = device_arrays.array_module(flat).empty((flat.shape[0], X.shape[-2], net.n_logits),
                                                 dtype=flat.dtype)
    eng.forward(net, flat, X, out, _threads(threads))
    return device_arrays.to_host(out) if host_in else out


def predict(net: Network, params, X, threads: int | None = None, engine: str = "native") -> np.ndarray:
    """Predicted labels (S, N): round(sigmoid(z)) for one logit, argmax otherwise (int64)."""
    z = forward(net, params, X, threads, engine)
    if net.n_logits == 1:
        return (z[..., 0] > 0).astype(np.int64)
    return np.argmax(z, axis=-1)


def input_grad(net: Network, params, X, logit: int | None = None, threads: int | None = None,
               engine: str = "native") -> np.ndarray:
    """Gradient of the logits with respect to the input, for every network and point.

    Parameters
    ----------
    net : MLP or CNN
    params : Params (S networks)
    X : array (N, *input_shape) or (S, N, *input_shape), the params' dtype
    logit : int, optional
        Which logit to differentiate. None: all of them.
    engine : "native" (default), "numba" or "cuda"

    Returns
    -------
    ndarray of the params' dtype: (S, N, *input_shape) for one logit (``logit`` given, or a
    single-logit network), else (S, N, K, *input_shape) with ``[s, n, k]`` = d z_k / d x_n.
    Computed natively (forward once, then one backward pass per logit).
    """
    check_net(net)
    eng, params, a, on_device = engine_arrays(engine, params, X=X)
    flat = flatten(net, params)
    xp = device_arrays.array_module(flat)
    S, K = flat.shape[0], net.n_logits
    if logit is not None:
        logit = V.integer(logit, "logit", 0, K - 1)
    Xf, _ = data_arrays(net, S, flat.dtype, a["X"], xp=xp)
    N = Xf.shape[-2]
    _check_eval_memory(net, flat, N, K * net.n_inputs, threads, "input_grad")
    out = xp.empty((S, N, K, net.n_inputs), dtype=flat.dtype)
    eng.input_grads(net, flat, Xf, out, _threads(threads))
    out = out.reshape((S, N, K) + tuple(net.input_shape))
    if logit is not None:
        return output(xp.ascontiguousarray(out[:, :, logit]), on_device)
    return output(out[:, :, 0] if K == 1 else out, on_device)


def _check_eval_memory(net: Network, flat: np.ndarray, N: int, out_per_row: int, threads,
                       what: str) -> None:
    """MemoryError before a forward-type call whose outputs (`out_per_row` values per network
    and row) and row tiles would not fit in the available memory."""
    S = flat.shape[0]
    need = memory.estimate_eval_bytes(net, S, N, out_per_row, flat.dtype, _threads(threads) or None)
    memory.check_fits(need, f"{what}: outputs for {S} networks x {N} rows",
                      "pass fewer rows or networks per call")


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


def max_batch_rows(net: Network) -> int:
    """Most rows one native loss/gradient pass (a training batch, a loss_and_grad chunk) takes:
    the kernels index rows x workspace scalars per row in 32 bits."""
    return max(1, MAX_ROW_SCALARS // _row_scalars(net))


def batch_rows(net: Network, rows, name: str) -> int:
    """`rows` (rows of one native loss/gradient pass) as an int in [1, max_batch_rows(net)]."""
    rows = V.integer(rows, name, minimum=1)
    limit = max_batch_rows(net)
    if rows > limit:
        raise ValueError(f"{name}: {rows} rows of this network exceed the native engine's 32-bit "
                         f"workspace indexing; at most {limit} rows per pass")
    return rows


def loss_and_grad(net: Network, params, X, y, *, wrt_input: bool = False, threads: int | None = None,
                  chunk_size: int | None = None, engine: str = "native"):
    """Mean loss over all rows and its gradient, for every network.

    Parameters
    ----------
    net : MLP or CNN
    params : Params (S networks)
    X : array (N, *input_shape) or (S, N, *input_shape), the params' dtype
    y : targets, see :func:`data_arrays` (0/1 for sigmoid, class indices for softmax)
    wrt_input : bool
        Also return the gradient of each network's mean loss with respect to X.
    threads : int in [1, 1024], optional
        CPU threads (default: all cores).
    chunk_size : int in [1, max_batch_rows(net)], optional
        Rows per native call. The native pass holds the activations of every layer for the
        rows of one call, so the rows are processed in chunks to keep that memory bounded;
        the default (:func:`default_chunk_rows`) keeps about ``LOSS_GRAD_CHUNK_SCALARS``
        scalars of activations per network in flight (67 images for :func:`paper_cnn`,
        tens of thousands of rows for small MLPs). When N fits in one chunk there is a single
        call; otherwise the chunks' mean losses and gradients are weighted by their row
        counts, summed in float64 and rounded to the params' dtype once, so the result equals
        the one-call result up to rounding.
    engine : "native" (default), "numba" or "cuda"

    Returns
    -------
    (CuPy arrays with ``engine="cuda"`` when params, X or y are on the GPU)
    loss : ndarray (S,)
    grads : Params, same shapes as `params`
    dX : ndarray (S, N, *input_shape), only with ``wrt_input=True``
    """
    check_net(net)
    if chunk_size is not None:
        chunk_size = batch_rows(net, chunk_size, "chunk_size")
    eng, params, a, on_device = engine_arrays(engine, params, X=X, y=y)
    flat = flatten(net, params)
    xp = device_arrays.array_module(flat)
    S = flat.shape[0]
    X, Y = data_arrays(net, S, flat.dtype, a["X"], a["y"], xp=xp)
    N = X.shape[-2]
    n_threads = _threads(threads)
    chunk = default_chunk_rows(net) if chunk_size is None else chunk_size
    memory.check_fits(memory.estimate_loss_grad_bytes(net, S, N, min(N, chunk), flat.dtype,
                                                      wrt_input, n_threads or None),
                      f"loss_and_grad: {S} networks x {N} rows", "pass fewer networks per call")
    dX = xp.empty((S, N, net.n_inputs), dtype=flat.dtype) if wrt_input else None
    if N <= chunk:
        loss = xp.empty(S, dtype=flat.dtype)
        grad = xp.empty_like(flat)
        eng.loss_and_grad(net, flat, X, Y, loss, grad, dX, n_threads)
    else:
        loss, grad = _chunked_loss_and_grad(net, flat, X, Y, dX, chunk, n_threads, eng)
    loss, grad, dX = (output(v, on_device) for v in (loss, grad, dX))
    grads = unflatten(net, grad, getattr(params, "seeds", None))
    if not wrt_input:
        return loss, grads
    return loss, grads, dX.reshape((S, N) + tuple(net.input_shape))


def _chunked_loss_and_grad(net: Network, flat: np.ndarray, X: np.ndarray, Y: np.ndarray,
                           dX: np.ndarray | None, chunk: int, n_threads: int, eng):
    """loss_and_grad over row chunks of validated arrays (X (N, D) / (S, N, D), Y alike).

    The native call returns the mean loss of its rows and that mean's gradients, so chunk c
    with n_c rows contributes n_c / N of its loss and parameter gradient, and its input
    gradient is scaled by n_c / N. dX (S, N, D), when given, is filled in place.
    """
    xp = device_arrays.array_module(flat)
    S, dtype = flat.shape[0], flat.dtype
    N = X.shape[-2]
    loss_sum = xp.zeros(S, dtype=np.float64)
    grad_sum = xp.zeros(flat.shape, dtype=np.float64)
    loss_c = xp.empty(S, dtype=dtype)
    grad_c = xp.empty_like(flat)
    for r0 in range(0, N, chunk):
        r1 = min(N, r0 + chunk)
        n = r1 - r0
        # shared rows slice contiguously; per-network rows (S, N, D) need a copy per chunk
        Xc = xp.ascontiguousarray(X[..., r0:r1, :])
        Yc = xp.ascontiguousarray(Y[..., r0:r1, :])
        dXc = xp.empty((S, n, X.shape[-1]), dtype=dtype) if dX is not None else None
        eng.loss_and_grad(net, flat, Xc, Yc, loss_c, grad_c, dXc, n_threads)
        loss_sum += n * loss_c.astype(np.float64)
        grad_sum += n * grad_c.astype(np.float64)
        if dX is not None:
            dX[:, r0:r1] = dXc.astype(np.float64) * (n / N)
    return (loss_sum / N).astype(dtype), (grad_sum / N).astype(dtype)
