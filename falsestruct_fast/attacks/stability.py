"""Per-network stability summary: how far the points of a set are from a label change."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..network import Network
from .deepfool import deepfool
from .result import AttackResult, AttackStatus


@dataclass
class StabilitySummary:
    """DeepFool radii of a point set, summarised per network.

    A point that DeepFool cannot flip (MAX_ITER, ZERO_GRADIENT) counts as radius +inf: the
    network is at least that stable there. A network with any NON_FINITE point (a diverged
    seed) gets NaN summaries, so it is flagged rather than ranked.

    Attributes (all (S,) arrays, float64 unless noted)
    -----------
    median_radius, min_radius : DeepFool perturbation norms
    median_relative : median of ||r|| / ||x||
    flipped_fraction : share of points whose label DeepFool changed
    non_finite : (S,) bool, the network produced NaN/inf
    result : the full :class:`AttackResult`
    """

    median_radius: np.ndarray
    min_radius: np.ndarray
    median_relative: np.ndarray
    flipped_fraction: np.ndarray
    non_finite: np.ndarray
    result: AttackResult

    @classmethod
    def from_result(cls, result: AttackResult) -> "StabilitySummary":
        flipped = result.flipped
        radius = np.where(flipped, result.norm, np.inf)
        relative = np.where(flipped, result.relative_norm, np.inf)
        bad = (result.status == AttackStatus.NON_FINITE).any(axis=1)
        median = np.median(radius, axis=1)
        low = radius.min(axis=1)
        median_rel = np.median(relative, axis=1)
        for a in (median, low, median_rel):
            a[bad] = np.nan
        return cls(median, low, median_rel, flipped.mean(axis=1), bad, result)


def stability(net: Network, params, X, **deepfool_options) -> StabilitySummary:
    """DeepFool on the point set X for every network, summarised per network.

    X : (N, *input_shape) or (S, N, *input_shape); `deepfool_options` go to :func:`deepfool`
    (overshoot, max_iter, norm, candidates, clip, variant, threads, progress, engine).
    """
    return StabilitySummary.from_result(deepfool(net, params, X, **deepfool_options))
