// Dense layer forward and backward, written once for every executor.
//
// Activations are stored feature-major: a[i * ld + n] is feature i of batch column n. Then
// every elementwise phase runs its lanes over the batch (contiguous on the CPU, coalesced on
// the GPU) whatever the layer width, and the weight gradient is a contiguous dot product.
// The row stride ld is B rounded up to kBatchLanes; columns n in [B, ld) are kept at exactly
// zero, so phases run over whole SIMD vectors and dot products include only zero padding.
#pragma once
#include "config.h"

namespace fs {

constexpr int kBatchLanes = 16;
FS_HD FS_INLINE int padded_batch(int B) { return (B + kBatchLanes - 1) / kBatchLanes * kBatchLanes; }

// y[j][n] = act(b[j] + sum_i W[i][j] * x[i][n]);  W is (n_in, n_out) row-major (Keras).
template <class Block, class T>
FS_HD void dense_forward(const Block& blk, const T* W, const T* b, const T* x, T* y,
                         int n_in, int n_out, int B, int ld, bool relu) {
  blk.map_2d_sum(
      n_out, ld, n_in, [=](int j, int) { return b[j]; },
      [=](int j, int n, int i) { return W[i * n_out + j] * x[i * ld + n]; },
      [=](int j, int n, T s) {
        // NaN passes through the ReLU (s < 0 is false), so divergence stays visible.
        y[j * ld + n] = n >= B ? T(0) : (relu && s < T(0)) ? T(0) : s;
      });
}

// dx[i][n] = sum_j W[i][j] * dy[j][n], times relu'(x) when the input x is a ReLU output
// (x > 0 exactly where the pre-activation was > 0).
template <class Block, class T>
FS_HD void dense_backward_input(const Block& blk, const T* W, const T* x, const T* dy, T* dx,
                                int n_in, int n_out, int ld, bool relu_input) {
  // Padding columns stay zero: dy is zero there.
  blk.map_2d_sum(
      n_in, ld, n_out, [](int, int) { return T(0); },
      [=](int i, int n, int j) { return W[i * n_out + j] * dy[j * ld + n]; },
      [=](int i, int n, T s) { dx[i * ld + n] = (!relu_input || x[i * ld + n] > T(0)) ? s : T(0); });
}

// Pairwise tree over the kBatchLanes partial sums (fixed order on every executor).
template <class T>
FS_HD FS_INLINE T tree_sum_lanes(T* acc) {
  static_assert(kBatchLanes == 16, "tree below is written for 16 lanes");
  FS_SIMD
  for (int q = 0; q < 8; ++q) acc[q] += acc[q + 8];
  FS_SIMD
  for (int q = 0; q < 4; ++q) acc[q] += acc[q + 4];
  return (acc[0] + acc[2]) + (acc[1] + acc[3]);
}

// sum_n term(n) over ld (a multiple of kBatchLanes) columns: kBatchLanes partial sums, then a
// fixed pairwise tree, so the order (and result) is the same on every executor.
template <class T, class Term>
FS_HD FS_INLINE T padded_sum(int ld, Term term) {
  T acc[kBatchLanes];
  FS_SIMD
  for (int q = 0; q < kBatchLanes; ++q) acc[q] = term(q);
  for (int n0 = kBatchLanes; n0 < ld; n0 += kBatchLanes) {
    FS_SIMD
    for (int q = 0; q < kBatchLanes; ++q) acc[q] += term(n0 + q);
  }
  return tree_sum_lanes(acc);
}

// dW[i][j] = sum_n x[i][n] * dy[j][n];  db[j] = sum_n dy[j][n]  (zero padding included).
template <class Block, class T>
FS_HD void dense_backward_params(const Block& blk, const T* x, const T* dy, T* dW, T* db,
                                 int n_in, int n_out, int ld) {
  blk.reduce_map_2d(n_in, n_out,
                    [=](int i, int j) {
                      const T* xi = x + i * ld;
                      const T* dyj = dy + j * ld;
                      dW[i * n_out + j] = padded_sum<T>(ld, [=](int n) { return xi[n] * dyj[n]; });
                    });
  blk.reduce_map_1d(n_out, [=](int j) {
    const T* dyj = dy + j * ld;
    db[j] = padded_sum<T>(ld, [=](int n) { return dyj[n]; });
  });
}

}  // namespace fs
