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


def falsestruct_train(S: int, n_steps: int, dtype: str, threads: int):
    import falsestruct_fast as fs

    X, y = data(dtype)
    net = fs.paper_cnn()
    state = {"params": fs.init(net, seeds=range(S), dtype=dtype), "opt": None}

    def run():
        fit = fs.train(net, state["params"], X, y, epochs=n_steps, batch_size=BATCH, shuffle="none",
                       threads=threads, progress=False, record_every=10**9, opt_state=state["opt"])
        state["params"], state["opt"] = fit.params, fit.opt_state

    run.steps = n_steps
    return run


def falsestruct_forward(S: int, n_images: int, dtype: str, threads: int):
    import falsestruct_fast as fs

    X, _ = data(dtype, n_images)
    net = fs.paper_cnn()
    params = fs.init(net, seeds=range(S), dtype=dtype)
    return lambda: fs.forward(net, params, X, threads=threads)


def _torch_model(torch, dtype):
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 24, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(24, 48, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(3072, 10), nn.Linear(10, 1))
    return model.to(torch.float64 if dtype == "float64" else torch.float32)


def torch_train(n_steps: int, dtype: str, threads: int):
    import torch

    torch.set_num_threads(threads)
    X, y = data(dtype)
    xb = torch.from_numpy(X).permute(0, 3, 1, 2).contiguous()
    yb = torch.from_numpy(y)[:, None]
    model = _torch_model(torch, dtype)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def run():
        for _ in range(n_steps):
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
        with torch.no_grad():
            model(xb)

    return run
