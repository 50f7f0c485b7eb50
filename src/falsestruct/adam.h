// Adam in TensorFlow 1's form (tf.train.AdamOptimizer / ApplyAdam):
//   m += (g - m) * (1 - beta1);  v += (g*g - v) * (1 - beta2);
//   theta -= lr_t * m / (sqrt(v) + eps),  lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t).
// The bias correction is folded into the step size, so eps is not bias-corrected (unlike
// PyTorch, whose eps is added to sqrt(v_hat)).
#pragma once
#include <math.h>
#include <stdint.h>
#include "config.h"
#include "fs_math.h"

namespace fs {

struct AdamHyper {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

// Step size of update number t (t = 1 for the first update), computed in double.
FS_HD FS_INLINE double adam_step_size(const AdamHyper& h, int64_t t) {
  const double td = static_cast<double>(t);
  return h.lr * sqrt(1.0 - pow(h.beta2, td)) / (1.0 - pow(h.beta1, td));
}

// Update number t's constants in T, and the update of one parameter (also used by kernels
// that keep parameters and moments in registers).
template <class T>
struct AdamStep {
  T lr_t, one_m_b1, one_m_b2, eps;
  FS_HD FS_INLINE AdamStep(const AdamHyper& h, T step_size)
      : lr_t(step_size), one_m_b1(static_cast<T>(1.0 - h.beta1)),
        one_m_b2(static_cast<T>(1.0 - h.beta2)), eps(static_cast<T>(h.eps)) {}
  FS_HD FS_INLINE void apply(T gp, T& theta, T& m, T& v) const {
    const T mp = m + (gp - m) * one_m_b1;
    const T vp = v + (gp * gp - v) * one_m_b2;
    m = mp;
    v = vp;
    theta -= lr_t * mp / (fs_sqrt(vp) + eps);
  }
};

template <class Block, class T>
FS_HD void adam_update(const Block& blk, const AdamHyper& h, int64_t t, const T* g, T* theta,
                       T* m, T* v, int64_t n_params) {
  const AdamStep<T> step(h, static_cast<T>(adam_step_size(h, t)));
  blk.map_1d(static_cast<int>(n_params), [=](int p) { step.apply(g[p], theta[p], m[p], v[p]); });
}

}  // namespace fs
