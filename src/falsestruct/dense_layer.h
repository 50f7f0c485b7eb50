// Dense layer forward and backward, written once for every executor.
//
// Activations are stored feature-major: a[i * B + n] is feature i of batch column n. Then
// every elementwise phase runs its lanes over the batch (contiguous on the CPU, coalesced on
// the GPU) whatever the layer width, and the weight gradient is a contiguous dot product.
#pragma once
#include "config.h"

namespace fs {

// y[j][n] = act(b[j] + sum_i W[i][j] * x[i][n]);  W is (n_in, n_out) row-major (Keras).
template <class Block, class T>
FS_HD void dense_forward(const Block& blk, const T* W, const T* b, const T* x, T* y,
                         int n_in, int n_out, int B, bool relu) {
  if (relu) {
    blk.map_2d(n_out, B, [=](int j, int n) {
      T s = b[j];
      for (int i = 0; i < n_in; ++i) s += W[i * n_out + j] * x[i * B + n];
      y[j * B + n] = s < T(0) ? T(0) : s;  // NaN passes through: divergence stays visible
    });
  } else {
    blk.map_2d(n_out, B, [=](int j, int n) {
      T s = b[j];
      for (int i = 0; i < n_in; ++i) s += W[i * n_out + j] * x[i * B + n];
      y[j * B + n] = s;
    });
  }
}

// dx[i][n] = sum_j W[i][j] * dy[j][n], times relu'(x) when the input x is a ReLU output
// (x > 0 exactly where the pre-activation was > 0).
template <class Block, class T>
FS_HD void dense_backward_input(const Block& blk, const T* W, const T* x, const T* dy, T* dx,
                                int n_in, int n_out, int B, bool relu_input) {
  blk.map_2d(n_in, B, [=](int i, int n) {
    T s = T(0);
    for (int j = 0; j < n_out; ++j) s += W[i * n_out + j] * dy[j * B + n];
    dx[i * B + n] = (!relu_input || x[i * B + n] > T(0)) ? s : T(0);
  });
}

// dW[i][j] = sum_n x[i][n] * dy[j][n];  db[j] = sum_n dy[j][n].
template <class Block, class T>
FS_HD void dense_backward_params(const Block& blk, const T* x, const T* dy, T* dW, T* db,
                                 int n_in, int n_out, int B) {
  blk.reduce_map_2d(n_in, n_out, [=](int i, int j) {
    const T* xi = x + i * B;
    const T* dyj = dy + j * B;
    T s = T(0);
    FS_SIMD_SUM(s)
    for (int n = 0; n < B; ++n) s += xi[n] * dyj[n];
    dW[i * n_out + j] = s;
  });
  blk.reduce_map_1d(n_out, [=](int j) {
    const T* dyj = dy + j * B;
    T s = T(0);
    FS_SIMD_SUM(s)
    for (int n = 0; n < B; ++n) s += dyj[n];
    db[j] = s;
  });
}

}  // namespace fs
