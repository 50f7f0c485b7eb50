// Glorot-uniform initialisation with zero biases, drawn from the counter-based generator:
// weight e of layer l of the network with seed s is a function of (s, l, e) alone.
#pragma once
#include <math.h>
#include <stdint.h>
#include "mlp_shape.h"
#include "philox.h"

namespace fs {

// W ~ U(-lim, lim), lim = sqrt(6 / (fan_in + fan_out)); drawn in double, then rounded to T so
// float32 and float64 networks of one seed start from the same point.
template <class T>
FS_HD void glorot_uniform_init(const MlpShape& s, uint64_t seed, T* theta) {
  for (int l = 0; l < s.n_layers; ++l) {
    const int64_t n_w = (int64_t)s.n_in(l) * s.n_out(l);
    const double lim = sqrt(6.0 / (s.n_in(l) + s.n_out(l)));
    T* W = theta + s.w_offset[l];
    for (int64_t e = 0; e < n_w; ++e) {
      const U32x4 r = philox4x32(seed, kStreamInit, static_cast<uint32_t>(l),
                                 static_cast<uint32_t>(e), static_cast<uint32_t>(e >> 32));
      W[e] = static_cast<T>((2.0 * uniform01(r) - 1.0) * lim);
    }
    T* b = theta + s.b_offset[l];
    for (int j = 0; j < s.n_out(l); ++j) b[j] = T(0);
  }
}

}  // namespace fs
