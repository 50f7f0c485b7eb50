// CPU engine: the backward pass of a shallow network, x (B, d) -> ReLU dense (H) -> dense (1),
// fused into one pass over the hidden activations (Experiment I's 2 -> 104 -> 1 network).
//
// The generic backward writes the hidden gradient dh (B, H) and reads it back twice (weight
// and bias gradients of the hidden layer); here a column block of dh lives only in registers:
// for each column block of hidden units and each sample n, in order,
//   dW1[i]    += dz[n] * h[n][i]
//   dh         = h[n][i] > 0 ? dz[n] * W1[i] : 0
//   dW0[k][i] += x[n][k] * dh        (k < d)
//   db0[i]    += dh
// Every element is the same expression, summed in the same order, as the generic phases
// (dense_backward_input and dense_backward_params as matrix-product phases), so the result
// equals theirs; the executors compare the two in the test suite.
#pragma once
#if !defined(__CUDACC__)
#include <stdint.h>
#include <string.h>
#include "host_segment_sum.h"
#include "net_shape.h"

namespace fs {

// Inputs of the fused pass: at most this many (every one holds a block of accumulators).
constexpr int kShallowMaxInputs = 4;

// True for a network the fused backward handles: one ReLU dense hidden layer and one logit.
FS_INLINE bool is_shallow_binary_mlp(const NetShape& s) {
  return s.n_layers == 2 && s.layer[0].kind == LayerKind::Dense && s.layer[0].relu &&
         s.layer[1].kind == LayerKind::Dense && !s.layer[1].relu && s.n_logits() == 1 &&
         s.width[0] <= kShallowMaxInputs;
}

// Columns [c0, c0 + NV * lanes of V) of the hidden layer (V a SIMD vector type or a scalar).
template <int D, int NV, class V, class T>
FS_INLINE void shallow_backward_block(int c0, int B, int H, const T* x, const T* h, const T* dz,
                                      const T* W1, T* dW0, T* db0, T* dW1) {
  constexpr int L = sizeof(V) / sizeof(T);
  V w1[NV], acc_w1[NV], acc_b0[NV], acc_w0[D][NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    w1[v] = load_vector<V>(W1 + c0 + v * L);
    acc_w1[v] = acc_b0[v] = V{};
#pragma GCC unroll 4
    for (int k = 0; k < D; ++k) acc_w0[k][v] = V{};
  }
  for (int n = 0; n < B; ++n) {
    const T g = dz[n];
    const T* hn = h + (int64_t)n * H + c0;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const V hv = load_vector<V>(hn + v * L);
      acc_w1[v] += g * hv;
      const V gw = g * w1[v];
      const V dh = hv > V{} ? gw : V{};
#pragma GCC unroll 4
      for (int k = 0; k < D; ++k) acc_w0[k][v] += x[(int64_t)n * D + k] * dh;
      acc_b0[v] += dh;
    }
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    memcpy(dW1 + c0 + v * L, &acc_w1[v], sizeof(V));
    memcpy(db0 + c0 + v * L, &acc_b0[v], sizeof(V));
#pragma GCC unroll 4
    for (int k = 0; k < D; ++k) memcpy(dW0 + (int64_t)k * H + c0 + v * L, &acc_w0[k][v], sizeof(V));
  }
}

template <int D, class T>
FS_INLINE void shallow_backward_columns(int B, int H, const T* x, const T* h, const T* dz,
                                        const T* W1, T* dW0, T* db0, T* dW1) {
  using V = typename HostVector<T, kHostVectorBytes>::type;
  using Hv = typename HostVector<T, kHostVectorBytes / 2>::type;
  constexpr int L = kHostVectorBytes / sizeof(T), LH = L / 2;
  int c = 0;
  // Blocks of 3 vectors: 3 * (D + 2) accumulators and 3 kernel vectors fit the registers for
  // D <= 4, with enough independent chains to hide the FMA latency.
  for (; c + 3 * L <= H; c += 3 * L) shallow_backward_block<D, 3, V>(c, B, H, x, h, dz, W1, dW0, db0, dW1);
  for (; c + L <= H; c += L) shallow_backward_block<D, 1, V>(c, B, H, x, h, dz, W1, dW0, db0, dW1);
  for (; c + LH <= H; c += LH) shallow_backward_block<D, 1, Hv>(c, B, H, x, h, dz, W1, dW0, db0, dW1);
  for (; c < H; ++c) shallow_backward_block<D, 1, T>(c, B, H, x, h, dz, W1, dW0, db0, dW1);
}

// Gradients of a shallow binary MLP (is_shallow_binary_mlp) w.r.t. all its parameters, written
// to grad[P] in theta's layout: x (B, d) the input batch, h (B, H) the hidden activations,
// dz (B) the logit gradient.
template <class T>
void host_shallow_backward(const NetShape& s, const T* theta, const T* x, const T* h,
                           const T* dz, T* grad, int B) {
  const int H = s.width[1];
  const T* W1 = theta + s.w_offset[1];
  T* dW0 = grad + s.w_offset[0];
  T* db0 = grad + s.b_offset[0];
  T* dW1 = grad + s.w_offset[1];
  switch (s.width[0]) {
    case 1: shallow_backward_columns<1>(B, H, x, h, dz, W1, dW0, db0, dW1); break;
    case 2: shallow_backward_columns<2>(B, H, x, h, dz, W1, dW0, db0, dW1); break;
    case 3: shallow_backward_columns<3>(B, H, x, h, dz, W1, dW0, db0, dW1); break;
    default: shallow_backward_columns<4>(B, H, x, h, dz, W1, dW0, db0, dW1); break;
  }
  T db1 = 0;
  for (int n = 0; n < B; ++n) db1 += dz[n];
  grad[s.b_offset[1]] = db1;
}

}  // namespace fs
#endif
