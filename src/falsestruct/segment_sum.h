// The segment-sum phase shared by every executor (executor.h): its shape, its segments and
// the element-by-element definition that EmulatedBlock and CudaBlock run as written.
#pragma once
#include <stdint.h>
#include "config.h"

namespace fs {

// Segment-sum phase (an implicit matrix product: a convolution). Rows come in groups of
// `group` consecutive rows that share their segments, and each row has its own base x row_x(r).
// Element (r, c) is
//   acc = init(r, c);
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

template <class Init, class RowX, class Seg, class Finish>
FS_HD FS_INLINE void segment_sum_element(const SegmentSumShape& p, int r, int c, Init& init,
                                         RowX& row_x, Seg& segment, Finish& finish) {
  auto acc = init(r, c);
  const auto* xr = row_x(r);
  const int grp = r / p.group;
  for (int s = 0; s < p.n_seg; ++s) {
    const auto g = segment(grp, s);
    const auto* xs = xr + g.x_offset;
    for (int j = 0; j < g.count; ++j)
      acc += xs[(int64_t)j * p.x_stride] * g.w[(int64_t)j * p.w_stride + c];
  }
  finish(r, c, acc);
}

}  // namespace fs
