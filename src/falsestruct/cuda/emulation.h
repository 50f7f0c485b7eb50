// One kernel source, run by the GPU and emulated on the CPU (the test-suite's view of the CUDA
// kernels' logic without a GPU).
//
// A block program is written as a sequence of *phases*: in a phase every thread of the block
// runs the same per-thread code `f(tid, state)` on its own registers (`state`, one struct per
// thread) and on shared memory; a block-wide barrier ends the phase. The program's control flow
// between phases (loops over epochs and steps) is uniform across the block.
//
//   DeviceThreads     (nvcc) f(threadIdx.x, registers); __syncthreads().
//   EmulatedThreads   (CPU)  f(t, states[t]) for every thread t, one after the other, in
//                            increasing or (reverse = true) decreasing order.
//
// Running a phase's threads one after the other is a legal schedule of the GPU's threads only
// if no thread reads, in the same phase, what another thread writes there (that needs a
// barrier): such a race makes the result depend on the order, so the tests run the emulation
// in both orders and require bitwise equal results. The shared memory of an emulated block
// starts filled with 0xFF bytes (NaN for floats), so a read of anything never written shows.
//
// Warp collectives sit at the end of a phase (phase_warp_sum): every lane computes its values,
// a butterfly of xor-shuffles gives each lane of the warp the same sum (lane l adds lane
// l ^ o for o = 16, 8, 4, 2, 1: the device's tree, emulated with the 32 lanes' values, so both
// sum in the same order), then each thread finishes on its own. Blocks have a whole number of
// warps.
//
// ThreadRange runs the block-phase helpers of the core (losses.h, anything written against
// map_1d / single) for a few elements on the calling thread: one implementation of a formula
// serves the phase-per-array kernels and the register-resident ones.
#pragma once
#include <stdint.h>
#include "../config.h"
#if !defined(__CUDACC__)
#include <array>
#include <cstring>
#include <vector>
#endif

// Full unrolling of a short fixed-count loop (register arrays stay in registers), for nvcc and
// for the host compiler.
#if defined(__CUDACC__)
#define FS_UNROLL _Pragma("unroll")
#else
#define FS_UNROLL _Pragma("GCC unroll 16")
#endif

namespace fs {
namespace cuda {

constexpr int kWarpSize = 32;

// map_1d over elements [first, first + count) on the calling thread; single runs its body.
struct ThreadRange {
  int first, count;
  template <class F>
  FS_HD FS_INLINE void map_1d(int, F&& f) const {
    for (int i = first; i < first + count; ++i) f(i);
  }
  template <class F>
  FS_HD FS_INLINE void single(F&& f) const { f(); }
};

// out[0..N) = p[0..N), with vector loads on the GPU when N values are 8, 16 or 32 bytes (p
// aligned to that size, at most 16 bytes): one shared-memory instruction instead of N.
template <int N, class T>
FS_HD FS_INLINE void load_row(const T* p, T (&out)[N]) {
#if defined(__CUDA_ARCH__)
  constexpr int kBytes = N * static_cast<int>(sizeof(T));
  if constexpr (kBytes == 8 || kBytes == 16 || kBytes == 32) {
    struct alignas(kBytes < 16 ? kBytes : 16) Chunk { T v[(kBytes < 16 ? kBytes : 16) / sizeof(T)]; };
    constexpr int kPer = static_cast<int>(sizeof(Chunk) / sizeof(T));
    FS_UNROLL
    for (int c = 0; c < N / kPer; ++c) {
      const Chunk chunk = reinterpret_cast<const Chunk*>(p)[c];
      FS_UNROLL
      for (int k = 0; k < kPer; ++k) out[c * kPer + k] = chunk.v[k];
    }
  } else {
    FS_UNROLL
    for (int k = 0; k < N; ++k) out[k] = p[k];
  }
#else
  FS_UNROLL
  for (int k = 0; k < N; ++k) out[k] = p[k];
#endif
}

#if defined(__CUDACC__)
template <class State>
struct DeviceThreads {
  State& state;
  __device__ FS_INLINE int n_threads() const { return blockDim.x; }
  template <class F>
  __device__ FS_INLINE void phase(F&& f) {
    f(static_cast<int>(threadIdx.x), state);
    __syncthreads();
  }
  // segment(tid, state, V* vals) fills N values; every lane of the warp then holds their sums
  // for finish(tid, state, const V* sums).
  template <int N, class V, class Segment, class Finish>
  __device__ FS_INLINE void phase_warp_sum(Segment&& segment, Finish&& finish) {
    V vals[N];
    segment(static_cast<int>(threadIdx.x), state, vals);
#pragma unroll
    for (int o = kWarpSize / 2; o > 0; o >>= 1) {
#pragma unroll
      for (int q = 0; q < N; ++q) vals[q] += __shfl_xor_sync(0xffffffffu, vals[q], o);
    }
    finish(static_cast<int>(threadIdx.x), state, static_cast<const V*>(vals));
    __syncthreads();
  }
};
#else
template <class State>
struct EmulatedThreads {
  State* states;
  int threads;
  bool reverse;  // run each phase's threads from the last to the first
  int n_threads() const { return threads; }
  int thread_at(int i) const { return reverse ? threads - 1 - i : i; }
  template <class F>
  void phase(F&& f) {
    for (int i = 0; i < threads; ++i) {
      const int t = thread_at(i);
      f(t, states[t]);
    }
  }
  template <int N, class V, class Segment, class Finish>
  void phase_warp_sum(Segment&& segment, Finish&& finish) {
    std::vector<std::array<V, N>> vals(threads), prev;
    for (int i = 0; i < threads; ++i) {
      const int t = thread_at(i);
      segment(t, states[t], vals[t].data());
    }
    for (int o = kWarpSize / 2; o > 0; o >>= 1) {
      prev = vals;
      for (int t = 0; t < threads; ++t)
        for (int q = 0; q < N; ++q) vals[t][q] = prev[t][q] + prev[t ^ o][q];
    }
    for (int i = 0; i < threads; ++i) {
      const int t = thread_at(i);
      finish(t, states[t], static_cast<const V*>(vals[t].data()));
    }
  }
};

// Runs block(ex, block_index, shared) for every block of a grid, one after the other: a fresh
// per-thread state for each block's threads and `shared_bytes` of shared memory filled with
// 0xFF (16-byte aligned, like the device's dynamic shared memory).
template <class State, class Block>
void emulate_grid(int n_blocks, int threads, int64_t shared_bytes, bool reverse, Block&& block) {
  std::vector<State> states(threads);
  std::vector<double> shared_words((shared_bytes + sizeof(double) - 1) / sizeof(double) + 2);
  unsigned char* shared = reinterpret_cast<unsigned char*>(shared_words.data());
  for (int b = 0; b < n_blocks; ++b) {
    for (auto& s : states) s = State{};
    std::memset(shared, 0xFF, shared_words.size() * sizeof(double));
    EmulatedThreads<State> ex{states.data(), threads, reverse};
    block(ex, b, shared);
  }
}
#endif

}  // namespace cuda
}  // namespace fs
