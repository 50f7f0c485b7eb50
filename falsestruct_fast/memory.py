"""Workspace memory the CPU engine keeps between calls.

A call to the CPU engine (train, forward, loss_and_grad, deepfool, ...) needs a workspace per
worker thread: activations, gradients and padded conv inputs for one batch, e.g. about 54 MB
for the paper's CNN at batch 60 in float64. Faulting that memory in again on every call costs
more than a training step, so finished calls leave their workspaces in a process-wide cache
(at most 512 MiB) for the next call to reuse. These functions report and free that cache.
"""
from __future__ import annotations

from ._native_loader import _native


def scratch_bytes() -> int:
    """Bytes of CPU workspace currently kept between calls."""
    return int(_native.scratch_cache_bytes())


def release_scratch() -> int:
    """Frees the CPU workspace kept between calls and returns the number of bytes freed.

    Safe at any time: a call running in another thread keeps the buffers it holds, and the
    next call allocates afresh.
    """
    return int(_native.release_scratch_cache())
