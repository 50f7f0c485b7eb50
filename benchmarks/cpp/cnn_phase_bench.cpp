// Per-phase timing of the paper CNN's training step and of DeepFool's input gradient on the CPU
// engine (one thread, HostBlock; no Python): where a step's time goes, phase by phase.
//   g++ -O3 -march=native -fopenmp-simd -D_OPENMP_SIMD_ENABLED -ffp-contract=fast \
//       -fno-math-errno -fno-trapping-math -Isrc benchmarks/cpp/cnn_phase_bench.cpp \
//       -o cnn_phase_bench -lpthread
//   ./cnn_phase_bench [float|double] [rounds] [batch]
// Each round runs the phases of one training step in order (the same calls as net_forward /
// net_backward / adam_update; both kernel gradients in their form behind a max-pool), then
// conv1's kernel transpose and input gradient (only DeepFool and input gradients need it), and
// for comparison conv2's input gradient in the dense form (rows in brackets: not in the step);
// every phase is timed alone and the best of the rounds printed, with the dense product's
// multiply-adds per ns where it has one (a gradient behind a pool does a quarter).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "bench_fp_mode.h"
#include "falsestruct/network_host.h"

template <class T>
void run(int rounds, int B) {
  const int spec[] = {1, 24, 5, 1, 2, 0, 0, 0, 1, 48, 5, 1, 2, 0, 0, 0, 0, 10, 0, 0, 0, 1, 0, 0};
  fs::NetShape s;
  if (const char* err = fs::make_net_shape(32, 32, 1, spec, 6, &s)) {
    std::printf("%s\n", err);
    return;
  }
  const uint64_t seed = 0;
  std::vector<T> theta(s.n_params), m(s.n_params), v(s.n_params);
  fs::net_init_host(s, &seed, 1, theta.data(), 1);
  fs::HostBuffer buf = fs::ScratchCache::process().take(
      static_cast<size_t>(fs::NetWorkspace<T>::scalars(s, B)) * sizeof(T));
  std::vector<int> ints(fs::NetWorkspace<T>::ints(B, B));
  const fs::NetWorkspace<T> ws =
      fs::NetWorkspace<T>::carve(s, B, B, static_cast<T*>(buf.data()), ints.data());
  uint64_t state = 12345;  // pseudo-random pixels: max-pool and ReLU patterns as on real data
  for (int e = 0; e < B * s.width[0]; ++e) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    ws.acts[e] = T((state >> 33) % 100000) / T(100000);
  }
  for (int n = 0; n < B; ++n) ws.targets[n] = T(n % 2);
  const fs::HostBlock blk;
  const fs::AdamHyper adam;
  auto act = [&](int l) { return ws.acts + (int64_t)s.act_row(l) * B; };
  auto geom = [&](int l) {
    const fs::Layer& L = s.layer[l];
    return fs::ConvGeometry{B, L.in_h, L.in_w, L.in_c, L.out_c, L.k};
  };
  auto pool = [&](int l) {
    const fs::Layer& L = s.layer[l];
    return fs::PoolGeometry{B, L.in_h, L.in_w, L.in_c};
  };
  auto W = [&](int l) { return theta.data() + s.w_offset[l]; };
  auto bias = [&](int l) { return theta.data() + s.b_offset[l]; };
  auto dW = [&](int l) { return ws.grad + s.w_offset[l]; };
  auto db = [&](int l) { return ws.grad + s.b_offset[l]; };
  auto macs = [&](int l) {  // multiply-adds of one of the layer's products (forward)
    const fs::Layer& L = s.layer[l];
    return L.kind == fs::LayerKind::Conv2D ? double(B) * L.in_h * L.in_w * L.k * L.k * L.in_c * L.out_c
                                           : double(B) * s.n_in(l) * s.n_out(l);
  };
  // Gradient buffers as net_backward alternates them: layer l's output gradient is in
  // delta_a for l = 5, 3, 1 and in delta_b for l = 4, 2, 0.
  T* const da = ws.delta_a;
  T* const dbuf = ws.delta_b;
  struct Phase {
    std::string name;
    double macs;
    std::function<void()> fn;
  };
  const std::vector<Phase> phases = {
      {"conv1 forward (pad + product)", macs(0), [&] { fs::conv2d_forward(blk, geom(0), W(0), bias(0), act(0), ws.padded, act(1), true); }},
      {"pool1 forward", 0, [&] { fs::maxpool2_forward(blk, pool(1), act(1), act(2)); }},
      {"conv2 forward (pad + product)", macs(2), [&] { fs::conv2d_forward(blk, geom(2), W(2), bias(2), act(2), ws.padded, act(3), true); }},
      {"pool2 forward", 0, [&] { fs::maxpool2_forward(blk, pool(3), act(3), act(4)); }},
      {"dense forward (both)", macs(4) + macs(5), [&] {
         fs::dense_forward(blk, W(4), bias(4), act(4), act(5), s.n_in(4), s.n_out(4), B, false);
         fs::dense_forward(blk, W(5), bias(5), act(5), act(6), s.n_in(5), s.n_out(5), B, false);
       }},
      {"loss gradient", 0, [&] { fs::loss_grad(blk, fs::LossKind::SigmoidCE, act(6), ws.targets, da, 1, B); }},
      {"dense backward (both)", 2 * macs(4) + 2 * macs(5), [&] {
         fs::dense_backward_input(blk, W(5), ws.kernel_t, act(5), da, dbuf, s.n_in(5), s.n_out(5), B, false);
         fs::dense_backward_params(blk, act(5), da, dW(5), db(5), s.n_in(5), s.n_out(5), B);
         fs::dense_backward_input(blk, W(4), ws.kernel_t, act(4), dbuf, da, s.n_in(4), s.n_out(4), B, false);
         fs::dense_backward_params(blk, act(4), dbuf, dW(4), db(4), s.n_in(4), s.n_out(4), B);
       }},
      {"pool2 backward", 0, [&] { fs::maxpool2_backward_input(blk, pool(3), act(3), da, dbuf, true); }},
      {"conv2 kernel transpose", 0, [&] { fs::conv2d_transpose_kernel(blk, geom(2), W(2), ws.kernel_t); }},
      {"conv2 input grad (routed behind pool 2)", macs(2), [&] { fs::conv2d_backward_input(blk, geom(2), ws.kernel_t, act(2), dbuf, ws.padded, da, false, true); }},
      {"[dense form] conv2 input grad (pad + product)", macs(2), [&] { fs::conv2d_backward_input(blk, geom(2), ws.kernel_t, act(2), dbuf, ws.padded, da, false, false); }},
      {"conv2 kernel grad (pad + product + bias)", macs(2), [&] { fs::conv2d_backward_params(blk, geom(2), act(2), dbuf, ws.padded, ws.kernel_t, true, dW(2), db(2)); }},
      {"pool1 backward", 0, [&] { fs::maxpool2_backward_input(blk, pool(1), act(1), da, dbuf, true); }},
      {"conv1 kernel grad (pad + product + bias)", macs(0), [&] { fs::conv2d_backward_params(blk, geom(0), act(0), dbuf, ws.padded, ws.kernel_t, true, dW(0), db(0)); }},
      {"Adam", 0, [&] { fs::adam_update(blk, adam, 1, ws.grad, theta.data(), m.data(), v.data(), s.n_params); }},
      {"[DeepFool] conv1 kernel transpose", 0, [&] { fs::conv2d_transpose_kernel(blk, geom(0), W(0), ws.kernel_t); }},
      {"[DeepFool] conv1 input grad (pad + product)", macs(0), [&] { fs::conv2d_backward_input(blk, geom(0), ws.kernel_t, act(0), dbuf, ws.padded, da, false, false); }},
  };
  std::vector<double> best(phases.size(), 1e30);
  for (int round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < phases.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      phases[i].fn();
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best[i] = std::min(best[i], t);
    }
  }
  double step = 0, deepfool = 0;
  std::printf("| phase (%s, batch %d, best of %d) | ms | share of step | MAC/ns |\n|---|---|---|---|\n",
              sizeof(T) == 4 ? "float32" : "float64", B, rounds);
  for (size_t i = 0; i < phases.size(); ++i)
    (phases[i].name[0] == '[' ? deepfool : step) += best[i];
  for (size_t i = 0; i < phases.size(); ++i) {
    const bool df = phases[i].name[0] == '[';
    char rate[32] = "";
    if (phases[i].macs > 0) std::snprintf(rate, sizeof rate, "%.1f", phases[i].macs / best[i] * 1e-9);
    std::printf("| %s | %.3f | %s | %s |\n", phases[i].name.c_str(), best[i] * 1e3,
                df ? "-" : (std::to_string(int(100 * best[i] / step + 0.5)) + "%").c_str(), rate);
  }
  std::printf("| training step (sum) | %.3f | 100%% | |\n", step * 1e3);
  fs::ScratchCache::process().give_back(std::move(buf));
}

int main(int argc, char** argv) {
  const fs::SubnormalModeScope fp_mode(bench_flushes_subnormals());
  const std::string type = argc > 1 ? argv[1] : "float";
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 20;
  const int B = argc > 3 ? std::atoi(argv[3]) : 60;
  if (type == "double") run<double>(rounds, B);
  else run<float>(rounds, B);
}
