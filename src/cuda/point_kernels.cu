// CUDA kernels of the per-point path (falsestruct/cuda/point_kernels.h): forward, logit input
// gradients and DeepFool for MLPs whose weights fit in shared memory, one thread per point.
#include <cuda_runtime.h>

#include "falsestruct/cuda/point_kernels.h"

namespace fs {
namespace cuda {
namespace {

std::string message(cudaError_t e) { return e == cudaSuccess ? "" : cudaGetErrorString(e); }

// Blocks loop over units (network, chunk of points): stage the network's weights, then every
// thread runs `op` on its points with no further barrier. kScratch > 0 (scratch path): each
// thread's scratch is a local array of kScratch scalars and kScratch / 2 ints, reused for all
// its points.
template <class T, class Op, int kScratch>
__global__ void __launch_bounds__(kPointThreads) point_kernel(PointGrid g, const T* theta, int64_t P, Op op) {
  extern __shared__ __align__(16) unsigned char shared_raw[];
  T* w = reinterpret_cast<T*>(shared_raw);
  T scratch[kScratch > 0 ? kScratch : 1];
  int ints[kScratch > 0 ? kScratch / 2 : 1];
  for (int64_t u = blockIdx.x; u < g.units(); u += gridDim.x) {
    const int net = static_cast<int>(u / g.blocks_per_net);
    __syncthreads();  // the previous unit's weights are no longer read
    stage_weights(threadIdx.x, blockDim.x, theta + P * net, P, w);
    __syncthreads();
    for_each_point_of_thread(g, u, threadIdx.x, [&](int n_net, int n) { op(w, n_net, n, scratch, ints); });
  }
}

template <class T, class Op, int kScratch>
cudaError_t launch_tier(const PointGrid& g, int64_t blocks, const T* theta, int64_t P, const Op& op,
                        int64_t shared, cudaStream_t stream) {
  cudaError_t err = cudaSuccess;
  if (shared > 48 * 1024)  // above the default limit of dynamic shared memory
    err = cudaFuncSetAttribute(point_kernel<T, Op, kScratch>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(shared));
  if (err != cudaSuccess) return err;
  point_kernel<T, Op, kScratch><<<static_cast<unsigned>(blocks), kPointThreads, shared, stream>>>(g, theta, P, op);
  return cudaGetLastError();
}

template <class T, class Op>
std::string launch(const NetShape& s, const T* theta, int S, int N, const Op& op,
                   int64_t scalars_per_thread, void* stream_ptr) {
  if (S == 0 || N == 0) return "";
  const cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  int device = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return message(err);
  if (!point_kernels_supported<T>(s, point_shared_bytes_limit()))
    return "the per-point kernels do not take this network (point_kernels_supported)";
  const int64_t max_blocks = (int64_t)sms * kPointBlocksPerSm;
  const PointGrid g = make_point_grid(S, N, kPointThreads, max_blocks);
  const int64_t blocks = point_grid_blocks(g, max_blocks);
  const int64_t shared = point_shared_bytes<T>(s);
  if constexpr (Op::kRegisterInputs > 0)
    err = launch_tier<T, Op, 0>(g, blocks, theta, s.n_params, op, shared, stream);
  else if (point_scratch_tier(scalars_per_thread) == kPointSmallScratch)
    err = launch_tier<T, Op, kPointSmallScratch>(g, blocks, theta, s.n_params, op, shared, stream);
  else
    err = launch_tier<T, Op, kPointMaxScratch>(g, blocks, theta, s.n_params, op, shared, stream);
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
    err = launch(s, theta, S, N, op, point_scratch_scalars(s, false), stream);
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
    err = launch(s, theta, S, N, op, point_scratch_scalars(s, false), stream);
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
    err = launch(s, theta, S, N, op, point_scratch_scalars(s, true), stream);
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
    err = launch(s, theta, S, N, op, point_scratch_scalars(s, true), stream);
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
