// Standalone C++ benchmark of the fused Experiment II training step (the paper's CNN, batch
// 60, sigmoid cross-entropy, Adam; no Python), for profilers and for timing the header-only
// core directly:
//   g++ -O3 -march=native -fopenmp-simd -D_OPENMP_SIMD_ENABLED -ffp-contract=fast \
//       -fno-math-errno -fno-trapping-math -Isrc benchmarks/cpp/cnn_step_bench.cpp \
//       -o cnn_step_bench -lpthread
//   ./cnn_step_bench [float|double] [threads] [networks] [epochs]
// With one network and 2 threads, both threads work on that network (HostTeamBlock).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_fp_mode.h"
#include "bench_training.h"

template <class T>
void run(int threads, int S, int epochs) {
  // Conv(24, 5, ReLU) -> MaxPool -> Conv(48, 5, ReLU) -> MaxPool -> Dense(10) -> Dense(1), as
  // (kind, units, kernel, relu) rows.
  const int spec[] = {1, 24, 5, 1, 2, 0, 0, 0, 1, 48, 5, 1, 2, 0, 0, 0, 0, 10, 0, 0, 0, 1, 0, 0};
  fs::NetShape shape;
  if (const char* err = fs::make_net_shape(32, 32, 1, spec, 6, &shape)) {
    std::printf("%s\n", err);
    return;
  }
  const int N = 120, B = 60;
  // Pseudo-random pixels (a linear congruential generator): on periodic data the ReLU and
  // max-pool patterns are predictable and the timing flatters the code.
  std::vector<T> X((size_t)N * 1024), Y(N);
  uint64_t state = 12345;
  for (auto& x : X) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    x = T((state >> 33) % 100000) / T(100000);
  }
  for (int i = 0; i < N; ++i) Y[i] = T(i % 2);
  BenchTraining<T> bench(shape, S, X, Y, N, B, epochs, 1, fs::ShuffleMode::Batches);
  fs::RunControl control;
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    fs::net_train_host(bench.args, S, threads, control, nullptr, 0);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::printf("%s threads=%d S=%d: %.2f ms per network-step (best of 3)\n",
              sizeof(T) == 4 ? "float32" : "float64", threads, S,
              best * 1e3 / (double(S) * epochs * (N / B)));
}

int main(int argc, char** argv) {
  const fs::SubnormalModeScope fp_mode(bench_flushes_subnormals());
  const std::string type = argc > 1 ? argv[1] : "float";
  const int threads = argc > 2 ? std::atoi(argv[2]) : 1;
  const int S = argc > 3 ? std::atoi(argv[3]) : 1;
  const int epochs = argc > 4 ? std::atoi(argv[4]) : 5;
  if (type == "double") run<double>(threads, S, epochs);
  else run<float>(threads, S, epochs);
}
