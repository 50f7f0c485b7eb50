"""The result of an attack on S networks x N points, shared by DeepFool and the baselines."""
from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np


class AttackStatus(enum.IntEnum):
    """Per-point outcome (``AttackResult.status``).

    NON_FINITE also covers a label change reached through overflow: a perturbation, an
    adversarial point x + perturbation or a norm that is not finite (e.g. at x = (1e300, 0.5)).
    """

    FLIPPED = 0        #: x + perturbation has a different label than x (all of it finite)
    MAX_ITER = 1       #: the iteration / search budget ran out without a label change
    ZERO_GRADIENT = 2  #: no direction to step in (all candidate gradients are zero)
    NON_FINITE = 3     #: NaN/inf in the point, logits, gradients, perturbation or its norm


def norms(v: np.ndarray, ord_, lead: int = 2) -> np.ndarray:
    """Norm of each point of v (the first `lead` axes index points), in float64.

    Finite points whose squares overflow (entries beyond ~1e154) are measured again scaled by
    their largest entry, so a finite vector has a finite 2-norm unless the norm itself exceeds
    the float64 range.
    """
    flat = v.reshape(v.shape[:lead] + (-1,)).astype(np.float64, copy=False)
    if ord_ != 2:
        return np.abs(flat).max(axis=-1) if flat.shape[-1] else np.zeros(flat.shape[:-1])
    with np.errstate(over="ignore"):
        out = np.sqrt(np.einsum("...i,...i->...", flat, flat))
    big = np.isinf(out)
    if big.any():
        rows = flat[big]
        scale = np.abs(rows).max(axis=-1)
        ok = np.isfinite(scale)  # rows holding inf keep norm inf
        unit = rows[ok] / scale[ok, None]
        with np.errstate(over="ignore"):
            rescaled = out[big]
            rescaled[ok] = scale[ok] * np.sqrt(np.einsum("...i,...i->...", unit, unit))
        out[big] = rescaled
    return out


@dataclass
class AttackResult:
    """Perturbations of N points for each of S networks.

    Attributes
    ----------
    perturbation : ndarray (S, N, *input_shape), the networks' dtype
        r such that x + r is the returned adversarial point. NaN where status is NON_FINITE.
        A point is FLIPPED only when r, x + r and ||r|| are all finite: a label change
        found by overflowing to inf (e.g. at x = (1e300, 0.5)) is NON_FINITE.
    norm : ndarray (S, N) float64
        ||r|| in the attack's norm (2 or inf); NaN where status is NON_FINITE.
    relative_norm : ndarray (S, N) float64
        ||r|| / ||x|| (same norm); inf where x = 0 and r != 0.
    iterations : ndarray (S, N) int32
        DeepFool steps taken; search evaluations for the baselines.
    status : ndarray (S, N) int32
        An :class:`AttackStatus` per point.
    norm_ord : 2 or inf
    method : str
    """

    perturbation: np.ndarray
    norm: np.ndarray
    relative_norm: np.ndarray
    iterations: np.ndarray
    status: np.ndarray
    norm_ord: float
    method: str

    @property
    def flipped(self) -> np.ndarray:
        """(S, N) bool: the perturbation changes the label (status FLIPPED)."""
        return self.status == AttackStatus.FLIPPED

    def status_counts(self) -> dict[str, int]:
        """Number of points per status name, e.g. ``{"FLIPPED": 990, "MAX_ITER": 10, ...}``."""
        return {s.name: int(np.count_nonzero(self.status == s)) for s in AttackStatus}

    def to_device(self) -> "AttackResult":
        """This result with its arrays as CuPy arrays on the current GPU (the attacks return
        it so with ``engine="cuda"`` when their inputs were on the GPU)."""
        from ..device_arrays import to_device
        return AttackResult(to_device(self.perturbation), to_device(self.norm),
                            to_device(self.relative_norm), to_device(self.iterations),
                            to_device(self.status), self.norm_ord, self.method)

    @classmethod
    def build(cls, X: np.ndarray, perturbation: np.ndarray, iterations: np.ndarray,
              status: np.ndarray, norm_ord, method: str) -> "AttackResult":
        """Fills in the norms; X (N, D) or (S, N, D) are the attacked points, flattened.

        Every attack and engine builds its result here, so this is where a label change
        reached through overflow is turned from FLIPPED into NON_FINITE (and its r into NaN).
        """
        S, N = status.shape
        nrm = norms(perturbation, norm_ord)
        r = perturbation.reshape(S, N, -1)
        with np.errstate(over="ignore", invalid="ignore"):
            usable = np.isfinite(nrm) & np.isfinite(X + r).all(axis=-1) & np.isfinite(r).all(axis=-1)
        overflowed = (status == AttackStatus.FLIPPED) & ~usable
        if overflowed.any():
            status = status.copy()
            status[overflowed] = AttackStatus.NON_FINITE
            perturbation[overflowed] = np.nan
        nrm[status == AttackStatus.NON_FINITE] = np.nan
        x_norm = norms(X, norm_ord, lead=X.ndim - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = nrm / np.broadcast_to(x_norm, (S, N))
        rel[(nrm == 0) & np.isfinite(nrm)] = 0.0
        return cls(perturbation, nrm, rel, iterations, status, norm_ord, method)
