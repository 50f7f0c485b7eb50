"""The paper's experiments (Thesing, Antun, Hansen 2019) as library functions.

- :mod:`.exp1`: Experiment I data (f_a, S_eps, T^r_delta, C_0, C_delta), the false structure g
  and the stable network of Proposition 3.3;
- :mod:`.exp2`: Experiment II stripe images, test sets, the pixel-sum structure and Table 1;
- :func:`classify_structure`: which structure an Experiment I network learned;
- :func:`preset` / :data:`PRESETS`: the paper's trainings psi1..psi4 and exp2 as settings;
- :func:`reproduce`: everything end to end, with a markdown report and figures;
- :mod:`.plots`: Figures 2 and 3 and DeepFool radius histograms (needs matplotlib).
"""
from . import exp1, exp2
from .reproduce import reproduce
from .settings import PRESETS, Exp1Setting, Exp2Setting, preset
from .verdict import VERDICTS, StructureVerdict, classify_structure

__all__ = ["exp1", "exp2", "PRESETS", "Exp1Setting", "Exp2Setting", "preset", "VERDICTS",
           "StructureVerdict", "classify_structure", "reproduce"]
