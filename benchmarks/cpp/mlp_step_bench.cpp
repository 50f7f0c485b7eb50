// Standalone C++ benchmark of the fused Experiment I training step (no Python): shows the
// header-only core used directly from C++, and gives a symbol-rich binary for profilers.
//   g++ -O3 -march=native -fopenmp-simd -D_OPENMP_SIMD_ENABLED -ffp-contract=fast \
//       -fno-math-errno -fno-trapping-math -Isrc benchmarks/cpp/mlp_step_bench.cpp -o mlp_step_bench
//   ./mlp_step_bench [float|double] [networks] [epochs] [none|samples|batches]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_training.h"

template <class T>
void run(int S, int epochs, fs::ShuffleMode shuffle) {
  const int widths[] = {2, 104, 1};
  fs::NetShape shape;
  fs::make_mlp_shape(widths, 3, &shape);
  const int N = 1000, B = 50;
  std::vector<T> X(N * 2), Y(N);
  for (int i = 0; i < N; ++i) {
    X[2 * i] = T((i * 7919) % 1000) / T(1000);
    X[2 * i + 1] = T((i * 104729) % 997) / T(997);
    Y[i] = X[2 * i] > T(0.5) ? T(1) : T(0);
  }
  BenchTraining<T> bench(shape, S, X, Y, N, B, epochs, epochs, shuffle);
  fs::RunControl control;
  const auto t0 = std::chrono::steady_clock::now();
  fs::net_train_host(bench.args, S, 1, control, nullptr, 0);
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s S=%d: %.3f us per network-step (final loss %.4f)\n", sizeof(T) == 4 ? "float32" : "float64",
              S, sec * 1e6 / (double(S) * epochs * (N / B)), bench.loss_history[0]);
}

int main(int argc, char** argv) {
  const std::string type = argc > 1 ? argv[1] : "float";
  const int S = argc > 2 ? std::atoi(argv[2]) : 4;
  const int epochs = argc > 3 ? std::atoi(argv[3]) : 500;
  const std::string mode = argc > 4 ? argv[4] : "none";
  const fs::ShuffleMode shuffle = mode == "samples"   ? fs::ShuffleMode::Samples
                                  : mode == "batches" ? fs::ShuffleMode::Batches
                                                      : fs::ShuffleMode::None;
  if (type == "double") run<double>(S, epochs, shuffle);
  else run<float>(S, epochs, shuffle);
}
