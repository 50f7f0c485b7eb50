// Glorot-uniform initialisation with zero biases, drawn from the counter-based generator:
// weight e of layer l of the network with seed s is a function of (s, l, e) alone.
#pragma once
#include <math.h>
#include <stdint.h>
#include "net_shape.h"
#include "philox.h"

namespace fs {

// W ~ U(-lim, lim), lim = sqrt(6 / (fan_in + fan_out)) (Keras glorot_uniform: for a conv
// kernel fan_in = k*k*c_in, fan_out = k*k*c_out); drawn in double, then rounded to T so float32
// and float64 networks of one seed start from the same point.
template <class T>
FS_HD void glorot_uniform_init(const NetShape& s, uint64_t seed, T* theta) {
  for (int l = 0; l < s.n_layers; ++l) {
    const Layer& L = s.layer[l];
    if (L.kind == LayerKind::MaxPool2) continue;
    const int64_t taps = L.kind == LayerKind::Conv2D ? (int64_t)L.k * L.k : 1;
    const int64_t fan_in = L.kind == LayerKind::Conv2D ? taps * L.in_c : s.n_in(l);
    const int64_t fan_out = taps * L.out_c;
    const int64_t n_w = fan_in * L.out_c;
    const double lim = sqrt(6.0 / static_cast<double>(fan_in + fan_out));
    T* W = theta + s.w_offset[l];
    for (int64_t e = 0; e < n_w; ++e) {
      const U32x4 r = philox4x32(seed, kStreamInit, static_cast<uint32_t>(l),
                                 static_cast<uint32_t>(e), static_cast<uint32_t>(e >> 32));
      W[e] = static_cast<T>((2.0 * uniform01(r) - 1.0) * lim);
    }
    T* b = theta + s.b_offset[l];
    for (int j = 0; j < L.out_c; ++j) b[j] = T(0);
  }
}

}  // namespace fs
