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

// On the host, loops marked this way become SIMD lanes (OpenMP-SIMD, no OpenMP runtime):
// the "threads" of a CUDA block map onto vector lanes. nvcc's device pass ignores them.
#if defined(__CUDA_ARCH__) || !defined(_OPENMP_SIMD_ENABLED)
#define FS_SIMD
#else
#define FS_SIMD _Pragma("omp simd")
#endif
