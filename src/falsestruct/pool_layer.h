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
// (selects, not jumps): on real data which of the four wins is unpredictable. A position
// outside the input (a clipped window on odd sizes) reads an earlier position of the window
// again, which can never be taken (it is not greater than the maximum so far, and a NaN
// there is already the maximum), so the lanes need no per-window condition.
template <class T>
FS_HD FS_INLINE int pool_argmax(const PoolGeometry& g, const T* x, int n, int oh, int ow, int c,
                                T* max_out) {
  const T* corner = x + (((int64_t)n * g.H + 2 * oh) * g.W + 2 * ow) * g.C + c;
  const int64_t right = 2 * ow + 1 < g.W ? g.C : 0;
  const int64_t below = 2 * oh + 1 < g.H ? (int64_t)g.W * g.C : 0;
  const int64_t offset[3] = {right, below, below + right};
  int best = 0;
  T m = corner[0];
  for (int q = 1; q < 4; ++q) {
    const T v = corner[offset[q - 1]];
    const bool take = v > m || (v != v && m == m);
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
// a ReLU output. Elements are the windows' (window, c): each finds its maximum once and writes
// its four positions, every load and store running contiguously over the channel lanes. A
// clipped window's positions outside the input alias its first position, which is written
// last (an aliased position is never the maximum, so it writes 0 there first).
template <class Block, class T>
FS_HD void maxpool2_backward_input(const Block& blk, const PoolGeometry& g, const T* x,
                                   const T* dy, T* dx, bool relu_input) {
  const int OH = g.out_h(), OW = g.out_w();
  blk.map_2d(g.B * OH * OW, g.C, [=](int r, int c) {
    const int n = r / (OH * OW), oh = (r / OW) % OH, ow = r % OW;
    T m;
    const int best = pool_argmax(g, x, n, oh, ow, c, &m);
    const T grad = relu_grad_if(relu_input, m, dy[(int64_t)r * g.C + c]);
    T* corner = dx + (((int64_t)n * g.H + 2 * oh) * g.W + 2 * ow) * g.C + c;
    const int64_t right = 2 * ow + 1 < g.W ? g.C : 0;
    const int64_t below = 2 * oh + 1 < g.H ? (int64_t)g.W * g.C : 0;
    corner[below + right] = best == 3 ? grad : T(0);
    corner[below] = best == 2 ? grad : T(0);
    corner[right] = best == 1 ? grad : T(0);
    corner[0] = best == 0 ? grad : T(0);
  });
}

}  // namespace fs
