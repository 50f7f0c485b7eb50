// Dense layer forward and backward, written once for every executor.
//
// Activations are stored sample-major, exactly like the data: a[n * width + j] is unit j of
// batch row n (no padding). Each product is a matrix-product phase (map_2d_product: lanes run
// over a wide unit axis with unit stride, the summation index hoisted outside, a broadcast
// times a contiguous vector, no horizontal reductions):
//   forward         y[n][:]  += x[n][i] * W[i][:]      (lanes over output units)
//   input grad      dx[n][:] += dy[n][j] * Wt[j][:]    (W transposed first, lanes over inputs;
//                   a dot product over outputs per element when the inputs are few)
//   weight grad     dW[i][:] += x[n][i] * dy[n][:]     (lanes over output units)
//   bias grad       db[:]    += 1 * dy[n][:]
// When the output side is narrow (e.g. the single logit of a binary classifier) lanes over
// output units would be mostly idle, so the forward becomes one dot product per row and the
// weight gradient takes lanes over inputs:
//   forward         y[n][j] = dot(x[n][:], W[:][j])    (below kNarrowOutputs outputs)
//   weight grad     dW[:][j] += dy[n][j] * x[n][:]     (below kShortOutputs outputs)
// The choice depends only on the shape, and every executor sums each element in the same
// order (segment_sum_element, lane_dot_rows); the host may round a product before adding it
// where CUDA fuses it (results agree to rounding, and bit for bit across host thread counts).
#pragma once
#include <math.h>
#include "config.h"
#include "executor.h"
#include "fs_math.h"

namespace fs {

// Layers with fewer output units than this run their products with lanes over input units.
constexpr int kNarrowOutputs = 8;
FS_HD FS_INLINE bool narrow_outputs(int n_out) { return n_out < kNarrowOutputs; }

// The weight gradient takes lanes over input units for layers with fewer output units than
// this: lanes over so few outputs would leave most of a vector idle.
constexpr int kShortOutputs = 32;
FS_HD FS_INLINE bool short_outputs(int n_out) { return n_out < kShortOutputs; }

// A width known at compile time. Narrow layers index W[i * n_out + j] (and dW) with lanes over
// i; with a runtime n_out that is a strided gather or scatter, with n_out = Width<1> contiguous.
template <int N>
struct Width {
  FS_HD constexpr operator int() const { return N; }
};

// Calls body(n_out) with n_out as Width<1> when it is 1 (one logit: the common case), else as
// an int.
template <class Body>
FS_HD FS_INLINE void with_narrow_width(int n_out, Body&& body) {
  if (n_out == 1) body(Width<1>{});
  else body(n_out);
}

// y[n][j] = act(b[j] + sum_i x[n][i] * W[i][j]);  W is (n_in, n_out) row-major (Keras).
template <class Block, class T>
FS_HD void dense_forward(const Block& blk, const T* W, const T* b, const T* x, T* y, int n_in,
                         int n_out, int B, bool relu) {
  if (narrow_outputs(n_out)) {
    with_narrow_width(n_out, [&](auto n_out) {
      blk.map_2d_dot(
          B, n_out, n_in, [=](int n, int j, int i) { return x[(int64_t)n * n_in + i] * W[i * n_out + j]; },
          [=](int n, int j, T s) { y[(int64_t)n * n_out + j] = relu_if(relu, b[j] + s); });
    });
  } else {
    map_2d_product(
        blk, B, n_out, n_in, 1, W, n_out, [=](int n) { return x + (int64_t)n * n_in; },
        [=](int n, int j, T s) { y[(int64_t)n * n_out + j] = relu_if(relu, b[j] + s); });
  }
}

// dx[n][i] = sum_j dy[n][j] * W[i][j], times relu'(x) when the input x is a ReLU output
// (x > 0 exactly where the pre-activation was > 0). Lanes run over i against the rows of W
// transposed (Wt: scratch of n_in * n_out; W itself when n_out = 1), unless the inputs are few
// and the outputs are not (a first layer's input gradient, for DeepFool): then one dot product
// over j per element.
template <class Block, class T>
FS_HD void dense_backward_input(const Block& blk, const T* W, T* Wt, const T* x, const T* dy,
                                T* dx, int n_in, int n_out, int B, bool relu_input) {
  auto store = [=](int n, int i, T s) {
    const int64_t e = (int64_t)n * n_in + i;
    dx[e] = relu_grad_if(relu_input, x[e], s);
  };
  if (short_outputs(n_in) && !short_outputs(n_out)) {
    blk.map_2d_dot(
        B, n_in, n_out,
        [=](int n, int i, int j) { return dy[(int64_t)n * n_out + j] * W[(int64_t)i * n_out + j]; }, store);
    return;
  }
  const T* w_rows = W;
  if (n_out > 1) {
    blk.map_2d(n_out, n_in, [=](int j, int i) { Wt[(int64_t)j * n_in + i] = W[(int64_t)i * n_out + j]; });
    w_rows = Wt;
  }
  map_2d_product(blk, B, n_in, n_out, 1, w_rows, n_in, [=](int n) { return dy + (int64_t)n * n_out; }, store);
}

// dW[i][j] = sum_n x[n][i] * dy[n][j];  db[j] = sum_n dy[n][j]  (sums over n in order).
template <class Block, class T>
FS_HD void dense_backward_params(const Block& blk, const T* x, const T* dy, T* dW, T* db,
                                 int n_in, int n_out, int B) {
  if (short_outputs(n_out)) {
    with_narrow_width(n_out, [&](auto n_out) {
      map_2d_product(
          blk, n_out, n_in, B, n_out, x, n_in, [=](int j) { return dy + j; },
          [=](int j, int i, T s) { dW[(int64_t)i * n_out + j] = s; });
    });
  } else {
    map_2d_product(
        blk, n_in, n_out, B, n_in, dy, n_out, [=](int i) { return x + i; },
        [=](int i, int j, T s) { dW[(int64_t)i * n_out + j] = s; });
  }
  map_column_sums(blk, n_out, B, dy, n_out, [=](int j, T s) { db[j] = s; });
}

}  // namespace fs
