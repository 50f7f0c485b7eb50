// Max-pool 2 x 2, stride 2, 'same' (Keras/TensorFlow): output ceil(H / 2) x ceil(W / 2); on odd
// sizes the last window is clipped at the bottom/right edge. NHWC activations.
#pragma once
#include "executor.h"

namespace fs {

struct PoolGeometry {
  int B, H, W, C;
  FS_HD int out_h() const { return (H + 1) / 2; }
  FS_HD int out_w() const { return (W + 1) / 2; }
};

// Position (0..3, row-major in the window) of the first maximum of window (n, oh, ow), channel c.
// NaN propagates: a NaN is taken as the maximum, so divergence stays visible.
template <class T>
FS_HD FS_INLINE int pool_argmax(const PoolGeometry& g, const T* x, int n, int oh, int ow, int c,
                                T* max_out) {
  int best = 0;
  T m = x[(((int64_t)n * g.H + 2 * oh) * g.W + 2 * ow) * g.C + c];
  for (int q = 1; q < 4; ++q) {
    const int h = 2 * oh + q / 2, w = 2 * ow + q % 2;
    if (h >= g.H || w >= g.W) continue;
    const T v = x[(((int64_t)n * g.H + h) * g.W + w) * g.C + c];
    if (v > m || (v != v && m == m)) {
      m = v;
      best = q;
    }
  }
  *max_out = m;
  return best;
}

template <class Block, class T>
FS_HD void maxpool2_forward(const Block& blk, const PoolGeometry& g, const T* x, T* y) {
  const int OH = g.out_h(), OW = g.out_w();
  blk.map_2d(g.B * OH * OW, g.C, [=](int r, int c) {
    const int n = r / (OH * OW), oh = (r / OW) % OH, ow = r % OW;
    T m;
    pool_argmax(g, x, n, oh, ow, c, &m);
    y[(int64_t)r * g.C + c] = m;
  });
}

// dx = dy routed to the first maximum of each window (zero elsewhere), times relu'(x) when x is
// a ReLU output. Windows do not overlap, so each input element has at most one source.
template <class Block, class T>
FS_HD void maxpool2_backward_input(const Block& blk, const PoolGeometry& g, const T* x,
                                   const T* dy, T* dx, bool relu_input) {
  const int OH = g.out_h(), OW = g.out_w();
  blk.map_2d(g.B * g.H * g.W, g.C, [=](int r, int c) {
    const int n = r / (g.H * g.W), h = (r / g.W) % g.H, w = r % g.W;
    const int oh = h / 2, ow = w / 2;
    T m;
    const int best = pool_argmax(g, x, n, oh, ow, c, &m);
    const int64_t e = (int64_t)r * g.C + c;
    const bool routed = best == (h % 2) * 2 + (w % 2);
    dx[e] = routed && (!relu_input || x[e] > T(0)) ? dy[(((int64_t)n * OH + oh) * OW + ow) * g.C + c] : T(0);
  });
}

}  // namespace fs
