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

// Where a column block reads and writes: x (rows, D), h (rows, h_stride), dz (rows), W1 and
// the gradients dW0 (D, H), db0 (H), dW1 (H). Columns at or past H are computed but not
// stored (the zero padding of a row padded to whole vectors). A batch may come in chunks of
// rows: `carry` ((D + 2) rows of h_stride) then holds the sums between the chunks (not the
// first: the sums continue from carry; not the last: they go to carry, not to the gradients).
template <class T>
struct ShallowBackwardArgs {
  int rows, h_stride, H;
  const T* x;
  const T* h;
  const T* dz;
  const T* W1;
  T* dW0;
  T* db0;
  T* dW1;
  T* carry;
  bool first, last;
};

// Stores the lanes of vector `val` at columns [c, c + lanes of V) of a row of H columns: those
// below H only.
template <class V, class T>
FS_INLINE void store_columns(T* row, int c, int H, const V& val) {
  constexpr int L = sizeof(V) / sizeof(T);
  if (c + L <= H) {
    memcpy(row + c, &val, sizeof(V));
    return;
  }
  T lane[L];
  memcpy(lane, &val, sizeof(V));
  for (int l = 0; c + l < H; ++l) row[c + l] = lane[l];
}

// Columns [c0, c0 + NV * lanes of V) of the hidden layer (V a SIMD vector type or a scalar).
template <int D, int NV, class V, class T>
FS_INLINE void shallow_backward_block(int c0, const ShallowBackwardArgs<T>& a) {
  constexpr int L = sizeof(V) / sizeof(T);
  V w1[NV], acc_w1[NV], acc_b0[NV], acc_w0[D][NV];
  // carry rows: dW1, db0, dW0[0 .. D)
  auto carry = [&](int row, int v) { return a.carry + (int64_t)row * a.h_stride + c0 + v * L; };
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    w1[v] = load_vector<V>(a.W1 + c0 + v * L);
    if (a.first) {
      acc_w1[v] = acc_b0[v] = V{};
#pragma GCC unroll 4
      for (int k = 0; k < D; ++k) acc_w0[k][v] = V{};
    } else {
      acc_w1[v] = load_vector<V>(carry(0, v));
      acc_b0[v] = load_vector<V>(carry(1, v));
#pragma GCC unroll 4
      for (int k = 0; k < D; ++k) acc_w0[k][v] = load_vector<V>(carry(2 + k, v));
    }
  }
  for (int n = 0; n < a.rows; ++n) {
    const T g = a.dz[n];
    const T* hn = a.h + (int64_t)n * a.h_stride + c0;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const V hv = load_vector<V>(hn + v * L);
      acc_w1[v] += g * hv;
      const V gw = g * w1[v];
      const V dh = hv > V{} ? gw : V{};
#pragma GCC unroll 4
      for (int k = 0; k < D; ++k) acc_w0[k][v] += a.x[(int64_t)n * D + k] * dh;
      acc_b0[v] += dh;
    }
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    if (!a.last) {
      memcpy(carry(0, v), &acc_w1[v], sizeof(V));
      memcpy(carry(1, v), &acc_b0[v], sizeof(V));
#pragma GCC unroll 4
      for (int k = 0; k < D; ++k) memcpy(carry(2 + k, v), &acc_w0[k][v], sizeof(V));
      continue;
    }
    const int c = c0 + v * L;
    store_columns(a.dW1, c, a.H, acc_w1[v]);
    store_columns(a.db0, c, a.H, acc_b0[v]);
#pragma GCC unroll 4
    for (int k = 0; k < D; ++k) store_columns(a.dW0 + (int64_t)k * a.H, c, a.H, acc_w0[k][v]);
  }
}

// Unpadded rows of H (the generic forward's layout): blocks of 3 full vectors, then single
// full, half-width and scalar columns.
template <int D, class T>
FS_INLINE void shallow_backward_columns(const ShallowBackwardArgs<T>& a) {
  using V = typename HostVector<T, kHostVectorBytes>::type;
  using Hv = typename HostVector<T, kHostVectorBytes / 2>::type;
  constexpr int L = kHostVectorBytes / sizeof(T), LH = L / 2;
  const int H = a.H;
  int c = 0;
  // Blocks of 3 vectors: 3 * (D + 2) accumulators and 3 kernel vectors fit the registers for
  // D <= 4, with enough independent chains to hide the FMA latency.
  for (; c + 3 * L <= H; c += 3 * L) shallow_backward_block<D, 3, V>(c, a);
  for (; c + L <= H; c += L) shallow_backward_block<D, 1, V>(c, a);
  for (; c + LH <= H; c += LH) shallow_backward_block<D, 1, Hv>(c, a);
  for (; c < H; ++c) shallow_backward_block<D, 1, T>(c, a);
}

// Vectors per column block of padded rows: the accumulators ((D + 2) per vector) and the
// kernel vectors fit the vector registers with a few to spare.
template <int D>
constexpr int shallow_block_vectors() {
  return (kHostTileVectors + 4) / (D + 3);
}

// A block of `width` <= NV vectors: the instantiation for that width.
template <int D, int NV, class V, class T>
FS_INLINE void shallow_backward_block_of(int width, int c0, const ShallowBackwardArgs<T>& a) {
  if constexpr (NV >= 1) {
    if (width == NV) shallow_backward_block<D, NV, V>(c0, a);
    else shallow_backward_block_of<D, NV - 1, V>(width, c0, a);
  }
}

// Rows padded to whole vectors (h_stride a multiple of the vector width, W1 padded alike):
// every block is whole vectors, and the blocks are of even size (7 vectors: 4 + 3, not 5 + 2),
// so none is left with too few accumulator chains to hide the FMA latency.
template <int D, class T>
FS_INLINE void shallow_backward_padded(const ShallowBackwardArgs<T>& a) {
  using V = typename HostVector<T, kHostVectorBytes>::type;
  constexpr int L = kHostVectorBytes / sizeof(T), kMax = shallow_block_vectors<D>();
  const int nv = (a.H + L - 1) / L;
  const int blocks = (nv + kMax - 1) / kMax;
  for (int b = 0, v = 0; b < blocks; ++b) {
    const int width = (nv - v + (blocks - b) - 1) / (blocks - b);
    shallow_backward_block_of<D, kMax, V>(width, v * L, a);
    v += width;
  }
}

// Gradients of a shallow binary MLP (is_shallow_binary_mlp) w.r.t. all its parameters, written
// to grad[P] in theta's layout: x (B, d) the input batch, h (B, H) the hidden activations,
// dz (B) the logit gradient.
template <class T>
void host_shallow_backward(const NetShape& s, const T* theta, const T* x, const T* h,
                           const T* dz, T* grad, int B) {
  const int H = s.width[1];
  const ShallowBackwardArgs<T> a{B, H, H, x, h, dz, theta + s.w_offset[1], grad + s.w_offset[0],
                                 grad + s.b_offset[0], grad + s.w_offset[1], nullptr, true, true};
  switch (s.width[0]) {
    case 1: shallow_backward_columns<1>(a); break;
    case 2: shallow_backward_columns<2>(a); break;
    case 3: shallow_backward_columns<3>(a); break;
    default: shallow_backward_columns<4>(a); break;
  }
  T db1 = 0;
  for (int n = 0; n < B; ++n) db1 += dz[n];
  grad[s.b_offset[1]] = db1;
}

}  // namespace fs
#endif
