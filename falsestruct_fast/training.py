"""Fused training of S networks in one native call (epochs x batches x forward/backward/Adam)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import _validate as V
from . import device_arrays, memory
from .engines import ENGINES as _ENGINE_REGISTRY
from .engines import get as _engine
from .network import (Network, Params, _seed_array, _threads, batch_rows, check_net, data_arrays,
                      engine_arrays, flatten, output, unflatten)
from .optim import Adam, AdamState
from .progress import progress_callback

SHUFFLE_MODES = {"none": 0, "samples": 1, "batches": 2}
ENGINES = tuple(_ENGINE_REGISTRY)  # "native", "numba", "cuda" (falsestruct_fast.engines)
_INT32_MAX = 2**31 - 1  # the native engine counts epochs, batches and rows in 32 bits
# Longest interval between progress reports: the engine also checks for Ctrl-C at each report.
MAX_PROGRESS_SECONDS = 3600.0


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    params : Params
        Trained parameters (new arrays; the input params are not modified). With
        ``engine="cuda"``: CuPy arrays when params, X or y were on the GPU, else NumPy.
    loss : ndarray (S, R) float64
        Mean training loss over the samples seen in each recorded epoch (the mean of that
        epoch's batch losses, each evaluated before its Adam update, as Keras reports it).
    accuracy : ndarray (S, R) float64
        Fraction of those samples predicted correctly.
    epochs : ndarray (R,) int64
        The recorded epoch numbers (1-based, cumulative over continued runs).
    opt_state : AdamState
        Moments and step count, to continue training with ``train(..., opt_state=...)``
        (its moments on the GPU exactly when the params are).
    wall_time : float
        Seconds spent in the native engine.
    """

    params: Params
    loss: np.ndarray
    accuracy: np.ndarray
    epochs: np.ndarray
    opt_state: AdamState
    wall_time: float

    @property
    def final_loss(self) -> np.ndarray:
        """Loss of the last recorded epoch, (S,)."""
        return self.loss[:, -1] if self.loss.shape[1] else np.full(self.loss.shape[0], np.nan)

    @property
    def diverged(self) -> np.ndarray:
        """(S,) bool: networks whose loss or parameters are NaN/inf (flagged, not raised)."""
        bad_params = device_arrays.to_host(~np.isfinite(self.params.flat).all(axis=1))
        bad_loss = ~np.isfinite(self.loss).all(axis=1)
        return bad_params | bad_loss


def train(
    net: Network,
    params,
    X,
    y,
    *,
    epochs: int,
    batch_size: int,
    optimizer: Adam | None = None,
    shuffle: str = "samples",
    seeds=None,
    record_every: int | None = None,
    opt_state: AdamState | None = None,
    threads: int | None = None,
    progress=True,
    progress_seconds: float = 2.0,
    engine: str = "native",
) -> TrainResult:
    """Train S networks with Adam in one fused native call.

    Each epoch runs ``floor(N / batch_size)`` steps (a remainder of N is not used in that
    epoch), each a forward pass, backward pass and Adam update, without returning to Python.

    Parameters
    ----------
    net : MLP or CNN
    params : Params or list [W0, b0, ...] with leading axis S, float32 or float64.
    X : array (N, d) shared by all networks, or (S, N, d) per network; the params' dtype.
    y : targets (N,), (N, K) or with leading S (see :func:`falsestruct_fast.network.data_arrays`).
    epochs : int >= 0
    batch_size : int in [1, N], and at most :func:`~falsestruct_fast.network.max_batch_rows`
        (rows x workspace scalars per row must fit in 32 bits: 17329 images of the paper's
        CNN, 6.7 million rows of Experiment I's MLP).
    optimizer : Adam, default ``Adam()`` (TF1 defaults).
    shuffle : {"samples", "batches", "none"}
        "samples": a new random permutation of the samples every epoch; "batches": fixed
        consecutive batches whose order is permuted every epoch (the authors' tf.data
        pipeline); "none": consecutive batches in data order.
    seeds : int or iterable, optional
        Seed of each network's batch order; default ``params.seeds`` (set by :func:`init`),
        else 0..S-1. The order of network s depends only on (seed, epoch).
    record_every : int, optional
        Record loss and accuracy every k epochs and at the last epoch (default: about 100
        records in all). Recorded epochs cost a little more (the loss value is computed).
    opt_state : AdamState, optional
        Continue a previous run (moments and step count); epochs then continue its count.
    threads : int in [1, 1024], optional
        CPU threads over networks (default: all cores). Results are bitwise identical for
        any thread count.
    progress : bool or callable
        True: a progress line on stderr for runs longer than `progress_seconds`; a callable
        is called as ``progress(done, total)`` in network-epochs; False: silent.
    progress_seconds : float in (0, 3600]
        Seconds between progress reports.
    engine : {"native", "numba", "cuda"}
        "native": the C++ engine; "numba": the Numba kernels (compiled on first use, cached);
        "cuda": the CUDA engine (needs the CUDA build, a GPU and CuPy; params, X, y and
        opt_state may be CuPy arrays, see :mod:`falsestruct_fast.device_arrays`). Same
        networks for the same seeds on every engine (up to the rounding of sums).

    Returns
    -------
    TrainResult

    Raises
    ------
    MemoryError
        Before any training, when the Adam moments, histories and per-thread workspaces
        (see :func:`falsestruct_fast.memory.estimate_train_bytes`) exceed the available memory.
    """
    if optimizer is None:
        optimizer = Adam()
    if not isinstance(optimizer, Adam):
        raise TypeError(f"optimizer: expected falsestruct_fast.Adam, got {type(optimizer).__name__}")
    check_net(net)
    epochs = V.integer(epochs, "epochs", minimum=0, maximum=_INT32_MAX)
    batch_size = batch_rows(net, batch_size, "batch_size")
    n_threads = _threads(threads)
    progress_seconds = V.real(progress_seconds, "progress_seconds", maximum=MAX_PROGRESS_SECONDS)
    if progress_seconds <= 0:
        raise ValueError(f"progress_seconds: must be a positive number, got {progress_seconds}")
    V.option(engine, "engine", ENGINES)
    _, params, a, on_device = engine_arrays(engine, params, X=X, y=y)
    flat = flatten(net, params)
    xp = device_arrays.array_module(flat)
    S, P = flat.shape
    dtype = flat.dtype
    X, Y = data_arrays(net, S, dtype, a["X"], a["y"], xp=xp)
    N = X.shape[-2]
    if batch_size > N:
        raise ValueError(f"batch_size: {batch_size} is larger than the number of samples N = {N}")
    V.option(shuffle, "shuffle", SHUFFLE_MODES)
    if record_every is None:
        record_every = max(1, epochs // 100)
    record_every = V.integer(record_every, "record_every", minimum=1, maximum=_INT32_MAX)

    if seeds is None:
        seeds = getattr(params, "seeds", None)
    seed_arr = np.arange(S, dtype=np.uint64) if seeds is None else _seed_array(seeds)
    if len(seed_arr) != S:
        raise ValueError(f"seeds: {len(seed_arr)} seeds for S = {S} networks")

    n_batches = N // batch_size
    n_records = 0 if epochs == 0 else -(-epochs // record_every)
    # params and data are already in memory (flat is the copy being trained); still to come:
    # Adam's moments, the histories and the workers' workspaces.
    memory.check_fits(memory._train_bytes(net, S, N, batch_size, dtype.itemsize, n_threads or None,
                                          0, n_records, param_arrays=2),
                      f"train: {S} networks of {P} parameters ({dtype})",
                      "train fewer networks per call")

    if opt_state is None:
        state = AdamState(xp.zeros((S, P), dtype), xp.zeros((S, P), dtype), 0)
    else:
        if not isinstance(opt_state, AdamState):
            raise TypeError(f"opt_state: expected AdamState, got {type(opt_state).__name__}")
        moments = {}
        for name in ("m", "v"):
            arr = getattr(opt_state, name)
            device_arrays.refuse_on_host_engine(engine, **{f"opt_state.{name}": arr})
            if engine == "cuda":
                arr = device_arrays.to_device(arr)
            if not device_arrays.is_array(arr) or arr.dtype != dtype:
                raise TypeError(f"opt_state.{name}: expected a {dtype} NumPy array")
            if arr.shape != (S, P):
                raise ValueError(f"opt_state.{name}: expected shape {(S, P)}, got {arr.shape}")
            moments[name] = xp.array(arr, copy=True)
        state = AdamState(moments["m"], moments["v"], V.integer(opt_state.step, "opt_state.step", minimum=0))

    loss_hist = np.full((S, n_records), np.nan)
    acc_hist = np.full((S, n_records), np.nan)
    callback = progress_callback(progress, "train", "net-epochs")

    start = time.perf_counter()
    _engine(engine).train(net, SHUFFLE_MODES[shuffle], optimizer.as_tuple(), X, Y, flat, state.m,
                          state.v, seed_arr, epochs, batch_size, state.step, record_every,
                          loss_hist, acc_hist, n_threads, callback, float(progress_seconds))
    wall = time.perf_counter() - start

    epochs_done = state.step // n_batches if n_batches else 0
    recorded = np.array([e for e in range(1, epochs + 1) if e % record_every == 0 or e == epochs],
                        dtype=np.int64) + epochs_done
    state.step += epochs * n_batches
    flat, state.m, state.v = (output(x, on_device) for x in (flat, state.m, state.v))
    return TrainResult(unflatten(net, flat, seed_arr), loss_hist, acc_hist, recorded, state, wall)
