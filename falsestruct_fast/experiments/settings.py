"""Experiment settings: everything that defines one training protocol, as a validated value.

A setting builds its network, draws its training data for any seeds, trains S networks with
the fused engine and evaluates them. The paper's five trainings are presets:

=======  ==========================  =====  ==========  ========  =====  ================
preset   training set                batch  shuffle     epochs    dtype  paper's outcome
=======  ==========================  =====  ==========  ========  =====  ================
psi1     T^7_delta  (delta = 1e-4)   7      none        30000     f64    false structure
psi2     T^5000_0                    50     batches     30000     f64    neither
psi3     T^5000_delta                50     batches     30000     f64    false structure
psi4     T^10000_0                   50     batches     30000     f64    original
exp2     60 stripe images (M~)       60     samples     10        f32    Table 1
=======  ==========================  =====  ==========  ========  =====  ================

Shuffling: the paper's text says the samples were shuffled every epoch; the authors' released
code (whose runs the paper reports) used a tf.data pipeline that shuffles the order of fixed
batches, which is the presets' "batches". Override with ``preset("psi3", shuffle="samples")``.
Experiment II follows Keras' ``fit`` (sample shuffle, float32); with one batch of all 60
images the shuffle only changes the summation order.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import _validate as V
from ..cnn import paper_cnn
from ..mlp import MLP
from ..network import _seed_array, init
from ..optim import Adam
from ..training import SHUFFLE_MODES, TrainResult, train
from . import exp1, exp2
from .verdict import StructureVerdict, classify_structure

TRAINING_KINDS = ("delta", "zero")


class _Setting:
    """Shared behaviour of the experiment settings (frozen dataclasses)."""

    experiment: ClassVar[str]

    def replace(self, **changes):
        """A copy with some fields changed (validated again), e.g. ``s.replace(epochs=20)``."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"{unknown[0]}: not a field of {type(self).__name__}; fields: {sorted(names)}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """The fields as plain Python values (with "experiment"), e.g. for a results store."""
        out = {"experiment": self.experiment}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(map(list, value)) if f.name == "intervals" else \
                list(value) if isinstance(value, tuple) else value
        return out

    def _check_common(self):
        object.__setattr__(self, "epochs", V.integer(self.epochs, "epochs", minimum=0))
        object.__setattr__(self, "batch_size", V.integer(self.batch_size, "batch_size", minimum=1))
        V.option(self.shuffle, "shuffle", SHUFFLE_MODES)
        object.__setattr__(self, "dtype", V.float_dtype(self.dtype).name)
        lr = V.real(self.learning_rate, "learning_rate")
        if not lr > 0:
            raise ValueError(f"learning_rate: must be a positive number, got {self.learning_rate}")

    def train(self, seeds, threads: int | None = None, progress=True, record_every: int | None = None,
              engine: str = "native") -> TrainResult:
        """Initialise one network per seed (Glorot uniform, seeded), draw each seed's training
        data, and train them all in one fused native call with Adam (TF1 defaults and
        `learning_rate`). Returns the :class:`~falsestruct_fast.TrainResult`."""
        seeds = [int(s) for s in _seed_array(seeds)]  # TypeError naming seeds for '3' or 1.5
        net = self.network()
        X, y = self.data(seeds)
        params = init(net, seeds=seeds, dtype=self.dtype, threads=threads)
        return train(net, params, X, y, epochs=self.epochs, batch_size=self.batch_size,
                     optimizer=Adam(lr=self.learning_rate), shuffle=self.shuffle, threads=threads,
                     progress=progress, record_every=record_every, engine=engine)


@dataclass(frozen=True)
class Exp1Setting(_Setting):
    """One Experiment I protocol (section 3.1): MLP [2 -> hidden -> 1] trained on T^r_delta
    or T^r_0 with Adam on the mean sigmoid cross-entropy.

    Fields
    ------
    name : label for tables and stores.
    kind : "delta" (T^r_delta: x2 = delta f_a(x1)) or "zero" (T^r_0: x2 = 0).
    r : training set size.  delta : the experiment's delta (also used for C_delta).
    batch_size, shuffle ("none" | "samples" | "batches"), epochs, learning_rate, dtype.
    sampler ("interval" | "random" | "half"), distribution ("uniform" | "beta"): see
    :func:`exp1.sample_x1`.  a, K, eps : the experiment's constants.
    hidden : hidden widths; () means the paper's single layer of 4K units.
    paper_outcome : the verdict the paper reports for its one run ("false", "original",
    "neither"), or None.
    """

    experiment: ClassVar[str] = "exp1"
    name: str = "exp1"
    kind: str = "delta"
    r: int = 5000
    delta: float = exp1.DELTA
    batch_size: int = 50
    shuffle: str = "batches"
    epochs: int = 30000
    learning_rate: float = 1e-3
    dtype: str = "float64"
    sampler: str = "interval"
    distribution: str = "uniform"
    a: int = exp1.A
    K: int = exp1.K
    eps: float = exp1.EPS
    hidden: tuple = ()
    paper_outcome: str | None = None

    def __post_init__(self):
        self._check_common()
        V.option(self.kind, "kind", TRAINING_KINDS)
        object.__setattr__(self, "r", V.integer(self.r, "r", minimum=1))
        if self.batch_size > self.r:
            raise ValueError(f"batch_size: {self.batch_size} is larger than the training set size r = {self.r}")
        exp1.stable_intervals(self.a, self.K, self.eps)  # refuses eps >= b^2 / (2 (a - b))
        if not 0 < V.real(self.delta, "delta") < self.eps:
            raise ValueError(f"delta: must be in (0, eps = {self.eps}), got {self.delta}")
        V.option(self.sampler, "sampler", exp1.SAMPLERS)
        V.option(self.distribution, "distribution", exp1.DISTRIBUTIONS)
        hidden = tuple(V.integer(w, "hidden", minimum=1) for w in self.hidden)
        object.__setattr__(self, "hidden", hidden)
        if self.paper_outcome not in (None, "false", "original", "neither"):
            raise ValueError(f"paper_outcome: unknown verdict {self.paper_outcome!r}")

    @property
    def widths(self) -> list[int]:
        return [2, *(self.hidden or (4 * self.K,)), 1]

    def network(self) -> MLP:
        return MLP(self.widths)

    def data(self, seeds):
        """Each seed's training set: X (S, r, 2) and y (S, r), in the setting's dtype."""
        delta = self.delta if self.kind == "delta" else 0.0
        return exp1.training_set(self.r, delta, seed=list(seeds), sampler=self.sampler, a=self.a,
                                 K=self.K, eps=self.eps, distribution=self.distribution, dtype=self.dtype)

    def evaluate(self, net, params, threads: int | None = None, engine: str = "native",
                 **thresholds) -> StructureVerdict:
        """The structure verdict of every network (see :func:`classify_structure`;
        `thresholds`: agreement=, zero=, n=, stable_only=; engine: "native", "numba" or "cuda")."""
        return classify_structure(net, params, delta=self.delta, a=self.a, K=self.K, eps=self.eps,
                                  threads=threads, engine=engine, **thresholds)

    def attack_points(self, n: int | None = None) -> np.ndarray:
        """Where DeepFool radii are measured: the points of C_delta (the 501-point grid) whose
        x1 lies in S_eps, (n_points, 2) in the setting's dtype; `n` < all: evenly spaced ones."""
        X, _ = exp1.evaluation_set(delta=self.delta, a=self.a, K=self.K, dtype=self.dtype)
        X = X[exp1.in_stable_region(X[:, 0], self.a, self.K, self.eps)]
        if n is not None and n < len(X):
            X = X[np.linspace(0, len(X) - 1, n).round().astype(int)]
        return X

    def describe(self) -> str:
        data = f"T^{self.r}_{'delta' if self.kind == 'delta' else '0'}"
        return (f"{data}, batch {self.batch_size}, shuffle {self.shuffle}, {self.epochs} epochs, "
                f"{self.dtype}, sampler {self.sampler}")


@dataclass(frozen=True)
class Exp2Setting(_Setting):
    """The Experiment II protocol (section 3.2): the paper's CNN trained on the 60 stripe
    images of M~ with colour amplitude `a`, evaluated by Table 1.

    Fields
    ------
    name, a (training images' amplitude, 0.01), layout ("paper" | "authors", see
    :func:`exp2.training_set`), horizontal_label (1 as in the authors' code),
    batch_size, shuffle, epochs, learning_rate, dtype,
    test_size (images per test set, 1000), intervals (the (b, c) ranges of Table 1).
    """

    experiment: ClassVar[str] = "exp2"
    name: str = "exp2"
    a: float = exp2.A_TRAIN
    layout: str = "paper"
    horizontal_label: int = exp2.HORIZONTAL_LABEL
    batch_size: int = 60
    shuffle: str = "samples"
    epochs: int = 10
    learning_rate: float = 1e-3
    dtype: str = "float32"
    test_size: int = 1000
    intervals: tuple = exp2.TABLE1_INTERVALS

    def __post_init__(self):
        self._check_common()
        if not V.real(self.a, "a") > 0:
            raise ValueError(f"a: must be a positive number, got {self.a}")
        V.option(self.layout, "layout", ("paper", "authors"))
        V.integer(self.horizontal_label, "horizontal_label", minimum=0, maximum=1)
        object.__setattr__(self, "test_size", V.integer(self.test_size, "test_size", minimum=1))
        intervals = tuple((float(b), float(c)) for b, c in self.intervals)
        for b, c in intervals:
            if not 0 < b <= c:
                raise ValueError(f"intervals: each (b, c) needs 0 < b <= c, got {(b, c)}")
        object.__setattr__(self, "intervals", intervals)
        if self.batch_size > 60:
            raise ValueError(f"batch_size: {self.batch_size} is larger than the 60 training images")

    def network(self):
        return paper_cnn()

    def data(self, seeds=None):
        """The 60 training images, shared by every seed: X (60, 32, 32, 1), y (60,)."""
        return exp2.training_set(self.a, layout=self.layout, horizontal_label=self.horizontal_label,
                                 dtype=self.dtype)

    def evaluate(self, net, params, threads: int | None = None, seed: int = 0,
                 engine: str = "native"):
        """Table 1 for every network (accuracy on C~ and C^ per interval; engine: "native",
        "numba" or "cuda")."""
        return exp2.table1(net, params, intervals=self.intervals, size=self.test_size, seed=seed,
                           horizontal_label=self.horizontal_label, threads=threads, engine=engine)

    def attack_points(self, n: int | None = None) -> np.ndarray:
        """Where DeepFool radii are measured: `n` (default 32) images of C~ on the first
        interval of Table 1, test-set seed 0, (n, 32, 32, 1) in the setting's dtype."""
        b, c = self.intervals[0]
        X, _, _ = exp2.test_set(b, c, n=max(32 if n is None else n, 1), seed=0,
                                horizontal_label=self.horizontal_label, dtype=self.dtype)
        return X

    def describe(self) -> str:
        return (f"60 stripe images (a = {self.a}, {self.layout} layout), batch {self.batch_size}, "
                f"shuffle {self.shuffle}, {self.epochs} epochs, {self.dtype}")


PRESETS = {
    "psi1": Exp1Setting(name="psi1", kind="delta", r=7, batch_size=7, shuffle="none", paper_outcome="false"),
    "psi2": Exp1Setting(name="psi2", kind="zero", r=5000, paper_outcome="neither"),
    "psi3": Exp1Setting(name="psi3", kind="delta", r=5000, paper_outcome="false"),
    "psi4": Exp1Setting(name="psi4", kind="zero", r=10000, paper_outcome="original"),
    "exp2": Exp2Setting(),
}


def preset(name: str, /, **overrides):
    """A paper setting by name ("psi1".."psi4", "exp2"), with any field overridden:
    ``preset("psi3", epochs=20, shuffle="samples")``. Unless `name=` is among the overrides,
    the setting is named after its preset and the fields that differ from it, e.g.
    ``psi3[epochs=20,shuffle=samples]``, so that stores and summaries tell variants apart."""
    V.option(name, "preset", PRESETS)
    return named_variant(PRESETS[name], **overrides) if overrides else PRESETS[name]


def format_field(value) -> str:
    """A field value as it appears in a setting's name: 0.0001, float32, (8,8)."""
    if isinstance(value, (list, tuple)):
        return "(" + ",".join(map(format_field, value)) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)


def with_label(name: str, label: str) -> str:
    """`name` with `label` appended inside its brackets: psi3 -> psi3[label],
    psi3[epochs=20] -> psi3[epochs=20,label]."""
    if not label:
        return name
    return f"{name[:-1]},{label}]" if name.endswith("]") and "[" in name else f"{name}[{label}]"


def named_variant(base, **changes):
    """`base` with `changes` applied (validated again), named after `base` and the fields whose
    values differ from it (in field order, so the same setting always gets the same name),
    unless `changes` sets `name` itself."""
    setting = base.replace(**changes)
    if "name" in changes:
        return setting
    label = ",".join(f"{f.name}={format_field(getattr(setting, f.name))}" for f in dataclasses.fields(setting)
                     if f.name in changes and getattr(setting, f.name) != getattr(base, f.name))
    return setting.replace(name=with_label(base.name, label)) if label else setting


__all__ = ["Exp1Setting", "Exp2Setting", "PRESETS", "preset", "named_variant", "format_field", "with_label",
           "TRAINING_KINDS"]
