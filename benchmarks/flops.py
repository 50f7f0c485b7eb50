"""FLOP counts of a training step and the FLOP floor: the time one core needs for a step's
matrix products at its measured FMA throughput.

    python benchmarks/flops.py          # the probe's GFLOP/s and the floors of both cases

* ``step_flops(net, batch)``: FLOPs of one network-step's matrix products (a multiply-add is 2):
  the forward pass, every weight gradient, and the input gradient of every layer but the first
  (training never needs the gradient with respect to the data). Element-wise work (bias, ReLU,
  pooling, loss, Adam) is left out, so the floor is a lower bound.
* ``deepfool_flops(net, iterations)``: a lower bound on DeepFool's matrix-product FLOPs for
  that many iterations in all (each: a forward pass and one logit's gradient with respect to
  the input; multiclass nets need more gradients) plus one forward pass per point.
* ``fma_gflops()``: compiles ``cpp/fma_probe.cpp`` (g++ -O3 -march=native, as the library) once
  per machine into a cache folder and runs it on one CPU: FLOP/s of independent FMA chains on
  vectors of one register (512-bit with AVX-512, else 256-bit), per dtype. No figure is stored; every script measures it where it runs.
* ``floor_us(net, batch, dtype, gflops)``: step_flops / that rate, in µs per network-step.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROBE_SOURCE = HERE / "cpp" / "fma_probe.cpp"


def _weighted_layers(net):
    """(multiply-adds per row, is_first) of each layer with a weight array, in order."""
    import falsestruct_fast as fs

    if isinstance(net, fs.MLP):
        widths = list(net.widths)
        return [(a * b, i == 0) for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))]
    out = []
    previous = tuple(net.input_shape)
    for layer, shape in zip(net.layers, net.layer_shapes()):
        if isinstance(layer, fs.Conv2D):       # 'same' padding: one kernel per output pixel
            H, W, cout = shape
            out.append((H * W * cout * layer.kernel_size ** 2 * previous[-1], not out))
        elif isinstance(layer, fs.Dense):
            out.append((previous[0] * layer.units, not out))
        previous = tuple(shape)
    return out


def step_flops(net, batch: int) -> dict:
    """FLOPs of one network-step's matrix products: forward, backward, total."""
    layers = _weighted_layers(net)
    forward = 2 * batch * sum(m for m, _ in layers)
    weight_grads = forward
    input_grads = 2 * batch * sum(m for m, first in layers if not first)
    return {"forward": forward, "backward": weight_grads + input_grads,
            "total": forward + weight_grads + input_grads}


def deepfool_flops(net, iterations: int, points: int) -> int:
    """Lower bound on the FLOPs of DeepFool runs taking `iterations` steps in all over `points`
    points: per step a forward pass and one input gradient through every layer, plus the
    forward pass that checks each point's final label."""
    per_row = 2 * sum(m for m, _ in _weighted_layers(net))
    return int(iterations) * 2 * per_row + int(points) * per_row


def compiled_probe(source_path: Path) -> Path:
    """A probe program of benchmarks/cpp compiled once per machine and source (g++ -O3
    -march=native, as the library's native build) into the temporary folder."""
    source = source_path.read_bytes()
    key = hashlib.sha256(source + b"-O3 -march=native -ffp-contract=fast").hexdigest()[:16]
    exe = Path(tempfile.gettempdir()) / f"falsestruct_{source_path.stem}_{key}"
    if not exe.exists():
        tmp = exe.with_suffix(".tmp")
        subprocess.run(["g++", "-O3", "-march=native", "-ffp-contract=fast", "-std=c++17",
                        "-o", str(tmp), str(source_path)], check=True)
        tmp.replace(exe)
    return exe


def fma_gflops(attempts: int = 5) -> dict:
    """{"float32": GFLOP/s, "float64": GFLOP/s} of one core, the best of `attempts` probe runs
    (each itself the best of 40 short runs) pinned to the first allowed CPU."""
    sys.path.insert(0, str(HERE))
    from timing import pinned

    exe = compiled_probe(PROBE_SOURCE)
    best = {"float32": 0.0, "float64": 0.0}
    for _ in range(attempts):
        out = subprocess.run(pinned([str(exe)], 1), capture_output=True, text=True, check=True)
        rates = json.loads(out.stdout)
        best = {k: max(best[k], rates[k]) for k in best}
    return best


def floor_us(net, batch: int, dtype: str, gflops: dict) -> float:
    """µs per network-step of the matrix products at the probe's rate for `dtype`."""
    return step_flops(net, batch)["total"] / (gflops[dtype] * 1e3)


def main() -> int:
    sys.path.insert(0, str(HERE))
    import falsestruct_fast as fs
    from timing import machine

    rates = fma_gflops()
    print(f"# {machine()}")
    print(f"FMA probe, one core: {rates['float32']:.1f} GFLOP/s float32, "
          f"{rates['float64']:.1f} GFLOP/s float64 (benchmarks/cpp/fma_probe.cpp)")
    for name, net, batch, unit, scale in (("Experiment I MLP 2-104-1", fs.MLP([2, 104, 1]), 50, "us", 1),
                                          ("paper CNN", fs.paper_cnn(), 60, "ms", 1e-3)):
        f = step_flops(net, batch)
        floors = {dt: floor_us(net, batch, dt, rates) * scale for dt in rates}
        print(f"{name}, batch {batch}: {f['total']:,} FLOPs per network-step "
              f"(forward {f['forward']:,}, backward {f['backward']:,}); floor "
              f"{floors['float32']:.3g} {unit} float32, {floors['float64']:.3g} {unit} float64")
    return 0


if __name__ == "__main__":
    sys.exit(main())
