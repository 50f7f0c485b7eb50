// 2-D convolution, k x k (odd), stride 1, 'same' zero padding, NHWC activations and HWIO
// kernels (Keras layouts), written once for every executor as segment-sum phases (implicit
// matrix products, executor.h).
#pragma once
#include "executor.h"
#include "fs_math.h"
#include "net_shape.h"
#if !defined(__CUDACC__)
#include <string.h>
#include <vector>
#endif

namespace fs {

struct ConvGeometry {
  int B, H, W, Cin, Cout, k;
  FS_HD int pad() const { return k / 2; }
  FS_HD int padded_w() const { return W + 2 * (k / 2); }
};

// xp[n][h][w + p][c] = x[n][h][w][c], with p zero columns on both sides: zero padding along
// w is materialised, so a tap's run of channels is the same for every pixel of an image row;
// taps above or below the image are skipped as empty segments instead. With pad_rows, also p
// zero rows above and below each image: xp[n][h + p][w + p][c]. Lanes run along a whole
// padded image row (p C zeros, W C values, p C zeros).
template <class Block, class T>
FS_HD void conv2d_pad(const Block& blk, const ConvGeometry& g, const T* x, int C, bool pad_rows,
                      T* xp) {
  const int row_in = g.W * C, row_out = g.padded_w() * C, lead = g.pad() * C;
  const int top = pad_rows ? g.pad() : 0, Hp = g.H + 2 * top;
  blk.map_2d(g.B * Hp, row_out, [=](int row, int e) {
    const int h = row % Hp - top, i = e - lead;
    const bool inside = h >= 0 && h < g.H && i >= 0 && i < row_in;
    xp[(int64_t)row * row_out + e] = inside ? x[((int64_t)(row / Hp) * g.H + h) * row_in + i] : T(0);
  });
}

// y[n][h][w][co] = act(b[co] + sum_{kh, kw, ci} x[n][h + kh - p][w + kw - p][ci] * K[kh][kw][ci][co]):
// rows are output pixels, grouped by image row; segments are the k kernel rows, each the run of
// k * Cin (kw, ci) terms that is contiguous both in the padded input and in K (HWIO). Per kernel
// row rather than per tap: a first layer's 1-channel taps would be segments of one term.
// xp: scratch for the padded x.
template <class Block, class T>
FS_HD void conv2d_forward(const Block& blk, const ConvGeometry& g, const T* K, const T* b,
                          const T* x, T* xp, T* y, bool relu) {
  conv2d_pad(blk, g, x, g.Cin, false, xp);
  const int p = g.pad(), Wp = g.padded_w(), row_terms = g.k * g.Cin;
  blk.map_2d_segment_sum(
      SegmentSumShape{g.B * g.H * g.W, g.Cout, g.W, g.k, 1, g.Cout},
      [=](int r) -> const T* { return xp + ((int64_t)(r / g.W) * Wp + r % g.W) * g.Cin; },
      [=](int image_row, int kh) {
        const int ih = image_row % g.H + kh - p;
        const bool inside = ih >= 0 && ih < g.H;
        return Segment<T>{inside ? (int64_t)(kh - p) * Wp * g.Cin : 0,
                          K + (int64_t)kh * row_terms * g.Cout, inside ? row_terms : 0};
      },
      [=](int r, int co, T s) { y[(int64_t)r * g.Cout + co] = relu_if(relu, b[co] + s); });
}

// A layer with fewer input channels than kConvNarrowInput (a first layer on 1- or 3-channel
// images): lanes over its Cin channels would run scalar, and the k Cin rows of one kernel row
// are too few for a register tile. Its input gradient goes through per-tap products
// (conv2d_backward_input), its kernel gradient through an x padded on all sides
// (conv2d_backward_params); NetShape sizes their scratch for it (net_shape.h).
FS_HD FS_INLINE bool conv2d_narrow_input(const ConvGeometry& g) { return g.Cin < kConvNarrowInput; }

// The kernel laid out for conv2d_backward_input: by default flipped along kw and with channels
// swapped, Kt[kh][kw][co][ci] = K[kh][k - 1 - kw][ci][co], so that a kernel row's (kw, co) terms
// run contiguously with the padded dy; for a narrow input (conv2d_narrow_input) the
// (k k Cin) x Cout kernel matrix transposed, Kt[co][(kh, kw, ci)] = K[kh][kw][ci][co].
template <class Block, class T>
FS_HD void conv2d_transpose_kernel(const Block& blk, const ConvGeometry& g, const T* K, T* Kt) {
  const int taps = g.k * g.k;
  if (conv2d_narrow_input(g)) {
    const int rows = taps * g.Cin;
    blk.map_2d(g.Cout, rows, [=](int co, int tc) { Kt[(int64_t)co * rows + tc] = K[(int64_t)tc * g.Cout + co]; });
    return;
  }
  blk.map_2d(taps * g.Cout, g.Cin, [=](int tc, int ci) {
    const int tap = tc / g.Cout, co = tc % g.Cout;
    const int kh = tap / g.k, kw = g.k - 1 - tap % g.k;
    Kt[(int64_t)tc * g.Cin + ci] = K[(((int64_t)kh * g.k + kw) * g.Cin + ci) * g.Cout + co];
  });
}

// The position a 2 x 2 max-pool routed window (n, oh, ow)'s gradient to in channel co: the
// first of the window's positions where dy[n][h][w][co] != 0 (a clipped window's positions
// outside the image read its first one again); false if none. Behind a max-pool
// (pool_layer.h) a window's other positions get exactly 0. Branch-free: which position wins
// is unpredictable.
template <class T>
FS_HD FS_INLINE bool pool_route(const ConvGeometry& g, const T* dy, int n, int oh, int ow, int co,
                                int* h_out, int* w_out, T* dy_out) {
  const int64_t right = 2 * ow + 1 < g.W ? g.Cout : 0;
  const int64_t below = 2 * oh + 1 < g.H ? (int64_t)g.W * g.Cout : 0;
  const T* corner = dy + (((int64_t)n * g.H + 2 * oh) * g.W + 2 * ow) * g.Cout + co;
  const T v0 = corner[0], v1 = corner[right], v2 = corner[below], v3 = corner[below + right];
  int q = v2 != T(0) ? 2 : 3;
  T v = v2 != T(0) ? v2 : v3;
  q = v1 != T(0) ? 1 : q;
  v = v1 != T(0) ? v1 : v;
  q = v0 != T(0) ? 0 : q;
  v = v0 != T(0) ? v0 : v;
  *h_out = 2 * oh + (q >> 1);
  *w_out = 2 * ow + (q & 1);
  *dy_out = v;
  return v != T(0);
}

#if !defined(__CUDACC__)
// For one window and tap: the window's four pixels q each take
//   dx_q[0 .. NV L) += sum_{j < m} route_dy[q][j] k_tap[route_k[q][j] .. + NV L)
// (lists padded to m with zero terms), in 4 NV register chains (one chain per pixel would
// wait on its FMA latency), then one read-modify-write of each pixel's vectors.
template <int NV, class V, class T>
FS_INLINE void pooled_window_tap(const T* k_tap, const int* route_k,
                                 const T* route_dy, int list, int m, T* dx_corner,
                                 const int64_t* pos_offset) {
  constexpr int L = sizeof(V) / sizeof(T);
  V acc[4][NV];
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[q][v] = V{};
  for (int j = 0; j < m; ++j) {
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const T* kr = k_tap + route_k[q * list + j];
      const T d = route_dy[q * list + j];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[q][v] += d * load_vector<V>(kr + v * L);
    }
  }
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    T* out = dx_corner + pos_offset[q];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      V cur = load_vector<V>(out + v * L);
      cur += acc[q][v];
      memcpy(out + v * L, &cur, sizeof(V));
    }
  }
}

// CPU engine of conv2d_backward_input's pooled form for images [n_begin, n_end) (an image's dx
// is written by one call only). Per image: each window's routes of dy (pool_route) listed per
// window pixel q in channel order, then for each block of input channels, each tap (kh, kw)
// in order and each window in order,
//   dx[q + (kh - p, kw - p)][:] += sum_{routes (co, d) of q} d * K[kh][kw][:][co]
// into a local dx image padded on all sides (taps off the image land in the padding) and along
// Cin to whole vectors, finished with relu'(x). Kt as conv2d_transpose_kernel (not narrow),
// copied per call with rows padded to whole vectors.
template <class T>
void pooled_input_grad_host(const ConvGeometry& g, const T* Kt, const T* x, const T* dy, T* dx,
                            bool relu_input, int n_begin, int n_end) {
  using V = typename HostVector<T, kHostVectorBytes>::type;
  constexpr int L = kHostVectorBytes / sizeof(T);
  constexpr int kBlock = kHostVectorBytes == 64 ? 4 : 2;  // vectors per pixel in registers
  const int p = g.pad(), taps = g.k * g.k, OH = (g.H + 1) / 2, OW = (g.W + 1) / 2;
  const int nv = (g.Cin + L - 1) / L, cp = nv * L, windows = OH * OW, list = g.Cout;
  // one more row and column than 'same' padding: a clipped window's pixels outside the image
  const int Hl = g.H + 2 * p + 1, Wl = g.W + 2 * p + 1;
  // the thread's buffers, kept from call to call (fresh ones of this size are mapped pages,
  // which the kernel zeroes on every call)
  static thread_local std::vector<T> kp, dxl, route_dy;
  static thread_local std::vector<T> route_val;
  static thread_local std::vector<int> route_k, longest, route_pixel;  // route_k: co cp, kp's row
  // kp[tap][co][0 .. cp) = K[kh][kw][0 .. Cin)[co], zeros past Cin (tap = kh k + kw)
  kp.assign((size_t)taps * g.Cout * cp, T(0));
  for (int tap = 0; tap < taps; ++tap) {
    const int kh = tap / g.k, kw_flipped = g.k - 1 - tap % g.k;
    for (int co = 0; co < g.Cout; ++co)
      memcpy(&kp[((size_t)tap * g.Cout + co) * cp],
             Kt + (((int64_t)kh * g.k + kw_flipped) * g.Cout + co) * g.Cin, g.Cin * sizeof(T));
  }
  dxl.resize((size_t)Hl * Wl * cp);
  route_k.resize((size_t)windows * 4 * list);
  route_dy.resize((size_t)windows * 4 * list);
  longest.resize(windows);
  route_pixel.resize(g.Cout);
  route_val.resize(g.Cout);
  const int64_t pos_offset[4] = {0, cp, (int64_t)Wl * cp, (int64_t)(Wl + 1) * cp};
  int* const pixel_of = route_pixel.data();
  T* const dy_of = route_val.data();
  for (int n = n_begin; n < n_end; ++n) {
    for (int wi = 0; wi < windows; ++wi) {
      // lanes over the channels: the routed pixel (4: none), then the four lists built
      // branch-free (which pixel a channel routes to is unpredictable)
      {
        const int oh = wi / OW, ow = wi % OW;
        const int64_t right = 2 * ow + 1 < g.W ? g.Cout : 0;
        const int64_t below = 2 * oh + 1 < g.H ? (int64_t)g.W * g.Cout : 0;
        const T* c0p = dy + (((int64_t)n * g.H + 2 * oh) * g.W + 2 * ow) * g.Cout;
        const T* c1p = c0p + right;
        const T* c2p = c0p + below;
        const T* c3p = c0p + below + right;
        FS_SIMD
        for (int co = 0; co < g.Cout; ++co) {
          const T v0 = c0p[co], v1 = c1p[co], v2 = c2p[co], v3 = c3p[co];
          int q = v3 != T(0) ? 3 : 4;
          T v = v3;
          q = v2 != T(0) ? 2 : q;
          v = v2 != T(0) ? v2 : v;
          q = v1 != T(0) ? 1 : q;
          v = v1 != T(0) ? v1 : v;
          q = v0 != T(0) ? 0 : q;
          v = v0 != T(0) ? v0 : v;
          pixel_of[co] = q;
          dy_of[co] = v;
        }
      }
      int count[4];
      int* rc = &route_k[(size_t)wi * 4 * list];
      T* rd = &route_dy[(size_t)wi * 4 * list];
      for (int q = 0; q < 4; ++q) {
        int c = 0;
        for (int co = 0; co < g.Cout; ++co) {  // c <= co: stores stay inside q's list
          rc[q * list + c] = co * cp;
          rd[q * list + c] = dy_of[co];
          c += pixel_of[co] == q;
        }
        count[q] = c;
      }
      int m = 0;
      for (int q = 0; q < 4; ++q) m = count[q] > m ? count[q] : m;
      for (int q = 0; q < 4; ++q)
        for (int j = count[q]; j < m; ++j) {  // zero terms: the four chains run to m
          rc[q * list + j] = 0;
          rd[q * list + j] = T(0);
        }
      longest[wi] = m;
    }
    std::fill(dxl.begin(), dxl.end(), T(0));
    for (int c0 = 0; c0 < nv; c0 += kBlock) {
      const int nb = nv - c0 < kBlock ? nv - c0 : kBlock;
      for (int tap = 0; tap < taps; ++tap) {
        const int kh = tap / g.k, kw = tap % g.k;
        const T* k_tap = &kp[(size_t)tap * g.Cout * cp] + c0 * L;
        for (int wi = 0; wi < windows; ++wi) {
          const int m = longest[wi];
          if (m == 0) continue;
          const int* rc = &route_k[(size_t)wi * 4 * list];
          const T* rd = &route_dy[(size_t)wi * 4 * list];
          // padded pixel (2 oh + kh, 2 ow + kw) is image pixel (2 oh, 2 ow) + (kh - p, kw - p)
          T* corner = &dxl[((size_t)(2 * (wi / OW) + kh) * Wl + 2 * (wi % OW) + kw) * cp] + c0 * L;
          switch (nb) {
            case 1: pooled_window_tap<1, V>(k_tap, rc, rd, list, m, corner, pos_offset); break;
            case 2: pooled_window_tap<2, V>(k_tap, rc, rd, list, m, corner, pos_offset); break;
            case 3: pooled_window_tap<3, V>(k_tap, rc, rd, list, m, corner, pos_offset); break;
            default: pooled_window_tap<4, V>(k_tap, rc, rd, list, m, corner, pos_offset); break;
          }
        }
      }
    }
    const int64_t base = (int64_t)n * g.H * g.W * g.Cin;
    for (int h = 0; h < g.H; ++h)
      for (int w = 0; w < g.W; ++w) {
        const T* src = &dxl[((size_t)(h + p) * Wl + w + p) * cp];
        const int64_t row = base + ((int64_t)h * g.W + w) * g.Cin;
        FS_SIMD
        for (int ci = 0; ci < g.Cin; ++ci) dx[row + ci] = relu_grad_if(relu_input, x[row + ci], src[ci]);
      }
  }
}
#endif

#if !defined(__CUDACC__)
// CPU engine of conv2d_backward_input's narrow form (Cin < kConvNarrowInput) for images
// [n_begin, n_end): the same products z[q][(kh, kw, ci)] and the same tap sums in the same
// order, but made one output image row at a time into a ring of k rows of z (in L1 or L2)
// just ahead of the input rows that read them, instead of z for the whole batch (B H W k k Cin
// scalars, written out to memory and read back).
// Where whole vectors make one column block (at most 3 vectors: tiles of 8 rows), the columns
// are padded to whole vectors (the kernel copied with zero columns): 25 float32 columns on
// AVX-512 would otherwise be a vector, a half vector and a scalar column (1.4x the time).
template <class T>
void narrow_input_grad_host(const ConvGeometry& g, const T* Kt, const T* x, const T* dy, T* dx,
                            bool relu_input, int n_begin, int n_end) {
  constexpr int L = kHostVectorBytes / sizeof(T);
  const int p = g.pad(), taps = g.k * g.k * g.Cin, H = g.H, W = g.W;
  const int whole = (taps + L - 1) / L * L;
  const int cols = whole <= 3 * L ? whole : taps;
  static thread_local std::vector<T> ring, kp;
  ring.resize((size_t)g.k * W * cols);
  kp.resize((size_t)g.Cout * cols);  // (not assign: std:: code compiled here must not be
  memset(kp.data(), 0, kp.size() * sizeof(T));  // instantiated with this variant's vectors)
  for (int co = 0; co < g.Cout; ++co)
    memcpy(kp.data() + (int64_t)co * cols, Kt + (int64_t)co * taps, taps * sizeof(T));
  T* const z_rows = ring.data();
  const T* const k_padded = kp.data();
  const HostBlock blk;
  for (int n = n_begin; n < n_end; ++n) {
    int made = 0;  // output rows of image n whose z has been made (the last k are in the ring)
    for (int h = 0; h < H; ++h) {
      for (const int need = h + p + 1 < H ? h + p + 1 : H; made < need; ++made) {
        T* zr = z_rows + (int64_t)(made % g.k) * W * cols;
        const T* dyr = dy + (int64_t)(n * H + made) * W * g.Cout;
        map_2d_product(blk, W, cols, g.Cout, 1, k_padded, cols,
                       [=](int q) { return dyr + (int64_t)q * g.Cout; },
                       [=](int q, int c, T s) { zr[(int64_t)q * cols + c] = s; });
      }
      const int kh_lo = h + p - (H - 1) > 0 ? h + p - (H - 1) : 0, kh_hi = h + p < g.k - 1 ? h + p : g.k - 1;
      const int64_t row0 = (int64_t)(n * H + h) * W * g.Cin;
      FS_SIMD
      for (int e = 0; e < W * g.Cin; ++e) {
        const int w = e / g.Cin, ci = e % g.Cin;
        const int kw_lo = w + p - (W - 1) > 0 ? w + p - (W - 1) : 0, kw_hi = w + p < g.k - 1 ? w + p : g.k - 1;
        T s = 0;
        for (int kh = kh_lo; kh <= kh_hi; ++kh) {
          const T* zr = z_rows + (int64_t)((h + p - kh) % g.k) * W * cols;
          for (int kw = kw_lo; kw <= kw_hi; ++kw)
            s += zr[(int64_t)(w + p - kw) * cols + (kh * g.k + kw) * g.Cin + ci];
        }
        dx[row0 + e] = relu_grad_if(relu_input, x[row0 + e], s);
      }
    }
  }
}
#endif

// dx[n][h][w][ci] = sum_{kh, kw, co} dy[n][h - kh + p][w - kw + p][co] * K[kh][kw][ci][co], times
// relu'(x) when x is a ReLU output (Kt from conv2d_transpose_kernel). By default the forward
// product with the flipped and transposed kernel: segments are kernel rows, a run of k * Cout
// (kw reversed, co) terms of the padded dy. A narrow input instead takes the product
// z[q][(kh, kw, ci)] = sum_co dy[q][co] * K[kh][kw][ci][co] over all output pixels q, with lanes
// over the k k Cin columns, then sums each input pixel's k k terms of z, taps in order.
// pooled (the layer's output goes to a 2 x 2 max-pool; k > 1, input not narrow): dy has at
// most one nonzero per pool window and channel, and the CPU engine sums only those terms,
// image by image (pooled_input_grad_host; a team of threads splits the images); other
// executors take the dense form.
// scratch: B H (W + 2p) max(Cin, Cout) scalars for the padded dy, or B H W k k Cin for z.
template <class Block, class T>
FS_HD void conv2d_backward_input(const Block& blk, const ConvGeometry& g, const T* Kt,
                                 const T* x, const T* dy, T* scratch, T* dx, bool relu_input,
                                 bool pooled) {
  const int p = g.pad(), Wp = g.padded_w();
#if !defined(__CUDACC__)
  if constexpr (IsHostBlock<Block>::value) {
    if (pooled && g.k > 1 && !conv2d_narrow_input(g)) {
      const int64_t work = (int64_t)g.B * g.H * g.W * g.k * g.k * g.Cin * g.Cout / 4;
      blk.map_row_blocks(g.B, work, 1, [&](int lo, int count) {
        pooled_input_grad_host(g, Kt, x, dy, dx, relu_input, lo, lo + count);
      });
      return;
    }
    // (AVX-512 only: with 256-bit vectors the row-at-a-time products were slower than the
    // whole batch's, 3.3 against 2.4 ms float32 for the paper's conv1 on an Intel Xeon)
    if (conv2d_narrow_input(g) && kHostVectorBytes == 64) {
      const int64_t work = (int64_t)g.B * g.H * g.W * g.k * g.k * g.Cin * g.Cout;
      blk.map_row_blocks(g.B, work, 1, [&](int lo, int count) {
        narrow_input_grad_host(g, Kt, x, dy, dx, relu_input, lo, lo + count);
      });
      return;
    }
  }
#endif
  if (conv2d_narrow_input(g)) {
    const int cols = g.k * g.k * g.Cin;
    T* z = scratch;
    map_2d_product(blk, g.B * g.H * g.W, cols, g.Cout, 1, Kt, cols,
                   [=](int q) { return dy + (int64_t)q * g.Cout; },
                   [=](int q, int c, T s) { z[(int64_t)q * cols + c] = s; });
    // lanes over the input's elements (pixel, ci); the taps whose output pixel is inside
    blk.map_1d(g.B * g.H * g.W * g.Cin, [=](int e) {
      const int pixel = e / g.Cin, ci = e % g.Cin, h = pixel / g.W % g.H, w = pixel % g.W;
      const int kh_lo = h + p - (g.H - 1) > 0 ? h + p - (g.H - 1) : 0, kh_hi = h + p < g.k - 1 ? h + p : g.k - 1;
      const int kw_lo = w + p - (g.W - 1) > 0 ? w + p - (g.W - 1) : 0, kw_hi = w + p < g.k - 1 ? w + p : g.k - 1;
      T s = 0;
      for (int kh = kh_lo; kh <= kh_hi; ++kh)
        for (int kw = kw_lo; kw <= kw_hi; ++kw)
          s += z[((int64_t)pixel + (p - kh) * g.W + p - kw) * cols + (kh * g.k + kw) * g.Cin + ci];
      dx[e] = relu_grad_if(relu_input, x[e], s);
    });
    return;
  }
  T* dyp = scratch;
  conv2d_pad(blk, g, dy, g.Cout, false, dyp);
  const int row_terms = g.k * g.Cout;
  blk.map_2d_segment_sum(
      SegmentSumShape{g.B * g.H * g.W, g.Cin, g.W, g.k, 1, g.Cin},
      [=](int r) -> const T* { return dyp + ((int64_t)(r / g.W) * Wp + r % g.W) * g.Cout; },
      [=](int image_row, int kh) {
        const int oh = image_row % g.H - kh + p;
        const bool inside = oh >= 0 && oh < g.H;
        return Segment<T>{inside ? (int64_t)(p - kh) * Wp * g.Cout : 0,
                          Kt + (int64_t)kh * row_terms * g.Cin, inside ? row_terms : 0};
      },
      [=](int r, int ci, T s) {
        const int64_t e = (int64_t)r * g.Cin + ci;
        dx[e] = relu_grad_if(relu_input, x[e], s);
      });
}

#if !defined(__CUDACC__)
// acc[0 .. NV) (the run's columns [0, avail)) += dy_i * x_i, i < n_routes, for the routed terms
// of one image; acc starts at 0 (first image) or at the partial sums in part. x rows are read
// as whole vectors: lanes past the run read the padded x's next values, and are not stored.
template <int NV, class V, class T>
FS_INLINE void pooled_run_block(const T* xk, const int64_t* route_x, const T* route_dy,
                                int n_routes, T* part, int avail, bool first) {
  constexpr int L = sizeof(V) / sizeof(T);
  V acc[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    acc[v] = V{};
    const int n_el = avail - v * L;
    if (first) continue;
    if (n_el >= L) acc[v] = load_vector<V>(part + v * L);
    else memcpy(&acc[v], part + v * L, n_el * sizeof(T));
  }
  for (int i = 0; i < n_routes; ++i) {
    const T* xr = xk + route_x[i];
    const T d = route_dy[i];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[v] += d * load_vector<V>(xr + v * L);
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    const int n_el = avail - v * L;
    if (n_el >= L) memcpy(part + v * L, &acc[v], sizeof(V));
    else memcpy(part + v * L, &acc[v], n_el * sizeof(T));
  }
}

// CPU engine of conv2d_backward_params' pooled form for output channels [co_begin, co_end):
// dKt[co][kh][(kw, ci)], image by image (an image's padded x stays in L1 while every channel
// and kernel row of the range takes its routed terms), each (channel, kernel row) run of
// k Cin sums in register blocks of up to 8 vectors. Same sums in the same order as the
// element definition.
template <class T>
void pooled_kernel_grad_host(const ConvGeometry& g, const T* xp, const T* dy, T* dKt,
                             int co_begin, int co_end) {
  using V = typename HostVector<T, kHostVectorBytes>::type;
  constexpr int L = kHostVectorBytes / sizeof(T);
  const int p = g.pad(), Hp = g.H + 2 * p, Wp = g.padded_w(), run = g.k * g.Cin;
  const int OH = (g.H + 1) / 2, OW = (g.W + 1) / 2;
  std::vector<int64_t> route_x(OH * OW);
  std::vector<T> route_dy(OH * OW);
  for (int n = 0; n < g.B; ++n) {
    for (int co = co_begin; co < co_end; ++co) {
      int n_routes = 0;
      for (int oh = 0; oh < OH; ++oh)
        for (int ow = 0; ow < OW; ++ow) {
          int h, w;
          T d;
          const bool routed = pool_route(g, dy, n, oh, ow, co, &h, &w, &d);
          route_x[n_routes] = (((int64_t)n * Hp + h) * Wp + w) * g.Cin;  // kept if routed
          route_dy[n_routes] = d;
          n_routes += routed;
        }
      for (int kh = 0; kh < g.k; ++kh) {
        const T* xk = xp + (int64_t)kh * Wp * g.Cin;
        T* part = dKt + ((int64_t)co * g.k + kh) * run;
        for (int c0 = 0; c0 < run; c0 += 8 * L) {
          const int avail = run - c0, nv = (avail + L - 1) / L;
          const int64_t* rx = route_x.data();
          const T* rd = route_dy.data();
          switch (nv < 8 ? nv : 8) {
            case 1: pooled_run_block<1, V>(xk + c0, rx, rd, n_routes, part + c0, avail, n == 0); break;
            case 2: pooled_run_block<2, V>(xk + c0, rx, rd, n_routes, part + c0, avail, n == 0); break;
            case 3: pooled_run_block<3, V>(xk + c0, rx, rd, n_routes, part + c0, avail, n == 0); break;
            case 4: pooled_run_block<4, V>(xk + c0, rx, rd, n_routes, part + c0, avail, n == 0); break;
            case 5: pooled_run_block<5, V>(xk + c0, rx, rd, n_routes, part + c0, avail, n == 0); break;
            case 6: pooled_run_block<6, V>(xk + c0, rx, rd, n_routes, part + c0, avail, n == 0); break;
            case 7: pooled_run_block<7, V>(xk + c0, rx, rd, n_routes, part + c0, avail, n == 0); break;
            default: pooled_run_block<8, V>(xk + c0, rx, rd, n_routes, part + c0, avail, n == 0); break;
          }
        }
      }
    }
  }
}
#endif

#if !defined(__CUDACC__)
// One image row's terms for one tile of narrow_kernel_grad_host: R rows (kh, t0 .. t0 + R - 1)
// x NV vectors and NH (0 or 1) half vectors of output channels:
//   part[i][c] (+)= sum_{j < W} x[j Cin + i] * dy[j Cout + c]
// (from 0 when first). The rows' x values sit at consecutive offsets of one padded x row, so
// the tile addresses them from one pointer.
template <int R, int NV, int NH, class T>
FS_INLINE void narrow_kernel_grad_tile(int W, int Cin, int Cout, const T* x, const T* dy, T* part,
                                       bool first) {
  using V = typename HostVector<T, kHostVectorBytes>::type;
  using H = typename HostVector<T, kHostVectorBytes / 2>::type;
  constexpr int L = kHostVectorBytes / sizeof(T);
  constexpr int NVA = NV > 0 ? NV : 1, NHA = NH > 0 ? NH : 1;
  V acc[R][NVA];
  H acc_h[R][NHA];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) acc[i][v] = first ? V{} : load_vector<V>(part + i * Cout + v * L);
    if (NH) acc_h[i][0] = first ? H{} : load_vector<H>(part + i * Cout + NV * L);
  }
  for (int j = 0; j < W; ++j) {
    V wv[NVA];
    H wh[NHA];
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) wv[v] = load_vector<V>(dy + (int64_t)j * Cout + v * L);
    if (NH) wh[0] = load_vector<H>(dy + (int64_t)j * Cout + NV * L);
    const T* xj = x + j * Cin;
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const T xv = xj[i];
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[i][v] += xv * wv[v];
      if (NH) acc_h[i][0] += xv * wh[0];
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) memcpy(part + i * Cout + v * L, &acc[i][v], sizeof(V));
    if (NH) memcpy(part + i * Cout + NV * L, &acc_h[i][0], sizeof(H));
  }
}

// Rows [t_begin, t_end) of one kernel row against the channels [c0, c0 + NV L + NH L/2), one
// image row's terms: tiles of 8 rows, the rest in one tile (a kernel row of 5 taps is one tile
// of 5: single-row tiles wait on the FMA latency).
template <int NV, int NH, class T>
FS_INLINE void narrow_kernel_grad_rows(int W, int Cin, int Cout, const T* x, const T* dy, T* part,
                                       int t_begin, int t_end, bool first) {
  int t = t_begin;
  auto tile = [&](auto rows) {
    narrow_kernel_grad_tile<decltype(rows)::value, NV, NH>(W, Cin, Cout, x + t, dy, part + (int64_t)t * Cout, first);
    t += decltype(rows)::value;
  };
  while (t + 8 <= t_end) tile(std::integral_constant<int, 8>{});
  switch (t_end - t) {
    case 7: tile(std::integral_constant<int, 7>{}); break;
    case 6: tile(std::integral_constant<int, 6>{}); break;
    case 5: tile(std::integral_constant<int, 5>{}); break;
    case 4: tile(std::integral_constant<int, 4>{}); break;
    case 3: tile(std::integral_constant<int, 3>{}); break;
    case 2: tile(std::integral_constant<int, 2>{}); break;
    case 1: tile(std::integral_constant<int, 1>{}); break;
    default: break;
  }
}

// CPU engine of conv2d_backward_params' narrow form (Cin < kConvNarrowInput) for the rows
// [r_begin, r_end) of dK (rows (kh, kw, ci)), xp padded on all sides: each element
//   acc = 0;  for each output image row (n, h) in order, for w in order:
//     acc += x[n][h + kh - p][w + kw - p][ci] * dy[n][h][w][co]
// the same sums in the same order as the generic segment-sum form, whatever the tiling. Image
// rows outermost, with the partial sums in part (L1-sized): dy (B H W Cout scalars, more than
// the caches hold) is read once, not once per tile of rows.
template <class T>
void narrow_kernel_grad_host(const ConvGeometry& g, const T* xp, const T* dy, T* dK, int r_begin,
                             int r_end) {
  constexpr int L = kHostVectorBytes / sizeof(T), LH = L / 2;
  const int taps_row = g.k * g.Cin, Hp = g.H + 2 * g.pad(), Wp = g.padded_w();
  const int C = g.Cout, nv3 = C / (3 * L), rest = C - nv3 * 3 * L;
  const int nv = rest / L, nh = (rest - nv * L) >= LH ? 1 : 0, c_tail = nv3 * 3 * L + nv * L + nh * LH;
  T* part = dK + (int64_t)r_begin * C;  // the rows' own output, as partial sums
  for (int image_row = 0; image_row < g.B * g.H; ++image_row) {
    const int n = image_row / g.H, h = image_row % g.H;
    const bool first = image_row == 0;
    const T* dy_row = dy + (int64_t)image_row * g.W * C;
    for (int r = r_begin; r < r_end;) {
      const int kh = r / taps_row, t_begin = r % taps_row;
      const int t_end = (kh + 1) * taps_row <= r_end ? taps_row : r_end - kh * taps_row;
      const T* x = xp + ((int64_t)(n * Hp + h + kh) * Wp) * g.Cin;
      T* pk = part + ((int64_t)kh * taps_row - r_begin) * C;
      for (int b = 0; b < nv3; ++b)
        narrow_kernel_grad_rows<3, 0>(g.W, g.Cin, C, x, dy_row + b * 3 * L, pk + b * 3 * L, t_begin, t_end, first);
      const int c = nv3 * 3 * L;
      switch (nv * 2 + nh) {
        case 1: narrow_kernel_grad_rows<0, 1>(g.W, g.Cin, C, x, dy_row + c, pk + c, t_begin, t_end, first); break;
        case 2: narrow_kernel_grad_rows<1, 0>(g.W, g.Cin, C, x, dy_row + c, pk + c, t_begin, t_end, first); break;
        case 3: narrow_kernel_grad_rows<1, 1>(g.W, g.Cin, C, x, dy_row + c, pk + c, t_begin, t_end, first); break;
        case 4: narrow_kernel_grad_rows<2, 0>(g.W, g.Cin, C, x, dy_row + c, pk + c, t_begin, t_end, first); break;
        case 5: narrow_kernel_grad_rows<2, 1>(g.W, g.Cin, C, x, dy_row + c, pk + c, t_begin, t_end, first); break;
        default: break;
      }
      // the last channels (fewer than half a vector), one at a time
      for (int co = c_tail; co < C; ++co)
        for (int t = t_begin; t < t_end; ++t) {
          T acc = first ? T(0) : pk[(int64_t)t * C + co];
          for (int j = 0; j < g.W; ++j) acc += x[j * g.Cin + t] * dy_row[(int64_t)j * C + co];
          pk[(int64_t)t * C + co] = acc;
        }
      r = kh * taps_row + t_end;
    }
  }
}
#endif

// dK[kh][kw][ci][co] = sum_{n, h, w} x[n][h + kh - p][w + kw - p][ci] * dy[n][h][w][co];
// db[co] = sum_{n, h, w} dy[n][h][w][co]. Rows are (kh, kw, ci), grouped by kh; segments are
// the output image rows (n, h): a run of the padded x along w (stride Cin) against the rows of
// dy. A narrow input (conv2d_narrow_input) is padded with zero rows too, so that all k k Cin
// rows share every segment (one group: register tiles of 8 rows); its sums then also take the
// zero terms of the padding rows.
// pooled (the layer's output goes to a 2 x 2 max-pool; k > 1, input not narrow): dy has at most one nonzero per
// pool window and channel, and only those terms are summed: element (row (kh, kw, ci), co) is
//   acc = 0;  for each window (n, oh, ow) in order with a route (h, w) (pool_route):
//     acc += dy[n][h][w][co] * x[n][h + kh - p][w + kw - p][ci].
// The CPU engine runs it as row blocks of output channels (pooled_kernel_grad_host) into
// kernel_scratch (k k Cin Cout scalars), then transposes.
// xp: scratch for the padded x, B (H + 2p) (W + 2p) Cin scalars.
template <class Block, class T>
FS_HD void conv2d_backward_params(const Block& blk, const ConvGeometry& g, const T* x,
                                  const T* dy, T* xp, T* kernel_scratch, bool pooled, T* dK,
                                  T* db) {
  const int p = g.pad(), Wp = g.padded_w(), taps_row = g.k * g.Cin;
  const int Hp = g.H + 2 * p, rows = g.k * taps_row;
  auto store = [=](int row, int co, T s) { dK[(int64_t)row * g.Cout + co] = s; };
  if (pooled && g.k > 1 && !conv2d_narrow_input(g)) {
    conv2d_pad(blk, g, x, g.Cin, true, xp);
#if !defined(__CUDACC__)
    if constexpr (IsHostBlock<Block>::value) {
      const int64_t work = (int64_t)g.B * g.H * g.W * rows * g.Cout / 4;
      T* dKt = kernel_scratch;
      // blocks of 8 channels: a block reads all the padded x once
      blk.map_row_blocks(g.Cout, work, 8, [&](int lo, int count) {
        pooled_kernel_grad_host(g, xp, dy, dKt, lo, lo + count);
      });
      blk.map_2d(rows, g.Cout, [=](int row, int co) {
        dK[(int64_t)row * g.Cout + co] = dKt[((int64_t)co * g.k + row / taps_row) * taps_row + row % taps_row];
      });
    } else
#endif
    {
      blk.map_2d(rows, g.Cout, [=](int row, int co) {
        const int kh = row / taps_row, kw = row / g.Cin % g.k, ci = row % g.Cin;
        const int OH = (g.H + 1) / 2, OW = (g.W + 1) / 2;
        T acc = 0;
        for (int n = 0; n < g.B; ++n)
          for (int oh = 0; oh < OH; ++oh)
            for (int ow = 0; ow < OW; ++ow) {
              int h, w;
              T d;
              if (!pool_route(g, dy, n, oh, ow, co, &h, &w, &d)) continue;
              acc += d * xp[(((int64_t)n * Hp + h + kh) * Wp + w + kw) * g.Cin + ci];
            }
        dK[(int64_t)row * g.Cout + co] = acc;
      });
    }
  } else if (conv2d_narrow_input(g)) {
    conv2d_pad(blk, g, x, g.Cin, true, xp);
#if !defined(__CUDACC__)
    if constexpr (IsHostBlock<Block>::value) {
      const int64_t work = (int64_t)rows * g.Cout * g.B * g.H * g.W;
      blk.map_row_blocks(rows, work, 1, [&](int lo, int count) {
        narrow_kernel_grad_host(g, xp, dy, dK, lo, lo + count);
      });
    } else
#endif
    blk.map_2d_segment_sum(
        SegmentSumShape{rows, g.Cout, rows, g.B * g.H, g.Cin, g.Cout},
        [=](int r) -> const T* { return xp + (int64_t)(r / taps_row) * Wp * g.Cin + r % taps_row; },
        [=](int, int image_row) {
          const int64_t x_row = (int64_t)(image_row / g.H * Hp + image_row % g.H) * Wp * g.Cin;
          return Segment<T>{x_row, dy + (int64_t)image_row * g.W * g.Cout, g.W};
        },
        store);
  } else {
    conv2d_pad(blk, g, x, g.Cin, false, xp);
    blk.map_2d_segment_sum(
        SegmentSumShape{rows, g.Cout, taps_row, g.B * g.H, g.Cin, g.Cout},
        [=](int r) -> const T* { return xp + r % taps_row; },
        [=](int kh, int image_row) {
          const int ih = image_row % g.H + kh - p;
          const bool inside = ih >= 0 && ih < g.H;
          const int64_t x_row = (int64_t)(image_row - image_row % g.H + ih) * Wp * g.Cin;
          return Segment<T>{inside ? x_row : 0, dy + (int64_t)image_row * g.W * g.Cout,
                            inside ? g.W : 0};
        },
        store);
  }
  map_column_sums(blk, g.Cout, g.B * g.H * g.W, dy, g.Cout, [=](int co, T s) { db[co] = s; });
}

}  // namespace fs
