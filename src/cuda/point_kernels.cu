// CUDA kernels of the per-point path (falsestruct/cuda/point_kernels.h): forward, logit input
// gradients and DeepFool for MLPs whose weights fit in shared memory, one thread per point.
#include <cuda_runtime.h>

#include "falsestruct/cuda/point_kernels.h"

namespace fs {
namespace cuda {
namespace {

std::string message(cudaError_t e) { return e == cudaSuccess ? "" : cudaGetErrorString(e); }

// Blocks loop over units (network, chunk of points): stage the network's weights, then every
// thread runs `op` on its points with no further barrier. Each thread of the grid owns one
// slice of the scratch (scratch path only), reused for all its points.
template <class T, class Op>
__global__ void __launch_bounds__(kPointThreads)
    point_kernel(PointGrid g, const T* theta, int64_t P, Op op, T* scratch, int* ints,
                 int64_t scalars_per_thread, int64_t ints_per_thread) {
  extern __shared__ __align__(16) unsigned char shared_raw[];
  T* w = reinterpret_cast<T*>(shared_raw);
  const int64_t slot = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  T* my_scratch = scratch ? scratch + slot * scalars_per_thread : nullptr;
  int* my_ints = ints ? ints + slot * ints_per_thread : nullptr;
  for (int64_t u = blockIdx.x; u < g.units(); u += gridDim.x) {
    const int net = static_cast<int>(u / g.blocks_per_net);
    __syncthreads();  // the previous unit's weights are no longer read
    stage_weights(threadIdx.x, blockDim.x, theta + P * net, P, w);
    __syncthreads();
    for_each_point_of_thread(g, u, threadIdx.x, [&](int n_net, int n) { op(w, n_net, n, my_scratch, my_ints); });
  }
}

template <class T, class Op>
std::string launch(const NetShape& s, const T* theta, int S, int N, const Op& op,
                   int64_t scalars_per_thread, int64_t ints_per_thread, void* stream_ptr) {
  if (S == 0 || N == 0) return "";
  const cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  int device = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return message(err);
  const int64_t shared = point_shared_bytes<T>(s);
  if (!point_kernels_supported<T>(s, point_shared_bytes_limit()))
    return "the per-point kernels do not take this network (point_kernels_supported)";
  const int64_t max_blocks = (int64_t)sms * kPointBlocksPerSm;
  const PointGrid g = make_point_grid(S, N, kPointThreads, max_blocks);
  const int64_t per_thread_bytes = scalars_per_thread * (int64_t)sizeof(T) + ints_per_thread * (int64_t)sizeof(int);
  const int64_t blocks = point_grid_blocks(g, max_blocks, per_thread_bytes);
  if (shared > 48 * 1024)  // above the default limit of dynamic shared memory
    err = cudaFuncSetAttribute(point_kernel<T, Op>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(shared));
  T* scratch = nullptr;
  int* ints = nullptr;
  const int64_t threads = blocks * kPointThreads;
  if (err == cudaSuccess && scalars_per_thread > 0)
    err = cudaMallocAsync(&scratch, threads * scalars_per_thread * sizeof(T), stream);
  if (err == cudaSuccess && ints_per_thread > 0)
    err = cudaMallocAsync(&ints, threads * ints_per_thread * sizeof(int), stream);
  if (err == cudaSuccess) {
    point_kernel<T, Op><<<static_cast<unsigned>(blocks), kPointThreads, shared, stream>>>(
        g, theta, s.n_params, op, scratch, ints, scalars_per_thread, ints_per_thread);
    err = cudaGetLastError();
  }
  // Freed in stream order, after the kernel; an earlier error is the one reported.
  const cudaError_t free_err1 = scratch ? cudaFreeAsync(scratch, stream) : cudaSuccess;
  const cudaError_t free_err2 = ints ? cudaFreeAsync(ints, stream) : cudaSuccess;
  if (err == cudaSuccess) err = free_err1 != cudaSuccess ? free_err1 : free_err2;
  return message(err);
}

}  // namespace

int64_t point_shared_bytes_limit() {
  int device = 0, bytes = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return bytes;
}

template <class T>
std::string point_forward_launch(const NetShape& s, const T* theta, int S, const T* X,
                                 int64_t x_net_stride, int N, T* out, void* stream) {
  std::string err;
  with_point_path(s, [&](auto path) {
    constexpr int D = decltype(path)::value;
    const PointForwardOp<T, D> op{s, X, x_net_stride, N, out};
    err = launch(s, theta, S, N, op, point_scratch_scalars(s, false), 0, stream);
  });
  return err;
}

template <class T>
std::string point_input_grads_launch(const NetShape& s, const T* theta, int S, const T* X,
                                     int64_t x_net_stride, int N, T* out, void* stream) {
  std::string err;
  with_point_path(s, [&](auto path) {
    constexpr int D = decltype(path)::value;
    const PointInputGradsOp<T, D> op{s, X, x_net_stride, N, out};
    err = launch(s, theta, S, N, op, point_scratch_scalars(s, false), 0, stream);
  });
  return err;
}

template <class T>
std::string point_deepfool_launch(const NetShape& s, const T* theta, int S, const T* X,
                                  int64_t x_net_stride, int N, const DeepFoolOptions& o, T* pert,
                                  int* iters, int* status, void* stream) {
  std::string err;
  with_point_path(s, [&](auto path) {
    constexpr int D = decltype(path)::value;
    const PointDeepFoolOp<T, D> op{s, X, x_net_stride, N, PointDeepFoolParams<T>::from(o), pert, iters, status};
    err = launch(s, theta, S, N, op, point_scratch_scalars(s, true), point_scratch_ints(s, o.candidates),
                 stream);
  });
  return err;
}

template <class T>
std::string point_flipping_scale_launch(const NetShape& s, const T* theta, int S, const T* X,
                                        int64_t x_net_stride, int N, const double* directions,
                                        double rtol, int max_doublings, T* r, int* status, int* evals,
                                        void* stream) {
  std::string err;
  with_point_path(s, [&](auto path) {
    constexpr int D = decltype(path)::value;
    const PointFlippingScaleOp<T, D> op{s, X, x_net_stride, N, directions, rtol, max_doublings, r, status, evals};
    err = launch(s, theta, S, N, op, point_scratch_scalars(s, true), 0, stream);
  });
  return err;
}

#define FS_POINT_INSTANTIATE(T)                                                                    \
  template std::string point_forward_launch<T>(const NetShape&, const T*, int, const T*, int64_t, int, \
                                               T*, void*);                                         \
  template std::string point_input_grads_launch<T>(const NetShape&, const T*, int, const T*, int64_t, \
                                                   int, T*, void*);                                \
  template std::string point_deepfool_launch<T>(const NetShape&, const T*, int, const T*, int64_t, int, \
                                                const DeepFoolOptions&, T*, int*, int*, void*);     \
  template std::string point_flipping_scale_launch<T>(const NetShape&, const T*, int, const T*, int64_t, \
                                                      int, const double*, double, int, T*, int*, int*, void*);
FS_POINT_INSTANTIATE(float)
FS_POINT_INSTANTIATE(double)
#undef FS_POINT_INSTANTIATE

}  // namespace cuda
}  // namespace fs
