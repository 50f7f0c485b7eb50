"""Experiment II (section 3.2): stripe images, their two colour codes, data sets and Table 1.

M is the set of size x size grey images (32 x 32 in the paper) with one light stripe, `width`
pixels wide (3), running horizontally (rows) or vertically (columns) at one of
``size - width + 1`` positions (30). Two colour codes with a parameter a > 0 split M:

=============  ================  =========  =========
code           orientation       background stripe
=============  ================  =========  =========
"tilde" (M~)   horizontal        -a         1 - a
"tilde" (M~)   vertical          +a         1 + a
"hat"   (M^)   horizontal        +a         1 + a
"hat"   (M^)   vertical          -a         1 - a
=============  ================  =========  =========

(Figure 4a and 4b.) Images are NHWC arrays (N, size, size, 1), the layout of
:func:`falsestruct_fast.paper_cnn`.

The false structure of Proposition 3.4 is the pixel sum against width * size (= 96): an M~
horizontal image sums to 96 - 1024 a, an M~ vertical one to 96 + 1024 a, and on M^ it is the
other way round, so a network that thresholds the pixel sum is right on every image of M~
and wrong on every image of M^.

Labels: the authors' code and released weights use horizontal = 1, vertical = 0
(:data:`HORIZONTAL_LABEL`); the paper's text numbers them the other way round (alpha_0 =
horizontal). Every function that returns labels takes ``horizontal_label`` (0 or 1); the
vertical label is ``1 - horizontal_label``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import _validate as V
from .. import memory
from ..network import MAX_ROWS, Network, predict

SIZE = 32
WIDTH = 3
A_TRAIN = 0.01
HORIZONTAL_LABEL = 1

CODES = ("tilde", "hat")
LAYOUTS = ("paper", "authors")

TABLE1_INTERVALS = ((0.009, 0.010), (0.008, 0.009), (0.007, 0.008), (0.006, 0.007))
# Accuracy of the paper's network on (C~_{b,c}, C^_{b,c}), Table 1 of the paper.
PAPER_TABLE1 = {
    (0.009, 0.010): (1.000, 0.000),
    (0.008, 0.009): (1.000, 0.000),
    (0.007, 0.008): (0.987, 0.000),
    (0.006, 0.007): (0.985, 0.006),
}

__all__ = [
    "SIZE", "WIDTH", "A_TRAIN", "HORIZONTAL_LABEL", "CODES", "LAYOUTS", "TABLE1_INTERVALS",
    "PAPER_TABLE1", "n_positions", "stripe_images", "training_set", "test_set", "pixel_sum",
    "pixel_sum_structure", "Table1", "table1",
]


# ---- local argument checks --------------------------------------------------------------
def _label(horizontal_label) -> int:
    value = V.integer(horizontal_label, "horizontal_label")
    if value not in (0, 1):
        raise ValueError(f"horizontal_label: must be 0 or 1, got {value}")
    return value


def _geometry(size, width) -> tuple[int, int]:
    width = V.integer(width, "width", minimum=1)
    size = V.integer(size, "size", minimum=width + 1)
    return size, width


def _positive_float(value, name: str) -> float:
    value = V.real(value, name)
    if not value > 0:
        raise ValueError(f"{name}: must be finite and > 0, got {value}")
    return value


def _labels(horizontal: np.ndarray, horizontal_label: int, dtype) -> np.ndarray:
    return np.where(horizontal, horizontal_label, 1 - horizontal_label).astype(dtype)


# ---- images -----------------------------------------------------------------------------
def n_positions(size: int = SIZE, width: int = WIDTH) -> int:
    """Number of stripe positions per orientation, ``size - width + 1`` (30 in the paper)."""
    size, width = _geometry(size, width)
    return size - width + 1


def stripe_images(a, horizontal, position, code: str = "tilde", size: int = SIZE,
                  width: int = WIDTH, dtype="float32") -> np.ndarray:
    """Stripe images of M~ (``code="tilde"``) or M^ (``code="hat"``).

    Parameters
    ----------
    a : float or 1-D array of float, > 0 and finite
        Colour parameter of each image.
    horizontal : bool or 1-D array of bool (0/1 integers are accepted)
        True: the stripe covers rows ``position .. position + width - 1`` (all columns);
        False: it covers those columns (all rows).
    position : int or 1-D array of int, ``0 <= position <= size - width``
        First row (horizontal) or column (vertical) of the stripe.
    code : {"tilde", "hat"}
        Colour code: "tilde" (Figure 4a): horizontal background -a, stripe 1 - a; vertical
        background +a, stripe 1 + a. "hat" (Figure 4b) swaps the two: horizontal background
        +a, stripe 1 + a; vertical background -a, stripe 1 - a.
    size, width : int
        Image side and stripe width (``size > width >= 1``).
    dtype : "float32" or "float64"

    `a`, `horizontal` and `position` are broadcast against each other; N is the length of the
    result (1 when all three are scalars).

    Returns
    -------
    ndarray (N, size, size, 1) of `dtype` (NHWC). Pixel values are the exact colours above
    rounded once to `dtype`.
    """
    code = V.option(code, "code", CODES)
    size, width = _geometry(size, width)
    dt = V.float_dtype(dtype)

    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"a: must be a real number or an array of them, got {a!r}") from None
    if a.size and not (np.isfinite(a).all() and (a > 0).all()):
        raise ValueError("a: every value must be finite and > 0")

    h = np.asarray(horizontal)
    if h.dtype.kind in "iu":
        if h.size and not np.isin(h, (0, 1)).all():
            raise ValueError("horizontal: integer values must be 0 or 1")
        h = h.astype(bool)
    elif h.dtype.kind != "b":
        raise TypeError(f"horizontal: must be bool (or 0/1 integers), got dtype {h.dtype}")

    pos = np.asarray(position)
    if pos.dtype.kind not in "iu":
        raise TypeError(f"position: must be integers, got dtype {pos.dtype}")
    last = size - width
    if pos.size and (pos.min() < 0 or pos.max() > last):
        raise ValueError(f"position: must lie in [0, size - width] = [0, {last}]; "
                         f"got values in [{pos.min()}, {pos.max()}]")

    try:
        a, h, pos = np.broadcast_arrays(a, h, pos)
    except ValueError:
        raise ValueError(f"a, horizontal, position: shapes {a.shape}, {h.shape}, {pos.shape} "
                         "do not broadcast") from None
    if a.ndim > 1:
        raise ValueError(f"a, horizontal, position: must be scalars or 1-D, broadcast shape {a.shape}")
    a, h, pos = a.reshape(-1), h.reshape(-1), pos.reshape(-1).astype(np.int64)

    # sign of the colour shift: -1 for M~ horizontal and M^ vertical, +1 otherwise
    sign = np.where(h, -1.0, 1.0) if code == "tilde" else np.where(h, 1.0, -1.0)
    background = (sign * a).astype(dt)
    stripe = (1.0 + sign * a).astype(dt)

    idx = np.arange(size)
    band = (idx >= pos[:, None]) & (idx < pos[:, None] + width)          # (N, size)
    mask = np.where(h[:, None, None], band[:, :, None], band[:, None, :])  # (N, size, size)
    X = np.where(mask, stripe[:, None, None], background[:, None, None])
    return X.reshape(len(a), size, size, 1)


# ---- data sets --------------------------------------------------------------------------
def training_set(a: float = A_TRAIN, layout: str = "paper", horizontal_label: int = HORIZONTAL_LABEL,
                 size: int = SIZE, width: int = WIDTH, dtype="float32"):
    """The training set T: 2 * n_positions images (60 in the paper) with colour parameter `a`.

    Parameters
    ----------
    a : float > 0
        Colour parameter (the paper's 0.01).
    layout : {"paper", "authors"}
        "paper" (default): the unique M~ images, every horizontal position then every
        vertical position, as section 3.2 describes.
        "authors": what the authors' code built. Every one of the images has a *horizontal*
        stripe; the "horizontal" class uses the M~ horizontal colours (background -a, stripe
        1 - a) and the "vertical" class the M~ vertical colours (background +a, stripe 1 + a)
        drawn as a horizontal stripe. The two classes differ only in the colour code (the
        "vertical" class is exactly the M^ horizontal images), so the orientation carries no
        information at all.
    horizontal_label : {0, 1}
        Label of the horizontal class (the vertical class gets ``1 - horizontal_label``).
    size, width : int
        Image side and stripe width.
    dtype : "float32" or "float64"

    Returns
    -------
    X : ndarray (2 P, size, size, 1) of `dtype`, P = n_positions(size, width)
        Rows 0..P-1: the horizontal class, positions 0..P-1 in order; rows P..2P-1: the
        vertical class, positions 0..P-1 in order.
    y : ndarray (2 P,) of `dtype`
        ``horizontal_label`` for the first P rows, ``1 - horizontal_label`` for the others.
    """
    a = _positive_float(a, "a")
    layout = V.option(layout, "layout", LAYOUTS)
    label = _label(horizontal_label)
    P = n_positions(size, width)
    dt = V.float_dtype(dtype)
    pos = np.tile(np.arange(P), 2)
    cls_h = np.repeat([True, False], P)
    if layout == "paper":
        X = stripe_images(a, cls_h, pos, "tilde", size, width, dt)
    else:
        X = np.concatenate([stripe_images(a, True, pos[:P], "tilde", size, width, dt),
                            stripe_images(a, True, pos[P:], "hat", size, width, dt)])
    return X, _labels(cls_h, label, dt)


def test_set(b: float, c: float, n: int = 1000, code: str = "tilde", seed: int = 0,
             horizontal_label: int = HORIZONTAL_LABEL, size: int = SIZE, width: int = WIDTH,
             dtype="float32"):
    """The test set C~_{b,c} (``code="tilde"``) or C^_{b,c} (``code="hat"``).

    Each image has a ~ U[b, c], a horizontal stripe with probability 1/2 and a position
    uniform over the ``size - width + 1`` positions. The draws are a function of
    (`seed`, b, c, n, size, width) alone (NumPy's counter-based Philox generator) and do not
    depend on `code`: the two sets with the same seed hold the same (a, orientation,
    position) triples and differ only in the colour code.

    Parameters
    ----------
    b, c : float, 0 < b <= c
    n : int in [1, 2**31 - 1]
        Number of images (the paper's 1000); a MemoryError when they would not fit in the
        available memory.
    code : {"tilde", "hat"}
    seed : int >= 0
    horizontal_label : {0, 1}
        Label of horizontal images (vertical ones get ``1 - horizontal_label``).
    size, width : int
    dtype : "float32" or "float64"

    Returns
    -------
    X : ndarray (n, size, size, 1) of `dtype`
    y : ndarray (n,) of `dtype`, the true labels (orientation)
    a : ndarray (n,) float64, the colour parameter of each image
    """
    b = _positive_float(b, "b")
    c = _positive_float(c, "c")
    if b > c:
        raise ValueError(f"b, c: need b <= c, got b = {b}, c = {c}")
    n = V.integer(n, "n", minimum=1, maximum=MAX_ROWS)
    code = V.option(code, "code", CODES)
    label = _label(horizontal_label)
    P = n_positions(size, width)
    dt = V.float_dtype(dtype)
    # the images in float64 while drawn, then in dtype
    memory.check_fits(n * size * size * (8 + dt.itemsize), f"n: {n} images of {size}x{size}",
                      "use a smaller n")
    rng = np.random.Generator(np.random.Philox(key=V.integer(seed, "seed", minimum=0)))
    a = np.clip(rng.uniform(b, c, n), b, c)
    horizontal = rng.random(n) < 0.5
    position = rng.integers(0, P, n)
    X = stripe_images(a, horizontal, position, code, size, width, dt)
    return X, _labels(horizontal, label, dt), a


# ---- the false structure of Proposition 3.4 ---------------------------------------------
def _image_axes(X: np.ndarray) -> tuple[int, ...]:
    if X.ndim >= 4 and X.shape[-1] == 1:
        return (-3, -2, -1)
    if X.ndim >= 3:
        return (-2, -1)
    raise ValueError(f"X: expected images (..., H, W, 1) or (..., H, W) with a leading sample "
                     f"axis, got shape {X.shape}")


def pixel_sum(X) -> np.ndarray:
    """Sum of the pixel values of each image, accumulated in float64.

    Parameters
    ----------
    X : array (N, H, W, 1) or (N, H, W), optionally with a leading network axis (S, N, ...)
        An array whose last axis has length 1 and at least 4 axes is read as NHWC with one
        channel; otherwise the last two axes are (H, W).

    Returns
    -------
    ndarray of float64 over the leading axes, (N,) or (S, N). For M~ images of the paper's
    geometry: 96 - 1024 a (horizontal) and 96 + 1024 a (vertical).
    """
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X: must be numeric, got dtype {X.dtype}")
    return X.sum(axis=_image_axes(X), dtype=np.float64)


def pixel_sum_structure(X, horizontal_label: int = HORIZONTAL_LABEL, width: int = WIDTH) -> np.ndarray:
    """The labels of the false structure g of Proposition 3.4.

    The paper defines g(x) = 0 (beta_0: pixel sum <= 96 = width * size) and g(x) = 1
    (beta_1: sum > 96); in the paper's numbering 0 is horizontal, so g says "horizontal" iff
    the sum is <= 96. With the library's labels this function returns `horizontal_label` where
    the sum is <= width * size and ``1 - horizontal_label`` elsewhere. It agrees with the true
    label on every image of M~ and disagrees on every image of M^.

    Parameters
    ----------
    X : array (N, H, W, 1) or (N, H, W), optionally with a leading axis S; square images
        (H == W == size), see :func:`pixel_sum`.
    horizontal_label : {0, 1}
    width : int
        Stripe width; the threshold is ``width * size``.

    Returns
    -------
    ndarray of int64 over the leading axes, (N,) or (S, N).
    """
    label = _label(horizontal_label)
    width = V.integer(width, "width", minimum=1)
    X = np.asarray(X)
    axes = _image_axes(X)
    H, W = X.shape[axes[0]], X.shape[axes[1]]
    if H != W:
        raise ValueError(f"X: stripe images are square, got H = {H}, W = {W}")
    s = pixel_sum(X)
    return np.where(s <= width * H, label, 1 - label).astype(np.int64)


# ---- Table 1 ----------------------------------------------------------------------------
def _number(x: float) -> str:
    """0.009 -> "0.009", 0.01 -> "0.010" (the paper's style); other values with 4 digits."""
    return f"{x:.3f}" if abs(x - round(x, 3)) < 1e-12 else f"{x:.4g}"


def _paper_row(b: float, c: float):
    for (pb, pc), acc in PAPER_TABLE1.items():
        if math.isclose(b, pb, rel_tol=1e-9) and math.isclose(c, pc, rel_tol=1e-9):
            return acc
    return None


@dataclass(frozen=True, eq=False)
class Table1:
    """Accuracies of S networks on C~_{b,c} and C^_{b,c} (the paper's Table 1).

    Attributes
    ----------
    intervals : tuple of (b, c) float pairs, length n_intervals
    tilde : ndarray (S, n_intervals) float64, accuracy on C~_{b,c} (read-only)
    hat : ndarray (S, n_intervals) float64, accuracy on C^_{b,c} (read-only)
    size : int, images per test set
    seed : int, interval i used test-set seed ``seed + i``
    horizontal_label : int, the label of horizontal images used for scoring
    """

    intervals: tuple
    tilde: np.ndarray
    hat: np.ndarray
    size: int
    seed: int
    horizontal_label: int = HORIZONTAL_LABEL

    @property
    def n_networks(self) -> int:
        return int(self.tilde.shape[0])

    def format(self, network: int | None = 0) -> str:
        """Table 1 as text for network `network` (None: the mean over all S networks).

        Columns: b, c, accuracy on C~, accuracy on C^ (percent) and, for the paper's
        intervals, the paper's figures.
        """
        if network is None:
            tilde, hat = self.tilde.mean(axis=0), self.hat.mean(axis=0)
            who = f"mean of {self.n_networks} networks"
        else:
            s = V.integer(network, "network", minimum=0, maximum=self.n_networks - 1)
            tilde, hat = self.tilde[s], self.hat[s]
            who = f"network {s} of {self.n_networks}"
        papers = [_paper_row(b, c) for b, c in self.intervals]
        show_paper = any(p is not None for p in papers)
        head = f"{'b':>7} {'c':>7} {'acc C~':>9} {'acc C^':>9}"
        if show_paper:
            head += f" {'paper C~':>9} {'paper C^':>9}"
        lines = [f"Table 1 ({who}; {self.size} images per test set, seed {self.seed})", head]
        for (b, c), t, h, p in zip(self.intervals, tilde, hat, papers):
            row = f"{_number(b):>7} {_number(c):>7} {100 * t:>8.1f}% {100 * h:>8.1f}%"
            if show_paper:
                row += (f" {100 * p[0]:>8.1f}% {100 * p[1]:>8.1f}%" if p is not None
                        else f" {'-':>9} {'-':>9}")
            lines.append(row)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format(0)


def table1(net: Network, params, intervals=TABLE1_INTERVALS, size: int = 1000, seed: int = 0,
           horizontal_label: int = HORIZONTAL_LABEL, threads: int | None = None,
           engine: str = "native") -> Table1:
    """Accuracy of every network on C~_{b,c} and C^_{b,c} for each interval (Table 1).

    Parameters
    ----------
    net : CNN (or any network) on square one-channel images (size, size, 1); the image side is
        taken from ``net.input_shape``, the stripe width is :data:`WIDTH`.
    params : Params of S networks (float32 or float64); the test images are built in the
        params' dtype.
    intervals : sequence of (b, c) pairs with 0 < b <= c
        Default: the paper's four intervals.
    size : int >= 1
        Images per test set (the paper's 1000).
    seed : int >= 0
        Interval i uses :func:`test_set` seed ``seed + i``, for both C~ and C^ (so the two sets
        of an interval hold the same (a, orientation, position) draws).
    horizontal_label : {0, 1}
        The label the networks give horizontal stripes (1 for the authors' weights).
    threads : int in [1, 1024], optional
        CPU threads for the forward pass.
    engine : "native" (default), "numba" or "cuda": the engine of the forward pass.

    Returns
    -------
    Table1 with ``tilde`` and ``hat`` accuracy arrays (S, n_intervals) float64. Labels come
    from :func:`falsestruct_fast.predict` (logit > 0) on the whole test set of each interval.
    """
    size = V.integer(size, "size", minimum=1)
    seed = V.integer(seed, "seed", minimum=0)
    label = _label(horizontal_label)
    V.threads(threads)
    shape = tuple(getattr(net, "input_shape", ()))
    if len(shape) != 3 or shape[2] != 1 or shape[0] != shape[1]:
        raise ValueError(f"net: expects input (size, size, 1) stripe images, got input_shape {shape}")
    if not isinstance(params, (list, tuple)) or not params or not isinstance(params[0], np.ndarray):
        raise TypeError("params: expected Params (a list of arrays with a leading network axis)")
    dt = V.float_dtype(params[0].dtype, "params[0].dtype")
    try:
        pairs = tuple((float(b), float(c)) for b, c in intervals)
    except (TypeError, ValueError):
        raise TypeError(f"intervals: expected a sequence of (b, c) pairs, got {intervals!r}") from None
    if not pairs:
        raise ValueError("intervals: at least one (b, c) interval is needed")

    tilde, hat = [], []
    for i, (b, c) in enumerate(pairs):
        Xt, y, _ = test_set(b, c, size, "tilde", seed + i, label, shape[0], WIDTH, dt)
        Xh, _, _ = test_set(b, c, size, "hat", seed + i, label, shape[0], WIDTH, dt)
        pred = predict(net, params, np.concatenate([Xt, Xh]), threads, engine)   # (S, 2 size)
        correct = pred == np.tile(y.astype(np.int64), 2)[None, :]          # (S, 2 size)
        tilde.append(correct[:, :size].mean(axis=1))
        hat.append(correct[:, size:].mean(axis=1))
    tilde = np.stack(tilde, axis=1).astype(np.float64)
    hat = np.stack(hat, axis=1).astype(np.float64)
    tilde.setflags(write=False)
    hat.setflags(write=False)
    return Table1(pairs, tilde, hat, size, seed, label)
