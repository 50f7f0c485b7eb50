// Execution contexts: "one kernel source, two executors".
//
// A kernel is written as a sequence of *phases*. Each phase applies a body to every element
// of a 1-D or 2-D index space; elements of one phase are independent, and a phase only reads
// what earlier phases wrote (there is an implicit barrier between phases). Three executors
// run such a kernel for one network ("block"):
//
//   HostBlock      CPU engine: the element loop is a plain loop whose lanes are SIMD lanes.
//   EmulatedBlock  CPU, for tests: emulates `n_threads` CUDA threads one after the other with
//                  exactly the index mapping of CudaBlock (thread_stride_* below).
//   CudaBlock      GPU engine: one CUDA block per network, threadIdx strides over elements,
//                  __syncthreads() between phases.
//
// CudaBlock and EmulatedBlock share the index mapping code, so the indexing every CUDA kernel
// uses is executed by the CPU test-suite.
#pragma once
#include <stdint.h>
#include "config.h"
#include "segment_sum.h"
#if !defined(__CUDACC__)
#include "host_segment_sum.h"
#endif
#if !defined(__CUDACC__)
#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>
#endif

namespace fs {

// ---- index mapping shared by CudaBlock and EmulatedBlock ---------------------------------
// The counters are 64-bit: `i + n_threads` and `rows * cols` may pass 2^31 - 1.
template <class F>
FS_HD FS_INLINE void thread_stride_1d(int tid, int n_threads, int n, F&& f) {
  for (int64_t i = tid; i < n; i += n_threads) f(static_cast<int>(i));
}

// 2-D elements are flattened row-major so that consecutive threads take consecutive
// columns (coalesced access for column-contiguous data).
template <class F>
FS_HD FS_INLINE void thread_stride_2d(int tid, int n_threads, int rows, int cols, F&& f) {
  const int64_t total = (int64_t)rows * cols;
  for (int64_t e = tid; e < total; e += n_threads) f(static_cast<int>(e / cols), static_cast<int>(e % cols));
}

// Dot phase: element (r, c) is finish(r, c, sum_{k < len} term(r, c, k)), summed in a fixed
// order so that every executor agrees: kDotLanes interleaved partial sums over the whole
// chunks of 16 (and a half chunk of 8 into the first 8), a fixed pairwise tree over them,
// then the remaining < 8 terms in order. lane_dot_rows computes R such sums at once (R
// independent chains hide the FMA latency on the host; CUDA runs R = 1 per thread).
constexpr int kDotLanes = 16;

template <int R, class T, class Term>
FS_HD FS_INLINE void lane_dot_rows(int len, Term& term, T* out) {
  static_assert(kDotLanes == 16, "the tree below is written for 16 lanes");
  T acc[R][kDotLanes];
  for (int q = 0; q < R; ++q) {
    FS_SIMD
    for (int l = 0; l < kDotLanes; ++l) acc[q][l] = T(0);
  }
  int k0 = 0;
  for (; k0 + kDotLanes <= len; k0 += kDotLanes)
    for (int q = 0; q < R; ++q) {
      FS_SIMD
      for (int l = 0; l < kDotLanes; ++l) acc[q][l] += term(q, k0 + l);
    }
  const bool half = k0 + 8 <= len;
  for (int q = 0; q < R; ++q) {
    if (half) {
      FS_SIMD
      for (int l = 0; l < 8; ++l) acc[q][l] += term(q, k0 + l);
    }
    FS_SIMD
    for (int l = 0; l < 8; ++l) acc[q][l] += acc[q][l + 8];
    FS_SIMD
    for (int l = 0; l < 4; ++l) acc[q][l] += acc[q][l + 4];
    T sum = (acc[q][0] + acc[q][2]) + (acc[q][1] + acc[q][3]);
    for (int k = half ? k0 + 8 : k0; k < len; ++k) sum += term(q, k);
    out[q] = sum;
  }
}

// One element of a dot phase (see above), for executors that run elements one by one.
template <class Term, class Finish>
FS_HD FS_INLINE void dot_element(int r, int c, int len, Term& term, Finish& finish) {
  using T = decltype(term(0, 0, 0));
  auto row_term = [&](int, int k) { return term(r, c, k); };
  T sum;
  lane_dot_rows<1>(len, row_term, &sum);
  finish(r, c, sum);
}

// ---- CPU engine ---------------------------------------------------------------------------
#if !defined(__CUDACC__)
// lane_dot_rows with each row's kDotLanes partial sums in registers: one 16-lane vector
// (float32) or two 8-lane vectors (float64) of GCC/Clang's vector extension. Same sums, same
// order, the tree done with shuffles.
template <int R, class T, class Term>
FS_INLINE void host_lane_dot_rows(int len, Term& term, T* out) {
  static_assert(kDotLanes == 16, "the tree below is written for 16 lanes");
  typedef T V16 __attribute__((vector_size(16 * sizeof(T))));
  typedef T V8 __attribute__((vector_size(8 * sizeof(T))));
  typedef T V4 __attribute__((vector_size(4 * sizeof(T))));
  constexpr bool kSplit = 16 * sizeof(T) > kHostVectorBytes;  // 16 lanes exceed one register
  T lane[kDotLanes];
  auto load_terms = [&](int q, int k, int n) {  // lane[0 .. n) = terms k .. k + n - 1
    FS_SIMD
    for (int l = 0; l < n; ++l) lane[l] = term(q, k + l);
  };
  V16 acc[R];
  V8 lo[R], hi[R];
  for (int q = 0; q < R; ++q) acc[q] = V16{}, lo[q] = hi[q] = V8{};
  int k0 = 0;
  for (; k0 + kDotLanes <= len; k0 += kDotLanes)
    for (int q = 0; q < R; ++q) {
      load_terms(q, k0, kDotLanes);
      if constexpr (kSplit) {
        lo[q] += load_vector<V8>(lane);
        hi[q] += load_vector<V8>(lane + 8);
      } else {
        acc[q] += load_vector<V16>(lane);
      }
    }
  const bool half = k0 + 8 <= len;
  for (int q = 0; q < R; ++q) {
    if constexpr (!kSplit) {
      lo[q] = __builtin_shufflevector(acc[q], acc[q], 0, 1, 2, 3, 4, 5, 6, 7);
      hi[q] = __builtin_shufflevector(acc[q], acc[q], 8, 9, 10, 11, 12, 13, 14, 15);
    }
    if (half) {
      load_terms(q, k0, 8);
      lo[q] += load_vector<V8>(lane);
    }
    const V8 b = lo[q] + hi[q];
    const V4 c = __builtin_shufflevector(b, b, 0, 1, 2, 3) + __builtin_shufflevector(b, b, 4, 5, 6, 7);
    T sum = (c[0] + c[2]) + (c[1] + c[3]);
    for (int k = half ? k0 + 8 : k0; k < len; ++k) sum += term(q, k);
    out[q] = sum;
  }
}
#endif

struct HostBlock {
  // Elementwise phase: SIMD lanes run over i.
  template <class F>
  FS_INLINE void map_1d(int n, F&& f) const {
    FS_SIMD
    for (int i = 0; i < n; ++i) f(i);
  }
  // Elementwise phase: SIMD lanes run over columns c.
  template <class F>
  FS_INLINE void map_2d(int rows, int cols, F&& f) const {
    for (int r = 0; r < rows; ++r) {
      FS_SIMD
      for (int c = 0; c < cols; ++c) f(r, c);
    }
  }
#if !defined(__CUDACC__)
  // Segment-sum phase (see segment_sum_element): register tiles of up to 8 rows x up to 3
  // column vectors, or up to 4 rows x 6 vectors for groups of few rows (host_segment_sum.h).
  template <class RowX, class Seg, class Finish>
  FS_INLINE void map_2d_segment_sum(const SegmentSumShape& p, RowX&& row_x, Seg&& segment,
                                    Finish&& finish) const {
    host_segment_sum_rows(p, 0, p.rows, row_x, segment, finish);
  }
#endif
  // Dot phase (see lane_dot_rows): lanes run over k; kDotGroupRows rows at a time give that
  // many independent accumulator chains. Each row's sum has the same order as dot_element's
  // (the compiler may still contract a group's multiply-adds differently from a single row's,
  // so a team splits such phases only at group boundaries).
  static constexpr int kDotGroupRows = 4;
  template <class Term, class Finish>
  FS_INLINE void map_2d_dot(int rows, int cols, int len, Term&& term, Finish&& finish) const {
    using T = decltype(term(0, 0, 0));
    constexpr int R = kDotGroupRows;
    for (int c = 0; c < cols; ++c) {
      int r0 = 0;
      for (; r0 + R <= rows; r0 += R) {
        auto group_term = [&](int q, int k) { return term(r0 + q, c, k); };
        T sum[R];
#if defined(__CUDACC__)
        lane_dot_rows<R>(len, group_term, sum);
#else
        host_lane_dot_rows<R>(len, group_term, sum);
#endif
        for (int q = 0; q < R; ++q) finish(r0 + q, c, sum[q]);
      }
      for (; r0 < rows; ++r0) dot_element(r0, c, len, term, finish);
    }
  }
  // Serial phase (run once per block).
  template <class F>
  FS_INLINE void single(F&& f) const { f(); }
#if !defined(__CUDACC__)
  // Row-block phase (CPU engines only): fn(lo, count) computes rows [lo, lo + count) of a
  // result whose rows do not depend on each other or on how they are cut; `work` is the
  // phase's element operations; a team cuts only at multiples of `align` rows. Here one call
  // for all rows.
  template <class F>
  void map_row_blocks(int rows, int64_t, int, F&& fn) const {
    if (rows > 0) fn(0, rows);
  }
#endif
};

#if !defined(__CUDACC__)
// ---- CPU engine, several threads on one network ----------------------------------------------
// Tells the core that this thread is spinning: a hyperthread sibling (or, in a virtual
// machine, another virtual CPU) then gets the execution resources it would burn.
FS_INLINE void spin_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Meeting point of a team of host threads between phases. It spins (phases are short), and
// yields while spinning so an oversubscribed machine still progresses. It also holds the
// team's chunk counters (one per thread's home range, HostTeamBlock::on_chunks), which the
// last thread to arrive resets for the next phase.
struct SpinBarrier {
  explicit SpinBarrier(int n) : n_threads(n), taken(new ChunkCounter[n]) {}
  void wait() {
    const int gen = generation.load(std::memory_order_acquire);
    if (arrived.fetch_add(1, std::memory_order_acq_rel) + 1 == n_threads) {
      for (int t = 0; t < n_threads; ++t) taken[t].value.store(0, std::memory_order_relaxed);
      arrived.store(0, std::memory_order_relaxed);
      generation.fetch_add(1, std::memory_order_acq_rel);
      return;
    }
    for (int spin = 0; generation.load(std::memory_order_acquire) == gen; ++spin) {
      if (spin > 64) std::this_thread::yield();
      spin_pause();
    }
  }
  // Chunks taken so far from thread t's home range (a line each: every thread hammers its own).
  struct alignas(64) ChunkCounter {
    std::atomic<int> value{0};
  };
  const int n_threads;
  std::atomic<int> arrived{0};
  std::atomic<int> generation{0};
  std::unique_ptr<ChunkCounter[]> taken;
};

// Thread `tid` of a team. Each phase is cut into chunks of rows; each thread has a home range
// of them (thread t the t-th of n_threads contiguous ranges) and, when that is done, takes
// what is left of the others' (cores of a shared machine run at different speeds, so an even
// static split leaves one waiting). Home ranges keep a thread on the same images from phase
// to phase, so it mostly reads what it wrote itself (in its own L2, not the other core's).
// Each chunk runs like HostBlock, then the thread waits for the team. Chunks start only where
// HostBlock's own loops start a row (a segment sum's tile boundaries), so every element is
// computed by the same code as with HostBlock and results do not depend on the team size.
struct HostTeamBlock {
  int tid, n_threads;
  SpinBarrier* barrier;

  // Chunks per thread and phase: enough that the last chunk to finish is short, few enough
  // that taking one (an atomic add) costs nothing next to it.
  static constexpr int kChunksPerThread = 32;

  // Runs fn(lo, count) on the chunks [split(i), split(i + 1)), i < n_chunks, this thread takes
  // (split nondecreasing), then waits for the team.
  template <class Split, class F>
  void on_chunks(int n_chunks, Split&& split, F&& fn) const {
    for (int k = 0; k < n_threads; ++k) {
      const int home = (tid + k) % n_threads;
      const int first = (int)((int64_t)n_chunks * home / n_threads);
      const int count = (int)((int64_t)n_chunks * (home + 1) / n_threads) - first;
      std::atomic<int>& taken = barrier->taken[home].value;
      for (int i = taken.fetch_add(1, std::memory_order_relaxed); i < count;
           i = taken.fetch_add(1, std::memory_order_relaxed)) {
        const int lo = split(first + i), hi = split(first + i + 1);
        if (lo < hi) fn(lo, hi - lo);
      }
    }
    barrier->wait();
  }
  // Chunks for a phase of `work` element operations: at least kMinChunkWork each.
  int chunks_for(int rows, int64_t work) const {
    constexpr int64_t kMinChunkWork = 4096;
    const int64_t by_work = work / kMinChunkWork;
    const int64_t most = std::min<int64_t>(rows, (int64_t)kChunksPerThread * n_threads);
    return static_cast<int>(std::max<int64_t>(1, std::min(by_work, most)));
  }
  // fn(lo, count) on chunks of n rows, each boundary a multiple of `align` (or n).
  template <class F>
  void on_row_chunks(int n, int64_t work, int align, F&& fn) const {
    const int chunks = chunks_for(n, work);
    on_chunks(chunks, [&](int i) {
      const int r = static_cast<int>((int64_t)n * i / chunks);
      return i == chunks ? n : r - r % align;
    }, fn);
  }
  template <class F>
  void map_1d(int n, F&& f) const {
    on_row_chunks(n, n, 16, [&](int lo, int count) {
      HostBlock{}.map_1d(count, [&](int i) { f(lo + i); });
    });
  }
  template <class F>
  void map_2d(int rows, int cols, F&& f) const {
    on_row_chunks(rows, (int64_t)rows * cols, 1, [&](int lo, int count) {
      HostBlock{}.map_2d(count, cols, [&](int r, int c) { f(lo + r, c); });
    });
  }
  template <class RowX, class Seg, class Finish>
  void map_2d_segment_sum(const SegmentSumShape& p, RowX&& row_x, Seg&& segment,
                          Finish&& finish) const {
    // Work: a middle segment's length stands for every segment's (conv taps at the image's
    // edge are shorter or empty).
    const int count = p.rows > 0 ? segment(p.rows / 2 / p.group, p.n_seg / 2).count : 0;
    const int chunks =
        chunks_for(p.rows, (int64_t)p.rows * p.cols * p.n_seg * std::max(1, count));
    auto split = [&](int i) {
      if (i >= chunks) return p.rows;
      const int r = static_cast<int>((int64_t)p.rows * i / chunks);
      const int start = r - r % p.group;
      return start + segment_tile_boundary(std::min(p.group, p.rows - start), r - start);
    };
    on_chunks(chunks, split, [&](int lo, int count) {
      host_segment_sum_rows(p, lo, lo + count, row_x, segment, finish);
    });
  }
  template <class Term, class Finish>
  void map_2d_dot(int rows, int cols, int len, Term&& term, Finish&& finish) const {
    // Chunks start at HostBlock's row groups: a row is computed by the same code on any team.
    on_row_chunks(rows, (int64_t)rows * cols * len, HostBlock::kDotGroupRows, [&](int lo, int count) {
      HostBlock{}.map_2d_dot(
          count, cols, len, [&](int r, int c, int k) { return term(lo + r, c, k); },
          [&](int r, int c, decltype(term(0, 0, 0)) v) { finish(lo + r, c, v); });
    });
  }
  template <class F>
  void single(F&& f) const {
    if (tid == 0) f();
    barrier->wait();
  }
  // Row-block phase (see HostBlock::map_row_blocks): the rows in chunks over the team.
  template <class F>
  void map_row_blocks(int rows, int64_t work, int align, F&& fn) const {
    on_row_chunks(rows, work, align, fn);
  }
};

// The CPU engine's executors, which also run row-block phases (map_row_blocks).
template <class Block>
struct IsHostBlock {
  static constexpr bool value = false;
};
template <>
struct IsHostBlock<HostBlock> {
  static constexpr bool value = true;
};
template <>
struct IsHostBlock<HostTeamBlock> {
  static constexpr bool value = true;
};
#endif

// ---- CPU emulation of the CUDA mapping (tests) -------------------------------------------
struct EmulatedBlock {
  int n_threads;
  template <class F>
  void map_1d(int n, F&& f) const {
    for (int t = 0; t < n_threads; ++t) thread_stride_1d(t, n_threads, n, f);
  }
  template <class F>
  void map_2d(int rows, int cols, F&& f) const {
    for (int t = 0; t < n_threads; ++t) thread_stride_2d(t, n_threads, rows, cols, f);
  }
  template <class RowX, class Seg, class Finish>
  void map_2d_segment_sum(const SegmentSumShape& p, RowX&& row_x, Seg&& segment,
                          Finish&& finish) const {
    map_2d(p.rows, p.cols, [&](int r, int c) {
      segment_sum_element(p, r, c, row_x, segment, finish);
    });
  }
  template <class Term, class Finish>
  void map_2d_dot(int rows, int cols, int len, Term&& term, Finish&& finish) const {
    map_2d(rows, cols, [&](int r, int c) { dot_element(r, c, len, term, finish); });
  }
  template <class F>
  void single(F&& f) const { f(); }
};

#if defined(__CUDACC__)
// ---- GPU engine ---------------------------------------------------------------------------
struct CudaBlock {
  template <class F>
  __device__ FS_INLINE void map_1d(int n, F&& f) const {
    thread_stride_1d(threadIdx.x, blockDim.x, n, f);
    __syncthreads();
  }
  template <class F>
  __device__ FS_INLINE void map_2d(int rows, int cols, F&& f) const {
    thread_stride_2d(threadIdx.x, blockDim.x, rows, cols, f);
    __syncthreads();
  }
  template <class RowX, class Seg, class Finish>
  __device__ FS_INLINE void map_2d_segment_sum(const SegmentSumShape& p, RowX&& row_x,
                                               Seg&& segment, Finish&& finish) const {
    map_2d(p.rows, p.cols, [&](int r, int c) {
      segment_sum_element(p, r, c, row_x, segment, finish);
    });
  }
  template <class Term, class Finish>
  __device__ FS_INLINE void map_2d_dot(int rows, int cols, int len, Term&& term,
                                       Finish&& finish) const {
    map_2d(rows, cols, [&](int r, int c) { dot_element(r, c, len, term, finish); });
  }
  template <class F>
  __device__ FS_INLINE void single(F&& f) const {
    if (threadIdx.x == 0) f();
    __syncthreads();
  }
};
#endif

}  // namespace fs
