// CPU engine entry points for the MLP (header-only, usable from C++ without Python).
// All arrays are C-contiguous with a leading network axis S; see the Python docs for shapes.
#pragma once
#include <algorithm>
#include <functional>
#include <vector>
#include "executor.h"
#include "host_runner.h"
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

// Per-worker scratch, grown on demand and reused for every network the worker computes.
template <class T>
struct WorkerScratch {
  std::vector<std::vector<T>> scalars;
  std::vector<std::vector<int>> ints;
  explicit WorkerScratch(int n_workers) : scalars(n_workers), ints(n_workers) {}
  NetWorkspace<T> get(int worker, const NetShape& s, int B, int N) {
    scalars[worker].resize(NetWorkspace<T>::scalars(s, B));
    ints[worker].resize(NetWorkspace<T>::ints(B, N));
    return NetWorkspace<T>::carve(s, B, N, scalars[worker].data(), ints[worker].data());
  }
};

template <class T>
void net_init_host(const NetShape& s, const uint64_t* seeds, int S, T* theta, int n_threads) {
  RunControl control;
  parallel_for_networks(
      S, n_threads, control,
      [&](int net, int) { glorot_uniform_init(s, seeds[net], theta + s.n_params * net); }, nullptr, 0);
}


// out (S, N, K) = logits of X (N, d) or (S, N, d) (x_net_stride = 0 or N * d).
template <class T>
void net_forward_host(const NetShape& s, const T* theta, int S, const T* X, int64_t x_net_stride,
                      int N, T* out, int n_threads, int emulate_threads = 0) {
  const int tile = forward_tile(s, N);
  const int K = s.n_logits();
  RunControl control;
  WorkerScratch<T> scratch(n_threads);
  parallel_for_networks(
      S, n_threads, control,
      [&](int net, int w) {
        for (int row0 = 0; row0 < N; row0 += tile) {
          const int B = std::min(tile, N - row0);  // the last tile may be shorter
          const auto ws = scratch.get(w, s, B, B);
          with_host_block(emulate_threads, [&](auto blk) {
            net_forward_rows(blk, s, theta + s.n_params * net, X + x_net_stride * net, row0, B,
                             out + ((int64_t)net * N + row0) * K, ws);
          });
        }
      },
      nullptr, 0);
}

// loss (S,), grad (S, P), and optionally input_grad (S, N, d), over the full data set.
template <class T>
void net_loss_and_grad_host(const NetShape& s, LossKind loss, const T* theta, int S, const T* X,
                            int64_t x_net_stride, const T* Y, int64_t y_net_stride, int N,
                            T* loss_out, T* grad_out, T* input_grad_out, int n_threads,
                            int emulate_threads = 0) {
  RunControl control;
  WorkerScratch<T> scratch(n_threads);
  parallel_for_networks(
      S, n_threads, control,
      [&](int net, int w) {
        const auto ws = scratch.get(w, s, N, N);
        with_host_block(emulate_threads, [&](auto blk) {
          net_loss_and_grad(blk, s, loss, theta + s.n_params * net, X + x_net_stride * net,
                            Y + y_net_stride * net, N, ws, loss_out + net,
                            grad_out + s.n_params * net,
                            input_grad_out ? input_grad_out + (int64_t)net * N * s.width[0] : nullptr);
        });
      },
      nullptr, 0);
}

// Fused training of S networks (see TrainArgs). control.units_done counts network-epochs.
template <class T>
void net_train_host(const TrainArgs<T>& args, int S, int n_threads, RunControl& control,
                    const std::function<bool()>& poll, double poll_seconds,
                    int emulate_threads = 0) {
  const NetShape& s = args.shape;
  const int n_batches = args.N / args.B;
  WorkerScratch<T> scratch(n_threads);
  parallel_for_networks(
      S, n_threads, control,
      [&](int net, int w) {
        const auto ws = scratch.get(w, s, args.B, std::max(args.N, n_batches));
        auto on_epoch = [&control](int) {
          control.units_done.fetch_add(1, std::memory_order_relaxed);
          return !control.cancelled.load(std::memory_order_relaxed);
        };
        with_host_block(emulate_threads,
                        [&](auto blk) { train_network(blk, args, net, ws, on_epoch); });
      },
      poll, poll_seconds);
}

}  // namespace fs
