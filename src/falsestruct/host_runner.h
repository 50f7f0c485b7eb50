// CPU executor for "one block per network" kernels: a pool of std::threads takes networks
// from a shared counter. A network is computed by one thread, or by a team of threads that
// split each phase's rows (HostTeamBlock); either way every element is computed by the same
// code, so results are bitwise identical for any thread count. The calling thread only waits
// and periodically runs `poll` (progress reporting, cancellation), e.g. with the GIL
// re-acquired.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "executor.h"
#include "fp_env.h"

namespace fs {

// Shared by the caller and the workers of one call: units_done may be read from another
// thread for progress; setting cancelled stops the call early (its outputs are incomplete).
struct RunControl {
  std::atomic<int64_t> units_done{0};  // progress units (e.g. network-epochs) finished
  std::atomic<bool> cancelled{false};
};

// fn(unit, worker) for every unit in [0, n_units) (a network, or a network's tile of rows), one
// thread per unit at a time. poll() is called every poll_seconds on the calling thread while
// workers run; returning false cancels (workers take no further unit, and long units check
// control.cancelled themselves). Workers compute in the calling thread's subnormal mode
// (fp_env.h), whatever the platform's rule for new threads.
template <class F>
void parallel_for_networks(int64_t n_units, int n_threads, RunControl& control, F&& fn,
                           const std::function<bool()>& poll, double poll_seconds) {
  n_threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(n_threads, n_units)));
  std::atomic<int64_t> next{0};
  std::mutex mu;
  std::condition_variable cv;
  int running = n_threads;
  std::exception_ptr error;
  const bool flush_subnormals = flushes_subnormals();

  auto worker = [&](int w) {
    SubnormalModeScope fp_mode(flush_subnormals);
    try {
      for (int64_t unit = next.fetch_add(1); unit < n_units && !control.cancelled.load();
           unit = next.fetch_add(1))
        fn(unit, w);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!error) error = std::current_exception();
      control.cancelled = true;
    }
    std::lock_guard<std::mutex> lock(mu);
    if (--running == 0) cv.notify_all();
  };

  std::vector<std::thread> pool;
  pool.reserve(n_threads);
  for (int w = 0; w < n_threads; ++w) pool.emplace_back(worker, w);
  {
    std::unique_lock<std::mutex> lock(mu);
    const auto period = std::chrono::duration<double>(poll_seconds > 0 ? poll_seconds : 1e9);
    while (running > 0) {
      if (!cv.wait_for(lock, period, [&] { return running == 0; }) && poll) {
        lock.unlock();
        if (!poll()) control.cancelled = true;
        lock.lock();
      }
    }
  }
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

// Teams of `team_size` threads: fn(net, team, tid, barrier) is called by every thread of a
// team for each network the team takes; the threads of a team work on that network together
// (HostTeamBlock) and meet at `barrier`.
template <class F>
void parallel_for_network_teams(int n_nets, int n_teams, int team_size, RunControl& control,
                                F&& fn, const std::function<bool()>& poll, double poll_seconds) {
  n_teams = std::max(1, std::min(n_teams, n_nets));
  std::vector<std::unique_ptr<SpinBarrier>> barriers;
  std::vector<int> team_net(n_teams, 0);
  for (int t = 0; t < n_teams; ++t) barriers.emplace_back(new SpinBarrier(team_size));
  std::atomic<int> next{0};
  parallel_for_networks(
      n_teams * team_size, n_teams * team_size, control,
      [&](int w, int) {
        const int team = w / team_size, tid = w % team_size;
        SpinBarrier& bar = *barriers[team];
        for (;;) {
          if (tid == 0) team_net[team] = control.cancelled.load() ? n_nets : next.fetch_add(1);
          bar.wait();
          const int net = team_net[team];
          bar.wait();  // everyone has read team_net before it changes
          if (net >= n_nets) return;
          fn(net, team, tid, bar);
        }
      },
      poll, poll_seconds);
}

}  // namespace fs
