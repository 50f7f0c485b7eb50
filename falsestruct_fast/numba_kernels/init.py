"""Glorot-uniform initialisation with zero biases from Philox streams, bitwise the native
engine's (src/falsestruct/init.h): weight e of layer l of the network with seed s is
(2 u - 1) lim with u = uniform01(philox(s, STREAM_INIT, l, e_low, e_high)), drawn in float64
and rounded to theta's dtype; lim = sqrt(6 / (fan_in + fan_out)) (Keras glorot_uniform)."""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from ._jit import kernel

from .philox import STREAM_INIT, philox4x32, uniform01
from .shape import B_OFF, CONV2D, IN_C, KIND, KSIZE, MAXPOOL2, N_IN, OUT_C, W_OFF, layer_table


@kernel
def glorot_init(spec, seed, theta):
    """Initial parameters theta (P,) (float32 or float64) of the network with this seed."""
    layers = layer_table(spec)
    T = theta.dtype.type
    for l in range(layers.shape[0]):
        kind = layers[l, KIND]
        if kind == MAXPOOL2:
            continue
        taps = layers[l, KSIZE] * layers[l, KSIZE] if kind == CONV2D else 1
        fan_in = taps * layers[l, IN_C] if kind == CONV2D else layers[l, N_IN]
        fan_out = taps * layers[l, OUT_C]
        n_w = fan_in * layers[l, OUT_C]
        lim = math.sqrt(6.0 / float(fan_in + fan_out))
        w0 = layers[l, W_OFF]
        for e in range(n_w):
            r0, r1, _, _ = philox4x32(seed, STREAM_INIT, l, e & 0xFFFFFFFF, e >> 32)
            theta[w0 + e] = T((2.0 * uniform01(r0, r1) - 1.0) * lim)
        b0 = layers[l, B_OFF]
        for j in range(layers[l, OUT_C]):
            theta[b0 + j] = T(0)


@kernel(parallel=True)
def glorot_init_networks(spec, seeds, theta):
    """theta (S, P): network s initialised from seeds[s] (uint64), in parallel over networks."""
    for s_ in prange(seeds.shape[0]):
        s = np.int64(s_)  # prange(n) counts in uint64
        glorot_init(spec, seeds[s], theta[s])
