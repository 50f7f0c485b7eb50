"""The engines behind the public functions, and the one place that picks one.

The public functions (:func:`~falsestruct_fast.train`, :func:`~falsestruct_fast.forward`,
:func:`~falsestruct_fast.loss_and_grad`, :func:`~falsestruct_fast.deepfool`, ...) validate
their arguments once, whatever the engine, and then call ``get(engine).<method>(...)`` with
checked, C-contiguous arrays of one dtype:

- ``forward(net, flat, X, out, threads)``: flat (S, P), X (N, D) shared or (S, N, D),
  out (S, N, K);
- ``loss_and_grad(net, flat, X, Y, loss_out, grad_out, input_grad_out, threads)``:
  Y (N, t) or (S, N, t), loss_out (S,), grad_out (S, P), input_grad_out (S, N, D) or None;
- ``input_grads(net, flat, X, out, threads)``: out (S, N, K, D);
- ``train(net, shuffle, adam, X, Y, flat, m, v, seeds, epochs, batch_size, step0,
  record_every, loss_hist, acc_hist, threads, progress, progress_seconds)``: in place;
- ``deepfool(net, flat, X, pert, iters, status, overshoot, max_iter, linf, candidates,
  foolbox, clip, threads, progress)``: pert (S, N, D), iters and status (S, N) int32;
- ``flipping_scale``: the baselines' search as a kernel, or None when the engine runs the
  generic search of :mod:`falsestruct_fast.attacks.baselines` over its ``forward`` (the
  method may also return None for a network it does not hold).

``threads`` is 0 for "all cores". Every engine gives the same networks for the same seeds.
The CUDA engine's arrays are CuPy arrays (:mod:`falsestruct_fast.device_arrays`).
"""
from __future__ import annotations

import time

import numpy as np

from . import _validate as V
from . import device_arrays
from ._native_loader import _cuda, _native

# LossKind of the kernels (src/falsestruct/losses.h, numba_kernels/losses.py)
_LOSS_KIND = {"sigmoid": 0, "softmax": 1}


class NativeEngine:
    """The C++ engine (pybind11): threads over networks and tiles of rows, GIL released."""

    name = "native"
    flipping_scale = None

    def forward(self, net, flat, X, out, threads):
        _native.net_forward(net.spec, flat, X, out, threads)

    def loss_and_grad(self, net, flat, X, Y, loss_out, grad_out, input_grad_out, threads):
        _native.net_loss_and_grad(net.spec, _LOSS_KIND[net.loss], flat, X, Y, loss_out, grad_out,
                                  input_grad_out, threads)

    def input_grads(self, net, flat, X, out, threads):
        _native.net_logit_input_grads(net.spec, flat, X, out, threads)

    def train(self, net, shuffle, adam, X, Y, flat, m, v, seeds, epochs, batch_size, step0,
              record_every, loss_hist, acc_hist, threads, progress, progress_seconds):
        _native.net_train(net.spec, _LOSS_KIND[net.loss], shuffle, adam, X, Y, flat, m, v, seeds,
                          epochs, batch_size, step0, record_every, loss_hist, acc_hist, threads,
                          progress, progress_seconds)

    def deepfool(self, net, flat, X, pert, iters, status, overshoot, max_iter, linf, candidates,
                 foolbox, clip, threads, progress):
        _native.net_deepfool(net.spec, flat, X, pert, iters, status, overshoot, max_iter, linf,
                             candidates, foolbox, clip, threads, progress)


class CudaEngine:
    """The CUDA engine (falsestruct_fast._cuda): every operation on the GPU. Its methods take
    CuPy arrays (the public functions move host data there, see
    :func:`falsestruct_fast.network.engine_arrays`) and queue the kernels on CuPy's current
    stream. Training runs in chunks of epochs of about CHUNK_SECONDS each, so progress is
    reported and Ctrl-C (KeyboardInterrupt) stops it between chunks; the chunks give bitwise
    the result of one launch. ``threads`` is ignored (the GPU decides)."""

    name = "cuda"
    # Seconds of GPU work per training launch after the first (the Ctrl-C latency).
    CHUNK_SECONDS = 0.3

    def require(self):
        """The _cuda module; RuntimeError when it was not built or no GPU is visible."""
        if _cuda is None:
            raise RuntimeError("engine: 'cuda' is not available (built without a CUDA compiler)")
        if _cuda.device_count() == 0:
            raise RuntimeError("no CUDA device is available (engine='cuda')")
        device_arrays.cupy()
        return _cuda

    def forward(self, net, flat, X, out, threads):
        self.require().net_forward(net.spec, flat, X, out, device_arrays.stream_handle())

    def loss_and_grad(self, net, flat, X, Y, loss_out, grad_out, input_grad_out, threads):
        self.require().net_loss_and_grad(net.spec, _LOSS_KIND[net.loss], flat, X, Y, loss_out,
                                         grad_out, input_grad_out, device_arrays.stream_handle())

    def input_grads(self, net, flat, X, out, threads):
        self.require().net_logit_input_grads(net.spec, flat, X, out, device_arrays.stream_handle())

    def train(self, net, shuffle, adam, X, Y, flat, m, v, seeds, epochs, batch_size, step0,
              record_every, loss_hist, acc_hist, threads, progress, progress_seconds):
        """As the other engines' train; loss_hist and acc_hist may be NumPy (filled at the end)
        or GPU arrays, seeds NumPy or GPU."""
        cuda, cp = self.require(), device_arrays.cupy()
        stream = device_arrays.stream_handle()
        seeds_d = device_arrays.to_device(np.ascontiguousarray(seeds) if isinstance(seeds, np.ndarray) else seeds)
        hist = [h if device_arrays.is_device_array(h) else cp.full(h.shape, np.nan) for h in (loss_hist, acc_hist)]
        S = flat.shape[0]

        def run(begin, end):
            cuda.net_train_epochs(net.spec, _LOSS_KIND[net.loss], shuffle, adam, X, Y, flat, m, v,
                                  seeds_d, epochs, batch_size, step0, record_every, hist[0], hist[1],
                                  begin, end, stream)

        for_epoch_chunks(epochs, run, self.CHUNK_SECONDS, progress, progress_seconds, S)
        for host, dev in zip((loss_hist, acc_hist), hist):
            if host is not dev:
                host[...] = cp.asnumpy(dev)

    def deepfool(self, net, flat, X, pert, iters, status, overshoot, max_iter, linf, candidates,
                 foolbox, clip, threads, progress):
        self.require().net_deepfool(net.spec, flat, X, pert, iters, status, overshoot, max_iter,
                                    linf, candidates, foolbox, clip, device_arrays.stream_handle())
        if progress is not None:
            points = flat.shape[0] * X.shape[-2]
            progress(points, points)

    def flipping_scale(self, net, flat, X, directions, rtol, max_doublings, threads):
        """The baselines' search, one GPU thread per point, for the networks the per-point
        kernels hold: (perturbation (S, N, D), status, evaluations (S, N) int32) as NumPy
        arrays; None for other networks (the generic search then runs over forward)."""
        cuda, cp = self.require(), device_arrays.cupy()
        S, N = directions.shape[:2]
        flat_d, X_d = cp.asarray(flat), cp.asarray(X)
        dirs = cp.ascontiguousarray(cp.asarray(directions), dtype=np.float64)
        r = cp.empty(directions.shape, dtype=flat.dtype)
        status = cp.empty((S, N), dtype=np.int32)
        evals = cp.empty((S, N), dtype=np.int32)
        if not cuda.net_flipping_scale(net.spec, flat_d, X_d, dirs, float(rtol), int(max_doublings), r,
                                       status, evals, device_arrays.stream_handle()):
            return None
        return cp.asnumpy(r), cp.asnumpy(status), cp.asnumpy(evals)


def for_epoch_chunks(epochs: int, run, chunk_seconds: float, progress=None,
                     progress_seconds: float = 2.0, networks: int = 1) -> None:
    """run(begin, end) over epochs [0, epochs) in chunks: one epoch first, then as many as take
    about chunk_seconds (measured on the previous chunk, at most 4 times more each time).
    progress(done, total) in network-epochs every progress_seconds and at the end. A
    KeyboardInterrupt (Ctrl-C) arrives between chunks."""
    begin, chunk = 0, 1
    last_report = time.perf_counter()
    while begin < epochs:
        end = min(epochs, begin + chunk)
        start = time.perf_counter()
        run(begin, end)
        now = time.perf_counter()
        per_epoch = max((now - start) / (end - begin), 1e-9)
        chunk = max(1, min(4 * chunk, int(chunk_seconds / per_epoch)))
        begin = end
        if progress is not None and now - last_report >= progress_seconds and begin < epochs:
            progress(begin * networks, epochs * networks)
            last_report = now
    if progress is not None:
        progress(epochs * networks, epochs * networks)


class NumbaEngine:
    """The Numba engine (falsestruct_fast.numba_kernels): prange over networks and tiles of
    rows. Numba is imported on first use, not with the package. Long calls run in chunks of
    work from Python, so progress is reported and Ctrl-C (KeyboardInterrupt) stops them
    between chunks; `threads` sets Numba's thread count for the call."""

    name = "numba"
    # Work per chunk of a long call: about this many seconds (the Ctrl-C latency).
    CHUNK_SECONDS = 0.25

    @property
    def kernels(self):
        """falsestruct_fast.numba_kernels.parallel (imported, and Numba with it, on first use)."""
        from .numba_kernels import parallel
        return parallel

    def _threads(self, threads: int):
        import numba
        return min(threads, numba.config.NUMBA_NUM_THREADS) if threads else numba.config.NUMBA_NUM_THREADS

    def _run(self, threads, n_units, body, progress=None, progress_seconds=0.5, unit_scale=1,
             first_chunk=None, parallel=None):
        """body(begin, end) over units [0, n_units) in chunks of about CHUNK_SECONDS each, with
        Numba's thread count set to `threads` (restored afterwards), and to at most `parallel`
        (default n_units), the work items a chunk can run side by side: idle OpenMP threads
        spin, taking a core from the working ones. progress(done, total) in units times
        unit_scale every progress_seconds and at the end."""
        import numba
        previous = numba.get_num_threads()
        n_threads = max(1, min(self._threads(threads), parallel or n_units))
        numba.set_num_threads(n_threads)
        try:
            begin = 0
            chunk = first_chunk or n_threads
            last_report = time.perf_counter()
            while begin < n_units:
                end = min(n_units, begin + chunk)
                start = time.perf_counter()
                body(begin, end)
                now = time.perf_counter()
                begin = end
                # grow the chunk while it takes well under CHUNK_SECONDS (not past it)
                if now - start < self.CHUNK_SECONDS / 2:
                    chunk *= 2
                if progress is not None and now - last_report >= progress_seconds and begin < n_units:
                    progress(begin * unit_scale, n_units * unit_scale)
                    last_report = now
            if progress is not None:
                progress(n_units * unit_scale, n_units * unit_scale)
        finally:
            numba.set_num_threads(previous)

    @staticmethod
    def _spec(net):
        return np.asarray(net.spec, dtype=np.int64)

    @staticmethod
    def _per_network(a):
        """(1, N, D) for shared rows (N, D); (S, N, D) as is."""
        return a[None] if a.ndim == 2 else a

    def forward(self, net, flat, X, out, threads):
        flush = _native.flush_denormals()
        k, spec, X3 = self.kernels, self._spec(net), self._per_network(X)
        N = X3.shape[1]
        tile = k.forward_tile_rows(spec, N)
        n_units = flat.shape[0] * (-(-N // tile))
        self._run(threads, n_units, lambda b, e: k.forward_networks(spec, flat, X3, out, tile, b, e, flush))

    def loss_and_grad(self, net, flat, X, Y, loss_out, grad_out, input_grad_out, threads):
        flush = _native.flush_denormals()
        k, spec = self.kernels, self._spec(net)
        want = input_grad_out is not None
        dX = input_grad_out if want else np.empty((flat.shape[0], 0, 0), dtype=flat.dtype)
        self._run(threads, 1, lambda b, e: k.loss_and_grad_networks(
            spec, _LOSS_KIND[net.loss], flat, self._per_network(X), self._per_network(Y), loss_out,
            grad_out, dX, want, flush), parallel=flat.shape[0])

    def input_grads(self, net, flat, X, out, threads):
        flush = _native.flush_denormals()
        k, spec, X3 = self.kernels, self._spec(net), self._per_network(X)
        N = X3.shape[1]
        tile = k.forward_tile_rows(spec, N)
        n_units = flat.shape[0] * (-(-N // tile))
        self._run(threads, n_units,
                  lambda b, e: k.logit_input_grads_networks(spec, flat, X3, out, tile, b, e, flush))

    def train(self, net, shuffle, adam, X, Y, flat, m, v, seeds, epochs, batch_size, step0,
              record_every, loss_hist, acc_hist, threads, progress, progress_seconds):
        from .numba_kernels import train_networks
        flush = _native.flush_denormals()
        spec, X3, Y3 = self._spec(net), self._per_network(X), self._per_network(Y)
        lr, beta1, beta2, eps = adam
        kind = _LOSS_KIND[net.loss]
        # units are epochs of all networks; progress counts network-epochs as natively
        self._run(threads, epochs, lambda b, e: train_networks(
            spec, kind, shuffle, lr, beta1, beta2, eps, X3, Y3, flat, m, v, seeds, batch_size, step0,
            b, e, epochs, record_every, loss_hist, acc_hist, flush),
            progress, progress_seconds, unit_scale=flat.shape[0], first_chunk=1,
            parallel=flat.shape[0])

    def deepfool(self, net, flat, X, pert, iters, status, overshoot, max_iter, linf, candidates,
                 foolbox, clip, threads, progress):
        flush = _native.flush_denormals()
        k, spec, X3 = self.kernels, self._spec(net), self._per_network(X)
        N = X3.shape[1]
        tile = k.deepfool_tile_rows(spec, N)
        n_tiles = -(-N // tile)
        lo, hi = clip if clip is not None else (0.0, 1.0)
        points = flat.shape[0] * N
        # progress in points, as natively (a unit is a tile of points)
        report = None if progress is None else (lambda done, total: progress(done * points // total, points))
        self._run(threads, flat.shape[0] * n_tiles, lambda b, e: k.deepfool_networks(
            spec, flat, X3, float(overshoot), max_iter, bool(linf), candidates, bool(foolbox),
            clip is not None, float(lo), float(hi), pert, iters, status, tile, b, e, flush), report, 0.5)

    def flipping_scale(self, net, flat, X, directions, rtol, max_doublings, threads):
        """The baselines' search (see attacks.baselines.smallest_flipping_scale) per point in
        parallel: returns (perturbation (S, N, D), status, evaluations (S, N) int32)."""
        flush = _native.flush_denormals()
        k, spec, X3 = self.kernels, self._spec(net), self._per_network(X)
        S, N = directions.shape[:2]
        r = np.empty(directions.shape, dtype=flat.dtype)
        status = np.empty((S, N), dtype=np.int32)
        evals = np.empty((S, N), dtype=np.int32)
        dirs = np.ascontiguousarray(directions, dtype=np.float64)
        self._run(threads, S * N, lambda b, e: k.flipping_scale_networks(
            spec, flat, X3, dirs, float(rtol), int(max_doublings), r, status, evals, b, e, flush))
        return r, status, evals


# The registry: engine name -> engine. A new engine is one class and one entry here.
ENGINES = {"native": NativeEngine(), "numba": NumbaEngine(), "cuda": CudaEngine()}


def get(engine) -> object:
    """The engine called `engine` ("native", "numba" or "cuda"); ValueError naming `engine`
    for any other value."""
    V.option(engine, "engine", tuple(ENGINES))
    return ENGINES[engine]
