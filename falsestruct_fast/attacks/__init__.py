"""Adversarial perturbations: DeepFool (native, batched over networks and points), the slides'
random and fast-gradient baselines, and a per-network stability summary."""
from .baselines import fast_gradient_attack, random_attack, smallest_flipping_scale
from .deepfool import deepfool
from .result import AttackResult, AttackStatus
from .stability import StabilitySummary, stability

__all__ = ["deepfool", "random_attack", "fast_gradient_attack", "smallest_flipping_scale",
           "AttackResult", "AttackStatus", "stability", "StabilitySummary"]
