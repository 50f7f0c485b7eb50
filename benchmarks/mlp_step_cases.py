"""The Experiment I training step as a benchmark case, for falsestruct_fast and its peers.

One "network-step" = forward + backward + Adam on a batch of 50 for a 2 -> 104 -> 1 ReLU MLP
with mean sigmoid cross-entropy. Every runner below performs `n_steps` steps for each of S
networks; time / (S * n_steps) is the time per network-step.
"""
from __future__ import annotations

import numpy as np

N_SAMPLES, BATCH = 1000, 50
STEPS_PER_EPOCH = N_SAMPLES // BATCH


def data(dtype: str):
    """A fixed, learnable Experiment-I-shaped data set: X (1000, 2), y (1000,)."""
    rng = np.random.default_rng(0)
    X = rng.random((N_SAMPLES, 2)).astype(dtype)
    y = (X[:, 0] + 0.3 * X[:, 1] > 0.6).astype(dtype)
    return X, y


def falsestruct_runner(S: int, n_steps: int, dtype: str, threads: int, engine: str = "native"):
    """Returns run() training S networks for n_steps steps (whole epochs, no shuffling) on
    `engine` ("native" or "numba")."""
    import falsestruct_fast as fs

    X, y = data(dtype)
    net = fs.MLP([2, 104, 1])
    state = {"params": fs.init(net, seeds=range(S), dtype=dtype), "opt": None}
    epochs = max(1, n_steps // STEPS_PER_EPOCH)

    def run():
        fit = fs.train(net, state["params"], X, y, epochs=epochs, batch_size=BATCH, shuffle="none",
                       threads=threads, progress=False, record_every=10**9, opt_state=state["opt"],
                       engine=engine)
        state["params"], state["opt"] = fit.params, fit.opt_state

    run.steps = epochs * STEPS_PER_EPOCH
    return run
