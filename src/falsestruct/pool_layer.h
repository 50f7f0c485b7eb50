// Max-pool 2 x 2, stride 2, 'same' (Keras/TensorFlow): output ceil(H / 2) x ceil(W / 2); on odd
// sizes the last window is clipped at the bottom/right edge. NHWC activations.
#pragma once
#include "executor.h"
#include "fs_math.h"

namespace fs {

struct PoolGeometry {
  int B, H, W, C;
  FS_HD int out_h() const { return (H + 1) / 2; }
  FS_HD int out_w() const { return (W + 1) / 2; }
};

// Position (0..3, row-major in the window) of the first maximum of window (n, oh, ow), channel c.
// NaN propagates: a NaN is taken as the maximum, so divergence stays visible. Branch-free
// (selects, not jumps): on real data which of the four wins is unpredictable.
template <class T>
FS_HD FS_INLINE int pool_argmax(const PoolGeometry& g, const T* x, int n, int oh, int ow, int c,
                                T* max_out) {
  const T* corner = x + (((int64_t)n * g.H + 2 * oh) * g.W + 2 * ow) * g.C + c;
  const bool right = 2 * ow + 1 < g.W, below = 2 * oh + 1 < g.H;
  int best = 0;
  T m = corner[0];
  for (int q = 1; q < 4; ++q) {
    const bool inside = (q % 2 == 0 || right) && (q < 2 || below);
    const T v = corner[inside ? ((q / 2) * g.W + q % 2) * g.C : 0];  // always a valid load
    const bool take = inside && (v > m || (v != v && m == m));
    m = take ? v : m;
    best = take ? q : best;
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
// a ReLU output. Windows do not overlap and cover the input, so each window writes its own
// (up to) four input positions.
template <class Block, class T>
FS_HD void maxpool2_backward_input(const Block& blk, const PoolGeometry& g, const T* x,
                                   const T* dy, T* dx, bool relu_input) {
  const int OH = g.out_h(), OW = g.out_w();
  blk.map_2d(g.B * OH * OW, g.C, [=](int r, int c) {
    const int n = r / (OH * OW), oh = (r / OW) % OH, ow = r % OW;
    T m;
    const int best = pool_argmax(g, x, n, oh, ow, c, &m);
    const T grad = dy[(int64_t)r * g.C + c];
    const int64_t e0 = (((int64_t)n * g.H + 2 * oh) * g.W + 2 * ow) * g.C + c;
    for (int q = 0; q < 4; ++q) {
      // A position outside the input (odd sizes) rewrites position 0 with the same value
      // instead of skipping: no branch in the channel loop.
      const bool inside = 2 * oh + q / 2 < g.H && 2 * ow + q % 2 < g.W;
      const int qq = inside ? q : 0;
      const int64_t e = e0 + ((qq / 2) * g.W + qq % 2) * g.C;
      dx[e] = qq == best ? relu_grad_if(relu_input, x[e], grad) : T(0);
    }
  });
}

}  // namespace fs
