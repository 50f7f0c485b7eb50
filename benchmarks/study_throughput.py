"""Seed-study throughput: seeds per second for psi1 and psi3 settings (reduced epochs) on 1 and
2 native threads and through Dask (a 2-worker LocalCluster, one thread each), with the scaling
efficiency against one thread. Every run writes a fresh store in a temporary folder.

    python benchmarks/study_throughput.py [--seeds 64] [--psi1-epochs 3000] [--psi3-epochs 100]
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import falsestruct_fast as fs
from falsestruct_fast.experiments import preset


def measure(setting, seeds, folder: Path, tag: str, **kwargs) -> float:
    store = folder / f"{setting.name}-{tag}.sqlite"
    start = time.perf_counter()
    report = fs.study.run(setting, seeds=seeds, store=store, progress=False, **kwargs)
    wall = time.perf_counter() - start
    assert report.written == seeds
    return seeds / wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=64)
    p.add_argument("--psi1-epochs", type=int, default=3000)
    p.add_argument("--psi3-epochs", type=int, default=100)
    p.add_argument("--no-dask", action="store_true")
    args = p.parse_args()
    settings = [preset("psi1", epochs=args.psi1_epochs), preset("psi3", epochs=args.psi3_epochs)]
    print(f"falsestruct_fast {fs.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.seeds} seeds per run, chunks of 16 (DeepFool radii on 231 points included)")
    client = cluster = None
    if not args.no_dask:
        from dask.distributed import Client, LocalCluster
        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        client.submit(fs.study.run_chunk, settings[0].replace(epochs=1).as_dict(), [0]).result()  # warm
        print(f"Dask LocalCluster start-up (2 workers, first task): {time.perf_counter() - t0:.1f} s, not counted")
    print(f"{'setting':<34} {'1 thread':>10} {'2 threads':>10} {'eff.':>6} {'dask 2x1':>10} {'eff.':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for s in settings:
            one = measure(s, args.seeds, folder, "t1", threads=1, chunk_size=16)
            two = measure(s, args.seeds, folder, "t2", threads=2, chunk_size=16)
            row = f"{s.name + ': ' + s.describe().split(', sampler')[0]:<34.34} {one:>10.2f} {two:>10.2f} {two / one / 2:>6.0%}"
            if not args.no_dask:
                dask = measure(s, args.seeds, folder, "dask", scheduler=client, threads=1, chunk_size=16)
                row += f" {dask:>10.2f} {dask / one / 2:>6.0%}"
            print(row)
    if client is not None:
        client.close()
        cluster.close()
    print("seeds/s (higher is better); efficiency = rate / (2 x the 1-thread rate)")


if __name__ == "__main__":
    main()
