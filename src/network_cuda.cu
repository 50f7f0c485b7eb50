// CUDA engine for the networks: the kernels of falsestruct/network.h run with CudaBlock, one block per
// network. The same templates are the CPU engine (HostBlock) and are tested on the CPU with
// EmulatedBlock, which reproduces this file's index mapping.
#include <cuda_runtime.h>

#include <vector>

#include "falsestruct/deepfool.h"
#include "falsestruct/executor.h"
#include "falsestruct/network.h"
#include "falsestruct/network_cuda.h"

namespace fs {
namespace cuda {
namespace {

constexpr int kThreadsPerBlock = 128;
constexpr int kAttackTileCuda = 64;  // points per DeepFool block

struct AlwaysContinue {
  FS_HD bool operator()(int) const { return true; }
};

template <class T>
__global__ void train_kernel(TrainArgs<T> args, T* scalars, int* ints,
                                 int64_t scalars_per_net, int64_t ints_per_net) {
  const int net = blockIdx.x;
  const int n_perm = args.N > args.N / args.B ? args.N : args.N / args.B;
  const auto ws = NetWorkspace<T>::carve(args.shape, args.B, n_perm, scalars + scalars_per_net * net,
                                         ints + ints_per_net * net);
  train_network(CudaBlock{}, args, net, ws, AlwaysContinue{});
}

template <class T>
__global__ void forward_kernel(NetShape s, const T* theta, const T* X, int64_t x_net_stride,
                                   int N, int tile, T* out, T* scalars, int* ints,
                                   int64_t scalars_per_net, int64_t ints_per_net) {
  const int net = blockIdx.x;
  const int K = s.n_logits();
  for (int row0 = 0; row0 < N; row0 += tile) {
    const int B = N - row0 < tile ? N - row0 : tile;
    const auto ws = NetWorkspace<T>::carve(s, B, B, scalars + scalars_per_net * net,
                                           ints + ints_per_net * net);
    net_forward_rows(CudaBlock{}, s, theta + s.n_params * net, X + x_net_stride * net, row0, B,
                     out + ((int64_t)net * N + row0) * K, ws);
  }
}

// One block per (network, tile of points); each block has its own DeepFool workspace.
template <class T>
__global__ void deepfool_kernel(NetShape s, const T* theta, const T* X, int64_t x_net_stride, int N,
                                int tile, DeepFoolOptions o, T* pert, int* iters, int* status,
                                T* scalars, int* ints, int64_t scalars_per_block,
                                int64_t ints_per_block) {
  const int n_tiles = (N + tile - 1) / tile;
  const int net = blockIdx.x / n_tiles, row0 = (blockIdx.x % n_tiles) * tile;
  const int B = N - row0 < tile ? N - row0 : tile;
  const int C = s.n_logits() == 1 ? 1 : o.candidates;
  const auto ws = DeepFoolWorkspace<T>::carve(s, B, C, scalars + scalars_per_block * blockIdx.x,
                                              ints + ints_per_block * blockIdx.x);
  const int64_t first = (int64_t)net * N + row0;
  deepfool_rows(CudaBlock{}, s, theta + s.n_params * net, X + x_net_stride * net, row0, B, o, ws,
                pert + first * s.width[0], iters + first, status + first);
}

// Device buffers freed on scope exit; the first CUDA error is kept.
struct DeviceArena {
  std::vector<void*> ptrs;
  cudaError_t err = cudaSuccess;
  template <class T>
  T* alloc(int64_t count) {
    void* p = nullptr;
    if (err == cudaSuccess) err = cudaMalloc(&p, count > 0 ? count * sizeof(T) : 1);
    if (p) ptrs.push_back(p);
    return static_cast<T*>(p);
  }
  template <class T>
  T* upload(const T* host, int64_t count) {
    T* d = alloc<T>(count);
    if (err == cudaSuccess && count > 0) err = cudaMemcpy(d, host, count * sizeof(T), cudaMemcpyHostToDevice);
    return d;
  }
  template <class T>
  void download(T* host, const T* dev, int64_t count) {
    if (err == cudaSuccess && count > 0) err = cudaMemcpy(host, dev, count * sizeof(T), cudaMemcpyDeviceToHost);
  }
  ~DeviceArena() {
    for (void* p : ptrs) cudaFree(p);
  }
};

std::string message(cudaError_t e) { return e == cudaSuccess ? "" : cudaGetErrorString(e); }

}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

std::string device_name(int device) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) return "";
  return prop.name;
}

template <class T>
std::string train(const TrainArgs<T>& host, int S, int S_x, int S_y) {
  const NetShape& s = host.shape;
  const int n_batches = host.N / host.B;
  const int64_t P = s.n_params;
  const int t_per = targets_per_sample(host.loss, s.n_logits());
  DeviceArena arena;
  TrainArgs<T> dev = host;
  dev.X = arena.upload(host.X, (int64_t)S_x * host.N * s.width[0]);
  dev.Y = arena.upload(host.Y, (int64_t)S_y * host.N * t_per);
  dev.theta = arena.upload(host.theta, S * P);
  dev.adam_m = arena.upload(host.adam_m, S * P);
  dev.adam_v = arena.upload(host.adam_v, S * P);
  dev.seeds = arena.upload(host.seeds, S);
  dev.loss_history = arena.alloc<double>((int64_t)S * host.n_records);
  dev.acc_history = arena.alloc<double>((int64_t)S * host.n_records);
  const int64_t per_net = NetWorkspace<T>::scalars(s, host.B);
  const int64_t ints_per_net = NetWorkspace<T>::ints(host.B, host.N > n_batches ? host.N : n_batches);
  T* scalars = arena.alloc<T>(per_net * S);
  int* ints = arena.alloc<int>(ints_per_net * S);
  if (arena.err != cudaSuccess) return message(arena.err);
  train_kernel<T><<<S, kThreadsPerBlock>>>(dev, scalars, ints, per_net, ints_per_net);
  arena.err = cudaGetLastError();
  if (arena.err == cudaSuccess) arena.err = cudaDeviceSynchronize();
  arena.download(host.theta, dev.theta, S * P);
  arena.download(host.adam_m, dev.adam_m, S * P);
  arena.download(host.adam_v, dev.adam_v, S * P);
  arena.download(host.loss_history, dev.loss_history, (int64_t)S * host.n_records);
  arena.download(host.acc_history, dev.acc_history, (int64_t)S * host.n_records);
  return message(arena.err);
}

template <class T>
std::string net_forward(const NetShape& s, const T* theta, int S, const T* X, int64_t x_net_stride,
                        int N, T* out) {
  const int tile = forward_tile(s, N);
  const int S_x = x_net_stride ? S : 1;
  DeviceArena arena;
  const T* d_theta = arena.upload(theta, S * s.n_params);
  const T* d_X = arena.upload(X, (int64_t)S_x * N * s.width[0]);
  T* d_out = arena.alloc<T>((int64_t)S * N * s.n_logits());
  const int64_t per_net = NetWorkspace<T>::scalars(s, tile);
  const int64_t ints_per_net = NetWorkspace<T>::ints(tile, tile);
  T* scalars = arena.alloc<T>(per_net * S);
  int* ints = arena.alloc<int>(ints_per_net * S);
  if (arena.err != cudaSuccess) return message(arena.err);
  forward_kernel<T><<<S, kThreadsPerBlock>>>(s, d_theta, d_X, x_net_stride, N, tile, d_out,
                                                 scalars, ints, per_net, ints_per_net);
  arena.err = cudaGetLastError();
  if (arena.err == cudaSuccess) arena.err = cudaDeviceSynchronize();
  arena.download(out, d_out, (int64_t)S * N * s.n_logits());
  return message(arena.err);
}

template <class T>
std::string deepfool(const NetShape& s, const T* theta, int S, const T* X, int64_t x_net_stride,
                     int N, const DeepFoolOptions& o, T* pert, int* iters, int* status) {
  const int tile = forward_tile(s, N) < kAttackTileCuda ? forward_tile(s, N) : kAttackTileCuda;
  const int n_blocks = S * ((N + tile - 1) / tile);
  const int C = s.n_logits() == 1 ? 1 : o.candidates;
  const int S_x = x_net_stride ? S : 1;
  const int d = s.width[0];
  DeviceArena arena;
  const T* d_theta = arena.upload(theta, S * s.n_params);
  const T* d_X = arena.upload(X, (int64_t)S_x * N * d);
  T* d_pert = arena.alloc<T>((int64_t)S * N * d);
  int* d_iters = arena.alloc<int>((int64_t)S * N);
  int* d_status = arena.alloc<int>((int64_t)S * N);
  const int64_t per_block = DeepFoolWorkspace<T>::scalars(s, tile);
  const int64_t ints_per_block = DeepFoolWorkspace<T>::ints(tile, C);
  T* scalars = arena.alloc<T>(per_block * n_blocks);
  int* ints = arena.alloc<int>(ints_per_block * n_blocks);
  if (arena.err != cudaSuccess) return message(arena.err);
  deepfool_kernel<T><<<n_blocks, kThreadsPerBlock>>>(s, d_theta, d_X, x_net_stride, N, tile, o, d_pert,
                                                     d_iters, d_status, scalars, ints, per_block,
                                                     ints_per_block);
  arena.err = cudaGetLastError();
  if (arena.err == cudaSuccess) arena.err = cudaDeviceSynchronize();
  arena.download(pert, d_pert, (int64_t)S * N * d);
  arena.download(iters, d_iters, (int64_t)S * N);
  arena.download(status, d_status, (int64_t)S * N);
  return message(arena.err);
}

template std::string train<float>(const TrainArgs<float>&, int, int, int);
template std::string train<double>(const TrainArgs<double>&, int, int, int);
template std::string net_forward<float>(const NetShape&, const float*, int, const float*, int64_t, int, float*);
template std::string net_forward<double>(const NetShape&, const double*, int, const double*, int64_t, int, double*);
template std::string deepfool<float>(const NetShape&, const float*, int, const float*, int64_t, int,
                                     const DeepFoolOptions&, float*, int*, int*);
template std::string deepfool<double>(const NetShape&, const double*, int, const double*, int64_t, int,
                                      const DeepFoolOptions&, double*, int*, int*);

}  // namespace cuda
}  // namespace fs
