// CPU executor for "one block per network" kernels: a pool of std::threads takes networks
// from a shared counter. Each network is computed by exactly one thread with the same code,
// so results are bitwise identical for any thread count. The calling thread only waits and
// periodically runs `poll` (progress reporting, cancellation), e.g. with the GIL re-acquired.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace fs {

struct RunControl {
  std::atomic<int64_t> units_done{0};  // progress units (e.g. network-epochs) finished
  std::atomic<bool> cancelled{false};
};

// fn(net, worker) for every net in [0, n_nets). poll() is called every poll_seconds on the
// calling thread while workers run; returning false cancels (workers see control.cancelled).
template <class F>
void parallel_for_networks(int n_nets, int n_threads, RunControl& control, F&& fn,
                           const std::function<bool()>& poll, double poll_seconds) {
  n_threads = std::max(1, std::min(n_threads, n_nets));
  std::atomic<int> next{0};
  std::mutex mu;
  std::condition_variable cv;
  int running = n_threads;
  std::exception_ptr error;

  auto worker = [&](int w) {
    try {
      for (int net = next.fetch_add(1); net < n_nets && !control.cancelled.load();
           net = next.fetch_add(1))
        fn(net, w);
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

}  // namespace fs
