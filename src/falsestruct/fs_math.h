// Scalar math overloads that resolve to the same libm / CUDA intrinsics on both executors.
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "config.h"

namespace fs {
FS_HD FS_INLINE float fs_exp(float x) { return expf(x); }
FS_HD FS_INLINE double fs_exp(double x) { return exp(x); }
FS_HD FS_INLINE float fs_log(float x) { return logf(x); }
FS_HD FS_INLINE double fs_log(double x) { return log(x); }
FS_HD FS_INLINE float fs_log1p(float x) { return log1pf(x); }
FS_HD FS_INLINE double fs_log1p(double x) { return log1p(x); }
FS_HD FS_INLINE float fs_sqrt(float x) { return sqrtf(x); }
FS_HD FS_INLINE double fs_sqrt(double x) { return sqrt(x); }
FS_HD FS_INLINE float fs_abs(float x) { return fabsf(x); }
FS_HD FS_INLINE double fs_abs(double x) { return fabs(x); }

// 2^e as a float built in the exponent bits (e a normal exponent).
FS_HD FS_INLINE double pow2_bits(double e) {
  const int64_t bits = (static_cast<int64_t>(e) + 1023) << 52;
  double v;
  memcpy(&v, &bits, sizeof(v));
  return v;
}
FS_HD FS_INLINE float pow2_bits(float e) {
  const int32_t bits = (static_cast<int32_t>(e) + 127) << 23;
  float v;
  memcpy(&v, &bits, sizeof(v));
  return v;
}
// p * 2^n as two factors 2^(n/2), so that n may exceed the normal exponent range by ~2x.
template <class T>
FS_HD FS_INLINE T times_pow2(T p, T n) {
  const T n1 = floor(n * T(0.5));
  return (p * pow2_bits(n1)) * pow2_bits(n - n1);
}

// exp(x) written in plain arithmetic so that SIMD loops vectorise it (libm's exp is a scalar
// call without -ffast-math) and the GPU runs the same formula: x = n ln2 + r with |r| <= ln2/2
// (Cody-Waite split of ln2), exp(r) by its Taylor polynomial (degree 13 for double, 7 for
// float: truncation < 1e-17 resp. 1e-9 relative), times 2^n built in the exponent bits.
// 2^n is applied as two factors 2^(n/2) so that results near overflow and in the subnormal
// range are right too. Accurate to a few ulp; NaN stays NaN; saturates to +inf / 0.
FS_HD FS_INLINE double exp_poly(double x) {
  const double xc = x > 709.8 ? 709.8 : (x < -745.2 ? -745.2 : x);
  const double n = floor(xc * 1.4426950408889634 + 0.5);
  const double r = (xc - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const double y = times_pow2(p, n);
  return x != x ? x : (x > 709.79 ? INFINITY : (x < -745.2 ? 0.0 : y));
}

FS_HD FS_INLINE float exp_poly(float x) {
  const float xc = x > 88.73f ? 88.73f : (x < -103.3f ? -103.3f : x);
  const float n = floorf(xc * 1.44269504f + 0.5f);
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float y = times_pow2(p, n);
  return x != x ? x : (x > 88.722f ? INFINITY : (x < -103.3f ? 0.0f : y));
}

// max(s, 0) when relu, else s; NaN passes through (s < 0 is false), so divergence stays
// visible. Branch-free: a branch on the sign of a logit mispredicts once samples are shuffled.
template <class T>
FS_HD FS_INLINE T relu_if(bool relu, T s) {
  const T lo = relu ? T(0) : -T(INFINITY);
  return s < lo ? lo : s;
}

// The gradient s passed through a ReLU whose output was x (x > 0 exactly where its input was),
// or s unchanged when there is no ReLU. Both operands are always read: branch-free.
template <class T>
FS_HD FS_INLINE T relu_grad_if(bool relu, T x, T s) {
  const bool pass = (x > T(0)) | !relu;
  return pass ? s : T(0);
}

}  // namespace fs
