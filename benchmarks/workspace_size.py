"""Workspace of one CPU worker for the paper's CNN at batch 60, as the README states it.

    python benchmarks/workspace_size.py

Prints the layout's scalars per batch row (`_native.workspace_scalars_per_row`) times the batch,
and what one single-threaded training call leaves in the workspace cache (`fs.scratch_bytes()`:
the worker's buffer as allocated, a little more than the per-row part: alignment of each part
and the parts that do not grow with the rows). The README's figure is the allocated one.
"""
import numpy as np

import falsestruct_fast as fs
from falsestruct_fast import _native

BATCH = 60

if __name__ == "__main__":
    net = fs.paper_cnn()
    per_row = _native.workspace_scalars_per_row(net.spec)
    for dtype in ("float32", "float64"):
        size = np.dtype(dtype).itemsize
        fs.release_scratch()
        params = fs.init(net, seeds=[0], dtype=dtype)
        X = np.zeros((BATCH, 32, 32, 1), dtype)
        y = (np.arange(BATCH) % 2).astype(dtype)
        fs.train(net, params, X, y, epochs=1, batch_size=BATCH, threads=1, progress=False)
        print(f"{dtype}: layout {per_row:,} scalars per row x {BATCH} rows = "
              f"{per_row * BATCH * size / 1e6:.1f} MB; allocated workspace of one worker "
              f"{fs.scratch_bytes() / 1e6:.1f} MB ({fs.scratch_bytes() / 2**20:.1f} MiB)")
