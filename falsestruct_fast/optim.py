"""Optimisers: Adam in TensorFlow 1's form, and its state."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Adam:
    """Adam with TensorFlow 1 defaults and TF1's update form.

    ``m += (g - m)(1 - beta1)``, ``v += (g^2 - v)(1 - beta2)``,
    ``theta -= lr_t * m / (sqrt(v) + eps)`` with ``lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)``
    (t counts updates from 1; lr_t is computed in float64). Unlike PyTorch, eps is added to
    sqrt(v) before the bias correction is applied, so the two differ where sqrt(v) ~ eps.
    """

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        for name in ("lr", "beta1", "beta2", "eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise TypeError(f"Adam.{name}: must be a number, got {type(value).__name__} {value!r}")
            if not np.isfinite(value):
                raise ValueError(f"Adam.{name}: must be finite, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"Adam.lr: must be > 0, got {self.lr}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"Adam.{name}: must be in [0, 1), got {getattr(self, name)}")
        if self.eps <= 0:
            # eps = 0 turns any exactly-zero gradient (a dead ReLU unit) into 0/0 = NaN.
            raise ValueError(f"Adam.eps: must be > 0, got {self.eps}")

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (float(self.lr), float(self.beta1), float(self.beta2), float(self.eps))

    def step_size(self, t: int) -> float:
        """The folded step size lr_t of update number t (t >= 1)."""
        return self.lr * np.sqrt(1.0 - self.beta2**t) / (1.0 - self.beta1**t)


@dataclass
class AdamState:
    """Adam moments for S networks, flat like the parameters: m, v of shape (S, P).

    ``step`` is the number of updates already applied; pass the state back to
    :func:`falsestruct_fast.train` to continue a run exactly where it stopped.
    """

    m: np.ndarray
    v: np.ndarray
    step: int = 0

    @classmethod
    def zeros(cls, n_networks: int, n_params: int, dtype) -> "AdamState":
        shape = (n_networks, n_params)
        return cls(np.zeros(shape, dtype), np.zeros(shape, dtype), 0)
