// 2-D convolution, k x k (odd), stride 1, 'same' zero padding, NHWC activations and HWIO
// kernels (Keras layouts), written once for every executor as segment-sum phases: each output
// element sums over the k * k kernel taps (segments), each tap a run of channels.
#pragma once
#include "executor.h"

namespace fs {

struct ConvGeometry {
  int B, H, W, Cin, Cout, k;
  FS_HD int pad() const { return k / 2; }
  FS_HD int64_t pixel(int n, int h, int w) const { return ((int64_t)n * H + h) * W + w; }
};

// y[n][h][w][co] = act(b[co] + sum_{kh, kw, ci} x[n][h + kh - p][w + kw - p][ci] * K[kh][kw][ci][co]).
template <class Block, class T>
FS_HD void conv2d_forward(const Block& blk, const ConvGeometry& g, const T* K, const T* b,
                          const T* x, T* y, bool relu) {
  const int HW = g.H * g.W, p = g.pad();
  blk.map_2d_segment_sum(
      g.B * HW, g.Cout, g.k * g.k, g.Cout, [=](int, int co) { return b[co]; },
      [=](int r, int tap) {
        const int n = r / HW, h = (r / g.W) % g.H, w = r % g.W;
        const int ih = h + tap / g.k - p, iw = w + tap % g.k - p;
        const bool inside = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
        return Segment<T>{inside ? x + g.pixel(n, ih, iw) * g.Cin : x,
                          K + (int64_t)tap * g.Cin * g.Cout, 1, inside ? g.Cin : 0};
      },
      [=](int r, int co, T s) { y[(int64_t)r * g.Cout + co] = (relu && s < T(0)) ? T(0) : s; });
}

// Kt[tap][co][ci] = K[tap][ci][co]: the kernel with channels swapped, so the input gradient is
// again a product with contiguous rows.
template <class Block, class T>
FS_HD void conv2d_transpose_kernel(const Block& blk, const ConvGeometry& g, const T* K, T* Kt) {
  const int taps = g.k * g.k;
  blk.map_2d(taps * g.Cout, g.Cin, [=](int tc, int ci) {
    const int tap = tc / g.Cout, co = tc % g.Cout;
    Kt[(int64_t)tc * g.Cin + ci] = K[((int64_t)tap * g.Cin + ci) * g.Cout + co];
  });
}

// dx[n][h][w][ci] = sum_{kh, kw, co} dy[n][h - kh + p][w - kw + p][co] * K[kh][kw][ci][co], times
// relu'(x) when x is a ReLU output. Kt from conv2d_transpose_kernel.
template <class Block, class T>
FS_HD void conv2d_backward_input(const Block& blk, const ConvGeometry& g, const T* Kt,
                                 const T* x, const T* dy, T* dx, bool relu_input) {
  const int HW = g.H * g.W, p = g.pad();
  blk.map_2d_segment_sum(
      g.B * HW, g.Cin, g.k * g.k, g.Cin, [](int, int) { return T(0); },
      [=](int r, int tap) {
        const int n = r / HW, h = (r / g.W) % g.H, w = r % g.W;
        const int oh = h - tap / g.k + p, ow = w - tap % g.k + p;
        const bool inside = oh >= 0 && oh < g.H && ow >= 0 && ow < g.W;
        return Segment<T>{inside ? dy + g.pixel(n, oh, ow) * g.Cout : dy,
                          Kt + (int64_t)tap * g.Cout * g.Cin, 1, inside ? g.Cout : 0};
      },
      [=](int r, int ci, T s) {
        const int64_t e = (int64_t)r * g.Cin + ci;
        dx[e] = (!relu_input || x[e] > T(0)) ? s : T(0);
      });
}

// dK[kh][kw][ci][co] = sum_{n, h, w} x[n][h + kh - p][w + kw - p][ci] * dy[n][h][w][co];
// db[co] = sum_{n, h, w} dy[n][h][w][co]. Segments are the output image rows (n, h): a run of
// x along w (stride Cin) against the rows of dy.
template <class Block, class T>
FS_HD void conv2d_backward_params(const Block& blk, const ConvGeometry& g, const T* x,
                                  const T* dy, T* dK, T* db) {
  const int p = g.pad();
  blk.map_2d_segment_sum(
      g.k * g.k * g.Cin, g.Cout, g.B * g.H, g.Cout, [](int, int) { return T(0); },
      [=](int row, int seg) {
        const int tap = row / g.Cin, ci = row % g.Cin, kh = tap / g.k, kw = tap % g.k;
        const int n = seg / g.H, h = seg % g.H, ih = h + kh - p;
        // output columns w whose input column w + kw - p lies inside the image
        const int w0 = p - kw > 0 ? p - kw : 0;
        const int w1 = g.W + p - kw < g.W ? g.W + p - kw : g.W;
        if (ih < 0 || ih >= g.H || w1 <= w0) return Segment<T>{x, dy, g.Cin, 0};
        return Segment<T>{x + g.pixel(n, ih, w0 + kw - p) * g.Cin + ci,
                          dy + g.pixel(n, h, w0) * g.Cout, g.Cin, w1 - w0};
      },
      [=](int row, int co, T s) { dK[(int64_t)row * g.Cout + co] = s; });
  blk.map_2d_sum(
      1, g.Cout, g.B * g.H * g.W, [](int, int) { return T(0); },
      [=](int, int co, int pix) { return dy[(int64_t)pix * g.Cout + co]; },
      [=](int, int co, T s) { db[co] = s; });
}

}  // namespace fs
