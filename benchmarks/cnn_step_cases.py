"""The Experiment II training step and forward pass as benchmark cases (falsestruct_fast and peers).

One "network-step" = forward + backward + Adam on a batch of 60 32x32x1 images for the paper's
CNN (Conv 24@5x5 ReLU, MaxPool, Conv 48@5x5 ReLU, MaxPool, Dense 10, Dense 1), mean sigmoid
cross-entropy. Runners perform `n_steps` steps for each of S networks.
"""
from __future__ import annotations

import numpy as np

BATCH = 60


def data(dtype: str, n: int = BATCH):
    """n random 32x32x1 images (NHWC) with 0/1 labels."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 32, 32, 1)).astype(dtype)
    y = (np.arange(n) % 2).astype(dtype)
    return X, y


def falsestruct_train(S: int, n_steps: int, dtype: str, threads: int, engine: str = "native"):
    import falsestruct_fast as fs

    X, y = data(dtype)
    net = fs.paper_cnn()
    state = {"params": fs.init(net, seeds=range(S), dtype=dtype), "opt": None}

    def run():
        fit = fs.train(net, state["params"], X, y, epochs=n_steps, batch_size=BATCH, shuffle="none",
                       threads=threads, progress=False, record_every=10**9, opt_state=state["opt"],
                       engine=engine)
        state["params"], state["opt"] = fit.params, fit.opt_state

    run.steps = n_steps
    return run


def falsestruct_forward(S: int, n_images: int, dtype: str, threads: int, engine: str = "native"):
    import falsestruct_fast as fs

    X, _ = data(dtype, n_images)
    net = fs.paper_cnn()
    params = fs.init(net, seeds=range(S), dtype=dtype)
    return lambda: fs.forward(net, params, X, threads=threads, engine=engine)


def _torch_model(torch, dtype):
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 24, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(24, 48, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(3072, 10), nn.Linear(10, 1))
    return model.to(torch.float64 if dtype == "float64" else torch.float32)


def torch_train(S: int, n_steps: int, dtype: str, threads: int):
    """run() performs n_steps steps for each of S PyTorch eager models (a loop over them)."""
    import torch

    torch.set_num_threads(threads)
    X, y = data(dtype)
    xb = torch.from_numpy(X).permute(0, 3, 1, 2).contiguous()
    yb = torch.from_numpy(y)[:, None]
    models = [_torch_model(torch, dtype) for _ in range(S)]
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-8) for m in models]
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def run():
        torch.set_num_threads(threads)  # process-global: other sides may use another count
        for _ in range(n_steps):
            for model, opt in zip(models, opts):
                opt.zero_grad()
                loss = loss_fn(model(xb), yb)
                loss.backward()
                opt.step()

    run.steps = n_steps
    return run


def torch_forward(n_images: int, dtype: str, threads: int):
    import torch

    torch.set_num_threads(threads)
    X, _ = data(dtype, n_images)
    xb = torch.from_numpy(X).permute(0, 3, 1, 2).contiguous()
    model = _torch_model(torch, dtype)

    def run():
        torch.set_num_threads(threads)
        with torch.no_grad():
            model(xb)

    return run


# ---- JAX peer ---------------------------------------------------------------------------------
# Same network and layouts as ours (NHWC images, HWIO conv kernels, Dense kernels (in, out),
# Flatten in (h, w, c) order), so the weights of fs.init load unchanged. Adam is the TF1 form
# that fs.train uses (lr_t = lr sqrt(1 - b2^t) / (1 - b1^t), eps added to sqrt(v)).
ADAM = (1e-3, 0.9, 0.999, 1e-8)   # lr, beta1, beta2, eps (fs.Adam's defaults)


def _jax(dtype: str):
    import jax

    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)   # process-global: the worker runs one dtype
    return jax


def jax_loss_fn(dtype: str):
    """loss(params, X, y): mean sigmoid cross-entropy of the paper's CNN, params as returned by
    fs.init for one network: [K1 (5,5,1,24), b1, K2 (5,5,24,48), b2, W3 (3072,10), b3, W4, b4]."""
    jax = _jax(dtype)
    import jax.numpy as jnp
    from jax import lax

    def conv_relu(x, k, b):
        z = lax.conv_general_dilated(x, k, window_strides=(1, 1), padding="SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jax.nn.relu(z + b)

    def max_pool(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "SAME")

    def loss(p, X, y):
        k1, b1, k2, b2, w3, b3, w4, b4 = p
        h = max_pool(conv_relu(X, k1, b1))
        h = max_pool(conv_relu(h, k2, b2))
        h = h.reshape(h.shape[0], -1)              # (h, w, c) order, as Keras' Flatten
        z = ((h @ w3 + b3) @ w4 + b4)[:, 0]
        return jnp.mean(jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))))

    return loss


def _jax_steps(dtype: str, n_steps: int, X, y, unroll: bool = True):
    """train(params, m, v, step) -> (params, m, v, step): n_steps TF1-Adam steps of one
    network on the batch (X, y), as one lax.scan.

    unroll=True (the default) unrolls the scan: XLA:CPU runs convolutions inside a while-loop
    body many times slower than the same convolutions outside one (jax-ml/jax#12868; here
    about 1.2-1.5 s instead of about 50 ms per float32 step), so a rolled scan would time that
    XLA limitation rather than JAX's convolutions. Use few steps per call when unrolling."""
    jax = _jax(dtype)
    import jax.numpy as jnp
    from jax import lax

    grad = jax.grad(jax_loss_fn(dtype))
    lr, b1, b2, eps = ADAM
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    jdt = jnp.dtype(dtype)

    def body(carry, _):
        p, m, v, k = carry
        g = grad(p, Xj, yj)
        t = (k + 1).astype(jdt)
        lr_t = lr * jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
        p = [pi - lr_t * mi / (jnp.sqrt(vi) + eps) for pi, mi, vi in zip(p, m, v)]
        return (p, m, v, k + 1), None

    def train(p, m, v, k):
        if unroll and n_steps == 1:
            # a fully unrolled scan of length 1 is lowered to a while loop all the same
            # (jax-ml/jax#25330), which would bring back the slow convolutions
            return body((p, m, v, k), None)[0]
        (p, m, v, k), _ = lax.scan(body, (p, m, v, k), None, length=n_steps, unroll=unroll)
        return p, m, v, k

    return train


def jax_train(S: int, n_steps: int, dtype: str, unroll: bool = True, over: str = "loop"):
    """run() performs n_steps steps for each of S networks: jit + lax.scan over the steps
    (unrolled by default, see _jax_steps). For S > 1, over="vmap" vmaps that over the networks
    (one call, the batch shared); over="loop" calls the one-network function once per network
    (dispatched together, then waited for). Compiled ahead of time here, so the first run()
    executes without compiling. Threads: set by the process (XLA_FLAGS, taskset)."""
    import falsestruct_fast as fs

    jax = _jax(dtype)
    import jax.numpy as jnp

    if over not in ("vmap", "loop"):
        raise ValueError(f"over must be 'vmap' or 'loop', got {over!r}")
    X, y = data(dtype)
    train = _jax_steps(dtype, n_steps, X, y, unroll)
    stacked = fs.init(fs.paper_cnn(), seeds=range(S), dtype=dtype)
    vmapped = S > 1 and over == "vmap"

    def start(params):
        zeros = [jnp.zeros_like(a) for a in params]
        return (params, zeros, zeros, jnp.asarray(0, dtype=jnp.int32))

    if vmapped:
        states = [start([jnp.asarray(a) for a in stacked])]
        fn = jax.vmap(train, in_axes=(0, 0, 0, None), out_axes=(0, 0, 0, None))
    else:
        states = [start([jnp.asarray(a[s]) for a in stacked]) for s in range(S)]
        fn = train
    compiled = jax.jit(fn).lower(*states[0]).compile()

    def run():
        nonlocal states
        states = jax.block_until_ready([compiled(*st) for st in states])

    run.steps = n_steps
    return run


def jax_check(dtype: str) -> dict:
    """The JAX peer against falsestruct_fast on the same weights (seed 0) and batch: relative
    difference of the loss, of the gradients (max over arrays of max|diff| / max|ours|), and of
    the parameters after one Adam step (max|diff| / lr)."""
    import falsestruct_fast as fs

    jax = _jax(dtype)
    import jax.numpy as jnp

    X, y = data(dtype)
    net = fs.paper_cnn()
    params = fs.init(net, seeds=[0], dtype=dtype)
    loss, grads = fs.loss_and_grad(net, params, X, y)
    p = [jnp.asarray(a[0]) for a in params]
    loss_j, grads_j = jax.jit(jax.value_and_grad(jax_loss_fn(dtype)))(p, jnp.asarray(X), jnp.asarray(y))
    grad_diff = max(float(np.max(np.abs(np.asarray(gj) - g[0])) / np.max(np.abs(g[0])))
                    for gj, g in zip(grads_j, grads))
    fit = fs.train(net, params, X, y, epochs=1, batch_size=BATCH, shuffle="none", progress=False)
    zeros = [jnp.zeros_like(a) for a in p]
    stepped = jax.jit(_jax_steps(dtype, 1, X, y))(p, zeros, zeros, jnp.asarray(0, dtype=jnp.int32))[0]
    step_diff = max(float(np.max(np.abs(np.asarray(a) - b[0]))) for a, b in zip(stepped, fit.params))
    return {"loss": float(loss[0]), "loss_jax": float(loss_j),
            "loss_rel_diff": abs(float(loss_j) - float(loss[0])) / abs(float(loss[0])),
            "grad_rel_diff": grad_diff, "step_diff_over_lr": step_diff / ADAM[0]}
