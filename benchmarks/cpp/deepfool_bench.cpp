// Standalone C++ benchmark of DeepFool on the CPU engine (no Python): the Foolbox variant
// (overshoot 0.02, 50 steps, clipped to the box), as benchmarks/compare_deepfool.py runs it.
//   g++ -O3 -march=native -fopenmp-simd -D_OPENMP_SIMD_ENABLED -ffp-contract=fast \
//       -fno-math-errno -fno-trapping-math -Isrc benchmarks/cpp/deepfool_bench.cpp \
//       -o deepfool_bench -lpthread
//   ./deepfool_bench CASE_FILE [threads] [rounds]
// CASE_FILE: int32 {n_spec, N}, the network's spec (n_spec int32: fs.CNN.spec / fs.MLP.spec),
// float32 {lo, hi} (the box), float32 theta (one network's parameters), float32 X (N points).
// Written from Python, e.g. for the paper CNN case of compare_deepfool.py:
//   import sys, numpy as np; sys.path.insert(0, "benchmarks"); import deepfool_cases as c
//   net, params, X, box = c.cnn_case(1000)
//   with open("cnn_case.bin", "wb") as f:
//       np.array([len(net.spec), len(X)], np.int32).tofile(f); np.array(net.spec, np.int32).tofile(f)
//       np.array(box, np.float32).tofile(f); params.flat[0].astype(np.float32).tofile(f)
//       X.astype(np.float32).tofile(f)
// Prints the best time of the rounds, points/s and the total of the iterations.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bench_fp_mode.h"
#include "falsestruct/network_host.h"

int main(int argc, char** argv) {
  const fs::SubnormalModeScope fp_mode(bench_flushes_subnormals());
  if (argc < 2) {
    std::printf("usage: %s CASE_FILE [threads] [rounds]\n", argv[0]);
    return 2;
  }
  const int threads = argc > 2 ? std::atoi(argv[2]) : 1;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 5;
  FILE* f = std::fopen(argv[1], "rb");
  if (!f) {
    std::printf("cannot open %s\n", argv[1]);
    return 2;
  }
  int head[2];
  bool ok = std::fread(head, sizeof(int), 2, f) == 2;
  const int n_spec = head[0], N = head[1];
  std::vector<int> spec(ok && n_spec > 3 ? n_spec : 3);
  float box[2];
  ok = ok && n_spec > 3 && (n_spec - 3) % 4 == 0 &&
       std::fread(spec.data(), sizeof(int), spec.size(), f) == spec.size();
  ok = ok && std::fread(box, sizeof(float), 2, f) == 2;
  fs::NetShape s;
  const char* err = ok ? fs::make_net_shape(spec[0], spec[1], spec[2], spec.data() + 3, (n_spec - 3) / 4, &s)
                       : "bad case file";
  if (err) {
    std::printf("%s\n", err);
    return 2;
  }
  std::vector<float> theta(s.n_params), X((size_t)N * s.width[0]);
  ok = std::fread(theta.data(), sizeof(float), theta.size(), f) == theta.size() &&
       std::fread(X.data(), sizeof(float), X.size(), f) == X.size();
  std::fclose(f);
  if (!ok) {
    std::printf("short file\n");
    return 2;
  }
  fs::DeepFoolOptions o;
  o.overshoot = 0.02;
  o.max_iter = 50;
  o.foolbox = true;
  o.clip = true;
  o.lo = box[0];
  o.hi = box[1];
  std::vector<float> pert(X.size());
  std::vector<int> iters(N), status(N);
  double best = 1e30;
  for (int r = 0; r < rounds; ++r) {
    fs::RunControl control;
    const auto t0 = std::chrono::steady_clock::now();
    fs::deepfool_host(s, theta.data(), 1, X.data(), 0, N, o, pert.data(), iters.data(),
                      status.data(), threads, control, nullptr, 0);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  long total = 0, flipped = 0;
  for (int n = 0; n < N; ++n) {
    total += iters[n];
    flipped += status[n] == fs::kAttackFlipped;
  }
  std::printf("threads=%d N=%d: %.2f ms (best of %d), %.0f points/s, %ld iterations, %ld flipped\n",
              threads, N, best * 1e3, rounds, N / best, total, flipped);
}
