"""Smoke-test and time the peer implementations in ``peers.py``.

Usage::

    python benchmarks/check_peers.py [--threads 1] [--repeats 5] [--n-steps 200]

Prints microseconds per network-step, ``time / (S * n_steps)``, for every
available peer at S = 1 and S = 16 in float32 (best of ``--repeats`` alternating rounds, after
one warm-up call each) and its ratio to the FLOP floor (benchmarks/flops.py), then
checks that torch_eager and jax_scan agree after 100 float64 steps from the
same initial weights.  The float64 check runs last because it switches JAX
into x64 mode for the rest of the process.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402


def make_data(n_samples: int = 1000, seed: int = 1234):
    """Two noisy Gaussian blobs: X (N, 2), y (N,) in {0, 1}."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n_samples)
    X = rng.normal(size=(n_samples, 2)) + np.where(y[:, None] == 1, 1.0, -1.0)
    return X, y.astype(np.float64)


def benchmark(args, X, y) -> None:
    import falsestruct_fast as fs
    import flops
    import timing

    avail = peers.available()
    builders = []
    if avail["torch"]:
        builders.append(("torch_eager", lambda S: peers.torch_eager(S, args.n_steps, "float32", args.threads, X, y)))
        builders.append(("torch_vmap", lambda S: peers.torch_vmap(S, args.n_steps, "float32", args.threads, X, y)))
    if avail["jax"]:
        builders.append(("jax_scan vmap", lambda S: peers.jax_scan(S, args.n_steps, "float32", X, y, over="vmap")))
        builders.append(("jax_scan loop", lambda S: peers.jax_scan(S, args.n_steps, "float32", X, y, over="loop")))

    net = fs.MLP([peers.N_IN, peers.N_HIDDEN, peers.N_OUT])
    rates = flops.fma_gflops()
    floor = flops.floor_us(net, peers.BATCH, "float32", rates)
    print(f"float32, n_steps={args.n_steps}, threads={args.threads}, 1 warm-up call, best of "
          f"{args.repeats} alternating rounds")
    print(f"FLOP floor: {floor:.2f} us/step on one core ({flops.step_flops(net, peers.BATCH)['total']} "
          f"FLOPs/step at the FMA probe's {rates['float32']:.0f} GFLOP/s)")
    for S in (1, 16):
        runs = {name: build(S) for name, build in builders}
        times = timing.alternate(runs, args.repeats, warmup=1)
        for name, t in times.items():
            us_per_step = min(t) * 1e6 / (S * args.n_steps)
            print(f"  {name:14s} S={S:3d}: {us_per_step:9.2f} us/network-step "
                  f"({us_per_step / floor:.0f}x the floor)")


def numpy_reference(X, y, n_steps: int, seed: int, adam_form: str):
    """Independent float64 NumPy version of the training step (one network).

    ``adam_form`` is "torch" (eps added to sqrt(v_hat)) or "tf1" (eps added
    to sqrt(v), bias correction folded into lr_t).
    """
    p = peers.initial_params(seed, "float64")
    m = {k: np.zeros_like(a) for k, a in p.items()}
    v = {k: np.zeros_like(a) for k, a in p.items()}
    Xb, yb = peers._batched_data(X, y, "float64")
    b1, b2, eps, lr = peers.BETA1, peers.BETA2, peers.EPS, peers.LR
    for k_step in range(n_steps):
        x, t = Xb[k_step % len(Xb)], yb[k_step % len(Xb)]
        a = x @ p["W0"] + p["b0"]
        h = np.maximum(a, 0.0)
        z = (h @ p["W1"] + p["b1"])[:, 0]
        dz = (1.0 / (1.0 + np.exp(-z)) - t) / len(t)  # d(mean BCE)/dz
        da = (dz[:, None] @ p["W1"].T) * (a > 0)
        g = {"W0": x.T @ da, "b0": da.sum(0), "W1": h.T @ dz[:, None], "b1": dz.sum(keepdims=True)}
        step = k_step + 1
        for k in p:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            if adam_form == "tf1":
                lr_t = lr * np.sqrt(1 - b2**step) / (1 - b1**step)
                p[k] = p[k] - lr_t * m[k] / (np.sqrt(v[k]) + eps)
            else:
                m_hat, v_hat = m[k] / (1 - b1**step), v[k] / (1 - b2**step)
                p[k] = p[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def relative_diffs(ref_nets, got_nets) -> np.ndarray:
    """Element-wise |ref - got| / max(|ref|, 1e-3) over all networks/params."""
    out = []
    for net_ref, net_got in zip(ref_nets, got_nets):
        for k in peers.PARAM_NAMES:
            scale = np.maximum(np.abs(net_ref[k]), 1e-3)  # avoid /0 on tiny biases
            out.append((np.abs(net_ref[k] - net_got[k]) / scale).ravel())
    return np.concatenate(out)


def check_agreement(X, y, n_steps: int = 100, S: int = 2) -> bool:
    """Float64 correctness after ``n_steps`` steps from identical weights.

    1. Every peer must match a NumPy reference of its own Adam form to
       round-off (1e-10 relative).
    2. torch_eager vs jax_scan: torch adds eps to sqrt(v_hat), TF1-style
       Adam adds it to sqrt(v), so they agree only approximately.  Typical
       (median) elements agree to ~1e-6 relative; the few weights whose
       gradients are of order eps (units that are nearly dead) can differ by
       up to ~1e-2, so the max gets a loose bound.
    """
    avail = peers.available()
    if not (avail["torch"] and avail["jax"]):
        print("agreement check skipped: needs both torch and jax")
        return True
    runs = {
        "torch_eager": (peers.torch_eager(S, n_steps, "float64", 1, X, y), "torch"),
        "torch_vmap": (peers.torch_vmap(S, n_steps, "float64", 1, X, y), "torch"),
        "jax_scan S=1": (peers.jax_scan(1, n_steps, "float64", X, y), "tf1"),
        f"jax_scan S={S}": (peers.jax_scan(S, n_steps, "float64", X, y), "tf1"),
        f"jax_scan S={S} loop": (peers.jax_scan(S, n_steps, "float64", X, y, over="loop"), "tf1"),
    }
    refs = {form: [numpy_reference(X, y, n_steps, seed, form) for seed in range(S)]
            for form in ("torch", "tf1")}
    ok = True
    print(f"float64 correctness after {n_steps} steps:")
    params = {}
    for name, (run, form) in runs.items():
        run()
        params[name] = run.get_params()
        worst = relative_diffs(refs[form], params[name]).max()
        passed = worst < 1e-10
        ok &= passed
        print(f"  {name:12s} vs numpy ({form:5s} Adam): max rel diff {worst:.1e} "
              f"{'OK' if passed else 'FAIL'}")

    rel = relative_diffs(params["torch_eager"], params[f"jax_scan S={S}"])
    median, worst = float(np.median(rel)), float(rel.max())
    passed = median < 1e-5 and worst < 5e-2
    ok &= passed
    print(f"  torch_eager vs jax_scan (eps placement differs): median rel diff "
          f"{median:.1e}, max {worst:.1e} {'OK' if passed else 'FAIL'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-steps", type=int, default=200)
    args = parser.parse_args()

    # Every side on the same CPUs; JAX is imported lazily by peers, so its thread settings
    # can still be applied to this process's environment here.
    import timing

    timing.pin_self(args.threads)
    os.environ.update(peers.jax_env(args.threads))

    print("available:", peers.available())
    X, y = make_data()
    benchmark(args, X, y)
    return 0 if check_agreement(X, y) else 1


if __name__ == "__main__":
    sys.exit(main())
