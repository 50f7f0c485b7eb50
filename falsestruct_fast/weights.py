"""Import and export of weights in Keras layouts (dicts, lists, ``.npz``), and from PyTorch.

Keras layouts: Dense kernel ``(in, out)``, Conv2D kernel HWIO ``(k, k, c_in, c_out)``, biases
``(out,)``, Flatten in (h, w, c) order. Names follow Keras' defaults for a fresh model:
``dense``, ``dense_1``, ..., ``conv2d``, ``conv2d_1``, ..., each with ``/kernel`` and ``/bias``.

PyTorch stores ``nn.Linear.weight`` as (out, in) and ``nn.Conv2d.weight`` as OIHW, and flattens
NCHW activations in (c, h, w) order; :func:`from_torch` applies the transposes and, for the
first dense layer after a Flatten, reorders its input rows from (c, h, w) to (h, w, c).
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

from . import _validate as V
from .cnn import CNN, Conv2D, Dense
from .mlp import MLP
from .network import Network, Params, check_net, flatten, unflatten


def layer_names(net: Network) -> list[str]:
    """Keras default names of the layers with weights, in order (e.g. conv2d, conv2d_1, dense)."""
    check_net(net)
    counts: dict[str, int] = {}
    names = []
    kinds = (["dense"] * net.n_layers if isinstance(net, MLP)
             else ["conv2d" if isinstance(l, Conv2D) else "dense"
                   for l in net.layers if isinstance(l, (Conv2D, Dense))])
    for kind in kinds:
        n = counts.get(kind, 0)
        names.append(kind if n == 0 else f"{kind}_{n}")
        counts[kind] = n + 1
    return names


def weight_names(net: Network) -> list[str]:
    """``name/kernel``, ``name/bias`` for every layer with weights, in Keras get_weights order."""
    return [f"{name}/{part}" for name in layer_names(net) for part in ("kernel", "bias")]


def to_keras(net: Network, params, network: int | None = None) -> dict[str, np.ndarray]:
    """Weights as a dict of Keras-layout arrays (insertion order = ``get_weights()`` order).

    Parameters
    ----------
    net : MLP or CNN
    params : Params (S networks)
    network : int, optional
        Export network `network` alone (arrays without the seed axis, ready for Keras'
        ``set_weights(list(d.values()))``). Default: every array keeps its leading axis S.
    """
    flat = flatten(net, params)
    p = unflatten(net, flat)
    if network is not None:
        s = V.integer(network, "network", minimum=0, maximum=flat.shape[0] - 1)
        return {k: a[s].copy() for k, a in zip(weight_names(net), p)}
    return {k: a.copy() for k, a in zip(weight_names(net), p)}


def from_keras(net: Network, weights, dtype=None) -> Params:
    """Params from Keras-layout weights of one or several networks.

    Parameters
    ----------
    net : MLP or CNN
    weights : list of arrays in ``get_weights()`` order, dict keyed by :func:`weight_names`,
        or a path to an ``.npz`` written by :func:`save_npz` (or with those keys). Arrays of one
        network (shapes ``net.param_shapes()``) give S = 1; arrays with a leading axis S give S
        networks.
    dtype : "float32" or "float64", optional
        Default: the arrays' dtype (float64 if they are not floating point).
    """
    check_net(net)
    names = weight_names(net)
    if isinstance(weights, (str, os.PathLike)):
        with np.load(weights) as data:
            missing = [n for n in names if n not in data]
            if missing:
                raise ValueError(f"weights: {os.fspath(weights)!r} lacks {missing}")
            arrays = [np.asarray(data[n]) for n in names]
    elif isinstance(weights, Mapping):
        missing = [n for n in names if n not in weights]
        if missing:
            raise ValueError(f"weights: missing {missing} (expected keys {names})")
        arrays = [np.asarray(weights[n]) for n in names]
    elif isinstance(weights, Sequence):
        arrays = [np.asarray(a) for a in weights]
        if len(arrays) != len(names):
            raise ValueError(f"weights: {net!r} has {len(names)} arrays, got {len(arrays)}")
    else:
        raise TypeError(f"weights: expected a list, a dict or an .npz path, got {type(weights).__name__}")
    shapes = net.param_shapes()
    single = all(a.shape == s for a, s in zip(arrays, shapes))
    if single:
        arrays = [a[None] for a in arrays]
    if dtype is None:
        dtype = arrays[0].dtype if arrays[0].dtype in (np.float32, np.float64) else np.float64
    dt = V.float_dtype(dtype)
    arrays = [np.ascontiguousarray(a, dtype=dt) for a in arrays]
    return unflatten(net, flatten(net, arrays, name="weights"))


def save_npz(path, net: Network, params) -> None:
    """Writes every network's weights to `path` (keys :func:`weight_names`, leading axis S)."""
    np.savez(path, **to_keras(net, params))


def from_torch(net: Network, tensors: Sequence, dtype=None) -> Params:
    """Params from PyTorch weights of one network, e.g. ``[t.detach().numpy() for t in model.parameters()]``.

    `tensors` lists, per layer with weights, ``weight`` then ``bias`` as PyTorch stores them:
    ``nn.Conv2d`` weight (c_out, c_in, k, k), ``nn.Linear`` weight (out, in). The model must
    compute the same function on NCHW input with ``padding=k // 2`` convolutions,
    ``max_pool2d(2, ceil_mode=True)`` and ``flatten`` of NCHW activations.
    """
    check_net(net)
    arrays = [np.asarray(t.detach().cpu().numpy() if hasattr(t, "detach") else t) for t in tensors]
    shapes = net.param_shapes()
    if len(arrays) != len(shapes):
        raise ValueError(f"tensors: {net!r} has {len(shapes)} weight arrays, got {len(arrays)}")
    out = []
    spatial = None  # (h, w, c) of the activation entering the first dense layer
    if isinstance(net, CNN):
        h, w, c = net.input_shape
        for layer, shape in zip(net.layers, net.layer_shapes()):
            if isinstance(layer, Dense):
                break
            if len(shape) == 3:
                h, w, c = shape
        spatial = (h, w, c)
    first_dense = True
    for i in range(0, len(arrays), 2):
        W, b = arrays[i], arrays[i + 1]
        if W.ndim == 4:
            W = W.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        else:
            W = W.T  # (out, in) -> (in, out)
            if first_dense and spatial is not None and spatial[:2] != (1, 1):
                h, w, c = spatial
                # rows in torch's (c, h, w) flatten order -> Keras' (h, w, c) order
                W = W.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(h * w * c, -1)
            first_dense = False
        if W.shape != shapes[i] or b.shape != shapes[i + 1]:
            raise ValueError(f"tensors[{i}]: transposed shape {W.shape}, bias {b.shape}; "
                             f"expected {shapes[i]}, {shapes[i + 1]}")
        out += [W, b]
    return from_keras(net, out, dtype)
