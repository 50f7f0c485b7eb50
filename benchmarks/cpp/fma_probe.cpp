// FMA throughput of one core: independent chains of a = a * b + c on SIMD vectors, float and
// double. Prints one JSON line {"float32": GFLOP/s, "float64": GFLOP/s} (2 FLOPs per lane per
// FMA), the best of many short timed runs (on a shared machine the best run is the one that
// had the core to itself). Built by benchmarks/flops.py with the same flags as the
// library (-O3 -march=native) and -ffp-contract=fast (one FMA per a * b + c); run it pinned to
// one CPU.
#include <chrono>
#include <cstdio>
#include <cstdlib>

// One register's width: AVX-512 (32 registers) or AVX2 (16 registers). Wider vectors than the
// registers would be split and, with more chains than registers, spilled.
#if defined(__AVX512F__)
constexpr int kVectorBytes = 64, kChains = 16;
#else
constexpr int kVectorBytes = 32, kChains = 10;
#endif

template <class T>
using Vec [[gnu::vector_size(kVectorBytes)]] = T;

// kChains independent accumulators: more than latency x throughput (4 x 2) of current cores,
// so the FMA units, not the dependency chains, limit the rate.
template <class T>
[[gnu::noinline]] double gflops(long iterations, T seed) {
  constexpr int kLanes = kVectorBytes / sizeof(T);
  Vec<T> acc[kChains];
  Vec<T> mul, add;
  for (int l = 0; l < kLanes; ++l) {
    mul[l] = T(0.9999999) + seed * T(1e-9);
    add[l] = T(1e-7);
  }
  for (int c = 0; c < kChains; ++c)
    for (int l = 0; l < kLanes; ++l) acc[c][l] = seed + T(c);
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < iterations; ++i) {
    // Keep mul and add in registers: with some -march tunings (Intel's, which prefer 256-bit
    // vectors) GCC otherwise reads mul from the stack in every FMA, and those memory-operand
    // FMAs ran at 2/3 of the peak on an Intel Xeon (157 instead of 240 GFLOP/s).
    asm("" : "+v"(mul), "+v"(add));
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * mul + add;  // fused: -ffp-contract=fast
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  T sink = 0;
  for (int c = 0; c < kChains; ++c)
    for (int l = 0; l < kLanes; ++l) sink += acc[c][l];
  if (sink == T(12345.678)) std::puts("");  // the result is used
  return 2.0 * kLanes * kChains * double(iterations) / seconds / 1e9;
}

template <class T>
double best_of(int runs, long iterations) {
  double best = 0;
  for (int r = 0; r < runs; ++r) {
    const double g = gflops<T>(iterations, T(r + 1));
    if (g > best) best = g;
  }
  return best;
}

int main(int argc, char** argv) {
  const long iterations = argc > 1 ? std::atol(argv[1]) : 1000000L;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 40;
  const double f32 = best_of<float>(runs, iterations);
  const double f64 = best_of<double>(runs, iterations);
  std::printf("{\"float32\": %.2f, \"float64\": %.2f}\n", f32, f64);
  return 0;
}
