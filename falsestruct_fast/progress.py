"""A dependency-free progress line for long native runs (network-epochs done, rate, ETA)."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    """Callable ``(done, total)`` that redraws one line on stderr.

    The native engine calls it at most every `progress_seconds` (default 2 s) while it works,
    so short runs print nothing, and once more at the end.
    """

    def __init__(self, label: str = "train", unit: str = "net-epochs", stream=None, width: int = 30):
        self.label, self.unit, self.width = label, unit, width
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.perf_counter()
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.perf_counter() - self.start
        finished = done >= total
        if finished and not self.drawn:
            return  # the run ended before the first report: stay silent
        frac = done / total if total else 1.0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else float("inf")
        filled = int(round(frac * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        eta_text = "done" if finished else (f"ETA {eta:6.0f}s" if eta != float("inf") else "ETA    ?")
        self.stream.write(f"\r{self.label} [{bar}] {frac:6.1%} {rate:10.0f} {self.unit}/s {eta_text}")
        if finished:
            self.stream.write("\n")
        self.stream.flush()
        self.drawn = True


def progress_callback(progress, label: str, unit: str):
    """The native engine's progress callback for a public `progress` argument: True gives a
    ProgressBar, a callable is used as is, False/None gives None; anything else is a TypeError."""
    if progress is True:
        return ProgressBar(label, unit)
    if callable(progress):
        return progress
    if progress in (False, None):
        return None
    raise TypeError(f"progress: expected bool or a callable, got {type(progress).__name__}")
