// Micro-architecture probe of one core: the costs that decide how the CPU kernels run on a
// given x86 machine, measured rather than looked up (the project's machines change from day to
// day, and a VM does not expose hardware counters). Built and run by benchmarks/uarch_probe.py
// with -O3 -march=native; prints one JSON object. Each figure is the best of many short runs.
//
//   fma256, fma512      independent FMAs per ns on 256- and 512-bit vectors (float32)
//   fma512_max_pair     ns per (FMA + max) pair over ns per FMA alone: ~1 when the max runs on
//                       a pipe of its own (AMD Zen: 4 FP pipes), ~1.5-2 when the two share the
//                       FMA ports (Intel with 512-bit uops in flight: ports 0 and 5 only)
//   fma512_add_pair     the same with an add (Adam, bias, biases of the conv finish)
//   sqrt512, div512     cycles per independent vsqrtps / vdivps (Adam's update)
//   pause               one PAUSE (the spin barrier's wait), ns and cycles
//   forward_ok          cycles of a vector store then a vector load of it (forwarded)
//   forward_fail        cycles of scalar stores then a vector load over them (cannot forward)
//   est_ghz             FMA256 rate / 2 (two 256-bit FMA pipes on every core measured so far):
//                       a clock estimate to turn the ns figures into cycles
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <cstring>

namespace {

using clock_type = std::chrono::steady_clock;

template <class F>
double best_ns_per_op(F&& run, long ops, int runs = 30) {
  double best = 1e30;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = clock_type::now();
    run();
    const double ns = std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
    if (ns / ops < best) best = ns / ops;
  }
  return best;
}

volatile float g_sink;

#if defined(__AVX512F__)
constexpr int kChains = 12;
constexpr long kIters = 20000;

double fma512_ns() {
  __m512 acc[kChains];
  const __m512 m = _mm512_set1_ps(0.9999999f), a = _mm512_set1_ps(1e-7f);
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(1.0f + c);
  const double ns = best_ns_per_op([&] {
    for (long i = 0; i < kIters; ++i)
#pragma GCC unroll 12
      for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], m, a);
  }, kIters * kChains);
  float s = 0;
  for (int c = 0; c < kChains; ++c) s += _mm512_reduce_add_ps(acc[c]);
  g_sink = s;
  return ns;
}

// ns per pair of one FMA and one `other` op, both on independent chains.
template <class Other>
double fma512_pair_ns(Other other) {
  __m512 acc[kChains], y[kChains];
  const __m512 m = _mm512_set1_ps(0.9999999f), a = _mm512_set1_ps(1e-7f);
  for (int c = 0; c < kChains; ++c) acc[c] = y[c] = _mm512_set1_ps(1.0f + c);
  const double ns = best_ns_per_op([&] {
    for (long i = 0; i < kIters; ++i)
#pragma GCC unroll 12
      for (int c = 0; c < kChains; ++c) {
        acc[c] = _mm512_fmadd_ps(acc[c], m, a);
        y[c] = other(y[c]);
      }
  }, kIters * kChains);
  float s = 0;
  for (int c = 0; c < kChains; ++c) s += _mm512_reduce_add_ps(acc[c]) + _mm512_reduce_add_ps(y[c]);
  g_sink = s;
  return ns;
}

template <class Op>
double unary512_ns(Op op, long iters) {
  __m512 x[kChains];
  for (int c = 0; c < kChains; ++c) x[c] = _mm512_set1_ps(2.0f + c);
  const double ns = best_ns_per_op([&] {
    for (long i = 0; i < iters; ++i)
#pragma GCC unroll 12
      for (int c = 0; c < kChains; ++c) x[c] = op(x[c]);
  }, iters * kChains, 10);
  float s = 0;
  for (int c = 0; c < kChains; ++c) s += _mm512_reduce_add_ps(x[c]);
  g_sink = s;
  return ns;
}
#endif

double fma256_ns() {
  constexpr int kC = 12;
  constexpr long kI = 20000;
  __m256 acc[kC];
  const __m256 m = _mm256_set1_ps(0.9999999f), a = _mm256_set1_ps(1e-7f);
  for (int c = 0; c < kC; ++c) acc[c] = _mm256_set1_ps(1.0f + c);
  const double ns = best_ns_per_op([&] {
    for (long i = 0; i < kI; ++i)
#pragma GCC unroll 12
      for (int c = 0; c < kC; ++c) acc[c] = _mm256_fmadd_ps(acc[c], m, a);
  }, kI * kC);
  alignas(32) float lanes[8];
  float s = 0;
  for (int c = 0; c < kC; ++c) {
    _mm256_store_ps(lanes, acc[c]);
    for (float v : lanes) s += v;
  }
  g_sink = s;
  return ns;
}

double pause_ns() {
  constexpr long kPauses = 2000;
  return best_ns_per_op([&] {
    for (long i = 0; i < kPauses; ++i) _mm_pause();
  }, kPauses, 20);
}

// A dependent chain through memory: each round stores, then loads what it stored.
double store_forward_ns(bool scalar_stores) {
  constexpr long kRounds = 20000;
  alignas(64) float buf[16] = {};
  float carry = 1.0f;
  const double ns = best_ns_per_op([&] {
    for (long i = 0; i < kRounds; ++i) {
      if (scalar_stores) {
#pragma GCC unroll 8
        for (int l = 0; l < 8; ++l) {
          float v = carry + l;
          asm volatile("" : "+x"(v));  // keep eight scalar stores (not one vector store)
          buf[l] = v;
        }
      } else {
        __m256 v = _mm256_set1_ps(carry);
        asm volatile("" : "+x"(v));
        _mm256_store_ps(buf, v);
      }
      __m256 w = _mm256_load_ps(buf);  // one 256-bit load over what was just stored
      asm volatile("" : "+x"(w));
      carry = _mm256_cvtss_f32(w) * 0.5f;
    }
  }, kRounds, 20);
  g_sink = carry;
  return ns;
}

}  // namespace

int main() {
  const double f256 = fma256_ns();
  const double ghz = 0.5 / f256;  // two 256-bit FMAs per cycle
  std::printf("{\"fma256_per_ns\": %.3f, \"est_ghz\": %.3f", 1.0 / f256, ghz);
#if defined(__AVX512F__)
  const double f512 = fma512_ns();
  const double with_max = fma512_pair_ns([](__m512 y) { return _mm512_max_ps(y, _mm512_set1_ps(0.5f)); });
  const double with_add = fma512_pair_ns([](__m512 y) { return _mm512_add_ps(y, _mm512_set1_ps(1e-7f)); });
  const double sq = unary512_ns([](__m512 x) { return _mm512_sqrt_ps(x); }, 2000);
  const double dv = unary512_ns([](__m512 x) { return _mm512_div_ps(_mm512_set1_ps(3.0f), x); }, 2000);
  std::printf(", \"fma512_per_ns\": %.3f, \"fma512_max_pair\": %.3f, \"fma512_add_pair\": %.3f"
              ", \"sqrt512_cycles\": %.2f, \"div512_cycles\": %.2f",
              1.0 / f512, with_max / f512, with_add / f512, sq * ghz, dv * ghz);
#endif
  const double p = pause_ns();
  std::printf(", \"pause_ns\": %.2f, \"pause_cycles\": %.1f, \"forward_ok_cycles\": %.1f"
              ", \"forward_fail_cycles\": %.1f}\n",
              p, p * ghz, store_forward_ns(false) * ghz, store_forward_ns(true) * ghz);
  return 0;
}
