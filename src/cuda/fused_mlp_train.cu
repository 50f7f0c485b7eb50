// The fused MLP training kernel (src/falsestruct/cuda/fused_mlp_train.h) on the GPU: the block
// program run by DeviceThreads, one instantiation per tile, and its launch.
#include <cuda_runtime.h>

#include "falsestruct/cuda/fused_mlp_train.h"

namespace fs {
namespace cuda {
namespace {

// Blocks of kFusedMaxThreads threads per SM that the register allocation must allow (ptxas
// otherwise takes more registers than the kernel needs). Experiment I's float32 tile in 64
// registers: 8 blocks of 128 threads per SM (1000 networks in one wave on an H200's 132 SMs;
// ptxas spills 44 bytes, presumably long-lived values read once per step such as the Adam
// moments: to be confirmed on a GPU against the 85-register build, which spills nothing but
// fits 6 blocks); float64 in 128 (126, no spill: 4 blocks); the larger tiles in 128
// (float32) and 255 (float64), without spilling.
template <class Tile, class T>
constexpr int fused_min_blocks() {
  return sizeof(T) == 4 ? (Tile::kParams <= 4 ? 4 : 2) : (Tile::kParams <= 4 ? 2 : 1);
}

template <class Tile, class T>
__global__ void __launch_bounds__(kFusedMaxThreads, (fused_min_blocks<Tile, T>()))
    fused_mlp_train_kernel(const __grid_constant__ FusedMlpRun<T> run) {
  extern __shared__ __align__(16) unsigned char fused_shared[];
  using Block = FusedMlpBlock<Tile, T>;
  typename Block::State state;
  DeviceThreads<typename Block::State> ex{state};
  Block(run, static_cast<int>(blockIdx.x), fused_shared)(ex);
}

}  // namespace

template <class T>
std::string fused_mlp_train_launch(const TrainArgs<T>& a, int S, void* stream) {
  const NetShape& s = a.shape;
  if (!fused_mlp_train_supported(a)) return "fused MLP training: network shape not supported";
  const FusedMlpConfig c = fused_mlp_config<T>(s, a.loss, a.shuffle, a.B, a.N, S);
  const FusedMlpRun<T> run(a, S, c);
  if (S <= 0 || run.epoch_end <= run.epoch_begin) return "";
  const int n_blocks = (S + c.nets_per_block - 1) / c.nets_per_block;
  const int threads = c.threads_per_net * c.nets_per_block;
  const int64_t bytes = run.layout.bytes * c.nets_per_block;
  cudaError_t err = cudaSuccess;
  with_fused_tile(s.width[0], s.n_logits(), s.width[1], [&](auto tile) {
    auto kernel = fused_mlp_train_kernel<decltype(tile), T>;
    if (bytes > kFusedDefaultSharedBytes)
      err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(bytes));
    if (err != cudaSuccess) return;
    kernel<<<n_blocks, threads, bytes, static_cast<cudaStream_t>(stream)>>>(run);
    err = cudaGetLastError();
  });
  return err == cudaSuccess ? "" : cudaGetErrorString(err);
}

template std::string fused_mlp_train_launch<float>(const TrainArgs<float>&, int, void*);
template std::string fused_mlp_train_launch<double>(const TrainArgs<double>&, int, void*);

}  // namespace cuda
}  // namespace fs
