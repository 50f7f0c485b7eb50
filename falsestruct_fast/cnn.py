"""The convolutional network spec (Experiment II's network is :func:`paper_cnn`).

Layouts follow Keras: NHWC images, conv kernels HWIO ``(k, k, c_in, c_out)``, dense kernels
``(in, out)``, Flatten in (h, w, c) order, so weights trained with Keras/TensorFlow load
directly (see :mod:`falsestruct_fast.weights`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from . import _validate as V
from .network import CONV2D, DENSE, LOSSES, MAXPOOL2, Network, _MAX_LAYERS

_ACTIVATIONS = (None, "relu")


def _activation(value, name: str):
    if value not in _ACTIVATIONS:
        raise ValueError(f"{name}: expected None or 'relu', got {value!r}")
    return value


@dataclass(frozen=True)
class Conv2D:
    """k x k convolution (k odd), stride 1, 'same' zero padding, `filters` output channels."""

    filters: int
    kernel_size: int
    activation: str | None = "relu"

    def __post_init__(self):
        V.integer(self.filters, "Conv2D.filters", minimum=1)
        k = V.integer(self.kernel_size, "Conv2D.kernel_size", minimum=1)
        if k % 2 == 0:
            raise ValueError(f"Conv2D.kernel_size: must be odd ('same' padding is symmetric), got {k}")
        _activation(self.activation, "Conv2D.activation")


@dataclass(frozen=True)
class MaxPool2D:
    """2 x 2 max-pooling, stride 2, 'same' padding (output ceil(h/2) x ceil(w/2))."""


@dataclass(frozen=True)
class Flatten:
    """(h, w, c) -> h*w*c in Keras order (free: activations are stored that way)."""


@dataclass(frozen=True)
class Dense:
    """Fully connected layer ``x @ W + b`` with `units` outputs."""

    units: int
    activation: str | None = None

    def __post_init__(self):
        V.integer(self.units, "Dense.units", minimum=1)
        _activation(self.activation, "Dense.activation")


class CNN(Network):
    """A sequential convolutional network on (H, W, C) images.

    Parameters
    ----------
    input_shape : (H, W, C)
        One image's shape (NHWC without N).
    layers : sequence of Conv2D, MaxPool2D, Flatten, Dense
        Conv2D/MaxPool2D layers first, then Flatten, then Dense layers; the last layer is a
        Dense layer without activation (the logits).
    loss : {"sigmoid", "softmax"}, optional
        Default: sigmoid cross-entropy for one logit, softmax for several.

    Networks the native engine cannot hold (over 2**31 - 1 parameters, a layer over 2**28
    values per image, over 2**30 in all) are refused with a ValueError naming the limit.
    """

    def __init__(self, input_shape: Sequence[int], layers: Sequence, loss: str | None = None):
        try:
            shape = tuple(V.integer(v, f"input_shape[{i}]", minimum=1) for i, v in enumerate(input_shape))
        except TypeError as exc:
            if "input_shape[" in str(exc):
                raise
            raise TypeError(f"input_shape: expected (H, W, C), got {input_shape!r}") from None
        if len(shape) != 3:
            raise ValueError(f"input_shape: expected (H, W, C), got {shape}")
        layers = tuple(layers)
        if not layers:
            raise ValueError("layers: at least one layer is needed")
        flat = False
        h, w, c = shape
        n_native = 0
        for i, layer in enumerate(layers):
            if isinstance(layer, (Conv2D, MaxPool2D)):
                if flat:
                    raise ValueError(f"layers[{i}]: {type(layer).__name__} after Flatten/Dense")
                if isinstance(layer, MaxPool2D):
                    h, w = (h + 1) // 2, (w + 1) // 2
                n_native += 1
            elif isinstance(layer, Flatten):
                if flat:
                    raise ValueError(f"layers[{i}]: Flatten after Flatten/Dense")
                flat = True
            elif isinstance(layer, Dense):
                if not flat and (h, w) != (1, 1):
                    raise ValueError(f"layers[{i}]: Dense on an {h}x{w} image needs a Flatten before it")
                flat = True
                n_native += 1
            else:
                raise TypeError(f"layers[{i}]: expected Conv2D, MaxPool2D, Flatten or Dense, got {layer!r}")
        if not isinstance(layers[-1], Dense) or layers[-1].activation is not None:
            raise ValueError("layers: the last layer must be a Dense layer without activation (the logits)")
        if n_native > _MAX_LAYERS:
            raise ValueError(f"layers: at most {_MAX_LAYERS} conv/pool/dense layers, got {n_native}")
        self.input_shape = shape
        self.layers = layers
        if loss is None:
            loss = "sigmoid" if layers[-1].units == 1 else "softmax"
        self.loss = V.option(loss, "loss", LOSSES)
        if self.loss == "softmax" and layers[-1].units < 2:
            raise ValueError("loss: 'softmax' needs at least 2 output logits")
        self._check_size("layers")

    @property
    def n_logits(self) -> int:
        return self.layers[-1].units

    @property
    def spec(self) -> list[int]:
        """Native layer encoding: input (H, W, C), then [kind, units, k, relu] per layer."""
        out = list(self.input_shape)
        for layer in self.layers:
            if isinstance(layer, Conv2D):
                out += [CONV2D, layer.filters, layer.kernel_size, int(layer.activation == "relu")]
            elif isinstance(layer, MaxPool2D):
                out += [MAXPOOL2, 0, 0, 0]
            elif isinstance(layer, Dense):
                out += [DENSE, layer.units, 0, int(layer.activation == "relu")]
        return out

    def layer_shapes(self) -> list[tuple[int, ...]]:
        """Output shape of each layer for one image: (h, w, c) or (units,)."""
        h, w, c = self.input_shape
        shapes = []
        for layer in self.layers:
            if isinstance(layer, Conv2D):
                c = layer.filters
            elif isinstance(layer, MaxPool2D):
                h, w = (h + 1) // 2, (w + 1) // 2
            elif isinstance(layer, Flatten):
                h, w, c = 1, 1, h * w * c
            else:
                h, w, c = 1, 1, layer.units
            shapes.append((c,) if isinstance(layer, (Flatten, Dense)) else (h, w, c))
        return shapes

    def activation_widths(self) -> list[int]:
        widths = [self.n_inputs]
        for layer, shape in zip(self.layers, self.layer_shapes()):
            if not isinstance(layer, Flatten):  # Flatten is free: it keeps the values in place
                widths.append(math.prod(shape))
        return widths

    def param_shapes(self) -> list[tuple[int, ...]]:
        """One network's arrays in Keras order: conv (k, k, c_in, c_out), (c_out,); dense (in, out), (out,)."""
        shapes = []
        c_in = self.input_shape[2]
        for layer, out in zip(self.layers, self.layer_shapes()):
            if isinstance(layer, Conv2D):
                k = layer.kernel_size
                shapes += [(k, k, c_in, layer.filters), (layer.filters,)]
            elif isinstance(layer, Dense):
                shapes += [(c_in, layer.units), (layer.units,)]
            c_in = out[-1] if isinstance(layer, (Conv2D, MaxPool2D)) else out[0]
        return shapes

    def __repr__(self) -> str:
        return f"CNN({self.input_shape}, {list(self.layers)}, loss={self.loss!r})"

    def __eq__(self, other) -> bool:
        return (isinstance(other, CNN) and other.input_shape == self.input_shape
                and other.layers == self.layers and other.loss == self.loss)

    def __hash__(self) -> int:
        return hash((self.input_shape, self.layers, self.loss))


def paper_cnn(input_shape: Sequence[int] = (32, 32, 1)) -> CNN:
    """Experiment II's network: Conv(24, 5x5, ReLU) -> MaxPool -> Conv(48, 5x5, ReLU) -> MaxPool
    -> Flatten -> Dense(10) -> Dense(1) logit, sigmoid cross-entropy."""
    return CNN(input_shape, [Conv2D(24, 5), MaxPool2D(), Conv2D(48, 5), MaxPool2D(), Flatten(),
                             Dense(10), Dense(1)], loss="sigmoid")
