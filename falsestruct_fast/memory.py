"""Memory: the workspace the CPU engine keeps between calls, and up-front estimates.

A call to the CPU engine (train, forward, loss_and_grad, deepfool, ...) needs a workspace per
worker thread: activations, gradients and padded conv inputs for one batch, e.g. about 54 MB
for the paper's CNN at batch 60 in float64. Faulting that memory in again on every call costs
more than a training step, so finished calls leave their workspaces in a process-wide cache
(at most 512 MiB) for the next call to reuse. :func:`scratch_bytes` and
:func:`release_scratch` report and free that cache.

Before allocating anything large, the public functions estimate what the call will need
(:func:`estimate_train_bytes`, :func:`estimate_eval_bytes`) and refuse with a MemoryError
when it exceeds :func:`available_bytes`, instead of being killed half-way. The estimates are
upper bounds of the arrays and workspaces the call allocates, not of what the process
already holds.
"""
from __future__ import annotations

import os

import numpy as np

from . import _validate as V
from ._native_loader import _native

# Rows of one native forward tile (src/falsestruct/network.h: kForwardTile, kForwardScratch).
_FORWARD_TILE_ROWS = 512
_FORWARD_TILE_SCALARS = 1 << 21
# Loss/accuracy records train() keeps per network by default (about 100, plus the last epoch).
_DEFAULT_RECORDS = 101
# check_fits does not ask the system (about 0.1 ms) for calls needing less than this: small
# calls are frequent, and a machine without 64 MiB to spare fails anyway.
ALWAYS_FITS_BYTES = 64 << 20


def scratch_bytes() -> int:
    """Bytes of CPU workspace currently kept between calls."""
    return int(_native.scratch_cache_bytes())


def release_scratch() -> int:
    """Frees the CPU workspace kept between calls and returns the number of bytes freed.

    Safe at any time: a call running in another thread keeps the buffers it holds, and the
    next call allocates afresh.
    """
    return int(_native.release_scratch_cache())


def available_bytes() -> int:
    """Memory a new allocation can use now, in bytes.

    ``MemAvailable`` of /proc/meminfo (Linux: free memory plus reclaimable caches); where that
    is missing, the available physical pages from ``os.sysconf``, else the physical memory;
    where nothing is known, ``2**63 - 1`` (no refusal). Inside a container whose memory
    cgroup has a limit, at most that limit minus the cgroup's usage (less its inactive file
    cache), since the container is killed there whatever the machine has free.
    """
    have = _meminfo_available()
    if have is None:
        page = _sysconf("SC_PAGE_SIZE")
        have = next((page * pages for pages in map(_sysconf, ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"))
                     if page and pages), 2**63 - 1)
    headroom = _cgroup_headroom()
    return have if headroom is None else min(have, headroom)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# (limit, usage, statistics file, its inactive page-cache key): cgroup v2, then v1
_CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat",
     "inactive_file"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
     "/sys/fs/cgroup/memory/memory.stat", "total_inactive_file"),
)


def _cgroup_headroom() -> int | None:
    """Bytes the memory cgroup of this process may still use, or None (no limit or unknown)."""
    for limit_file, usage_file, stat_file, inactive_key in _CGROUP_FILES:
        try:
            with open(limit_file) as f:
                limit = f.read().strip()
            with open(usage_file) as f:
                usage = int(f.read())
        except (OSError, ValueError):
            continue
        if limit == "max" or not limit.isdigit() or int(limit) >= 2**62:  # v1 writes ~2**63
            return None
        inactive = 0
        try:
            with open(stat_file) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == inactive_key:
                        inactive = int(value)
        except (OSError, ValueError):
            pass
        return max(0, int(limit) - usage + inactive)
    return None


def _sysconf(name: str) -> int:
    try:
        return max(0, int(os.sysconf(name)))
    except (AttributeError, OSError, ValueError):
        return 0


def worker_threads(threads: int | None, n_networks: int) -> int:
    """Threads the CPU engine runs for `n_networks` networks: `threads` (default all cores),
    never more than there are networks."""
    n = (os.cpu_count() or 1) if threads is None else threads
    return max(1, min(n, n_networks))


def _train_bytes(net, S: int, N: int, batch_size: int, itemsize: int, threads: int | None,
                 data_bytes: int, n_records: int, param_arrays: int = 4) -> int:
    """Bytes of a training call; `param_arrays` (S, P) arrays (4: the caller's params, the
    trained copy, Adam's m and v; train() itself counts only those it has yet to allocate)."""
    P = net.n_params
    params = param_arrays * S * P * itemsize
    history = 2 * S * n_records * 8
    # NetWorkspace per worker: batch rows x scalars_per_row, plus the network's own theta, m,
    # v, gradient and a transposed kernel (each at most P), plus row indices and permutations.
    per_thread = ((_native.workspace_scalars_per_row(net.spec) * batch_size + 5 * P) * itemsize
                  + 4 * (batch_size + 2 * max(N, batch_size)))
    return params + data_bytes + history + worker_threads(threads, S) * per_thread


def estimate_train_bytes(net, n_networks: int, n_rows: int, batch_size: int, dtype,
                         threads: int | None = None) -> int:
    """Bytes :func:`~falsestruct_fast.train` needs for `n_networks` networks of `net` trained
    on `n_rows` shared data rows (X (n_rows, *input_shape)) with `batch_size`, in `dtype`
    ("float32" or "float64"), on `threads` CPU threads (default: all cores).

    Counts the (S, P) parameter array four times (the initial parameters, the trained copy,
    Adam's two moments), the data, the default loss/accuracy history and each worker thread's
    workspace. Per-network data (X of shape (S, N, ...)) needs S times the data on top.
    """
    from .network import check_net

    check_net(net)
    S = V.integer(n_networks, "n_networks", minimum=1)
    N = V.integer(n_rows, "n_rows", minimum=1)
    B = V.integer(batch_size, "batch_size", minimum=1)
    itemsize = V.float_dtype(dtype).itemsize
    threads = V.threads(threads) or None
    targets = net.n_logits if net.loss == "sigmoid" else 1
    data = N * (net.n_inputs + targets) * itemsize
    return _train_bytes(net, S, N, B, itemsize, threads, data, _DEFAULT_RECORDS)


def estimate_eval_bytes(net, n_networks: int, n_rows: int, out_scalars_per_row: int, dtype,
                        threads: int | None = None) -> int:
    """Bytes a forward-type call (forward, input_grad, deepfool, ...) allocates: its outputs,
    `out_scalars_per_row` values per network and row, plus one row tile of workspace per
    worker thread. The input data is not counted (the caller holds it)."""
    S, N = int(n_networks), int(n_rows)
    itemsize = np.dtype(dtype).itemsize
    row = _native.workspace_scalars_per_row(net.spec)
    tile_rows = min(_FORWARD_TILE_ROWS, N, max(1, _FORWARD_TILE_SCALARS // row))
    per_thread = (tile_rows * row + net.n_params) * itemsize
    return S * N * out_scalars_per_row * itemsize + worker_threads(threads, S * N) * per_thread


def estimate_loss_grad_bytes(net, n_networks: int, n_rows: int, chunk_rows: int, dtype,
                             wrt_input: bool = False, threads: int | None = None) -> int:
    """Bytes :func:`~falsestruct_fast.loss_and_grad` allocates: the (S, P) gradient (and its
    float64 sum when the rows are chunked), dX when `wrt_input`, and each worker thread's
    workspace for `chunk_rows` rows."""
    S, N, B = int(n_networks), int(n_rows), int(chunk_rows)
    itemsize = np.dtype(dtype).itemsize
    P = net.n_params
    grads = S * P * (itemsize + (8 if B < N else 0))
    d_x = S * N * net.n_inputs * itemsize if wrt_input else 0
    per_thread = (_native.workspace_scalars_per_row(net.spec) * B + 5 * P) * itemsize
    return grads + d_x + worker_threads(threads, S) * per_thread


def check_fits(needed: int, what: str, hint: str) -> None:
    """Raises MemoryError ("{what} need about ..., but only ... is available; {hint}") when
    `needed` bytes exceed :func:`available_bytes` (not asked below ALWAYS_FITS_BYTES)."""
    if needed < ALWAYS_FITS_BYTES:
        return
    have = available_bytes()
    if needed > have:
        raise MemoryError(f"{what} need about {_gb(needed)}, but only {_gb(have)} of memory is "
                          f"available; {hint}")


def _gb(n: int) -> str:
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9)):
        if n >= 0.1 * size:
            return f"{n / size:.3g} {unit}"
    return f"{n / 1e6:.3g} MB"
