// CPU engine of the segment-sum phase (executor.h): a register-tiled implicit matrix product.
//
// A tile is R rows x NV column vectors of accumulators (up to 24 vector registers). For each
// term j of a segment the tile loads NV vectors of the row w[j] once and multiplies them by R
// broadcast scalars x_i[j], one per row: R * NV independent fused multiply-adds per load of w,
// enough chains to hide the FMA latency and few enough loads to stay FMA-bound (llm.c's and
// BLIS's micro-kernel idea, with the segments' indirection of a convolution).
// Every element is still summed in segment_sum_element's order, so the tiles agree with the
// EmulatedBlock / CUDA executors up to rounding (the compiler may contract differently in
// differently shaped tiles); a row's tile depends only on its place in its group, so results
// do not depend on how many threads share the rows.
#pragma once
#if !defined(__CUDACC__)
#include <stdint.h>
#include <string.h>
#include "segment_sum.h"

namespace fs {

#if defined(__AVX512F__)
constexpr int kHostVectorBytes = 64;
constexpr int kHostTileVectors = 24;  // 32 vector registers: 24 accumulators + loads
#else
constexpr int kHostVectorBytes = 32;
constexpr int kHostTileVectors = 12;  // 16 vector registers
#endif

// Tiles are 8 rows high from a group's start (then one each of 4, 2, 1 rows as the group's
// remainder needs); a team of threads splits a group's rows only at such tile boundaries
// (segment_tile_boundary), so a row's tile does not depend on the team size.
constexpr int kSegmentSplitRows = 8;

// The tile boundary nearest to `offset` (ties: the later one) in a group of n > offset rows.
// Blocks of wider columns have shorter tiles (4, 2 or 1 rows), whose boundaries include these.
FS_INLINE int segment_tile_boundary(int n, int offset) {
  int below = offset - offset % kSegmentSplitRows, above = n;
  if (below + kSegmentSplitRows <= n) {
    above = below + kSegmentSplitRows;
  } else {
    for (int tile = kSegmentSplitRows / 2; tile >= 1; tile /= 2) {
      if (below + tile > n) continue;  // the remainder has no tile of this height
      if (below + tile > offset) {
        above = below + tile;
        break;
      }
      below += tile;
    }
  }
  return offset - below < above - offset ? below : above;
}

// A SIMD vector of `Bytes` bytes of T (GCC/Clang vector extension); Bytes == sizeof(T) is a scalar.
template <class T, int Bytes>
struct HostVector {
  typedef T type __attribute__((vector_size(Bytes)));
};
template <class T>
struct HostVector<T, sizeof(T)> {
  typedef T type;
};

template <class V, class T>
FS_INLINE V load_vector(const T* p) {
  V v;
  memcpy(&v, p, sizeof(V));
  return v;
}

// One tile: rows r0 .. r0 + R - 1 (all in group grp), from column c0 on NV full vectors V and
// NH (0 or 1) half-width vectors H (24 float32 channels = one 16-lane and one 8-lane vector).
template <int R, int NV, int NH, class V, class H, class RowX, class Seg, class Finish>
FS_INLINE void segment_sum_tile(const SegmentSumShape& p, int grp, int r0, int c0, RowX& row_x,
                                Seg& segment, Finish& finish) {
  using T = typename Pointee<decltype(row_x(0))>::type;
  constexpr int L = sizeof(V) / sizeof(T), LH = sizeof(H) / sizeof(T);
  constexpr int NVA = NV > 0 ? NV : 1, NHA = NH > 0 ? NH : 1;  // no zero-size arrays
  V acc[R][NVA];
  H acc_h[R][NHA];
#pragma GCC unroll 12
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[i][v] = V{};
    if (NH) acc_h[i][0] = H{};
  }
  const T* xr[R];
#pragma GCC unroll 12
  for (int i = 0; i < R; ++i) xr[i] = row_x(r0 + i);
  const int64_t xs = p.x_stride, ws = p.w_stride;
  for (int s = 0; s < p.n_seg; ++s) {
    const auto g = segment(grp, s);
    if (g.count <= 0) continue;
    const T* w = g.w + c0;
    const T* x[R];
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i) x[i] = xr[i] + g.x_offset;
    for (int j = 0; j < g.count; ++j) {
      V wv[NVA];
      H wh[NHA];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) wv[v] = load_vector<V>(w + j * ws + v * L);
      if (NH) wh[0] = load_vector<H>(w + j * ws + NV * L);
#pragma GCC unroll 12
      for (int i = 0; i < R; ++i) {
        const T xv = x[i][j * xs];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[i][v] += xv * wv[v];
        if (NH) acc_h[i][0] += xv * wh[0];
      }
    }
  }
  // Lanes are handed to finish through memory; the loops vectorise (finish is elementwise).
  T lane[L];
#pragma GCC unroll 12
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      memcpy(lane, &acc[i][v], sizeof(V));
      FS_SIMD
      for (int l = 0; l < L; ++l) finish(r0 + i, c0 + v * L + l, lane[l]);
    }
    if (NH) {
      memcpy(lane, &acc_h[i][0], sizeof(H));
      FS_SIMD
      for (int l = 0; l < LH; ++l) finish(r0 + i, c0 + NV * L + l, lane[l]);
    }
  }
}

// Rows [r_begin, r_end) of group grp against one column block: tiles of R rows (as many as
// the accumulator registers allow, at most 8), then of 4, then 2, then single rows.
template <int NV, int NH, class V, class H, class RowX, class Seg, class Finish>
FS_INLINE void segment_sum_column_block(const SegmentSumShape& p, int grp, int r_begin, int r_end,
                                        int c0, RowX& row_x, Seg& segment, Finish& finish) {
  constexpr int R0 = kHostTileVectors / (NV + NH);
  constexpr int R = R0 >= 8 ? 8 : R0 >= 4 ? 4 : R0 >= 2 ? 2 : 1;
  static_assert(kSegmentSplitRows % R == 0, "a team split must not cut a tile");
  int r = r_begin;
  for (; r + R <= r_end; r += R)
    segment_sum_tile<R, NV, NH, V, H>(p, grp, r, c0, row_x, segment, finish);
  if (R > 4)
    for (; r + 4 <= r_end; r += 4)
      segment_sum_tile<4, NV, NH, V, H>(p, grp, r, c0, row_x, segment, finish);
  if (R > 2)
    for (; r + 2 <= r_end; r += 2)
      segment_sum_tile<2, NV, NH, V, H>(p, grp, r, c0, row_x, segment, finish);
  for (; r < r_end; ++r) segment_sum_tile<1, NV, NH, V, H>(p, grp, r, c0, row_x, segment, finish);
}

// Rows [r_begin, r_end) of one group: columns in blocks of 3 full vectors (8 rows x 3 vectors
// = 24 accumulators), then what is left: 1 or 2 full vectors and / or a half-width vector;
// the rest one scalar column at a time. Every block's tile is 8 rows high.
// A group of fewer than 4 rows (a layer's weight gradient with 1 or 2 input units, a bias
// gradient) first takes blocks of 6 full vectors (and the half vector after the last one):
// tiles of 1 or 2 rows x 3 vectors would wait on the FMA latency at every term.
template <class RowX, class Seg, class Finish>
FS_INLINE void segment_sum_group(const SegmentSumShape& p, int grp, int r_begin, int r_end,
                                 RowX& row_x, Seg& segment, Finish& finish) {
  using T = typename Pointee<decltype(row_x(0))>::type;
  using V = typename HostVector<T, kHostVectorBytes>::type;
  using H = typename HostVector<T, kHostVectorBytes / 2>::type;
  constexpr int L = kHostVectorBytes / sizeof(T), LH = L / 2;
  int c = 0;
  const int group_rows = p.rows - grp * p.group < p.group ? p.rows - grp * p.group : p.group;
  if (group_rows < 4) {
    for (; c + 6 * L <= p.cols; c += 6 * L) {
      const int rest = p.cols - c - 6 * L;
      if (rest >= LH && rest < L) {
        segment_sum_column_block<6, 1, V, H>(p, grp, r_begin, r_end, c, row_x, segment, finish);
        c += LH;
      } else {
        segment_sum_column_block<6, 0, V, H>(p, grp, r_begin, r_end, c, row_x, segment, finish);
      }
    }
  }
  for (; c + 3 * L <= p.cols; c += 3 * L)
    segment_sum_column_block<3, 0, V, H>(p, grp, r_begin, r_end, c, row_x, segment, finish);
  const int nv = (p.cols - c) / L;
  const int nh = (p.cols - c - nv * L) >= LH ? 1 : 0;
  switch (nv * 2 + nh) {
    case 1: segment_sum_column_block<0, 1, V, H>(p, grp, r_begin, r_end, c, row_x, segment, finish); break;
    case 2: segment_sum_column_block<1, 0, V, H>(p, grp, r_begin, r_end, c, row_x, segment, finish); break;
    case 3: segment_sum_column_block<1, 1, V, H>(p, grp, r_begin, r_end, c, row_x, segment, finish); break;
    case 4: segment_sum_column_block<2, 0, V, H>(p, grp, r_begin, r_end, c, row_x, segment, finish); break;
    case 5: segment_sum_column_block<2, 1, V, H>(p, grp, r_begin, r_end, c, row_x, segment, finish); break;
    default: break;
  }
  for (c += nv * L + nh * LH; c < p.cols; ++c)
    segment_sum_column_block<0, 1, T, T>(p, grp, r_begin, r_end, c, row_x, segment, finish);
}

// Rows [r0, r1), group by group (a thread of a team may start or end inside a group).
template <class RowX, class Seg, class Finish>
FS_INLINE void host_segment_sum_rows(const SegmentSumShape& p, int r0, int r1, RowX& row_x,
                                     Seg& segment, Finish& finish) {
  for (int r = r0; r < r1;) {
    const int grp = r / p.group;
    const int end = (grp + 1) * p.group < r1 ? (grp + 1) * p.group : r1;
    segment_sum_group(p, grp, r, end, row_x, segment, finish);
    r = end;
  }
}

}  // namespace fs
#endif
