"""Peer implementations of the "Experiment I training step" for benchmarking.

The step being timed, identical for every peer:

* MLP 2 -> 104 (ReLU) -> 1 (linear logit), "Keras layout" ``y = x @ W + b``
  with parameters ``W0 (2, 104), b0 (104,), W1 (104, 1), b1 (1,)``.
* A batch of 50 consecutive rows: step ``k`` uses rows
  ``[50 * (k % (N // 50)), 50 * (k % (N // 50)) + 50)`` -- no shuffling.
* Loss: mean sigmoid cross-entropy with logits over the batch.
* One Adam step, lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-8.

Every builder creates its initial state once (Glorot-uniform weights drawn
with ``numpy.random.default_rng(network_index)``, zero biases) and returns a
zero-argument callable ``run()`` that performs ``n_steps`` further training
steps for all ``S`` networks and blocks until the result is computed.  Calling
``run()`` again continues from where the previous call stopped, which is what
a repeating timer wants.  Each ``run`` also carries ``run.get_params()``,
returning a list (one per network) of dicts ``{"W0", "b0", "W1", "b1"}`` of
numpy arrays in Keras layout, so that peers can be compared numerically.

Adam flavours (they differ only in where eps enters):

* ``torch_eager`` uses ``torch.optim.Adam`` and ``torch_vmap`` reproduces
  it: ``theta -= lr * m_hat / (sqrt(v_hat) + eps)`` with bias-corrected
  ``m_hat``, ``v_hat``.
* ``jax_scan`` uses the TF1 form: ``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)``,
  ``theta -= lr_t * m / (sqrt(v) + eps)``.

Threading:

* PyTorch: the builders and every ``run()`` call ``torch.set_num_threads(threads)``
  (process-global), so runs with different thread counts can alternate in one process.
* JAX/XLA reads its thread configuration only when the backend starts, so it
  cannot be changed from here.  Use :func:`jax_env` to obtain an environment
  for a subprocess (or apply it to ``os.environ`` before the first JAX
  computation in this process).
* ``jax_scan(dtype="float64")`` calls
  ``jax.config.update("jax_enable_x64", True)``, which is process-global and
  stays on for every later JAX call in the process.

torch and jax are imported lazily, so this module imports without them.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Callable, Dict, List, Mapping

import numpy as np

# ---------------------------------------------------------------------------
# Problem constants
# ---------------------------------------------------------------------------
N_IN = 2
N_HIDDEN = 104
N_OUT = 1
BATCH = 50

LR = 1e-3
BETA1 = 0.9
BETA2 = 0.999
EPS = 1e-8

PARAM_NAMES = ("W0", "b0", "W1", "b1")
N_PARAMS = N_IN * N_HIDDEN + N_HIDDEN + N_HIDDEN * N_OUT + N_OUT  # 417

_DTYPES = ("float32", "float64")


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------
def available() -> Dict[str, bool]:
    """Report which peer frameworks are installed, without importing them.

    ``find_spec`` is used instead of an import so that calling this does not
    start JAX (whose thread settings are fixed at start-up).
    """
    def installed(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # e.g. sys.modules[name] is None
            return False

    return {"torch": installed("torch"), "jax": installed("jax")}


def _import_torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise ImportError(
            "PyTorch peer requested but 'torch' is not installed; "
            "install it (e.g. pip install torch) or skip the torch peers"
        ) from exc
    return torch


def _import_jax():
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise ImportError(
            "JAX peer requested but 'jax' is not installed; "
            "install it (e.g. pip install 'jax[cpu]') or skip the jax peers"
        ) from exc
    return jax, jnp


def _check_dtype(dtype: str) -> str:
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    return dtype


def initial_params(seed: int, dtype: str = "float64") -> Dict[str, np.ndarray]:
    """Glorot-uniform weights and zero biases for network ``seed``.

    W0 is drawn before W1 from ``numpy.random.default_rng(seed)``; the limit
    is ``sqrt(6 / (fan_in + fan_out))`` as in Keras' ``glorot_uniform``.
    """
    _check_dtype(dtype)
    rng = np.random.default_rng(seed)

    def glorot(fan_in: int, fan_out: int) -> np.ndarray:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=(fan_in, fan_out))

    return {
        "W0": glorot(N_IN, N_HIDDEN).astype(dtype),
        "b0": np.zeros(N_HIDDEN, dtype=dtype),
        "W1": glorot(N_HIDDEN, N_OUT).astype(dtype),
        "b1": np.zeros(N_OUT, dtype=dtype),
    }


def _batched_data(X, y, dtype: str):
    """Cut X, y into ``N // 50`` consecutive batches: (nb, 50, 2), (nb, 50).

    Trailing rows that do not fill a batch are dropped, as ``k % (N // 50)``
    never reaches them.
    """
    X = np.asarray(X, dtype=dtype)
    y = np.asarray(y, dtype=dtype).reshape(-1)
    if X.ndim != 2 or X.shape[1] != N_IN or X.shape[0] != y.shape[0]:
        raise ValueError(f"expected X (N, {N_IN}) and y (N,), got {X.shape}, {y.shape}")
    n_batches = X.shape[0] // BATCH
    if n_batches == 0:
        raise ValueError(f"need at least {BATCH} samples, got {X.shape[0]}")
    rows = n_batches * BATCH
    return (
        np.ascontiguousarray(X[:rows].reshape(n_batches, BATCH, N_IN)),
        np.ascontiguousarray(y[:rows].reshape(n_batches, BATCH)),
    )


# ---------------------------------------------------------------------------
# PyTorch peers
# ---------------------------------------------------------------------------
def _torch_dtype(torch, dtype: str):
    return {"float32": torch.float32, "float64": torch.float64}[_check_dtype(dtype)]


def torch_eager(S: int, n_steps: int, dtype: str, threads: int, X, y) -> Callable[[], None]:
    """S independent ``nn.Sequential`` models, each with ``torch.optim.Adam``.

    Plain eager PyTorch: a Python loop over steps and, inside, over the S
    networks -- the way a typical user would write it.
    """
    torch = _import_torch()
    torch.set_num_threads(threads)
    tdtype = _torch_dtype(torch, dtype)
    Xb_np, yb_np = _batched_data(X, y, dtype)
    Xb = torch.from_numpy(Xb_np)
    yb = torch.from_numpy(yb_np)
    n_batches = Xb.shape[0]
    loss_fn = torch.nn.BCEWithLogitsLoss()  # mean reduction

    models, optimizers = [], []
    for seed in range(S):
        init = initial_params(seed, dtype)
        model = torch.nn.Sequential(
            torch.nn.Linear(N_IN, N_HIDDEN),
            torch.nn.ReLU(),
            torch.nn.Linear(N_HIDDEN, N_OUT),
        ).to(tdtype)
        with torch.no_grad():
            # nn.Linear stores weight as (out, in): transpose the Keras layout.
            model[0].weight.copy_(torch.from_numpy(init["W0"].T))
            model[0].bias.copy_(torch.from_numpy(init["b0"]))
            model[2].weight.copy_(torch.from_numpy(init["W1"].T))
            model[2].bias.copy_(torch.from_numpy(init["b1"]))
        models.append(model)
        optimizers.append(
            torch.optim.Adam(model.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS)
        )

    step = 0  # global step counter, persists across run() calls

    def run() -> None:
        nonlocal step
        torch.set_num_threads(threads)  # process-global: other sides may use another count
        for _ in range(n_steps):
            b = step % n_batches
            xb, tb = Xb[b], yb[b]
            for model, opt in zip(models, optimizers):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xb).squeeze(-1), tb)
                loss.backward()
                opt.step()
            step += 1
        # Eager CPU ops are synchronous: nothing left to wait for.

    def get_params() -> List[Dict[str, np.ndarray]]:
        return [
            {
                "W0": m[0].weight.detach().numpy().T.copy(),
                "b0": m[0].bias.detach().numpy().copy(),
                "W1": m[2].weight.detach().numpy().T.copy(),
                "b1": m[2].bias.detach().numpy().copy(),
            }
            for m in models
        ]

    run.get_params = get_params
    return run


def torch_vmap(S: int, n_steps: int, dtype: str, threads: int, X, y) -> Callable[[], None]:
    """S networks stacked along a leading axis, trained with ``torch.func``.

    ``vmap(grad(loss))`` over the stacked parameters computes all S gradients
    in one batched call; the Adam update (same formula as
    ``torch.optim.Adam``) is written by hand and applied in place to the
    stacked tensors.  The loop over steps stays in eager Python.
    """
    torch = _import_torch()
    from torch.func import functional_call, grad, vmap

    torch.set_num_threads(threads)
    tdtype = _torch_dtype(torch, dtype)
    Xb_np, yb_np = _batched_data(X, y, dtype)
    Xb = torch.from_numpy(Xb_np)
    yb = torch.from_numpy(yb_np)
    n_batches = Xb.shape[0]

    # A parameter-less template module: functional_call supplies the weights.
    template = torch.nn.Sequential(
        torch.nn.Linear(N_IN, N_HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(N_HIDDEN, N_OUT),
    ).to(device="meta", dtype=tdtype)
    # Module parameter names -> Keras names, with nn.Linear's (out, in) layout.
    torch_names = {"0.weight": "W0", "0.bias": "b0", "2.weight": "W1", "2.bias": "b1"}

    inits = [initial_params(seed, dtype) for seed in range(S)]
    params = {}
    for tname, kname in torch_names.items():
        stacked = np.stack([p[kname].T if kname.startswith("W") else p[kname] for p in inits])
        params[tname] = torch.from_numpy(np.ascontiguousarray(stacked))
    m_state = {k: torch.zeros_like(v) for k, v in params.items()}
    v_state = {k: torch.zeros_like(v) for k, v in params.items()}

    def loss_single(p, xb, tb):
        logits = functional_call(template, p, (xb,)).squeeze(-1)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, tb)

    # Parameters are batched over networks; the data batch is shared.
    batched_grad = vmap(grad(loss_single), in_dims=(0, None, None))

    step = 0

    def run() -> None:
        nonlocal step
        torch.set_num_threads(threads)  # process-global: other sides may use another count
        for _ in range(n_steps):
            b = step % n_batches
            grads = batched_grad(params, Xb[b], yb[b])
            t = step + 1
            bias1 = 1.0 - BETA1**t
            bias2 = 1.0 - BETA2**t
            with torch.no_grad():
                for k, g in grads.items():
                    m, v = m_state[k], v_state[k]
                    m.mul_(BETA1).add_(g, alpha=1.0 - BETA1)
                    v.mul_(BETA2).addcmul_(g, g, value=1.0 - BETA2)
                    # torch.optim.Adam: lr * m_hat / (sqrt(v_hat) + eps)
                    denom = (v / bias2).sqrt_().add_(EPS)
                    params[k].addcdiv_(m, denom, value=-LR / bias1)
            step += 1

    def get_params() -> List[Dict[str, np.ndarray]]:
        out = []
        for i in range(S):
            d = {}
            for tname, kname in torch_names.items():
                a = params[tname][i].numpy()
                d[kname] = (a.T if kname.startswith("W") else a).copy()
            out.append(d)
        return out

    run.get_params = get_params
    return run


# ---------------------------------------------------------------------------
# JAX peer
# ---------------------------------------------------------------------------
def jax_env(threads: int, base: Mapping[str, str] | None = None) -> Dict[str, str]:
    """Environment for a (sub)process that should run JAX on ``threads`` threads.

    XLA fixes its CPU thread pools when the backend is created, so this must
    be applied before the first JAX computation -- normally by passing the
    result as ``env=`` to ``subprocess.run``.  For ``threads == 1`` it
    disables Eigen's multi-threading and asks for one intra-op thread via
    ``XLA_FLAGS``; it also pins the usual BLAS/OpenMP variables.  For other
    values XLA has no precise knob, so only the OpenMP/BLAS variables are
    set; restrict CPUs with ``taskset`` if a hard limit is needed.
    """
    env = dict(os.environ if base is None else base)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    if threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        existing = env.get("XLA_FLAGS", "").strip()
        env["XLA_FLAGS"] = f"{existing} {flags}".strip()
    return env


def jax_scan(S: int, n_steps: int, dtype: str, X, y, over: str = "vmap") -> Callable[[], None]:
    """``jit`` + ``lax.scan`` over steps, for S networks in one of two ways.

    One compiled call performs all ``n_steps`` steps of one network. For S > 1,
    ``over="vmap"`` vmaps the whole scan over the stacked network parameters
    (the data batch and the step counter are shared): one call for all S;
    ``over="loop"`` calls the one-network function once per network (all S
    calls dispatched, then waited for). Which is faster depends on S and the
    machine, so the comparison scripts time both and report the faster.
    Adam is the TF1 form.  The function is compiled and warmed up here
    (warm-up result discarded), so ``run()`` times steady-state execution only.

    ``dtype="float64"`` enables ``jax_enable_x64`` process-wide.  Threads
    cannot be set here: see :func:`jax_env`.
    """
    _check_dtype(dtype)
    jax, jnp = _import_jax()
    if dtype == "float64":
        # Process-global and irreversible in practice: every later JAX call
        # in this process sees x64 enabled.
        jax.config.update("jax_enable_x64", True)
    from jax import lax

    Xb_np, yb_np = _batched_data(X, y, dtype)
    Xb = jnp.asarray(Xb_np)
    yb = jnp.asarray(yb_np)
    n_batches = Xb.shape[0]
    jdtype = jnp.dtype(dtype)

    def loss_fn(p, xb, tb):
        W0, b0, W1, b1 = p
        h = jax.nn.relu(xb @ W0 + b0)
        z = (h @ W1 + b1)[:, 0]
        # Stable sigmoid cross-entropy: max(z, 0) - z*t + log(1 + exp(-|z|)).
        return jnp.mean(jnp.maximum(z, 0) - z * tb + jnp.log1p(jnp.exp(-jnp.abs(z))))

    grad_fn = jax.grad(loss_fn)

    def train_n(params, m, v, step):
        """``n_steps`` Adam steps of one network starting at global ``step``."""

        def body(carry, _):
            p, m, v, k = carry
            b = k % n_batches
            g = grad_fn(p, Xb[b], yb[b])
            t = (k + 1).astype(jdtype)
            lr_t = LR * jnp.sqrt(1 - BETA2**t) / (1 - BETA1**t)
            m = tuple(BETA1 * mi + (1 - BETA1) * gi for mi, gi in zip(m, g))
            v = tuple(BETA2 * vi + (1 - BETA2) * gi * gi for vi, gi in zip(v, g))
            p = tuple(pi - lr_t * mi / (jnp.sqrt(vi) + EPS) for pi, mi, vi in zip(p, m, v))
            return (p, m, v, k + 1), None

        (params, m, v, step), _ = lax.scan(body, (params, m, v, step), None, length=n_steps)
        return params, m, v, step

    if over not in ("vmap", "loop"):
        raise ValueError(f"over must be 'vmap' or 'loop', got {over!r}")
    vmapped = S > 1 and over == "vmap"
    if vmapped:
        # The counter is shared (None axis); vmap returns it batched, so take
        # one copy back out to keep the state shape stable between calls.
        vm = jax.vmap(train_n, in_axes=(0, 0, 0, None), out_axes=(0, 0, 0, None))
        compiled = jax.jit(vm)
    else:
        compiled = jax.jit(train_n)

    inits = [initial_params(seed, dtype) for seed in range(S)]

    def start(arrays):
        zeros = tuple(jnp.zeros_like(p) for p in arrays)
        return (arrays, zeros, zeros, jnp.asarray(0, dtype=jnp.int32))

    if vmapped:
        states = [start(tuple(jnp.asarray(np.stack([p[k] for p in inits])) for k in PARAM_NAMES))]
    else:
        states = [start(tuple(jnp.asarray(p[k]) for k in PARAM_NAMES)) for p in inits]

    # Warm-up: compile and execute once outside the timed region.  The
    # result is discarded so that, like the torch peers, the first run()
    # starts from the initial weights at step 0.
    jax.block_until_ready(compiled(*states[0]))

    def run() -> None:
        nonlocal states
        states = [compiled(*st) for st in states]   # dispatched asynchronously
        jax.block_until_ready(states)

    def get_params() -> List[Dict[str, np.ndarray]]:
        if vmapped:
            arrays = [np.asarray(a) for a in states[0][0]]
            return [{k: a[i] for k, a in zip(PARAM_NAMES, arrays)} for i in range(S)]
        return [dict(zip(PARAM_NAMES, (np.asarray(a) for a in st[0]))) for st in states]

    def steps_done() -> int:
        return int(states[0][3])

    run.get_params = get_params
    run.steps_done = steps_done
    return run
