"""Adam in TensorFlow 1's form (tf.train.AdamOptimizer), as the native engine (adam.h):
m += (g - m)(1 - beta1);  v += (g^2 - v)(1 - beta2);  theta -= lr_t m / (sqrt(v) + eps),
lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t) computed in float64 (eps not bias-corrected)."""
from __future__ import annotations

import math

from ._jit import kernel


@kernel
def adam_step_size(lr, beta1, beta2, t):
    """The folded step size lr_t of update number t (t = 1 for the first update), float64."""
    td = float(t)
    return lr * math.sqrt(1.0 - beta2 ** td) / (1.0 - beta1 ** td)


@kernel
def adam_update(lr, beta1, beta2, eps, t, g, theta, m, v):
    """Update number t (>= 1) of theta, m, v (P,) in place from the gradient g (P,); all of one
    dtype, the hyper-parameters floats (rounded to that dtype, as natively)."""
    T = theta.dtype.type
    lr_t = T(adam_step_size(lr, beta1, beta2, t))
    one_m_b1 = T(1.0 - beta1)
    one_m_b2 = T(1.0 - beta2)
    e = T(eps)
    for p in range(theta.shape[0]):
        gp = g[p]
        mp = m[p] + (gp - m[p]) * one_m_b1
        vp = v[p] + (gp * gp - v[p]) * one_m_b2
        m[p] = mp
        v[p] = vp
        theta[p] -= lr_t * mp / (math.sqrt(vp) + e)
