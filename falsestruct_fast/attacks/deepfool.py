"""DeepFool (Moosavi-Dezfooli et al. 2016) on the native engine, batched over networks and points."""
from __future__ import annotations

import numpy as np

from .. import _validate as V
from .._native_loader import _native
from .. import device_arrays
from ..network import (INT32_MAX, Network, _check_eval_memory, _threads, check_net, data_arrays,
                       engine_arrays, flatten)
from ..progress import progress_callback
from .result import AttackResult

# The documented range of DeepFool's overshoot eta: the returned step is (1 + eta) r~, so
# eta = 1 already doubles it (the paper and Foolbox use 0.02).
MAX_OVERSHOOT = 1.0
NORMS = {2: False, "2": False, "l2": False, np.inf: True, "inf": True, "linf": True}
VARIANTS = ("slides", "foolbox")


def norm_order(norm) -> float:
    """2 or inf from the accepted spellings (2, "l2", np.inf, "inf", "linf")."""
    try:
        linf = NORMS[norm]
    except (KeyError, TypeError):
        raise ValueError(f"norm: expected 2 or inf, got {norm!r}") from None
    return np.inf if linf else 2


def box(clip) -> tuple[float, float] | None:
    """Validated (lo, hi) box or None."""
    if clip is None:
        return None
    try:
        lo, hi = (float(v) for v in clip)
    except (TypeError, ValueError):
        raise TypeError(f"clip: expected None or a pair (lo, hi), got {clip!r}") from None
    if not lo < hi:
        raise ValueError(f"clip: expected lo < hi, got ({lo}, {hi})")
    return lo, hi


def deepfool(net: Network, params, X, overshoot: float = 0.02, max_iter: int = 50, norm=2, *,
             candidates: int | None = None, clip=None, variant: str = "slides",
             threads: int | None = None, progress=False, engine: str = "native") -> AttackResult:
    """DeepFool perturbations of every point for every network, in one engine call.

    The label of a point is the network's own prediction at x ([z > 0] for one logit,
    argmax otherwise), not the true label. Binary nets (one logit f) follow the slides:
    linearise at x_i = x + r~, step ``r_i = -f(x_i) / ||grad f(x_i)||^2 * grad f(x_i)``, stop
    when the label of x + (1 + overshoot) r~ differs from that of x, and return
    (1 + overshoot) r~. Multiclass nets use the original algorithm: each step goes to the
    nearest linearised boundary among the candidate classes. ``norm=inf`` measures distances
    with ||grad||_1 and steps along sign(grad).

    Parameters
    ----------
    net : MLP or CNN
    params : Params (S networks), float32 or float64
    X : array (N, *input_shape) shared by all networks, or (S, N, *input_shape); the params'
        dtype. Points with NaN/inf get status NON_FINITE (no exception).
    overshoot : float in [0, 1]
        eta; the returned perturbation is (1 + eta) r~.
    max_iter : int in [1, 2**31 - 1]
        Steps per point before giving up (status MAX_ITER).
    norm : 2 or inf
    candidates : int, optional
        Multiclass: the classes tried at each step are the `candidates` most likely classes
        other than the original one (ranked at x). Default: all K - 1.
    clip : (lo, hi), optional
        Box constraint: every evaluated point is clipped to [lo, hi] (X must lie inside it).
        Off by default.
    variant : "slides" or "foolbox"
        "foolbox" reproduces Foolbox 3 (and the original LTS4 code): it linearises and checks
        at x + (1 + eta) r~, adds 1e-4 to each step's distance and 1e-8 to gradient norms. An
        absolute 1e-4 is not small where radii are ~1e-4 (Experiment I), so the default is the
        slides' form.
    threads : int in [1, 1024], optional
        Threads over networks and tiles of points (default: all cores).
    progress : bool or callable
        True: a progress line on stderr for long runs; a callable gets ``(points_done, total)``.
    engine : "native" (default), "numba" or "cuda" (params and X may then be CuPy arrays; the
        result's arrays are CuPy arrays exactly when they are)

    Returns
    -------
    AttackResult with perturbation (S, N, *input_shape), norm, relative_norm, iterations,
    status and flipped (S, N). A point counts as flipped only if the label of x +
    perturbation differs from the label of x.
    """
    check_net(net)
    eng, params, arrays, on_device = engine_arrays(engine, params, X=X)
    flat = flatten(net, params)
    xp = device_arrays.array_module(flat)
    S, K = flat.shape[0], net.n_logits
    overshoot = V.real(overshoot, "overshoot", minimum=0.0, maximum=MAX_OVERSHOOT)
    max_iter = V.integer(max_iter, "max_iter", 1, INT32_MAX)
    norm_ord = norm_order(norm)
    V.option(variant, "variant", VARIANTS)
    if K == 1:
        if candidates not in (None, 1):
            raise ValueError(f"candidates: a single-logit network has 1 candidate, got {candidates}")
        candidates = 1
    else:
        candidates = K - 1 if candidates is None else V.integer(candidates, "candidates", 1, K - 1)
    lo_hi = box(clip)
    n_threads = _threads(threads)
    Xf, _ = data_arrays(net, S, flat.dtype, arrays["X"], check_finite=False, xp=xp)
    N = Xf.shape[-2]
    if lo_hi is not None:
        with np.errstate(invalid="ignore"):
            outside = (Xf < lo_hi[0]) | (Xf > lo_hi[1])
        if outside.any():
            raise ValueError(f"X: {int(outside.any(axis=-1).sum())} points lie outside the clip box "
                             f"[{lo_hi[0]}, {lo_hi[1]}]")
    # the perturbation, its float64 copy for the norms, iterations and status
    _check_eval_memory(net, flat, N, 3 * net.n_inputs + 4, threads, "deepfool")
    pert = xp.empty((S, N, net.n_inputs), dtype=flat.dtype)
    iters = xp.empty((S, N), dtype=np.int32)
    status = xp.empty((S, N), dtype=np.int32)
    callback = progress_callback(progress, "deepfool", "points")
    eng.deepfool(net, flat, Xf, pert, iters, status, float(overshoot), max_iter,
                 norm_ord == np.inf, candidates, variant == "foolbox", lo_hi, n_threads, callback)
    # the norms and the overflow check of the result are computed on the host
    Xf, pert, iters, status = (device_arrays.to_host(a) for a in (Xf, pert, iters, status))
    pert = pert.reshape((S, N) + tuple(net.input_shape))
    result = AttackResult.build(Xf, pert, iters, status, norm_ord, "deepfool")
    return result.to_device() if on_device else result
