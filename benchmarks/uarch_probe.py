"""What this core does with the operations the CPU kernels are made of, measured here.

    python benchmarks/uarch_probe.py [--json]

Compiles ``cpp/uarch_probe.cpp`` (g++ -O3 -march=native) once per machine, runs it pinned to
one CPU (best of 3 runs of the best of many short loops) and prints, with the machine named:

* the clock estimate (two 256-bit FMAs per cycle) and whether a 512-bit FMA issues as fast as
  a 256-bit one (full-width AVX-512 units) or at half the rate (split into two halves);
* whether a 512-bit max (ReLU) or add issued beside every FMA costs extra time: ~1.0x when the
  core has separate pipes for them (AMD Zen 4 / 5), ~2x when they share the two FMA ports
  (Intel cores while 512-bit instructions are in flight: port 1's vector unit is fused into
  port 0); the elementwise parts of a step (ReLU, bias, ReLU gradient, Adam) then cost as
  much as FMAs there;
* cycles per 512-bit square root and divide (Adam's update divides by sqrt(v) + eps);
* one PAUSE in cycles (the team barrier's spin loop pauses between polls);
* a store-to-load round trip in cycles when forwarded, and when the load spans several
  smaller stores (no forwarding: the penalty a phase pays when it reads, as a vector, what
  the phase before wrote element by element).

The figures explain where the same kernels spend different time on different x86 cores
(benchmarks/RESULTS.md keeps them per CPU model); nothing in the library reads them.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from flops import compiled_probe  # noqa: E402
from timing import machine, pinned  # noqa: E402


def probe(attempts: int = 3) -> dict:
    """The probe's figures, best of `attempts` runs: rates max, costs min."""
    exe = compiled_probe(HERE / "cpp" / "uarch_probe.cpp")
    best: dict = {}
    for _ in range(attempts):
        out = subprocess.run(pinned([str(exe)], 1), capture_output=True, text=True, check=True)
        for key, value in json.loads(out.stdout).items():
            higher_is_better = key.endswith("per_ns") or key == "est_ghz"
            if key not in best:
                best[key] = value
            else:
                best[key] = max(best[key], value) if higher_is_better else min(best[key], value)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = ap.parse_args()
    r = probe()
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"# micro-architecture probe, one core; {machine()}")
    print(f"clock estimate {r['est_ghz']:.2f} GHz (two 256-bit FMAs per cycle)")
    if "fma512_per_ns" in r:
        print(f"512-bit FMAs issue at {r['fma512_per_ns'] / r['fma256_per_ns']:.2f}x the rate of 256-bit ones "
              "(1.0: full-width units; 0.5: split into halves)")
        print(f"FMA + max pair: {r['fma512_max_pair']:.2f}x the time of the FMA alone; FMA + add pair: "
              f"{r['fma512_add_pair']:.2f}x (1.0: separate pipes; 2.0: shared ports)")
        print(f"512-bit sqrt: {r['sqrt512_cycles']:.1f} cycles, divide: {r['div512_cycles']:.1f} cycles "
              "(independent operations, reciprocal throughput)")
    else:
        print("no AVX-512 on this core: the 512-bit rows are skipped")
    print(f"PAUSE: {r['pause_ns']:.1f} ns = {r['pause_cycles']:.0f} cycles")
    print(f"store -> load round trip: {r['forward_ok_cycles']:.0f} cycles forwarded, "
          f"{r['forward_fail_cycles']:.0f} cycles when the load spans several smaller stores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
