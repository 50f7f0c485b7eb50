// 2-D convolution, k x k (odd), stride 1, 'same' zero padding, NHWC activations and HWIO
// kernels (Keras layouts), written once for every executor as segment-sum phases (implicit
// matrix products, executor.h).
#pragma once
#include "executor.h"
#include "fs_math.h"

namespace fs {

struct ConvGeometry {
  int B, H, W, Cin, Cout, k;
  FS_HD int pad() const { return k / 2; }
  FS_HD int padded_w() const { return W + 2 * (k / 2); }
};

// xp[n][h][w + p][c] = x[n][h][w][c], with p zero columns on both sides: zero padding along
// w is materialised, so a tap's run of channels is the same for every pixel of an image row;
// taps above or below the image are skipped as empty segments instead.
template <class Block, class T>
FS_HD void conv2d_pad_columns(const Block& blk, const ConvGeometry& g, const T* x, int C, T* xp) {
  const int p = g.pad(), Wp = g.padded_w();
  blk.map_2d(g.B * g.H * Wp, C, [=](int pixel, int c) {
    const int row = pixel / Wp, w = pixel % Wp - p;
    xp[(int64_t)pixel * C + c] = (w >= 0 && w < g.W) ? x[((int64_t)row * g.W + w) * C + c] : T(0);
  });
}

// y[n][h][w][co] = act(b[co] + sum_{kh, kw, ci} x[n][h + kh - p][w + kw - p][ci] * K[kh][kw][ci][co]):
// rows are output pixels, grouped by image row; segments are the k * k taps, each a run of Cin
// channels of the padded input against Cin rows of the kernel. xp: scratch for the padded x.
template <class Block, class T>
FS_HD void conv2d_forward(const Block& blk, const ConvGeometry& g, const T* K, const T* b,
                          const T* x, T* xp, T* y, bool relu) {
  conv2d_pad_columns(blk, g, x, g.Cin, xp);
  const int p = g.pad(), Wp = g.padded_w();
  blk.map_2d_segment_sum(
      SegmentSumShape{g.B * g.H * g.W, g.Cout, g.W, g.k * g.k, 1, g.Cout},
      [=](int r) -> const T* { return xp + ((int64_t)(r / g.W) * Wp + r % g.W) * g.Cin; },
      [=](int image_row, int tap) {
        const int kh = tap / g.k, kw = tap % g.k, ih = image_row % g.H + kh - p;
        const bool inside = ih >= 0 && ih < g.H;
        return Segment<T>{inside ? ((int64_t)(kh - p) * Wp + kw) * g.Cin : 0,
                          K + (int64_t)tap * g.Cin * g.Cout, inside ? g.Cin : 0};
      },
      [=](int r, int co, T s) { y[(int64_t)r * g.Cout + co] = relu_if(relu, b[co] + s); });
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
// relu'(x) when x is a ReLU output: the forward product with the kernel flipped and transposed
// (Kt from conv2d_transpose_kernel). dyp: scratch for the padded dy.
template <class Block, class T>
FS_HD void conv2d_backward_input(const Block& blk, const ConvGeometry& g, const T* Kt,
                                 const T* x, const T* dy, T* dyp, T* dx, bool relu_input) {
  conv2d_pad_columns(blk, g, dy, g.Cout, dyp);
  const int p = g.pad(), Wp = g.padded_w();
  blk.map_2d_segment_sum(
      SegmentSumShape{g.B * g.H * g.W, g.Cin, g.W, g.k * g.k, 1, g.Cin},
      [=](int r) -> const T* { return dyp + ((int64_t)(r / g.W) * Wp + r % g.W) * g.Cout; },
      [=](int image_row, int tap) {
        const int kh = tap / g.k, kw = tap % g.k, oh = image_row % g.H - kh + p;
        const bool inside = oh >= 0 && oh < g.H;
        return Segment<T>{inside ? ((int64_t)(p - kh) * Wp + 2 * p - kw) * g.Cout : 0,
                          Kt + (int64_t)tap * g.Cout * g.Cin, inside ? g.Cout : 0};
      },
      [=](int r, int ci, T s) {
        const int64_t e = (int64_t)r * g.Cin + ci;
        dx[e] = relu_grad_if(relu_input, x[e], s);
      });
}

// dK[kh][kw][ci][co] = sum_{n, h, w} x[n][h + kh - p][w + kw - p][ci] * dy[n][h][w][co];
// db[co] = sum_{n, h, w} dy[n][h][w][co]. Rows are (kh, kw, ci), grouped by kh; segments are
// the output image rows (n, h): a run of the padded x along w (stride Cin) against the rows of
// dy. xp: scratch for the padded x.
template <class Block, class T>
FS_HD void conv2d_backward_params(const Block& blk, const ConvGeometry& g, const T* x,
                                  const T* dy, T* xp, T* dK, T* db) {
  conv2d_pad_columns(blk, g, x, g.Cin, xp);
  const int p = g.pad(), Wp = g.padded_w(), taps_row = g.k * g.Cin;
  blk.map_2d_segment_sum(
      SegmentSumShape{g.k * taps_row, g.Cout, taps_row, g.B * g.H, g.Cin, g.Cout},
      [=](int r) -> const T* { return xp + r % taps_row; },
      [=](int kh, int image_row) {
        const int ih = image_row % g.H + kh - p;
        const bool inside = ih >= 0 && ih < g.H;
        const int64_t x_row = (int64_t)(image_row - image_row % g.H + ih) * Wp * g.Cin;
        return Segment<T>{inside ? x_row : 0, dy + (int64_t)image_row * g.W * g.Cout,
                          inside ? g.W : 0};
      },
      [=](int row, int co, T s) { dK[(int64_t)row * g.Cout + co] = s; });
  map_column_sums(blk, g.Cout, g.B * g.H * g.W, dy, g.Cout, [=](int co, T s) { db[co] = s; });
}

}  // namespace fs
