// CPU engine: one training step of a shallow binary MLP, x (B, d) -> ReLU dense (H) -> dense
// (1) with sigmoid cross-entropy (Experiment I's 2 -> 104 -> 1 network): gather, forward pass,
// loss gradient and backward pass fused, leaving the gradient for the Adam update.
//
// The generic step is six phases, each a pass over the batch in the workspace; its hidden rows
// of H units (104 = 6.5 float32 vectors) end in half-width or scalar tails, and half of them
// start mid-cache-line. Here the step works on chunks of up to kShallowChunkRows samples
// in its own aligned scratch, with each hidden row padded to whole vectors (zero kernel and
// bias lanes: padded units are 0 and are never stored):
//   * forward: four samples at a time against each loaded vector of W0, b0 and W1, the hidden
//     vector formed in registers, stored once, and added into the sample's logit partial sums;
//   * the logit: the dot phase's 16 partial sums and fixed tree (lane_dot_rows), the W1 lanes
//     past its tree zeroed and those terms added after it, in order, as there;
//   * loss gradient: sigmoid_ce_grad's expression, vectorised over the chunk's samples;
//   * backward: host_shallow_backward's column blocks over the padded rows, continuing each
//     sum from the previous chunk's.
// Each element is the same expression in the same order as the generic phases (the gradients
// of one sample after another), so the results agree with them to rounding (a product may be
// fused into an add where the generic phases round it) and do not depend on the chunk size.
#pragma once
#if !defined(__CUDACC__)
#include <stdint.h>
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif
#include "host_shallow_backward.h"
#include "executor.h"
#include "losses.h"

namespace fs {

// The step's scratch lives on the stack: padded parameters and one chunk of hidden rows.
constexpr int kShallowStepScratchBytes = 64 * 1024;
constexpr int kShallowChunkRows = 64;
// Samples whose forward pass shares each load of the parameters.
constexpr int kShallowForwardRows = 4;

// Where things are in the scratch (in scalars), for a network of D inputs and H hidden units.
struct ShallowStepLayout {
  int D, H;
  int Hp;        // H rounded up to whole vectors
  int tree_len;  // leading terms of the logit's dot product summed in the 16-lane tree
  int chunk;     // samples per chunk
  // Offsets: W0 rows (D, Hp), b0, W1 for the tree, W1, the backward's carry between chunks
  // (D + 2, Hp), h (chunk, Hp).
  int w0, b0, w1_tree, w1, carry, h;
};

// The layout for a batch of B rows, or false when even one hidden row does not fit.
template <class T>
FS_INLINE bool shallow_step_layout(const NetShape& s, int B, ShallowStepLayout* out) {
  constexpr int L = kHostVectorBytes / sizeof(T);
  constexpr int64_t budget = kShallowStepScratchBytes / sizeof(T);
  ShallowStepLayout g;
  g.D = s.width[0];
  g.H = s.width[1];
  g.Hp = (g.H + L - 1) / L * L;
  if (g.Hp > budget / (g.D + 5)) return false;  // not even one row (nor int overflow below)
  g.tree_len = g.H / kDotLanes * kDotLanes + (g.H % kDotLanes >= kDotLanes / 2 ? kDotLanes / 2 : 0);
  g.w0 = 0;
  g.b0 = g.D * g.Hp;
  g.w1_tree = g.b0 + g.Hp;
  g.w1 = g.tree_len < g.H ? g.w1_tree + g.Hp : g.w1_tree;
  g.carry = g.w1 + g.Hp;
  g.h = g.carry + (g.D + 2) * g.Hp;
  const int64_t rows = (budget - g.h) / g.Hp;
  if (rows < 1) return false;
  g.chunk = static_cast<int>(rows < kShallowChunkRows ? rows : kShallowChunkRows);
  if (g.chunk > B) g.chunk = B;
  *out = g;
  return true;
}

// True when train_network runs its step with host_shallow_step.
template <class T>
FS_INLINE bool host_shallow_step_applies(const NetShape& s, LossKind loss, int B) {
  ShallowStepLayout g;
  return loss == LossKind::SigmoidCE && is_shallow_binary_mlp(s) && shallow_step_layout<T>(s, B, &g);
}

// The 16 partial sums of a dot phase (lane_dot_rows), held in NA vectors, summed in its tree:
// lanes l and l + 8, then l and l + 4, then (0 + 2) + (1 + 3).
template <class T, int NA, class V>
FS_INLINE T dot_lane_tree(const V* acc) {
  static_assert(kDotLanes == 16 && NA * sizeof(V) == 16 * sizeof(T), "16 lanes in NA vectors");
  typedef T V16 __attribute__((vector_size(16 * sizeof(T))));
  typedef T V8 __attribute__((vector_size(8 * sizeof(T))));
  typedef T V4 __attribute__((vector_size(4 * sizeof(T))));
  V16 a;
  memcpy(&a, acc, sizeof(V16));
  const V8 b = __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7) +
               __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15);
  const V4 c = __builtin_shufflevector(b, b, 0, 1, 2, 3) + __builtin_shufflevector(b, b, 4, 5, 6, 7);
  return (c[0] + c[2]) + (c[1] + c[3]);
}

#if defined(__AVX512F__)
// dot_lane_tree of 16 float32 samples at once (one vector of partial sums each): each step of
// the tree adds the lanes of two samples' vectors gathered by shuffles, so the 16 sums take 45
// vector operations instead of about 8 each, with the same additions.
FS_INLINE void dot_lane_trees16(const __m512* a, float* out) {
  __m512 b[8], c[4], d[2];
  for (int i = 0; i < 8; ++i)  // samples 2i, 2i + 1: lanes l + (l + 8), l < 8, side by side
    b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  for (int j = 0; j < 4; ++j)  // 128-bit block k: lanes l + (l + 4), l < 4, of sample 4j + k
    c[j] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * j], b[2 * j + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(b[2 * j], b[2 * j + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  for (int j = 0; j < 2; ++j)  // block k: (0 + 2, 1 + 3) of samples 8j + k and 8j + 4 + k
    d[j] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * j], c[2 * j + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(c[2 * j], c[2 * j + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // lane 4k + e: sample k + 4e; then back to sample order
  const __m512 sum = _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_ps(d[0], d[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  _mm512_storeu_ps(out, _mm512_permutexvar_ps(order, sum));
}

// The same for 8 float64 samples (two vectors of partial sums each: lanes 0-7, 8-15).
FS_INLINE void dot_lane_trees8(const __m512d* a, double* out) {
  __m512d b[8], c[4], d[2];
  for (int s = 0; s < 8; ++s) b[s] = _mm512_add_pd(a[2 * s], a[2 * s + 1]);
  for (int i = 0; i < 4; ++i)  // lanes l + (l + 4), l < 4, of samples 2i (low half), 2i + 1
    c[i] = _mm512_add_pd(_mm512_shuffle_f64x2(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f64x2(b[2 * i], b[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  for (int j = 0; j < 2; ++j)  // 128-bit block k: (0 + 2, 1 + 3) of sample 4j + k
    d[j] = _mm512_add_pd(_mm512_shuffle_f64x2(c[2 * j], c[2 * j + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f64x2(c[2 * j], c[2 * j + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  // lane 2k: sample k, lane 2k + 1: sample 4 + k
  const __m512d sum = _mm512_add_pd(_mm512_unpacklo_pd(d[0], d[1]), _mm512_unpackhi_pd(d[0], d[1]));
  _mm512_storeu_pd(out, _mm512_permutexvar_pd(_mm512_set_epi64(7, 5, 3, 1, 6, 4, 2, 0), sum));
}
#endif

// sums[r] = dot_lane_tree of sample r's NA vectors acc[r * NA ..], r < count.
template <class T, class V>
FS_INLINE void dot_lane_trees(int count, const V* acc, T* sums) {
  constexpr int NA = kDotLanes * sizeof(T) / sizeof(V);
  int r = 0;
#if defined(__AVX512F__)
  if constexpr (sizeof(V) == 64 && sizeof(T) == 4)
    for (; r + 16 <= count; r += 16) dot_lane_trees16(reinterpret_cast<const __m512*>(acc + r), sums + r);
  if constexpr (sizeof(V) == 64 && sizeof(T) == 8)
    for (; r + 8 <= count; r += 8) dot_lane_trees8(reinterpret_cast<const __m512d*>(acc + 2 * r), sums + r);
#endif
  for (; r < count; ++r) sums[r] = dot_lane_tree<T, NA>(acc + r * NA);
}

// A vector of T with every lane x: x - 0 is x for every x (-0 and NaN included), and the
// compiler folds it to a broadcast.
template <class V, class T>
FS_INLINE V splat(T x) {
  return x - V{};
}

// max(v, 0) with relu_if's rule for NaN (it passes): x86's max(a, b) is a > b ? a : b, so
// max(0, v) is exactly v < 0 ? 0 : v, in one instruction instead of a compare and a select.
template <class V>
FS_INLINE V relu_vector(V v) {
#if defined(__AVX512F__)
  if constexpr (sizeof(V) == 64 && sizeof(v[0]) == 4) return (V)_mm512_max_ps(__m512{}, (__m512)v);
  if constexpr (sizeof(V) == 64 && sizeof(v[0]) == 8) return (V)_mm512_max_pd(__m512d{}, (__m512d)v);
#endif
#if defined(__AVX__)
  if constexpr (sizeof(V) == 32 && sizeof(v[0]) == 4) return (V)_mm256_max_ps(__m256{}, (__m256)v);
  if constexpr (sizeof(V) == 32 && sizeof(v[0]) == 8) return (V)_mm256_max_pd(__m256d{}, (__m256d)v);
#endif
  return v < V{} ? V{} : v;
}

// Forward pass of R samples: x (R, D) -> hidden rows h (R, Hp), and each sample's 16 partial
// sums of its logit (lane_dot_rows's lanes) in acc (R * NA vectors). w0 (D, Hp), b0 (Hp) and
// w1 (Hp, zero past the tree) are the padded parameters, nv = Hp / lanes.
template <int D, int R, class V, class T>
FS_INLINE void shallow_forward_rows(int nv, int Hp, const T* w0, const T* b0, const T* w1,
                                    const T* x, T* h, V* acc) {
  constexpr int L = sizeof(V) / sizeof(T), NA = kDotLanes / L;
  V xv[R][D], sum[R][NA];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int k = 0; k < D; ++k) xv[r][k] = splat<V>(x[r * D + k]);
#pragma GCC unroll 4
    for (int q = 0; q < NA; ++q) sum[r][q] = V{};
  }
  // Vector v of every sample; its products go to partial-sum vector q = v mod NA.
  auto vector = [&](int v, int q) {
    V wk[D];
#pragma GCC unroll 4
    for (int k = 0; k < D; ++k) wk[k] = load_vector<V>(w0 + k * Hp + v * L);
    const V bv = load_vector<V>(b0 + v * L);
    const V w1v = load_vector<V>(w1 + v * L);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      V s = V{};  // from 0, then the bias, as the generic tile and its finish
#pragma GCC unroll 4
      for (int k = 0; k < D; ++k) s += xv[r][k] * wk[k];
      const V hv = relu_vector(bv + s);
      memcpy(h + r * Hp + v * L, &hv, sizeof(V));
      sum[r][q] += hv * w1v;
    }
  };
  int v = 0;
  for (; v + NA <= nv; v += NA)
#pragma GCC unroll 4
    for (int q = 0; q < NA; ++q) vector(v + q, q);
  // the last < NA vectors (q known at compile time: the sums stay in registers)
#pragma GCC unroll 4
  for (int q = 0; q < NA - 1; ++q)
    if (v + q < nv) vector(v + q, q);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int q = 0; q < NA; ++q) acc[r * NA + q] = sum[r][q];
}

template <int D, class T>
void shallow_step_inputs(const NetShape& s, const ShallowStepLayout& g, const T* theta, T* sp,
                         const T* X, const T* Y, const int* rows, int B, T* x_batch, T* logits,
                         T* targets, T* dz, T* grad) {
  const T* W1 = theta + s.w_offset[1];
  const T b1 = theta[s.b_offset[1]];
  const T scale = T(1) / T(B);  // sigmoid_ce_grad's 1 / (B * K), K = 1
  using V = typename HostVector<T, kHostVectorBytes>::type;
  constexpr int L = kHostVectorBytes / sizeof(T), NA = kDotLanes / L;
  V acc[kShallowChunkRows * NA];  // each sample's logit partial sums
  T sums[kShallowChunkRows];
  T db1 = 0;
  for (int n0 = 0; n0 < B; n0 += g.chunk) {
    const int count = g.chunk < B - n0 ? g.chunk : B - n0;
    T* x = x_batch + (int64_t)n0 * D;
    for (int r = 0; r < count; ++r) {
      const int64_t row = rows[n0 + r];
#pragma GCC unroll 4
      for (int k = 0; k < D; ++k) x[r * D + k] = X[row * D + k];
      targets[n0 + r] = Y[row];
    }
    T* h = sp + g.h;
    const int H = g.H, Hp = g.Hp, nv = Hp / L;
    const T *w0 = sp + g.w0, *b0 = sp + g.b0, *w1 = sp + g.w1_tree;
    int r = 0;
    for (; r + kShallowForwardRows <= count; r += kShallowForwardRows)
      shallow_forward_rows<D, kShallowForwardRows>(nv, Hp, w0, b0, w1, x + r * D, h + (int64_t)r * Hp,
                                                   acc + r * NA);
    for (; r < count; ++r)
      shallow_forward_rows<D, 1>(nv, Hp, w0, b0, w1, x + r * D, h + (int64_t)r * Hp, acc + r * NA);
    dot_lane_trees(count, acc, sums);
    for (r = 0; r < count; ++r) {
      T sum = sums[r];
      for (int i = g.tree_len; i < H; ++i) sum += h[r * Hp + i] * W1[i];
      logits[n0 + r] = b1 + sum;
    }
    FS_SIMD
    for (int n = n0; n < n0 + count; ++n) dz[n] = sigmoid_ce_dz(logits[n], targets[n], scale);
    const ShallowBackwardArgs<T> a{count, g.Hp, g.H, x, h, dz + n0, sp + g.w1, grad + s.w_offset[0],
                                   grad + s.b_offset[0], grad + s.w_offset[1], sp + g.carry,
                                   n0 == 0, n0 + count == B};
    shallow_backward_padded<D>(a);
    for (int n = n0; n < n0 + count; ++n) db1 += dz[n];
  }
  grad[s.b_offset[1]] = db1;
}

// The padded copies of the parameters in the scratch sp: zero past H, the tree's W1 also
// zero past its tree.
template <class T>
FS_INLINE void host_shallow_step_prepare(const NetShape& s, const ShallowStepLayout& g,
                                         const T* theta, T* sp) {
  const int H = g.H, Hp = g.Hp;
  auto padded = [=](T* to, const T* from, int n) {
    memcpy(to, from, n * sizeof(T));
    for (int i = n; i < Hp; ++i) to[i] = T(0);
  };
  for (int k = 0; k < g.D; ++k) padded(sp + g.w0 + k * Hp, theta + s.w_offset[0] + (int64_t)k * H, H);
  padded(sp + g.b0, theta + s.b_offset[0], H);
  padded(sp + g.w1_tree, theta + s.w_offset[1], g.tree_len);
  if (g.w1 != g.w1_tree) padded(sp + g.w1, theta + s.w_offset[1], H);
}

// One step on the batch of rows rows[0 .. B) of X (N, d) and Y (N):
// writes the batch to x_batch (B, d) and targets (B), the logits (B), their gradient dz (B)
// and the gradient of the mean loss w.r.t. every parameter to grad[P] in theta's layout.
// Requires host_shallow_step_applies.
template <class T>
void host_shallow_step(const NetShape& s, const T* theta, const T* X, const T* Y, const int* rows,
                       int B, T* x_batch, T* logits, T* targets, T* dz, T* grad) {
  ShallowStepLayout g;
  shallow_step_layout<T>(s, B, &g);
  alignas(64) unsigned char scratch[kShallowStepScratchBytes];
  T* sp = reinterpret_cast<T*>(scratch);
  host_shallow_step_prepare(s, g, theta, sp);
  switch (g.D) {
    case 1: shallow_step_inputs<1>(s, g, theta, sp, X, Y, rows, B, x_batch, logits, targets, dz, grad); break;
    case 2: shallow_step_inputs<2>(s, g, theta, sp, X, Y, rows, B, x_batch, logits, targets, dz, grad); break;
    case 3: shallow_step_inputs<3>(s, g, theta, sp, X, Y, rows, B, x_batch, logits, targets, dz, grad); break;
    default: shallow_step_inputs<4>(s, g, theta, sp, X, Y, rows, B, x_batch, logits, targets, dz, grad); break;
  }
}

}  // namespace fs
#endif
