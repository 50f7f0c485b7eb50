// Standalone C++ benchmark of the fused Experiment I training step (no Python): shows the
// header-only core used directly from C++, and gives a symbol-rich binary for profilers.
//   g++ -O3 -g -march=native -fopenmp-simd -D_OPENMP_SIMD_ENABLED -ffp-contract=fast \
//       -fno-math-errno -fno-trapping-math -Isrc benchmarks/cpp/mlp_step_bench.cpp -o mlp_step_bench
//   ./mlp_step_bench [float|double] [networks] [epochs] [none|samples|batches]
//   ./mlp_step_bench phases [float|double] [calls]
// The second form times each phase of one step on its own (ns per call, the best of several
// rounds of `calls` calls) next to the whole step, to show where a step's time goes.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_fp_mode.h"
#include "bench_training.h"

namespace {

const int kWidths[] = {2, 104, 1};
constexpr int kN = 1000, kB = 50;

// A fixed, learnable data set of Experiment I's shape: X (N, 2), Y (N, 1).
template <class T>
void make_data(std::vector<T>& X, std::vector<T>& Y) {
  X.resize(kN * 2);
  Y.resize(kN);
  for (int i = 0; i < kN; ++i) {
    X[2 * i] = T((i * 7919) % 1000) / T(1000);
    X[2 * i + 1] = T((i * 104729) % 997) / T(997);
    Y[i] = X[2 * i] > T(0.5) ? T(1) : T(0);
  }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class T>
void run(int S, int epochs, fs::ShuffleMode shuffle) {
  fs::NetShape shape;
  fs::make_mlp_shape(kWidths, 3, &shape);
  std::vector<T> X, Y;
  make_data(X, Y);
  BenchTraining<T> bench(shape, S, X, Y, kN, kB, epochs, epochs, shuffle);
  fs::RunControl control;
  const auto t0 = std::chrono::steady_clock::now();
  fs::net_train_host(bench.args, S, 1, control, nullptr, 0);
  const double sec = seconds_since(t0);
  std::printf("%s S=%d: %.3f us per network-step (final loss %.4f)\n", sizeof(T) == 4 ? "float32" : "float64",
              S, sec * 1e6 / (double(S) * epochs * (kN / kB)), bench.loss_history[0]);
}

// ns per call of f: the best of `rounds` rounds of `calls` calls.
template <class F>
double ns_per_call(int calls, F&& f, int rounds = 7) {
  double best = 1e30;
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) f(i);
    const double ns = seconds_since(t0) * 1e9 / calls;
    best = ns < best ? ns : best;
  }
  return best;
}

// Each phase of train_network's step on its own, on the state of a network trained for 20
// epochs (realistic ReLU patterns), then the same phases in sequence and the library's step.
template <class T>
void phases(int calls) {
  fs::NetShape s;
  fs::make_mlp_shape(kWidths, 3, &s);
  std::vector<T> X, Y;
  make_data(X, Y);
  const int warm_epochs = 20;
  BenchTraining<T> bench(s, 1, X, Y, kN, kB, warm_epochs, warm_epochs, fs::ShuffleMode::None);
  fs::RunControl control;
  fs::net_train_host(bench.args, 1, 1, control, nullptr, 0);

  fs::WorkerScratch<T> scratch(1);
  const fs::NetWorkspace<T> ws = scratch.get(0, s, kB, kN);
  const int64_t P = s.n_params;
  std::memcpy(ws.theta, bench.theta.data(), P * sizeof(T));
  std::memcpy(ws.adam_m, bench.m.data(), P * sizeof(T));
  std::memcpy(ws.adam_v, bench.v.data(), P * sizeof(T));
  const fs::HostBlock blk;
  const fs::AdamHyper adam;
  const int n_batches = kN / kB, K = 1, d = 2;
  T* logits = ws.acts + (int64_t)s.act_row(s.n_layers) * kB;
  T* hidden = ws.acts + (int64_t)s.act_row(1) * kB;
  int64_t t = int64_t(warm_epochs) * n_batches;

  auto rows = [&](int i) {
    const int step = i % n_batches;
    blk.map_1d(kB, [=](int n) { ws.rows[n] = fs::batch_row(fs::ShuffleMode::None, ws.order, step, kB, n); });
  };
  auto gather = [&](int) { fs::gather_batch(blk, X.data(), Y.data(), ws.rows, ws.acts, ws.targets, d, K, kB); };
  auto forward0 = [&](int) {
    fs::dense_forward(blk, ws.theta + s.w_offset[0], ws.theta + s.b_offset[0], ws.acts, hidden, 2, 104, kB, true);
  };
  auto forward1 = [&](int) {
    fs::dense_forward(blk, ws.theta + s.w_offset[1], ws.theta + s.b_offset[1], hidden, logits, 104, 1, kB, false);
  };
  auto loss = [&](int) { fs::loss_grad(blk, fs::LossKind::SigmoidCE, logits, ws.targets, ws.delta_a, K, kB); };
  auto backward = [&](int) { fs::net_backward(blk, s, ws.theta, ws, kB, false); };
  // Adam on a copy of the state, so that timing it does not drive the network away.
  std::vector<T> theta(ws.theta, ws.theta + P), m(ws.adam_m, ws.adam_m + P), v(ws.adam_v, ws.adam_v + P);
  auto step_size = [&](int i) {
    volatile double sink = fs::adam_step_size(adam, t + 1 + i);
    (void)sink;
  };
  auto adam_update = [&](int i) { fs::adam_update(blk, adam, t + 1 + i, ws.grad, theta.data(), m.data(), v.data(), P); };
  auto fused = [&](int) {
    fs::host_shallow_step(s, ws.theta, X.data(), Y.data(), ws.rows, kB, ws.acts, logits, ws.targets,
                          ws.delta_a, ws.grad);
  };
  auto all = [&](int i) {
    rows(i), gather(i), forward0(i), forward1(i), loss(i), backward(i), adam_update(i);
  };
  auto all_fused = [&](int i) { rows(i), fused(i), adam_update(i); };
  struct Row {
    const char* name;
    double ns;
  };
  std::vector<Row> table;
  // Rounds alternate between the phases (one round each in turn), so that a busy machine
  // slows them alike; each phase's figure is its best round.
  for (int r = 0; r < 5; ++r) {
    std::vector<Row> round;
    auto time = [&](const char* name, auto&& f) { round.push_back({name, ns_per_call(calls, f, 1)}); };
    time("batch rows", rows);
    time("gather", gather);
    time("forward layer 0 (2 -> 104, ReLU)", forward0);
    time("forward layer 1 (104 -> 1, dot)", forward1);
    time("loss gradient (sigmoid CE)", loss);
    time("backward (host_shallow_backward)", backward);
    time("Adam step size (pow, sqrt)", step_size);
    time("Adam update (417 parameters)", adam_update);
    time("generic phases in sequence", all);
    time("fused: gather to backward (host_shallow_step)", fused);
    time("rows, fused step, Adam in sequence", all_fused);
    if (table.empty()) {
      table = round;
    } else {
      for (size_t k = 0; k < round.size(); ++k)
        if (round[k].ns < table[k].ns) table[k].ns = round[k].ns;
    }
  }
  // The generic phases (rows 0-5) and the Adam update (7; the step size, 6, is part of it).
  double sum = 0;
  for (size_t k : {0, 1, 2, 3, 4, 5, 7}) sum += table[k].ns;
  // The library's whole step: train_network over whole epochs (no recording), per step.
  BenchTraining<T> lib(s, 1, X, Y, kN, kB, 1, 1 << 30, fs::ShuffleMode::None);
  std::memcpy(lib.theta.data(), ws.theta, P * sizeof(T));
  const int epochs = calls / n_batches > 0 ? calls / n_batches : 1;
  lib.args.epochs = epochs;
  lib.args.n_records = 1;
  double step_ns = 1e30;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fs::net_train_host(lib.args, 1, 1, control, nullptr, 0);
    const double ns = seconds_since(t0) * 1e9 / (double(epochs) * n_batches);
    step_ns = ns < step_ns ? ns : step_ns;
  }
  std::printf("%s, ns per call (best of 5 alternating rounds of %d calls):\n",
              sizeof(T) == 4 ? "float32" : "float64", calls);
  for (const Row& row : table) std::printf("  %-48s %8.1f\n", row.name, row.ns);
  std::printf("  %-48s %8.1f\n", "sum of the generic phases and Adam", sum);
  std::printf("  %-48s %8.1f\n", "library step (train_network, S = 1)", step_ns);
}

}  // namespace

int main(int argc, char** argv) {
  const fs::SubnormalModeScope fp_mode(bench_flushes_subnormals());
  const std::string first = argc > 1 ? argv[1] : "float";
  if (first == "phases") {
    const std::string type = argc > 2 ? argv[2] : "float";
    const int calls = argc > 3 ? std::atoi(argv[3]) : 20000;
    if (type == "double") phases<double>(calls);
    else phases<float>(calls);
    return 0;
  }
  const int S = argc > 2 ? std::atoi(argv[2]) : 4;
  const int epochs = argc > 3 ? std::atoi(argv[3]) : 500;
  const std::string mode = argc > 4 ? argv[4] : "none";
  const fs::ShuffleMode shuffle = mode == "samples"   ? fs::ShuffleMode::Samples
                                  : mode == "batches" ? fs::ShuffleMode::Batches
                                                      : fs::ShuffleMode::None;
  if (first == "double") run<double>(S, epochs, shuffle);
  else run<float>(S, epochs, shuffle);
}
