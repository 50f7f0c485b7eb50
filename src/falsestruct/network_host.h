// CPU engine entry points for networks (header-only, usable from C++ without Python).
// All arrays are C-contiguous with a leading network axis S; see the Python docs for shapes.
#pragma once
#include <algorithm>
#include <functional>
#include <vector>
#include "executor.h"
#include "host_buffer.h"
#include "host_runner.h"
#include "deepfool.h"
#include "init.h"
#include "network.h"

namespace fs {

// Run a per-network kernel with HostBlock, or with EmulatedBlock(emulate_threads) when
// emulate_threads > 0 (the CUDA index mapping, for tests).
template <class F>
FS_INLINE void with_host_block(int emulate_threads, F&& f) {
  if (emulate_threads > 0) f(EmulatedBlock{emulate_threads});
  else f(HostBlock{});
}

// Threads per network: 1 (threads over networks) unless there are fewer networks than threads
// and a step is large enough to pay for a barrier after every phase (a conv net, not the tiny
// MLP whose whole step takes microseconds).
inline int team_size_for(const NetShape& s, int B, int S, int n_threads) {
  const bool big = (int64_t)s.sum_width * B >= (int64_t(1) << 16);
  return (big && S < n_threads) ? n_threads / S : 1;
}

// Runs fn(blk, net, worker) for every network, with one HostBlock thread per network or, when
// team_size_for() says so, a HostTeamBlock team per network (`worker` is the team).
template <class F>
void for_each_network(const NetShape& s, int B, int S, int n_threads, int emulate_threads,
                      RunControl& control, const std::function<bool()>& poll, double poll_seconds,
                      F&& fn) {
  const int team = emulate_threads > 0 ? 1 : team_size_for(s, B, S, n_threads);
  if (team == 1) {
    parallel_for_networks(
        S, n_threads, control,
        [&](int net, int w) { with_host_block(emulate_threads, [&](auto blk) { fn(blk, net, w); }); },
        poll, poll_seconds);
  } else {
    parallel_for_network_teams(
        S, n_threads / team, team, control,
        [&](int net, int t, int tid, SpinBarrier& bar) { fn(HostTeamBlock{tid, team, &bar}, net, t); },
        poll, poll_seconds);
  }
}

// Per-worker scratch, grown on demand and reused for every network the worker computes; the
// buffers come from and go back to the process's ScratchCache.
template <class T>
struct WorkerScratch {
  std::vector<HostBuffer> scalars;
  std::vector<std::vector<int>> ints;
  explicit WorkerScratch(int n_workers) : scalars(n_workers), ints(n_workers) {}
  ~WorkerScratch() {
    for (auto& b : scalars) ScratchCache::process().give_back(std::move(b));
  }
  // Grows worker's buffers for a batch of B rows and a permutation of N items.
  void reserve(int worker, const NetShape& s, int B, int N) {
    reserve_scalars(worker, NetWorkspace<T>::scalars(s, B));
    ints[worker].resize(NetWorkspace<T>::ints(B, N));
  }
  // Grows worker's scalar buffer to n scalars (64-byte aligned; contents are scratch).
  void reserve_scalars(int worker, int64_t n) {
    const size_t bytes = static_cast<size_t>(n) * sizeof(T);
    if (scalars[worker].capacity() >= bytes) return;
    ScratchCache::process().give_back(std::move(scalars[worker]));
    scalars[worker] = ScratchCache::process().take(bytes);
  }
  T* aligned_scalars(int worker) { return static_cast<T*>(scalars[worker].data()); }
  // The workspace in worker's buffers (after reserve with the same B, N).
  NetWorkspace<T> view(int worker, const NetShape& s, int B, int N) {
    return NetWorkspace<T>::carve(s, B, N, aligned_scalars(worker), ints[worker].data());
  }
  NetWorkspace<T> get(int worker, const NetShape& s, int B, int N) {
    reserve(worker, s, B, N);
    return view(worker, s, B, N);
  }
};

// The entry points below take an optional poll (see parallel_for_networks): called every
// poll_seconds on the calling thread while workers run, it cancels the call by returning
// false; the outputs are then incomplete.

// theta (S, P): network s gets Glorot-uniform kernels and zero biases drawn from seeds[s]
// alone (glorot_uniform_init), the same values as falsestruct_fast.init for that seed.
template <class T>
void net_init_host(const NetShape& s, const uint64_t* seeds, int S, T* theta, int n_threads,
                   const std::function<bool()>& poll = nullptr, double poll_seconds = 0) {
  RunControl control;
  parallel_for_networks(
      S, n_threads, control,
      [&](int net, int) { glorot_uniform_init(s, seeds[net], theta + s.n_params * net); }, poll,
      poll_seconds);
}

// Rows per attack work item: small enough that one network's points spread over the threads
// and that the compacted active list stays short, large enough for the conv phases.
constexpr int kAttackTile = 64;

// Runs fn(blk, net, row0, B, worker) for every tile of `tile` rows of every network, in
// parallel over networks and tiles.
template <class F>
void for_each_row_tile(int S, int N, int tile, int n_threads, int emulate_threads,
                       RunControl& control, const std::function<bool()>& poll, double poll_seconds,
                       F&& fn) {
  const int64_t n_tiles = ((int64_t)N + tile - 1) / tile;
  parallel_for_networks(
      S * n_tiles, n_threads, control,
      [&](int64_t unit, int w) {
        const int net = static_cast<int>(unit / n_tiles);
        const int row0 = static_cast<int>(unit % n_tiles) * tile;
        const int B = std::min(tile, N - row0);  // the last tile may be shorter
        with_host_block(emulate_threads, [&](auto blk) { fn(blk, net, row0, B, w); });
      },
      poll, poll_seconds);
}

// out (S, N, K) = logits of X (N, d) or (S, N, d) (x_net_stride = 0 or N * d). Tiles of rows
// are independent work items, so threads share a single network's rows too.
template <class T>
void net_forward_host(const NetShape& s, const T* theta, int S, const T* X, int64_t x_net_stride,
                      int N, T* out, int n_threads, int emulate_threads = 0,
                      const std::function<bool()>& poll = nullptr, double poll_seconds = 0) {
  const int K = s.n_logits();
  RunControl control;
  WorkerScratch<T> scratch(n_threads);
  for_each_row_tile(S, N, forward_tile(s, N), n_threads, emulate_threads, control, poll, poll_seconds,
                    [&](auto blk, int net, int row0, int B, int w) {
                      net_forward_rows(blk, s, theta + s.n_params * net, X + x_net_stride * net, row0,
                                       B, out + ((int64_t)net * N + row0) * K, scratch.get(w, s, B, B));
                    });
}

// DeepFool on every point of X (N, d) or (S, N, d) for each of S networks: pert (S, N, d),
// iters (S, N), status (S, N) (see deepfool_rows).
template <class T>
void deepfool_host(const NetShape& s, const T* theta, int S, const T* X, int64_t x_net_stride, int N,
                   const DeepFoolOptions& o, T* pert, int* iters, int* status, int n_threads,
                   RunControl& control, const std::function<bool()>& poll, double poll_seconds,
                   int emulate_threads = 0) {
  const int tile = std::min(forward_tile(s, N), kAttackTile);
  const int C = s.n_logits() == 1 ? 1 : o.candidates;
  const int d = s.width[0];
  WorkerScratch<T> scratch(n_threads);
  for_each_row_tile(S, N, tile, n_threads, emulate_threads, control, poll, poll_seconds,
                    [&](auto blk, int net, int row0, int B, int w) {
                      scratch.reserve_scalars(w, DeepFoolWorkspace<T>::scalars(s, B));
                      scratch.ints[w].resize(DeepFoolWorkspace<T>::ints(B, C));
                      const auto ws = DeepFoolWorkspace<T>::carve(s, B, C, scratch.aligned_scalars(w),
                                                                  scratch.ints[w].data());
                      const int64_t first = (int64_t)net * N + row0;
                      deepfool_rows(blk, s, theta + s.n_params * net, X + x_net_stride * net, row0, B,
                                    o, ws, pert + first * d, iters + first, status + first,
                                    [&control] { return control.cancelled.load(std::memory_order_relaxed); });
                      control.units_done.fetch_add(B, std::memory_order_relaxed);
                    });
}

// out (S, N, K, d): gradient of every logit w.r.t. the input at each row of X (N, d) or
// (S, N, d).
template <class T>
void logit_input_grads_host(const NetShape& s, const T* theta, int S, const T* X,
                            int64_t x_net_stride, int N, T* out, int n_threads,
                            int emulate_threads = 0, const std::function<bool()>& poll = nullptr,
                            double poll_seconds = 0) {
  const int tile = forward_tile(s, N);
  const int64_t row_size = (int64_t)s.n_logits() * s.width[0];
  RunControl control;
  WorkerScratch<T> scratch(n_threads);
  for_each_row_tile(S, N, tile, n_threads, emulate_threads, control, poll, poll_seconds,
                    [&](auto blk, int net, int row0, int B, int w) {
                      logit_input_grads_rows(blk, s, theta + s.n_params * net, X + x_net_stride * net,
                                             row0, B, out + ((int64_t)net * N + row0) * row_size,
                                             scratch.get(w, s, B, B));
                    });
}

// loss (S,), grad (S, P), and optionally input_grad (S, N, d), over the full data set.
template <class T>
void net_loss_and_grad_host(const NetShape& s, LossKind loss, const T* theta, int S, const T* X,
                            int64_t x_net_stride, const T* Y, int64_t y_net_stride, int N,
                            T* loss_out, T* grad_out, T* input_grad_out, int n_threads,
                            int emulate_threads = 0, const std::function<bool()>& poll = nullptr,
                            double poll_seconds = 0) {
  RunControl control;
  WorkerScratch<T> scratch(n_threads);
  for_each_network(s, N, S, n_threads, emulate_threads, control, poll, poll_seconds,
                   [&](auto blk, int net, int w) {
                     blk.single([&] { scratch.reserve(w, s, N, N); });  // once per team
                     const auto ws = scratch.view(w, s, N, N);
                     net_loss_and_grad(blk, s, loss, theta + s.n_params * net, X + x_net_stride * net,
                                       Y + y_net_stride * net, N, ws, loss_out + net,
                                       grad_out + s.n_params * net,
                                       input_grad_out ? input_grad_out + (int64_t)net * N * s.width[0]
                                                      : nullptr);
                   });
}

// Fused training of S networks (see TrainArgs). control.units_done counts network-epochs.
template <class T>
void net_train_host(const TrainArgs<T>& args, int S, int n_threads, RunControl& control,
                    const std::function<bool()>& poll, double poll_seconds,
                    int emulate_threads = 0) {
  const NetShape& s = args.shape;
  const int n_batches = args.N / args.B;
  const int n_perm = std::max(args.N, n_batches);
  WorkerScratch<T> scratch(n_threads);
  std::vector<char> stop(n_threads, 0);  // per team: the stop decision of the hooks below, shared
  for_each_network(s, args.B, S, n_threads, emulate_threads, control, poll, poll_seconds,
                   [&](auto blk, int net, int w) {
                     blk.single([&] { scratch.reserve(w, s, args.B, n_perm); });  // once per team
                     const auto ws = scratch.view(w, s, args.B, n_perm);
                     // One thread of the team counts progress and decides whether to stop; every
                     // thread then returns the same decision.
                     auto on_epoch = [&](int) {
                       blk.single([&] {
                         control.units_done.fetch_add(1, std::memory_order_relaxed);
                         stop[w] = control.cancelled.load(std::memory_order_relaxed);
                       });
                       return !stop[w];
                     };
                     auto stop_requested = [&] {
                       blk.single([&] { stop[w] = control.cancelled.load(std::memory_order_relaxed); });
                       return stop[w] != 0;
                     };
                     train_network(blk, args, net, ws, on_epoch, stop_requested);
                   });
}

}  // namespace fs
