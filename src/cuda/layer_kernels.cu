// The layer-wise CNN path on the GPU (falsestruct/cuda/layer_kernels.h): the step driver of that
// header run with an executor that launches one kernel per elementwise phase and one tiled
// product kernel per GEMM, on one stream, checking every launch.
#include <cuda_runtime.h>

#include <algorithm>

#include "falsestruct/cuda/layer_kernels.h"

namespace fs {
namespace layerwise {
namespace {

constexpr int kEachThreads = 256;
constexpr int64_t kMaxEachBlocks = int64_t(1) << 20;  // grid-stride beyond this
constexpr int kMaxGridY = 65535;                      // networks per launch (grid.y)
// Most scratch (bytes) one call allocates: networks beyond it are trained in successive groups.
constexpr int64_t kMaxScratchBytes = int64_t(8) << 30;

template <class F>
__global__ void __launch_bounds__(kEachThreads) each_kernel(F f, int64_t n, int net0) {
  const int net = net0 + static_cast<int>(blockIdx.y);
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += stride) f(net, e);
}

// At least kGemmBlocksPerSM blocks per SM: at most 128 registers per thread.
constexpr int kGemmBlocksPerSM = 4;

template <class P, class T>
__global__ void __launch_bounds__(kGemmThreads, kGemmBlocksPerSM) gemm_kernel(P p, GemmGrid g, int net0, T* partial,
                                                            int64_t net_stride) {
  __shared__ GemmShared<T> shared;
  const int net = net0 + static_cast<int>(blockIdx.y);
  const int tid = static_cast<int>(threadIdx.x);
  const GemmBlockPos pos = gemm_block_pos(g, static_cast<int>(blockIdx.x));
  GemmAcc<T> acc;
#pragma unroll
  for (int i = 0; i < kThreadM; ++i)
#pragma unroll
    for (int j = 0; j < kThreadN; ++j) acc.v[i][j] = T(0);
  for (int64_t k0 = pos.k_begin; k0 < pos.k_end; k0 += kTileK) {
    gemm_load_slice(p, net, g, pos, k0, tid, shared);
    __syncthreads();
    gemm_accumulate_slice(shared, tid, acc);
    __syncthreads();
  }
  gemm_store(p, net, g, pos, tid, acc, partial + net_stride * net);
}

struct CudaExec {
  cudaStream_t stream;
  int64_t target_blocks;
  cudaError_t err = cudaSuccess;
  bool ok() const { return err == cudaSuccess; }
  template <class F>
  void each(int S, int64_t n, const F& f) {
    if (err != cudaSuccess || n <= 0) return;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n + kEachThreads - 1) / kEachThreads, kMaxEachBlocks));
    for (int net0 = 0; net0 < S && err == cudaSuccess; net0 += kMaxGridY) {
      const dim3 grid(blocks, static_cast<unsigned>(std::min(kMaxGridY, S - net0)));
      each_kernel<<<grid, kEachThreads, 0, stream>>>(f, n, net0);
      err = cudaGetLastError();
    }
  }
  template <class P, class T>
  void gemm(int S, const P& p, const GemmGrid& g, T* partial, int64_t net_stride) {
    if (err != cudaSuccess) return;
    for (int net0 = 0; net0 < S && err == cudaSuccess; net0 += kMaxGridY) {
      const dim3 grid(static_cast<unsigned>(g.blocks()), static_cast<unsigned>(std::min(kMaxGridY, S - net0)));
      gemm_kernel<P, T><<<grid, kGemmThreads, 0, stream>>>(p, g, net0, partial, net_stride);
      err = cudaGetLastError();
    }
  }
};

// Networks per group: as many as kMaxScratchBytes and half the free memory allow, at least 1.
int64_t networks_per_group(int S, int64_t bytes_per_net) {
  size_t free_bytes = 0, total_bytes = 0;
  int64_t budget = kMaxScratchBytes;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
    budget = std::min<int64_t>(budget, static_cast<int64_t>(free_bytes / 2));
  return std::max<int64_t>(1, std::min<int64_t>(S, budget / std::max<int64_t>(bytes_per_net, 1)));
}

// Scratch of `group` networks, allocated on `stream` and freed there when the call ends.
template <class T>
struct GroupScratch {
  cudaStream_t stream;
  T* scalars = nullptr;
  int* ints = nullptr;
  double* sums = nullptr;
  cudaError_t err = cudaSuccess;
  GroupScratch(const LayerwiseSizes& z, int64_t group, cudaStream_t s) : stream(s) {
    err = cudaMallocAsync(reinterpret_cast<void**>(&scalars), z.scalars_per_net * group * sizeof(T), stream);
    if (err == cudaSuccess) err = cudaMallocAsync(reinterpret_cast<void**>(&ints), z.ints_per_net * group * sizeof(int), stream);
    if (err == cudaSuccess) err = cudaMallocAsync(reinterpret_cast<void**>(&sums), 2 * group * sizeof(double), stream);
  }
  ~GroupScratch() {
    if (sums) cudaFreeAsync(sums, stream);
    if (ints) cudaFreeAsync(ints, stream);
    if (scalars) cudaFreeAsync(scalars, stream);
  }
};

std::string message(cudaError_t e) { return e == cudaSuccess ? "" : cudaGetErrorString(e); }

}  // namespace

template <class T>
std::string layerwise_train_launch(const TrainArgs<T>& a, int S, int epoch_begin, int epoch_end, void* stream) {
  if (S <= 0 || epoch_end <= epoch_begin) return "";
  CudaExec ex{static_cast<cudaStream_t>(stream), kSplitTargetBlocks};
  const NetShape& s = a.shape;
  const LayerwiseSizes sizes = layerwise_sizes(s, a.B, a.N, partial_scalars<T>(s, a.B, true, ex.target_blocks));
  const int group = static_cast<int>(
      networks_per_group(S, sizes.scalars_per_net * (int64_t)sizeof(T) + sizes.ints_per_net * 4 + 16));
  GroupScratch<T> scratch(sizes, group, ex.stream);
  ex.err = scratch.err;
  for (int net0 = 0; net0 < S && ex.ok(); net0 += group) {
    const int n = std::min(group, S - net0);
    TrainArgs<T> g = a;
    g.X = a.X + a.x_net_stride * net0;
    g.Y = a.Y + a.y_net_stride * net0;
    g.theta = a.theta + s.n_params * net0;
    g.adam_m = a.adam_m + s.n_params * net0;
    g.adam_v = a.adam_v + s.n_params * net0;
    g.seeds = a.seeds + net0;
    g.loss_history = a.loss_history + (int64_t)a.n_records * net0;
    g.acc_history = a.acc_history + (int64_t)a.n_records * net0;
    layerwise_train_epochs(ex, g, n, epoch_begin, epoch_end,
                           carve_buffers(sizes, scratch.scalars, scratch.ints, scratch.sums));
  }
  return message(ex.err);
}

template <class T>
std::string layerwise_forward_launch(const NetShape& s, const T* theta, int S, const T* X, int64_t x_net_stride,
                                     int N, T* out, void* stream) {
  if (S <= 0 || N <= 0) return "";
  CudaExec ex{static_cast<cudaStream_t>(stream), kSplitTargetBlocks};
  const int rows = forward_chunk_rows(s, S, N);
  const LayerwiseSizes sizes = layerwise_sizes(s, rows, 0, partial_scalars<T>(s, rows, false, ex.target_blocks));
  const int group = static_cast<int>(networks_per_group(S, sizes.scalars_per_net * (int64_t)sizeof(T) + 16));
  GroupScratch<T> scratch(sizes, group, ex.stream);
  ex.err = scratch.err;
  const int K = s.n_logits();
  for (int net0 = 0; net0 < S && ex.ok(); net0 += group) {
    const int n = std::min(group, S - net0);
    layerwise_forward_rows(ex, s, theta + s.n_params * net0, n, X + x_net_stride * net0, x_net_stride, N, rows,
                           out + (int64_t)N * K * net0, carve_buffers(sizes, scratch.scalars, scratch.ints, scratch.sums));
  }
  return message(ex.err);
}

template std::string layerwise_train_launch<float>(const TrainArgs<float>&, int, int, int, void*);
template std::string layerwise_train_launch<double>(const TrainArgs<double>&, int, int, int, void*);
template std::string layerwise_forward_launch<float>(const NetShape&, const float*, int, const float*, int64_t, int,
                                                     float*, void*);
template std::string layerwise_forward_launch<double>(const NetShape&, const double*, int, const double*, int64_t,
                                                      int, double*, void*);

}  // namespace layerwise
}  // namespace fs
