"""The paper's experiments (Thesing, Antun, Hansen 2019). Experiment I is in :mod:`.exp1`."""
from . import exp1

__all__ = ["exp1"]
