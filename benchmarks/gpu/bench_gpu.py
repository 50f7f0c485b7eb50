"""GPU benchmarks of the CUDA engine (run by benchmarks/gpu/run_all.sh): Experiment I
training at S = 1000 (float32, float64; us per network-step and the projected time of
1000 seeds x the Psi3 protocol), the paper CNN's training step at S = 1, 8, 64, DeepFool
points/s on Experiment I networks, and forward images/s of the paper CNN. Prints a Markdown
table and writes it to $OUT/gpu_results.md when OUT is set. Exits 2 without a GPU."""
from __future__ import annotations

import os
import sys
import time

import numpy as np


def main() -> int:
    import falsestruct_fast as fs
    from falsestruct_fast import engines
    if engines._cuda is None or engines._cuda.device_count() == 0:
        print("bench_gpu.py: no CUDA GPU (or no CUDA build) here; nothing measured", file=sys.stderr)
        return 2
    import cupy as cp

    def timed(fn):
        fn()  # warm-up (allocations, first launch)
        cp.cuda.Device().synchronize()
        start = time.perf_counter()
        fn()
        cp.cuda.Device().synchronize()
        return time.perf_counter() - start

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import flops  # benchmarks/flops.py: the step's matrix-product FLOPs

    # The FLOP floor: the GPU's FMA peak from its SM count and clock (Hopper/Ampere data-centre
    # GPUs: 128 float32 and 64 float64 FMA lanes per SM), one FMA = 2 FLOPs.
    prop = cp.cuda.runtime.getDeviceProperties(0)
    clock_hz = prop["clockRate"] * 1e3
    peak = {"float32": prop["multiProcessorCount"] * 128 * 2 * clock_hz,
            "float64": prop["multiProcessorCount"] * 64 * 2 * clock_hz}

    def floor_ratio(net, batch, dtype, seconds_per_network_step):
        floor = flops.step_flops(net, batch)["total"] / peak[dtype]
        return f"{seconds_per_network_step / floor:.1f}x the FLOP floor ({peak[dtype] / 1e12:.0f} TFLOP/s {dtype})"

    rows = []
    psi3 = fs.experiments.preset("psi3")
    protocol_steps = 1000 * psi3.epochs * (psi3.r // psi3.batch_size)
    for dtype in ("float32", "float64"):
        epochs, S = 20, 1000
        setting = fs.experiments.preset("psi3", epochs=epochs, dtype=dtype)
        net = setting.network()
        params = fs.init(net, range(S), dtype=dtype).to_device()
        rng = np.random.default_rng(0)  # a training set per network, of Psi3's size
        X = rng.random((S, psi3.r, 2)).astype(dtype)
        y = (rng.random((S, psi3.r)) < 0.5).astype(dtype)
        Xd, yd = cp.asarray(X), cp.asarray(y)
        wall = timed(lambda: fs.train(net, params, Xd, yd, epochs=epochs, batch_size=psi3.batch_size,
                                      shuffle="batches", engine="cuda", progress=False))
        steps = S * epochs * (psi3.r // psi3.batch_size)
        us = wall / steps * 1e6
        rows.append((f"Exp I training S=1000 {dtype}", f"{us:.3f} us/network-step",
                     f"1000 seeds x Psi3: {us * protocol_steps / 1e6:.0f} s projected; "
                     + floor_ratio(net, psi3.batch_size, dtype, us * 1e-6)))
    cnn = fs.paper_cnn()
    rng = np.random.default_rng(1)
    images = rng.random((60, 32, 32, 1)).astype(np.float32)
    labels = (rng.random(60) < 0.5).astype(np.float32)
    for S in (1, 8, 64):
        params = fs.init(cnn, range(S)).to_device()
        Xd, yd = cp.asarray(images), cp.asarray(labels)
        epochs = 3
        wall = timed(lambda: fs.train(cnn, params, Xd, yd, epochs=epochs, batch_size=60, engine="cuda",
                                      progress=False))
        rows.append((f"paper CNN step S={S}", f"{wall / epochs * 1e3:.2f} ms per step",
                     f"{wall / epochs / S * 1e3:.3f} ms per network-step; "
                     + floor_ratio(cnn, 60, "float32", wall / epochs / S)))
    net = fs.MLP([2, 104, 1])
    S, N = 1000, 231
    params = fs.init(net, range(S)).to_device()
    pts = cp.asarray(rng.random((N, 2)).astype(np.float32))
    wall = timed(lambda: fs.deepfool(net, params, pts, engine="cuda"))
    rows.append(("DeepFool, Exp I MLP", f"{S * N / wall:.3g} points/s", f"S={S} x N={N}"))
    params = fs.init(cnn, range(8)).to_device()
    batch = cp.asarray(rng.random((1024, 32, 32, 1)).astype(np.float32))
    wall = timed(lambda: fs.forward(cnn, params, batch, engine="cuda"))
    rows.append(("forward, paper CNN", f"{8 * 1024 / wall:.3g} images/s", "S=8 x N=1024 (network-images)"))

    name = engines._cuda.device_name(0)
    lines = [f"GPU: {name}", "", "| case | result | note |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "gpu_results.md"), "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
