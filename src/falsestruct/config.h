// Portability macros shared by every kernel source: the same header compiles under the
// host C++ compiler (CPU engine) and under nvcc (CUDA engine).
#pragma once

#if defined(__CUDACC__)
#define FS_HD __host__ __device__
#define FS_INLINE __forceinline__
#else
#define FS_HD
#define FS_INLINE inline __attribute__((always_inline))
#endif

#define FS_STRINGIFY_(x) #x
#define FS_STRINGIFY(x) FS_STRINGIFY_(x)

// On the host, loops marked this way become SIMD lanes (OpenMP-SIMD, no OpenMP runtime):
// the "threads" of a CUDA block map onto vector lanes. nvcc's device pass ignores them.
#if defined(__CUDA_ARCH__) || !defined(_OPENMP_SIMD_ENABLED)
#define FS_SIMD
#define FS_SIMD_SUM(var)
#else
#define FS_SIMD _Pragma("omp simd")
#define FS_SIMD_SUM(var) _Pragma(FS_STRINGIFY(omp simd reduction(+ : var)))
#endif
