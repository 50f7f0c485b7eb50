"""The dense ReLU network spec (Experiment I's network is ``MLP([2, 104, 1])``)."""
from __future__ import annotations

from typing import Sequence

from . import _validate as V
from .network import DENSE, LOSSES, Network, _MAX_LAYERS


class MLP(Network):
    """A fully connected ReLU network with a linear output layer.

    Parameters
    ----------
    widths : sequence of int
        Layer widths from input to output, e.g. ``[2, 104, 1]`` (the Experiment I network:
        2 inputs, 104 ReLU units, one logit). 2 to 17 entries, all positive; networks the
        native engine cannot hold (over 2**31 - 1 parameters, a layer over 2**28 units) are
        refused with a ValueError.
    loss : {"sigmoid", "softmax"}, optional
        Training loss. Default: mean sigmoid cross-entropy for one logit, softmax
        cross-entropy (labels are class indices) for several.
    """

    def __init__(self, widths: Sequence[int], loss: str | None = None):
        try:
            widths = [V.integer(w, f"widths[{i}]", minimum=1) for i, w in enumerate(widths)]
        except TypeError as exc:
            if "widths[" in str(exc):
                raise
            raise TypeError(f"widths: must be a sequence of positive integers, got {widths!r}") from None
        if not 2 <= len(widths) <= _MAX_LAYERS + 1:
            raise ValueError(f"widths: need 2 to {_MAX_LAYERS + 1} layer widths, got {len(widths)}")
        self.widths = tuple(widths)
        if loss is None:
            loss = "sigmoid" if widths[-1] == 1 else "softmax"
        self.loss = V.option(loss, "loss", LOSSES)
        if self.loss == "softmax" and widths[-1] < 2:
            raise ValueError("loss: 'softmax' needs at least 2 output logits")
        self._check_size("widths")

    @property
    def input_shape(self) -> tuple[int]:
        return (self.widths[0],)

    @property
    def n_logits(self) -> int:
        return self.widths[-1]

    def activation_widths(self) -> list[int]:
        return list(self.widths)

    @property
    def n_layers(self) -> int:
        return len(self.widths) - 1

    @property
    def spec(self) -> list[int]:
        """Native layer encoding: input (1, 1, d), then [kind, units, k, relu] per layer."""
        out = [1, 1, self.widths[0]]
        for i, w in enumerate(self.widths[1:]):
            out += [DENSE, w, 0, int(i + 1 < self.n_layers)]
        return out

    def param_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of one network's arrays in Keras order: (in, out), (out,), ..."""
        shapes = []
        for n_in, n_out in zip(self.widths[:-1], self.widths[1:]):
            shapes += [(n_in, n_out), (n_out,)]
        return shapes

    def __repr__(self) -> str:
        return f"MLP({list(self.widths)}, loss={self.loss!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, MLP) and other.widths == self.widths and other.loss == self.loss

    def __hash__(self) -> int:
        return hash((self.widths, self.loss))
