// The segment-sum phase shared by every executor (executor.h): its shape, its segments and
// the element-by-element definition that EmulatedBlock and CudaBlock run as written.
#pragma once
#include <stdint.h>
#include "config.h"

namespace fs {

// Segment-sum phase (an implicit matrix product: a convolution). Rows come in groups of
// `group` consecutive rows that share their segments, and each row has its own base x row_x(r).
// Element (r, c) is
//   acc = 0;
//   for s < n_seg:  g = segment(r / group, s);  xs = row_x(r) + g.x_offset;
//     acc += xs[j * x_stride] * g.w[j * w_stride + c]   for j < g.count   (count 0: skipped);
//   finish(r, c, acc).
// Because a segment is the same for all rows of a group, the host can hold a tile of several
// rows x several column vectors in registers and reuse each loaded row of w for all of them.
template <class T>
struct Segment {
  int64_t x_offset;
  const T* w;
  int count;
};

struct SegmentSumShape {
  int rows, cols, group, n_seg, x_stride, w_stride;
};

// The scalar type of a phase, from the pointers row_x returns.
template <class P>
struct Pointee;
template <class T>
struct Pointee<const T*> {
  using type = T;
};
template <class T>
struct Pointee<T*> {
  using type = T;
};

template <class RowX, class Seg, class Finish>
FS_HD FS_INLINE void segment_sum_element(const SegmentSumShape& p, int r, int c, RowX& row_x,
                                         Seg& segment, Finish& finish) {
  const auto* xr = row_x(r);
  typename Pointee<decltype(xr)>::type acc = 0;
  const int grp = r / p.group;
  for (int s = 0; s < p.n_seg; ++s) {
    const auto g = segment(grp, s);
    const auto* xs = xr + g.x_offset;
    for (int j = 0; j < g.count; ++j)
      acc += xs[(int64_t)j * p.x_stride] * g.w[(int64_t)j * p.w_stride + c];
  }
  finish(r, c, acc);
}

// Matrix-product phase: element (r, c) is
//   finish(r, c, sum_{k < len} row_x(r)[k * x_stride] * w[k * w_stride + c]),
// summed in order of k: a segment-sum phase whose rows all share one segment, so every
// executor runs it as such (the host in register tiles).
template <class Block, class T, class RowX, class Finish>
FS_HD FS_INLINE void map_2d_product(const Block& blk, int rows, int cols, int len, int x_stride,
                                    const T* w, int w_stride, RowX&& row_x, Finish&& finish) {
  blk.map_2d_segment_sum(SegmentSumShape{rows, cols, rows > 0 ? rows : 1, 1, x_stride, w_stride},
                         row_x, [=](int, int) { return Segment<T>{0, w, len}; }, finish);
}

// Column sums: finish(c, sum_{k < len} w[k * w_stride + c]) summed in order of k (a bias
// gradient): the matrix-product phase against a column of ones (1 * w is exact).
template <class Block, class T, class Finish>
FS_HD FS_INLINE void map_column_sums(const Block& blk, int cols, int len, const T* w, int w_stride,
                                     Finish&& finish) {
  const T one = 1;
  map_2d_product(blk, 1, cols, len, 0, w, w_stride, [&one](int) { return &one; },
                 [=](int, int c, T s) { finish(c, s); });
}

}  // namespace fs
