// Scalar math overloads that resolve to the same libm / CUDA intrinsics on both executors.
#pragma once
#include <math.h>
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
}  // namespace fs
