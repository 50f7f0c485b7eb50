// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
//
// A random value is a pure function of (seed, stream, counter): no generator state, so every
// network, epoch and element draws the same numbers on any engine and any thread count.
#pragma once
#include <stdint.h>
#include "config.h"

namespace fs {

struct U32x4 {
  uint32_t v[4];
};

FS_HD FS_INLINE uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// Philox4x32 with 10 rounds; key = 64-bit seed, counter = 4 x 32 bits.
FS_HD inline U32x4 philox4x32(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3) {
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  uint32_t x0 = c0, x1 = c1, x2 = c2, x3 = c3;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo32(0xD2511F53u, x0, &hi0);
    const uint32_t lo1 = mulhilo32(0xCD9E8D57u, x2, &hi1);
    x0 = hi1 ^ x1 ^ k0;
    x1 = lo1;
    x2 = hi0 ^ x3 ^ k1;
    x3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return U32x4{{x0, x1, x2, x3}};
}

// Streams keep independent uses of one seed apart.
enum RandomStream : uint32_t {
  kStreamInit = 1,     // initial weights
  kStreamShuffle = 2,  // per-epoch sample / batch order
  kStreamData = 3,     // data sampling (experiments)
};

// Uniform double in [0, 1) with 53 random bits.
FS_HD FS_INLINE double uniform01(const U32x4& r) {
  const uint64_t bits = (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
}

// Integer in [0, n) from 64 random bits b = hi * 2^32 + lo by multiply-shift, floor(b * n / 2^64)
// (bias < n / 2^64). Computed exactly in 64-bit arithmetic: hi * n + (lo * n >> 32) < 2^64, and
// the dropped fraction of lo * n / 2^32 cannot carry into the result. No 128-bit product, so
// the host vectorises it.
FS_HD FS_INLINE uint32_t uniform_below(const U32x4& r, uint32_t n) {
  const uint64_t hi = r.v[2], lo = r.v[3];
  return static_cast<uint32_t>((hi * n + ((lo * n) >> 32)) >> 32);
}

// Fisher-Yates permutation of 0..n-1 for (seed, epoch): the swap partner of position i is
// draw i, which depends only on (seed, stream, epoch, i), so all draws can be made at once.
FS_HD FS_INLINE int shuffle_draw(uint64_t seed, uint32_t epoch, int i) {
  const U32x4 r = philox4x32(seed, kStreamShuffle, epoch, static_cast<uint32_t>(i), 0u);
  return static_cast<int>(uniform_below(r, static_cast<uint32_t>(i + 1)));
}

// out = the permutation given draws[i] = shuffle_draw(seed, epoch, i) for 0 < i < n.
FS_HD FS_INLINE void apply_shuffle_draws(int n, const int* draws, int* out) {
  for (int i = 0; i < n; ++i) out[i] = i;
  for (int i = n - 1; i > 0; --i) {
    const int j = draws[i];
    const int t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
}

}  // namespace fs
