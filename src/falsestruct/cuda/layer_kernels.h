// Layer-wise training and forward of networks with conv layers (the paper's CNN) on the GPU:
// one network's step is spread over many blocks, one kernel per layer and pass, instead of one
// block per network (network.h's train_network with CudaBlock).
//
// Every kernel is an elementwise functor `f(net, e)` or a tiled matrix product (GEMM) over
// (network, row tile, column tile, reduction split). Both are host-compilable: the CUDA kernels
// (src/cuda/layer_kernels.cu) and the CPU emulation (cpp/emulate_layer_kernels.cpp) run the same
// bodies, the emulation running each GEMM block's threads phase by phase (load the shared
// tiles, barrier, accumulate, barrier), so the CPU test-suite executes the GPU's index mapping.
// The step driver (layerwise_train_epochs) is host code templated on the executor: it is the
// same sequence of launches on the GPU and in the emulation.
//
// The arithmetic is the CPU engine's (network.h, conv_layer.h, pool_layer.h, dense_layer.h,
// losses.h, adam.h): the same products, the same loss, pooling and Adam code (called per
// element through OneElement); only the order of each product's sum differs (a sequential sum
// per reduction split, then the splits in a fixed order), so results agree to rounding and are
// bitwise equal run to run (no floating-point atomics).
#pragma once
#include <stdint.h>

#include <string>

#include "../network.h"

namespace fs {
namespace layerwise {

// ---- executor of the CPU engine's phase code for one element -------------------------------
// The CPU engine's elementwise phases (losses, pooling, Adam) are written against a Block; this
// one runs only element e of each phase, so a GPU thread (or an emulated one) that owns element
// e calls the phase unchanged.
struct OneElement {
  int64_t e;
  template <class F>
  FS_HD FS_INLINE void map_1d(int n, F&& f) const {
    if (e < n) f(static_cast<int>(e));
  }
  template <class F>
  FS_HD FS_INLINE void map_2d(int rows, int cols, F&& f) const {
    if (e < (int64_t)rows * cols) f(static_cast<int>(e / cols), static_cast<int>(e % cols));
  }
};

// ---- tiled matrix product C[m][n] = sum_k A(m, k) B(k, n) -----------------------------------
// A block of kGemmThreads threads computes a kTileM x kTileN tile of C over one split of the
// reduction, staging kTileK-deep slices of A and B in shared memory. Thread tid owns the
// kThreadM x kThreadN elements (row_group + kRowGroups i, col_group + kColGroups j): strided, so
// a warp reads shared memory as broadcasts over rows and consecutive columns.
constexpr int kTileM = 64, kTileN = 32, kTileK = 16;
constexpr int kThreadM = 4, kThreadN = 4;
constexpr int kRowGroups = kTileM / kThreadM;  // 16
constexpr int kColGroups = kTileN / kThreadN;  // 8
constexpr int kGemmThreads = kRowGroups * kColGroups;
static_assert(kGemmThreads == 128, "tile shape and threads disagree");
static_assert((kTileM * kTileK) % kGemmThreads == 0 && (kTileN * kTileK) % kGemmThreads == 0,
              "every thread loads the same number of tile elements");

template <class T>
struct GemmShared {
  T a[kTileK][kTileM];  // A's slice, k-major: a thread's rows are read at one k
  T b[kTileK][kTileN];
};

template <class T>
struct GemmAcc {
  T v[kThreadM][kThreadN];
};

// Where the blocks of one network's product lie: block b covers row tile b % m_tiles, column
// tile (b / m_tiles) % n_tiles and reduction split b / (m_tiles * n_tiles), which sums k in
// [split * k_per_split, min(K, (split + 1) * k_per_split)).
struct GemmGrid {
  int64_t M, N, K;
  int m_tiles, n_tiles, splits;
  int64_t k_per_split;  // a multiple of kTileK
  FS_HD int blocks() const { return m_tiles * n_tiles * splits; }
};

struct GemmBlockPos {
  int64_t m0, n0, k_begin, k_end;
  int split;
};

FS_HD FS_INLINE GemmBlockPos gemm_block_pos(const GemmGrid& g, int b) {
  GemmBlockPos p;
  p.m0 = (int64_t)(b % g.m_tiles) * kTileM;
  p.n0 = (int64_t)((b / g.m_tiles) % g.n_tiles) * kTileN;
  p.split = b / (g.m_tiles * g.n_tiles);
  p.k_begin = p.split * g.k_per_split;
  p.k_end = p.k_begin + g.k_per_split < g.K ? p.k_begin + g.k_per_split : g.K;
  return p;
}

// Reduction splits: a product whose tiles are fewer than target_blocks is split over its
// reduction until one network's product has about that many blocks, each split at least
// kMinSplitSlices slices deep (fewer, larger partial sums). The split depends only on the
// product's shape, never on the number of networks, the group a network is trained in or the
// GPU's size, so a network's result is bitwise the same whatever S it is trained with.
// kSplitTargetBlocks: about 8 blocks per SM of an H100/H200 (132 SMs) for a single network.
constexpr int kMinSplitSlices = 4;
constexpr int64_t kSplitTargetBlocks = 1024;
inline GemmGrid make_gemm_grid(int64_t M, int64_t N, int64_t K, int64_t target_blocks) {
  GemmGrid g;
  g.M = M;
  g.N = N;
  g.K = K;
  g.m_tiles = static_cast<int>((M + kTileM - 1) / kTileM);
  g.n_tiles = static_cast<int>((N + kTileN - 1) / kTileN);
  const int64_t slices = (K + kTileK - 1) / kTileK;
  const int64_t tiles = (int64_t)g.m_tiles * g.n_tiles;
  int64_t splits = tiles >= target_blocks ? 1 : (target_blocks + tiles - 1) / tiles;
  const int64_t max_splits = (slices + kMinSplitSlices - 1) / kMinSplitSlices;
  if (splits > max_splits) splits = max_splits;
  if (splits < 1) splits = 1;
  const int64_t per = (slices + splits - 1) / splits;  // slices per split
  g.k_per_split = per * kTileK;
  g.splits = static_cast<int>((slices + per - 1) / per);  // no empty split
  if (g.splits < 1) g.splits = 1;
  return g;
}

// Scalars of one network's partial sums (0 when the product is not split).
FS_HD FS_INLINE int64_t gemm_partial_scalars(const GemmGrid& g) {
  return g.splits > 1 ? (int64_t)g.splits * g.M * g.N : 0;
}

// Phase 1 of a reduction slice: thread tid stores its share of A[m0 .., k0 ..] and
// B[k0 .., n0 ..] in shared memory (zeros outside the product or the split; a product term
// 0 * 0 leaves a sum unchanged). Consecutive threads take consecutive k of A and n of B.
template <class P, class T>
FS_HD FS_INLINE void gemm_load_slice(const P& p, int net, const GemmGrid& g, const GemmBlockPos& pos,
                                     int64_t k0, int tid, GemmShared<T>& sh) {
  for (int r = 0; r < kTileM * kTileK / kGemmThreads; ++r) {
    const int e = tid + r * kGemmThreads, kk = e % kTileK, mm = e / kTileK;
    const int64_t m = pos.m0 + mm, k = k0 + kk;
    sh.a[kk][mm] = (m < g.M && k < pos.k_end) ? p.a(net, m, k) : T(0);
  }
  for (int r = 0; r < kTileN * kTileK / kGemmThreads; ++r) {
    const int e = tid + r * kGemmThreads, nn = e % kTileN, kk = e / kTileN;
    const int64_t n = pos.n0 + nn, k = k0 + kk;
    sh.b[kk][nn] = (n < g.N && k < pos.k_end) ? p.b(net, k, n) : T(0);
  }
}

// Phase 2: thread tid adds the slice's products to its elements, k in order.
template <class T>
FS_HD FS_INLINE void gemm_accumulate_slice(const GemmShared<T>& sh, int tid, GemmAcc<T>& acc) {
  const int row_group = tid / kColGroups, col_group = tid % kColGroups;
  for (int kk = 0; kk < kTileK; ++kk) {
    T a[kThreadM], b[kThreadN];
    for (int i = 0; i < kThreadM; ++i) a[i] = sh.a[kk][row_group + kRowGroups * i];
    for (int j = 0; j < kThreadN; ++j) b[j] = sh.b[kk][col_group + kColGroups * j];
    for (int i = 0; i < kThreadM; ++i)
      for (int j = 0; j < kThreadN; ++j) acc.v[i][j] += a[i] * b[j];
  }
}

// Phase 3: thread tid hands its sums to the product's epilogue (unsplit) or writes them to the
// split's partial sums, partial[(split * M + m) * N + n] of this network.
template <class P, class T>
FS_HD FS_INLINE void gemm_store(const P& p, int net, const GemmGrid& g, const GemmBlockPos& pos,
                                int tid, const GemmAcc<T>& acc, T* partial) {
  const int row_group = tid / kColGroups, col_group = tid % kColGroups;
  for (int i = 0; i < kThreadM; ++i) {
    const int64_t m = pos.m0 + row_group + kRowGroups * i;
    if (m >= g.M) continue;
    for (int j = 0; j < kThreadN; ++j) {
      const int64_t n = pos.n0 + col_group + kColGroups * j;
      if (n >= g.N) continue;
      if (g.splits == 1) p.store(net, m, n, acc.v[i][j]);
      else partial[((int64_t)pos.split * g.M + m) * g.N + n] = acc.v[i][j];
    }
  }
}

// Second pass of a split product: element e = m * N + n sums its splits in order (the same
// order on every run) and hands the sum to the epilogue.
template <class P, class T>
struct GemmReduce {
  P p;
  GemmGrid g;
  const T* partial;  // network 0's partial sums
  int64_t net_stride;
  FS_HD void operator()(int net, int64_t e) const {
    const T* part = partial + net_stride * net;
    const int64_t plane = g.M * g.N;
    T s = part[e];
    for (int k = 1; k < g.splits; ++k) s += part[(int64_t)k * plane + e];
    p.store(net, e / g.N, e % g.N, s);
  }
};

// ---- the products of conv and dense layers --------------------------------------------------
// Operands of network `net` lie at the base pointer (network 0) plus net times a stride: ws for
// batch arrays of the per-network workspace, P for parameters. Rows m of activations are
// (sample, pixel) pairs in NHWC order, so a layer's output is C[m][channel] in place.

// Pixel (image, h, w) of row m of a B x H x W activation. m < B H W <= 2^31 - 1 (a batch's
// activation is within the 32-bit limits, net_shape.h), so the divisions are 32-bit unsigned:
// 64-bit divisions cost the products' operand loads several times more instructions and
// registers. Addresses are still formed in 64 bits.
struct Pixel {
  int64_t image;
  int h, w;
};
FS_HD FS_INLINE Pixel pixel_of(int64_t m, int H, int W) {
  const uint32_t r = static_cast<uint32_t>(m), row = r / static_cast<uint32_t>(W);
  return Pixel{static_cast<int64_t>(row / static_cast<uint32_t>(H)), static_cast<int>(row % static_cast<uint32_t>(H)),
               static_cast<int>(r - row * static_cast<uint32_t>(W))};
}

// (q / n, q % n) of a reduction or channel index q < 2^31 (a layer's kernel has at most
// 2^31 - 1 weights), in 32-bit unsigned arithmetic as above.
struct QuotRem {
  int q, r;
};
FS_HD FS_INLINE QuotRem quot_rem(int64_t q, int n) {
  const uint32_t a = static_cast<uint32_t>(q), b = static_cast<uint32_t>(n), d = a / b;
  return QuotRem{static_cast<int>(d), static_cast<int>(a - d * b)};
}

// y = act(b + conv(x, K)): M = B H W output pixels, N = Cout, k = (tap, ci) = the HWIO row.
template <class T>
struct ConvForward {
  ConvGeometry g;
  const T* x;
  const T* theta;
  int64_t w_off, b_off;
  T* y;
  int64_t ws, P;
  bool relu;
  FS_HD T a(int net, int64_t m, int64_t k) const {
    const Pixel px = pixel_of(m, g.H, g.W);
    const QuotRem tap_ci = quot_rem(k, g.Cin), kh_kw = quot_rem(tap_ci.q, g.k);
    const int ci = tap_ci.r, ih = px.h + kh_kw.q - g.pad(), iw = px.w + kh_kw.r - g.pad();
    if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) return T(0);
    return x[ws * net + ((px.image * g.H + ih) * g.W + iw) * g.Cin + ci];
  }
  FS_HD T b(int net, int64_t k, int64_t n) const { return theta[P * net + w_off + k * g.Cout + n]; }
  FS_HD void store(int net, int64_t m, int64_t n, T s) const {
    y[ws * net + m * g.Cout + n] = relu_if(relu, theta[P * net + b_off + n] + s);
  }
};

// dx = conv of dy with the kernel flipped and transposed, times relu'(x) when x is a ReLU
// output: M = B H W input pixels, N = Cin, k = (tap, co).
template <class T>
struct ConvInputGrad {
  ConvGeometry g;
  const T* dy;
  const T* theta;
  int64_t w_off;
  const T* x;
  T* dx;
  int64_t ws, P;
  bool relu_input;
  FS_HD T a(int net, int64_t m, int64_t k) const {
    const Pixel px = pixel_of(m, g.H, g.W);
    const QuotRem tap_co = quot_rem(k, g.Cout), kh_kw = quot_rem(tap_co.q, g.k);
    const int co = tap_co.r, oh = px.h - kh_kw.q + g.pad(), ow = px.w - kh_kw.r + g.pad();
    if (oh < 0 || oh >= g.H || ow < 0 || ow >= g.W) return T(0);
    return dy[ws * net + ((px.image * g.H + oh) * g.W + ow) * g.Cout + co];
  }
  FS_HD T b(int net, int64_t k, int64_t n) const {
    const QuotRem tap_co = quot_rem(k, g.Cout);
    return theta[P * net + w_off + ((int64_t)tap_co.q * g.Cin + n) * g.Cout + tap_co.r];
  }
  FS_HD void store(int net, int64_t m, int64_t n, T s) const {
    const int64_t e = ws * net + m * g.Cin + n;
    dx[e] = relu_grad_if(relu_input, x[e], s);
  }
};

// dK[(tap, ci)][co] = sum over output pixels q of x shifted by the tap times dy[q][co]; row
// taps * Cin of A is all ones, so that row of the product is db, which the layout stores right
// after the kernel: rows M = taps Cin + 1, N = Cout, k = the B H W output pixels.
template <class T>
struct ConvParamGrad {
  ConvGeometry g;
  const T* x;
  const T* dy;
  T* grad;
  int64_t w_off;
  int64_t ws;
  FS_HD T a(int net, int64_t m, int64_t k) const {
    const int64_t taps_cin = (int64_t)g.k * g.k * g.Cin;
    if (m == taps_cin) return T(1);
    const QuotRem tap_ci = quot_rem(m, g.Cin), kh_kw = quot_rem(tap_ci.q, g.k);
    const Pixel px = pixel_of(k, g.H, g.W);
    const int ci = tap_ci.r, ih = px.h + kh_kw.q - g.pad(), iw = px.w + kh_kw.r - g.pad();
    if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) return T(0);
    return x[ws * net + ((px.image * g.H + ih) * g.W + iw) * g.Cin + ci];
  }
  FS_HD T b(int net, int64_t k, int64_t n) const { return dy[ws * net + k * g.Cout + n]; }
  FS_HD void store(int net, int64_t m, int64_t n, T s) const { grad[ws * net + w_off + m * g.Cout + n] = s; }
};

// y = act(b + x W): M = B, N = n_out, k = input unit.
template <class T>
struct DenseForward {
  int n_in, n_out;
  const T* x;
  const T* theta;
  int64_t w_off, b_off;
  T* y;
  int64_t ws, P;
  bool relu;
  FS_HD T a(int net, int64_t m, int64_t k) const { return x[ws * net + m * n_in + k]; }
  FS_HD T b(int net, int64_t k, int64_t n) const { return theta[P * net + w_off + k * n_out + n]; }
  FS_HD void store(int net, int64_t m, int64_t n, T s) const {
    y[ws * net + m * n_out + n] = relu_if(relu, theta[P * net + b_off + n] + s);
  }
};

// dx = dy W^T times relu'(x): M = B, N = n_in, k = output unit.
template <class T>
struct DenseInputGrad {
  int n_in, n_out;
  const T* dy;
  const T* theta;
  int64_t w_off;
  const T* x;
  T* dx;
  int64_t ws, P;
  bool relu_input;
  FS_HD T a(int net, int64_t m, int64_t k) const { return dy[ws * net + m * n_out + k]; }
  FS_HD T b(int net, int64_t k, int64_t n) const { return theta[P * net + w_off + n * n_out + k]; }
  FS_HD void store(int net, int64_t m, int64_t n, T s) const {
    const int64_t e = ws * net + m * n_in + n;
    dx[e] = relu_grad_if(relu_input, x[e], s);
  }
};

// dW = x^T dy with a row of ones below x^T for db (stored right after dW): M = n_in + 1,
// N = n_out, k = batch row.
template <class T>
struct DenseParamGrad {
  int n_in, n_out;
  const T* x;
  const T* dy;
  T* grad;
  int64_t w_off;
  int64_t ws;
  FS_HD T a(int net, int64_t m, int64_t k) const { return m == n_in ? T(1) : x[ws * net + k * n_in + m]; }
  FS_HD T b(int net, int64_t k, int64_t n) const { return dy[ws * net + k * n_out + n]; }
  FS_HD void store(int net, int64_t m, int64_t n, T s) const { grad[ws * net + w_off + m * n_out + n] = s; }
};

// ---- elementwise kernels ---------------------------------------------------------------------

template <class T>
struct ShuffleDraws {  // e < n_perm
  const uint64_t* seeds;
  uint32_t epoch;
  int* draws;
  int64_t ints;
  FS_HD void operator()(int net, int64_t e) const {
    const int i = static_cast<int>(e);
    draws[ints * net + i] = i > 0 ? shuffle_draw(seeds[net], epoch, i) : 0;
  }
};

struct ShuffleApply {  // one element per network: Fisher-Yates is sequential
  int n_perm;
  const int* draws;
  int* order;
  int64_t ints;
  FS_HD void operator()(int net, int64_t) const { apply_shuffle_draws(n_perm, draws + ints * net, order + ints * net); }
};

// The batch's inputs into the first activation and its targets: e < B * max(d, t).
template <class T>
struct GatherBatch {
  ShuffleMode mode;
  const int* order;
  int64_t ints;
  int step, B, d, t;
  const T* X;
  int64_t x_net_stride;
  const T* Y;
  int64_t y_net_stride;
  T* xb;
  T* yb;
  int64_t ws;
  FS_HD void operator()(int net, int64_t e) const {
    const int* ord = order + ints * net;
    if (e < (int64_t)B * d) {
      const int n = static_cast<int>(e / d), k = static_cast<int>(e % d);
      xb[ws * net + e] = X[x_net_stride * net + (int64_t)batch_row(mode, ord, step, B, n) * d + k];
    }
    if (e < (int64_t)B * t) {
      const int n = static_cast<int>(e / t), k = static_cast<int>(e % t);
      yb[ws * net + e] = Y[y_net_stride * net + (int64_t)batch_row(mode, ord, step, B, n) * t + k];
    }
  }
};

template <class T>
struct PoolForward {  // e < B OH OW C
  PoolGeometry g;
  const T* x;
  T* y;
  int64_t ws;
  FS_HD void operator()(int net, int64_t e) const { maxpool2_forward(OneElement{e}, g, x + ws * net, y + ws * net); }
};

template <class T>
struct PoolInputGrad {  // e < B H W C
  PoolGeometry g;
  const T* x;
  const T* dy;
  T* dx;
  int64_t ws;
  bool relu_input;
  FS_HD void operator()(int net, int64_t e) const {
    maxpool2_backward_input(OneElement{e}, g, x + ws * net, dy + ws * net, dx + ws * net, relu_input);
  }
};

template <class T>
struct LossGrad {  // e < B K
  LossKind kind;
  const T* z;
  const T* y;
  T* dz;
  int K, B;
  int64_t ws;
  FS_HD void operator()(int net, int64_t e) const {
    loss_grad(OneElement{e}, kind, z + ws * net, y + ws * net, dz + ws * net, K, B);
  }
};

template <class T>
struct LossTerms {  // e < B
  LossKind kind;
  const T* z;
  const T* y;
  T* terms;
  int K, B;
  int64_t ws;
  FS_HD void operator()(int net, int64_t e) const {
    T* t = terms + ws * net;
    loss_terms(OneElement{e}, kind, z + ws * net, y + ws * net, t, t + B, K, B);
  }
};

// One element per network: the epoch's sums (double) take the batch's terms in row order, as
// train_network does.
template <class T>
struct AccumulateTerms {
  const T* terms;
  int B;
  int64_t ws;
  double* sums;  // (S, 2): loss, correct
  FS_HD void operator()(int net, int64_t) const {
    const T* t = terms + ws * net;
    double loss = sums[2 * net], correct = sums[2 * net + 1];
    for (int n = 0; n < B; ++n) {
      loss += t[n];
      correct += t[B + n];
    }
    sums[2 * net] = loss;
    sums[2 * net + 1] = correct;
  }
};

struct ResetSums {
  double* sums;
  FS_HD void operator()(int net, int64_t) const { sums[2 * net] = sums[2 * net + 1] = 0.0; }
};

struct RecordEpoch {
  const double* sums;
  double count;
  int record, n_records;
  double* loss_history;
  double* acc_history;
  FS_HD void operator()(int net, int64_t) const {
    loss_history[(int64_t)net * n_records + record] = sums[2 * net] / count;
    acc_history[(int64_t)net * n_records + record] = sums[2 * net + 1] / count;
  }
};

template <class T>
struct AdamStep {  // e < P
  AdamHyper h;
  int64_t t;
  const T* grad;
  int64_t ws;
  T* theta;
  T* m;
  T* v;
  int64_t P;
  FS_HD void operator()(int net, int64_t e) const {
    adam_update(OneElement{e}, h, t, grad + ws * net, theta + P * net, m + P * net, v + P * net, P);
  }
};

template <class T>
struct CopyRows {  // e < rows * cols: dst (per-network stride) = src rows [row0, row0 + rows)
  const T* src;
  int64_t src_net_stride;
  int64_t row0;
  int cols;
  T* dst;
  int64_t dst_net_stride;
  FS_HD void operator()(int net, int64_t e) const {
    dst[dst_net_stride * net + e] = src[src_net_stride * net + row0 * cols + e];
  }
};

// ---- per-network workspace -------------------------------------------------------------------
// Every network has its own slice of one scalar buffer (stride `ws`), one int buffer and two
// doubles (the epoch's loss and correctness sums). Batch arrays are those of NetWorkspace:
// activations of layer l at acts + act_row(l) * B, sample-major.
template <class T>
struct LayerwiseBuffers {
  T* acts;
  T* delta_a;
  T* delta_b;
  T* targets;
  T* terms;
  T* grad;
  T* partial;  // the split products' partial sums
  int64_t ws;  // scalars per network
  int* order;
  int* draws;
  int64_t ints;  // ints per network
  double* sums;  // (S, 2)
};

struct LayerwiseSizes {
  int64_t scalars_per_net, ints_per_net;
  int64_t offset[7];  // of acts, delta_a, delta_b, targets, terms, grad, partial
};

inline LayerwiseSizes layerwise_sizes(const NetShape& s, int B, int n_perm, int64_t partial) {
  const int64_t size[7] = {(int64_t)s.sum_width * B, (int64_t)s.max_width * B, (int64_t)s.max_width * B,
                           (int64_t)s.n_logits() * B, 2LL * B, s.n_params, partial};
  LayerwiseSizes z;
  int64_t total = 0;
  for (int i = 0; i < 7; ++i) {
    z.offset[i] = total;
    total += scratch_align(size[i]);
  }
  z.scalars_per_net = total;
  z.ints_per_net = 2 * scratch_align(n_perm > 0 ? n_perm : 1);
  return z;
}

template <class T>
LayerwiseBuffers<T> carve_buffers(const LayerwiseSizes& z, T* scalars, int* ints, double* sums) {
  LayerwiseBuffers<T> b;
  T** part[7] = {&b.acts, &b.delta_a, &b.delta_b, &b.targets, &b.terms, &b.grad, &b.partial};
  for (int i = 0; i < 7; ++i) *part[i] = scalars + z.offset[i];
  b.ws = z.scalars_per_net;
  b.order = ints;
  b.draws = ints + z.ints_per_net / 2;
  b.ints = z.ints_per_net;
  b.sums = sums;
  return b;
}

// True for the networks this path is for: those with a conv layer (MLPs have their own kernels).
inline bool layerwise_supported(const NetShape& s) {
  for (int l = 0; l < s.n_layers; ++l)
    if (s.layer[l].kind == LayerKind::Conv2D) return true;
  return false;
}

// ---- the step driver (host code, one executor interface) -------------------------------------
// An executor provides
//   each(S, n, f)                      f(net, e) for every network and e < n (one kernel)
//   gemm(S, p, grid, partial, stride)  the tile blocks of a product (phases above)
//   ok()                               false once a launch failed (the driver stops)
// and `target_blocks`, the blocks per network a product is split up to (kSplitTargetBlocks;
// other values only in tests).

// Runs product p (with its second pass when split), or, with a sizing executor, records the
// partial sums it needs.
template <class Exec, class P, class T>
void run_gemm(Exec& ex, int S, const P& p, int64_t M, int64_t N, int64_t K, const LayerwiseBuffers<T>& buf) {
  const GemmGrid g = make_gemm_grid(M, N, K, ex.target_blocks);
  ex.gemm(S, p, g, buf.partial, buf.ws);
  if (g.splits > 1) ex.each(S, M * N, GemmReduce<P, T>{p, g, buf.partial, buf.ws});
}

// Forward through every layer for a batch of B rows already at buf.acts.
template <class Exec, class T>
void layerwise_forward_layers(Exec& ex, const NetShape& s, const T* theta, int S, int B,
                              const LayerwiseBuffers<T>& buf) {
  const int64_t P = s.n_params, ws = buf.ws;
  for (int l = 0; l < s.n_layers; ++l) {
    const Layer& L = s.layer[l];
    const T* x = buf.acts + (int64_t)s.act_row(l) * B;
    T* y = buf.acts + (int64_t)s.act_row(l + 1) * B;
    switch (L.kind) {
      case LayerKind::Dense:
        run_gemm(ex, S, DenseForward<T>{s.n_in(l), s.n_out(l), x, theta, s.w_offset[l], s.b_offset[l], y, ws, P, L.relu},
                 B, s.n_out(l), s.n_in(l), buf);
        break;
      case LayerKind::Conv2D: {
        const ConvGeometry g{B, L.in_h, L.in_w, L.in_c, L.out_c, L.k};
        run_gemm(ex, S, ConvForward<T>{g, x, theta, s.w_offset[l], s.b_offset[l], y, ws, P, L.relu},
                 (int64_t)B * L.in_h * L.in_w, L.out_c, (int64_t)L.k * L.k * L.in_c, buf);
        break;
      }
      case LayerKind::MaxPool2:
        ex.each(S, (int64_t)B * s.n_out(l), PoolForward<T>{PoolGeometry{B, L.in_h, L.in_w, L.in_c}, x, y, ws});
        break;
    }
  }
}

// Backward from the logit gradient in buf.delta_a: every parameter gradient into buf.grad.
template <class Exec, class T>
void layerwise_backward_layers(Exec& ex, const NetShape& s, const T* theta, int S, int B,
                               const LayerwiseBuffers<T>& buf) {
  const int64_t P = s.n_params, ws = buf.ws;
  T* dy = buf.delta_a;
  T* dx = buf.delta_b;
  for (int l = s.n_layers - 1; l >= 0; --l) {
    const Layer& L = s.layer[l];
    const T* x = buf.acts + (int64_t)s.act_row(l) * B;
    const bool need_dx = l > 0;
    const bool relu_input = l > 0 && s.layer[l - 1].relu;
    switch (L.kind) {
      case LayerKind::Dense: {
        const int n_in = s.n_in(l), n_out = s.n_out(l);
        if (need_dx)
          run_gemm(ex, S, DenseInputGrad<T>{n_in, n_out, dy, theta, s.w_offset[l], x, dx, ws, P, relu_input},
                   B, n_in, n_out, buf);
        run_gemm(ex, S, DenseParamGrad<T>{n_in, n_out, x, dy, buf.grad, s.w_offset[l], ws}, n_in + 1, n_out, B, buf);
        break;
      }
      case LayerKind::Conv2D: {
        const ConvGeometry g{B, L.in_h, L.in_w, L.in_c, L.out_c, L.k};
        const int64_t pixels = (int64_t)B * L.in_h * L.in_w, taps = (int64_t)L.k * L.k;
        if (need_dx)
          run_gemm(ex, S, ConvInputGrad<T>{g, dy, theta, s.w_offset[l], x, dx, ws, P, relu_input},
                   pixels, L.in_c, taps * L.out_c, buf);
        run_gemm(ex, S, ConvParamGrad<T>{g, x, dy, buf.grad, s.w_offset[l], ws}, taps * L.in_c + 1, L.out_c,
                 pixels, buf);
        break;
      }
      case LayerKind::MaxPool2:
        if (need_dx)
          ex.each(S, (int64_t)B * s.n_in(l),
                  PoolInputGrad<T>{PoolGeometry{B, L.in_h, L.in_w, L.in_c}, x, dy, dx, ws, relu_input});
        break;
    }
    T* tmp = dy;
    dy = dx;
    dx = tmp;
  }
}

// Epochs [epoch_begin, epoch_end) of a run of a.epochs epochs (train_network's contract: batch
// order, Adam's step count and the loss records are those of the whole run). a's arrays and
// buf are the executor's (device pointers on the GPU).
template <class Exec, class T>
void layerwise_train_epochs(Exec& ex, const TrainArgs<T>& a, int S, int epoch_begin, int epoch_end,
                            const LayerwiseBuffers<T>& buf) {
  const NetShape& s = a.shape;
  const int B = a.B, N = a.N, d = s.width[0], K = s.n_logits();
  const int t_per = targets_per_sample(a.loss, K);
  const int n_batches = N / B;
  const int n_perm = a.shuffle == ShuffleMode::Samples ? N : n_batches;
  const int64_t ws = buf.ws, P = s.n_params;
  const T* logits = buf.acts + (int64_t)s.act_row(s.n_layers) * B;
  for (int epoch = epoch_begin; epoch < epoch_end && ex.ok(); ++epoch) {
    const int epoch_no = epoch + 1;
    const bool record = (epoch_no % a.record_every == 0) || epoch_no == a.epochs;
    if (a.shuffle != ShuffleMode::None) {
      const uint32_t global_epoch = static_cast<uint32_t>(a.step0 / n_batches + epoch);
      ex.each(S, n_perm, ShuffleDraws<T>{a.seeds, global_epoch, buf.draws, buf.ints});
      ex.each(S, 1, ShuffleApply{n_perm, buf.draws, buf.order, buf.ints});
    }
    if (record) ex.each(S, 1, ResetSums{buf.sums});
    for (int step = 0; step < n_batches; ++step) {
      ex.each(S, (int64_t)B * (d > t_per ? d : t_per),
              GatherBatch<T>{a.shuffle, buf.order, buf.ints, step, B, d, t_per, a.X, a.x_net_stride, a.Y,
                             a.y_net_stride, buf.acts, buf.targets, ws});
      layerwise_forward_layers(ex, s, a.theta, S, B, buf);
      ex.each(S, (int64_t)B * K, LossGrad<T>{a.loss, logits, buf.targets, buf.delta_a, K, B, ws});
      if (record) {
        ex.each(S, B, LossTerms<T>{a.loss, logits, buf.targets, buf.terms, K, B, ws});
        ex.each(S, 1, AccumulateTerms<T>{buf.terms, B, ws, buf.sums});
      }
      layerwise_backward_layers(ex, s, a.theta, S, B, buf);
      const int64_t t = a.step0 + (int64_t)epoch * n_batches + step + 1;
      ex.each(S, P, AdamStep<T>{a.adam, t, buf.grad, ws, a.theta, a.adam_m, a.adam_v, P});
    }
    if (record) {
      const int r = epoch_no % a.record_every == 0 ? epoch_no / a.record_every - 1 : a.n_records - 1;
      ex.each(S, 1, RecordEpoch{buf.sums, static_cast<double>(n_batches) * B, r, a.n_records, a.loss_history,
                                a.acc_history});
    }
  }
}

// Logits out (S, N, K) of X (N, d) or (S, N, d) in chunks of `rows` rows (buf sized for them).
template <class Exec, class T>
void layerwise_forward_rows(Exec& ex, const NetShape& s, const T* theta, int S, const T* X,
                            int64_t x_net_stride, int N, int rows, T* out, const LayerwiseBuffers<T>& buf) {
  const int d = s.width[0], K = s.n_logits();
  for (int row0 = 0; row0 < N && ex.ok(); row0 += rows) {
    const int B = N - row0 < rows ? N - row0 : rows;
    // Layer l's activations of a chunk of B rows start at act_row(l) * B: the chunk is laid
    // out for its own B, so the last, shorter chunk reads its logits from there.
    ex.each(S, (int64_t)B * d, CopyRows<T>{X, x_net_stride, row0, d, buf.acts, buf.ws});
    layerwise_forward_layers(ex, s, theta, S, B, buf);
    const T* z = buf.acts + (int64_t)s.act_row(s.n_layers) * B;
    ex.each(S, (int64_t)B * K, CopyRows<T>{z, buf.ws, 0, K, out + (int64_t)row0 * K, (int64_t)N * K});
  }
}

// Largest partial-sum buffer of any product of a pass (per network): the driver run with an
// executor that launches nothing.
struct SizingExec {
  int64_t target_blocks;
  int64_t partial = 0;
  bool ok() const { return true; }
  template <class F>
  void each(int, int64_t, const F&) {}
  template <class P, class T>
  void gemm(int, const P&, const GemmGrid& g, T*, int64_t) {
    if (gemm_partial_scalars(g) > partial) partial = gemm_partial_scalars(g);
  }
};

template <class T>
int64_t partial_scalars(const NetShape& s, int B, bool training, int64_t target_blocks) {
  SizingExec ex{target_blocks};
  LayerwiseBuffers<T> none{};
  layerwise_forward_layers(ex, s, static_cast<const T*>(nullptr), 1, B, none);
  if (training) layerwise_backward_layers(ex, s, static_cast<const T*>(nullptr), 1, B, none);
  return ex.partial;
}

// Rows per forward chunk: about kForwardChunkScalars activations for all S networks together
// (at least one row), and within the 32-bit batch limits of the shared phase code.
constexpr int64_t kForwardChunkScalars = int64_t(1) << 26;
inline int forward_chunk_rows(const NetShape& s, int S, int N) {
  const int64_t per_row = workspace_scalars_per_row(s);
  int64_t rows = kForwardChunkScalars / (per_row * (S > 0 ? S : 1));
  if (rows > kMaxIntCount / per_row) rows = kMaxIntCount / per_row;
  if (rows > N) rows = N;
  return rows > 1 ? static_cast<int>(rows) : 1;
}

// ---- GPU entry points (src/cuda/layer_kernels.cu) --------------------------------------------
// Device pointers; work queued on `stream` (a cudaStream_t), scratch allocated once per call,
// stream-ordered; every launch's error checked. Return "" or the CUDA error text.

// Epochs [epoch_begin, epoch_end) of the run of device_args.epochs epochs that started at
// device_args.step0 (device_args.epoch_begin/epoch_end are not read): batch order, Adam's step
// count and loss records are those of the whole run, so chunks of epochs equal one call.
template <class T>
std::string layerwise_train_launch(const TrainArgs<T>& device_args, int S, int epoch_begin, int epoch_end,
                                   void* stream);

// out (S, N, K): logits of X (N, d) or (S, N, d) (x_net_stride 0 or N * d).
template <class T>
std::string layerwise_forward_launch(const NetShape& s, const T* theta, int S, const T* X, int64_t x_net_stride,
                                     int N, T* out, void* stream);

}  // namespace layerwise
}  // namespace fs
