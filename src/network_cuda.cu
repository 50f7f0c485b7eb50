// CUDA engine: the device-pointer entry points of falsestruct/network_cuda.h.
//
// The generic kernels below run the templates of falsestruct/network.h and deepfool.h with
// CudaBlock: one 128-thread block per work unit (a network, or a network's tile of rows).
// The same templates are the CPU engine (HostBlock) and are tested on the CPU with
// EmulatedBlock, which reproduces CudaBlock's index mapping.
//
// Kernel choice: every operation goes through one `choose_*` function below. A specialised
// kernel (src/cuda/*.cu, declared in src/falsestruct/cuda/*.h) is plugged in there, in front of
// the generic launch, as
//     if (fused_mlp_train_supported(args)) return fused_mlp_train_launch(args, S, stream);
// and must give the generic kernel's contract (same arguments, same outputs).
#include <cuda_runtime.h>

#include <algorithm>

#include "falsestruct/cuda/fused_mlp_train.h"
#include "falsestruct/cuda/layer_kernels.h"
#include "falsestruct/cuda/point_kernels.h"
#include "falsestruct/deepfool.h"
#include "falsestruct/executor.h"
#include "falsestruct/network.h"
#include "falsestruct/network_cuda.h"

namespace fs {
namespace cuda {
namespace {

constexpr int kThreadsPerBlock = 128;
constexpr int kAttackTileCuda = 64;  // points per DeepFool block
// Most scratch (bytes) one call allocates: units beyond it run in successive launches.
constexpr int64_t kMaxScratchBytes = int64_t(4) << 30;
constexpr int64_t kMaxGridBlocks = 0x7fffffff;

cudaStream_t as_stream(Stream s) { return reinterpret_cast<cudaStream_t>(s); }
std::string message(cudaError_t e) { return e == cudaSuccess ? "" : cudaGetErrorString(e); }

// ---- generic kernels: blockIdx.x + unit0 is the work unit --------------------------------

template <class T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    train_kernel(TrainArgs<T> args, int net0, T* scalars, int* ints, int64_t scalars_per_net,
                 int64_t ints_per_net) {
  const int net = net0 + blockIdx.x;
  const int n_batches = args.N / args.B;
  const int n_perm = args.N > n_batches ? args.N : n_batches;
  const auto ws = NetWorkspace<T>::carve(args.shape, args.B, n_perm,
                                         scalars + scalars_per_net * blockIdx.x,
                                         ints + ints_per_net * blockIdx.x);
  train_network(CudaBlock{}, args, net, ws, [](int) { return true; });
}

// Units are (network, tile of `tile` rows): unit u is network u / n_tiles, tile u % n_tiles.
struct RowTiles {
  int N, tile, n_tiles;
  FS_HD int net(int64_t u) const { return static_cast<int>(u / n_tiles); }
  FS_HD int row0(int64_t u) const { return static_cast<int>(u % n_tiles) * tile; }
  FS_HD int rows(int64_t u) const { return N - row0(u) < tile ? N - row0(u) : tile; }
};

template <class T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    forward_kernel(NetShape s, const T* theta, const T* X, int64_t x_net_stride, RowTiles g,
                   int64_t unit0, T* out, T* scalars, int* ints, int64_t scalars_per_unit,
                   int64_t ints_per_unit) {
  const int64_t u = unit0 + blockIdx.x;
  const int net = g.net(u), row0 = g.row0(u), B = g.rows(u);
  const auto ws = NetWorkspace<T>::carve(s, B, B, scalars + scalars_per_unit * blockIdx.x,
                                         ints + ints_per_unit * blockIdx.x);
  net_forward_rows(CudaBlock{}, s, theta + s.n_params * net, X + x_net_stride * net, row0, B,
                   out + ((int64_t)net * g.N + row0) * s.n_logits(), ws);
}

template <class T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    logit_input_grads_kernel(NetShape s, const T* theta, const T* X, int64_t x_net_stride,
                             RowTiles g, int64_t unit0, T* out, T* scalars, int* ints,
                             int64_t scalars_per_unit, int64_t ints_per_unit) {
  const int64_t u = unit0 + blockIdx.x;
  const int net = g.net(u), row0 = g.row0(u), B = g.rows(u);
  const auto ws = NetWorkspace<T>::carve(s, B, B, scalars + scalars_per_unit * blockIdx.x,
                                         ints + ints_per_unit * blockIdx.x);
  const int64_t row_size = (int64_t)s.n_logits() * s.width[0];
  logit_input_grads_rows(CudaBlock{}, s, theta + s.n_params * net, X + x_net_stride * net, row0, B,
                         out + ((int64_t)net * g.N + row0) * row_size, ws);
}

template <class T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    loss_and_grad_kernel(NetShape s, LossKind loss, const T* theta, const T* X,
                         int64_t x_net_stride, const T* Y, int64_t y_net_stride, int N, int net0,
                         T* loss_out, T* grad_out, T* input_grad_out, T* scalars, int* ints,
                         int64_t scalars_per_net, int64_t ints_per_net) {
  const int net = net0 + blockIdx.x;
  const auto ws = NetWorkspace<T>::carve(s, N, N, scalars + scalars_per_net * blockIdx.x,
                                         ints + ints_per_net * blockIdx.x);
  net_loss_and_grad(CudaBlock{}, s, loss, theta + s.n_params * net, X + x_net_stride * net,
                    Y + y_net_stride * net, N, ws, loss_out + net, grad_out + s.n_params * net,
                    input_grad_out ? input_grad_out + (int64_t)net * N * s.width[0] : nullptr);
}

template <class T>
__global__ void __launch_bounds__(kThreadsPerBlock)
    deepfool_kernel(NetShape s, const T* theta, const T* X, int64_t x_net_stride, RowTiles g,
                    int64_t unit0, DeepFoolOptions o, T* pert, int* iters, int* status,
                    T* scalars, int* ints, int64_t scalars_per_unit, int64_t ints_per_unit) {
  const int64_t u = unit0 + blockIdx.x;
  const int net = g.net(u), row0 = g.row0(u), B = g.rows(u);
  const int C = s.n_logits() == 1 ? 1 : o.candidates;
  const auto ws = DeepFoolWorkspace<T>::carve(s, B, C, scalars + scalars_per_unit * blockIdx.x,
                                              ints + ints_per_unit * blockIdx.x);
  const int64_t first = (int64_t)net * g.N + row0;
  deepfool_rows(CudaBlock{}, s, theta + s.n_params * net, X + x_net_stride * net, row0, B, o, ws,
                pert + first * s.width[0], iters + first, status + first);
}

template <class T>
__global__ void count_bad_labels_kernel(const T* y, int64_t count, int K, unsigned long long* bad) {
  unsigned long long mine = 0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count;
       i += (int64_t)gridDim.x * blockDim.x) {
    const T v = y[i];
    if (!(v >= T(0) && v < T(K)) || v != static_cast<T>(static_cast<int>(v))) ++mine;
  }
  if (mine) atomicAdd(bad, mine);
}

// ---- launching in groups of units -------------------------------------------------------

// Runs launch(unit0, units, scalars, ints) for consecutive groups of the n_units work units,
// each unit with its own scratch of scalars_per_unit T and ints_per_unit ints. The group is
// as large as kMaxScratchBytes (and half the free memory) allow; the scratch is allocated
// once, stream-ordered, and freed after the last launch. Every launch's error is checked.
template <class T, class Launch>
std::string for_unit_groups(int64_t n_units, int64_t scalars_per_unit, int64_t ints_per_unit,
                            cudaStream_t stream, Launch&& launch) {
  if (n_units <= 0) return "";
  const int64_t unit_bytes = scalars_per_unit * (int64_t)sizeof(T) + ints_per_unit * 4;
  size_t free_bytes = 0, total_bytes = 0;
  int64_t budget = kMaxScratchBytes;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
    budget = std::min<int64_t>(budget, static_cast<int64_t>(free_bytes / 2));
  const int64_t group = std::max<int64_t>(
      1, std::min<int64_t>({n_units, budget / std::max<int64_t>(unit_bytes, 1), kMaxGridBlocks}));
  void* scalars = nullptr;
  void* ints = nullptr;
  cudaError_t err = cudaMallocAsync(&scalars, std::max<int64_t>(1, group * scalars_per_unit * sizeof(T)), stream);
  if (err == cudaSuccess) err = cudaMallocAsync(&ints, std::max<int64_t>(1, group * ints_per_unit * 4), stream);
  for (int64_t u0 = 0; err == cudaSuccess && u0 < n_units; u0 += group) {
    launch(u0, static_cast<int>(std::min(group, n_units - u0)), static_cast<T*>(scalars),
           static_cast<int*>(ints));
    err = cudaGetLastError();
  }
  if (ints) cudaFreeAsync(ints, stream);
  if (scalars) cudaFreeAsync(scalars, stream);
  if (err == cudaSuccess) err = cudaGetLastError();
  return message(err);
}

RowTiles row_tiles(int N, int tile) { return RowTiles{N, tile, (N + tile - 1) / tile}; }

// ---- the generic launches ---------------------------------------------------------------

template <class T>
std::string generic_train(const TrainArgs<T>& a, int S, cudaStream_t stream) {
  const int n_batches = a.N / a.B;
  const int n_perm = std::max(a.N, n_batches);
  return for_unit_groups<T>(S, NetWorkspace<T>::scalars(a.shape, a.B), NetWorkspace<T>::ints(a.B, n_perm),
                            stream, [&](int64_t u0, int units, T* sc, int* in) {
                              train_kernel<T><<<units, kThreadsPerBlock, 0, stream>>>(
                                  a, static_cast<int>(u0), sc, in, NetWorkspace<T>::scalars(a.shape, a.B),
                                  NetWorkspace<T>::ints(a.B, n_perm));
                            });
}

template <class T>
std::string generic_forward(const NetShape& s, const T* theta, int S, const T* X, int64_t xs,
                            int N, T* out, cudaStream_t stream) {
  const RowTiles g = row_tiles(N, forward_tile(s, N));
  const int64_t per = NetWorkspace<T>::scalars(s, g.tile), ints = NetWorkspace<T>::ints(g.tile, g.tile);
  return for_unit_groups<T>((int64_t)S * g.n_tiles, per, ints, stream,
                            [&](int64_t u0, int units, T* sc, int* in) {
                              forward_kernel<T><<<units, kThreadsPerBlock, 0, stream>>>(
                                  s, theta, X, xs, g, u0, out, sc, in, per, ints);
                            });
}

template <class T>
std::string generic_logit_input_grads(const NetShape& s, const T* theta, int S, const T* X,
                                      int64_t xs, int N, T* out, cudaStream_t stream) {
  const RowTiles g = row_tiles(N, forward_tile(s, N));
  const int64_t per = NetWorkspace<T>::scalars(s, g.tile), ints = NetWorkspace<T>::ints(g.tile, g.tile);
  return for_unit_groups<T>((int64_t)S * g.n_tiles, per, ints, stream,
                            [&](int64_t u0, int units, T* sc, int* in) {
                              logit_input_grads_kernel<T><<<units, kThreadsPerBlock, 0, stream>>>(
                                  s, theta, X, xs, g, u0, out, sc, in, per, ints);
                            });
}

template <class T>
std::string generic_loss_and_grad(const NetShape& s, LossKind loss, const T* theta, int S,
                                  const T* X, int64_t xs, const T* Y, int64_t ys, int N,
                                  T* loss_out, T* grad_out, T* input_grad_out, cudaStream_t stream) {
  const int64_t per = NetWorkspace<T>::scalars(s, N), ints = NetWorkspace<T>::ints(N, N);
  return for_unit_groups<T>(S, per, ints, stream, [&](int64_t u0, int units, T* sc, int* in) {
    loss_and_grad_kernel<T><<<units, kThreadsPerBlock, 0, stream>>>(
        s, loss, theta, X, xs, Y, ys, N, static_cast<int>(u0), loss_out, grad_out, input_grad_out,
        sc, in, per, ints);
  });
}

template <class T>
std::string generic_deepfool(const NetShape& s, const T* theta, int S, const T* X, int64_t xs,
                             int N, const DeepFoolOptions& o, T* pert, int* iters, int* status,
                             cudaStream_t stream) {
  const RowTiles g = row_tiles(N, std::min(forward_tile(s, N), kAttackTileCuda));
  const int C = s.n_logits() == 1 ? 1 : o.candidates;
  const int64_t per = DeepFoolWorkspace<T>::scalars(s, g.tile), ints = DeepFoolWorkspace<T>::ints(g.tile, C);
  return for_unit_groups<T>((int64_t)S * g.n_tiles, per, ints, stream,
                            [&](int64_t u0, int units, T* sc, int* in) {
                              deepfool_kernel<T><<<units, kThreadsPerBlock, 0, stream>>>(
                                  s, theta, X, xs, g, u0, o, pert, iters, status, sc, in, per, ints);
                            });
}

// ---- kernel choice per operation (specialised kernels are added in front) ---------------

template <class T>
std::string choose_train(const TrainArgs<T>& a, int S, cudaStream_t stream) {
  if (layerwise::layerwise_supported(a.shape))  // CNNs: each network's step over many blocks
    return layerwise::layerwise_train_launch(a, S, a.epoch_begin, a.epoch_end < 0 ? a.epochs : a.epoch_end, stream);
  if (fused_mlp_train_supported(a))  // one-hidden-layer MLPs: the whole run on chip
    return fused_mlp_train_launch(a, S, stream);
  return generic_train(a, S, stream);
}

template <class T>
std::string choose_forward(const NetShape& s, const T* theta, int S, const T* X, int64_t xs, int N,
                           T* out, cudaStream_t stream) {
  if (layerwise::layerwise_supported(s))  // CNNs: each layer over many blocks
    return layerwise::layerwise_forward_launch(s, theta, S, X, xs, N, out, stream);
  if (point_kernels_supported<T>(s, point_shared_bytes_limit()))
    return point_forward_launch(s, theta, S, X, xs, N, out, stream);
  return generic_forward(s, theta, S, X, xs, N, out, stream);
}

template <class T>
std::string choose_logit_input_grads(const NetShape& s, const T* theta, int S, const T* X,
                                     int64_t xs, int N, T* out, cudaStream_t stream) {
  if (point_kernels_supported<T>(s, point_shared_bytes_limit()))
    return point_input_grads_launch(s, theta, S, X, xs, N, out, stream);
  return generic_logit_input_grads(s, theta, S, X, xs, N, out, stream);
}

template <class T>
std::string choose_loss_and_grad(const NetShape& s, LossKind loss, const T* theta, int S,
                                 const T* X, int64_t xs, const T* Y, int64_t ys, int N, T* loss_out,
                                 T* grad_out, T* input_grad_out, cudaStream_t stream) {
  return generic_loss_and_grad(s, loss, theta, S, X, xs, Y, ys, N, loss_out, grad_out,
                               input_grad_out, stream);
}

template <class T>
std::string choose_deepfool(const NetShape& s, const T* theta, int S, const T* X, int64_t xs, int N,
                            const DeepFoolOptions& o, T* pert, int* iters, int* status,
                            cudaStream_t stream) {
  if (point_kernels_supported<T>(s, point_shared_bytes_limit()))
    return point_deepfool_launch(s, theta, S, X, xs, N, o, pert, iters, status, stream);
  return generic_deepfool(s, theta, S, X, xs, N, o, pert, iters, status, stream);
}

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

int current_device() {
  int d = -1;
  return cudaGetDevice(&d) == cudaSuccess ? d : -1;
}

int multiprocessor_count(int device) {
  int n = 0;
  return cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) == cudaSuccess ? n : 0;
}

std::string synchronize(Stream stream) { return message(cudaStreamSynchronize(as_stream(stream))); }

template <class T>
std::string train_epochs(const TrainArgs<T>& a, int S, Stream stream) {
  const int end = a.epoch_end < 0 ? a.epochs : a.epoch_end;
  if (S == 0 || end <= a.epoch_begin) return "";
  return choose_train(a, S, as_stream(stream));
}

template <class T>
std::string forward(const NetShape& s, const T* theta, int S, const T* X, int64_t xs, int N, T* out,
                    Stream stream) {
  if (S == 0 || N == 0) return "";
  return choose_forward(s, theta, S, X, xs, N, out, as_stream(stream));
}

template <class T>
std::string loss_and_grad(const NetShape& s, LossKind loss, const T* theta, int S, const T* X,
                          int64_t xs, const T* Y, int64_t ys, int N, T* loss_out, T* grad_out,
                          T* input_grad_out, Stream stream) {
  if (S == 0 || N == 0) return "";
  return choose_loss_and_grad(s, loss, theta, S, X, xs, Y, ys, N, loss_out, grad_out,
                              input_grad_out, as_stream(stream));
}

template <class T>
std::string logit_input_grads(const NetShape& s, const T* theta, int S, const T* X, int64_t xs,
                              int N, T* out, Stream stream) {
  if (S == 0 || N == 0) return "";
  return choose_logit_input_grads(s, theta, S, X, xs, N, out, as_stream(stream));
}

template <class T>
std::string deepfool(const NetShape& s, const T* theta, int S, const T* X, int64_t xs, int N,
                     const DeepFoolOptions& o, T* pert, int* iters, int* status, Stream stream) {
  if (S == 0 || N == 0) return "";
  return choose_deepfool(s, theta, S, X, xs, N, o, pert, iters, status, as_stream(stream));
}

template <class T>
bool flipping_scale_supported(const NetShape& s) {
  return point_kernels_supported<T>(s, point_shared_bytes_limit());
}

template <class T>
std::string flipping_scale(const NetShape& s, const T* theta, int S, const T* X, int64_t xs, int N,
                           const double* directions, double rtol, int max_doublings, T* r, int* status,
                           int* evals, Stream stream) {
  if (S == 0 || N == 0) return "";
  return point_flipping_scale_launch(s, theta, S, X, xs, N, directions, rtol, max_doublings, r, status,
                                     evals, reinterpret_cast<void*>(stream));
}

template <class T>
std::string count_bad_labels(const T* y, int64_t count, int K, int64_t* bad, Stream stream) {
  *bad = 0;
  if (count == 0) return "";
  const cudaStream_t st = as_stream(stream);
  unsigned long long* d_bad = nullptr;
  unsigned long long h_bad = 0;
  cudaError_t err = cudaMallocAsync(&d_bad, sizeof(*d_bad), st);
  if (err == cudaSuccess) err = cudaMemsetAsync(d_bad, 0, sizeof(*d_bad), st);
  if (err == cudaSuccess) {
    const int64_t blocks = std::min<int64_t>((count + 255) / 256, 1024);
    count_bad_labels_kernel<T><<<static_cast<int>(blocks), 256, 0, st>>>(y, count, K, d_bad);
    err = cudaGetLastError();
  }
  if (err == cudaSuccess) err = cudaMemcpyAsync(&h_bad, d_bad, sizeof(h_bad), cudaMemcpyDeviceToHost, st);
  if (d_bad) cudaFreeAsync(d_bad, st);
  if (err == cudaSuccess) err = cudaStreamSynchronize(st);
  *bad = static_cast<int64_t>(h_bad);
  return message(err);
}

#define FS_INSTANTIATE(T)                                                                          \
  template std::string train_epochs<T>(const TrainArgs<T>&, int, Stream);                          \
  template std::string forward<T>(const NetShape&, const T*, int, const T*, int64_t, int, T*, Stream); \
  template std::string loss_and_grad<T>(const NetShape&, LossKind, const T*, int, const T*, int64_t,   \
                                        const T*, int64_t, int, T*, T*, T*, Stream);                 \
  template std::string logit_input_grads<T>(const NetShape&, const T*, int, const T*, int64_t, int,  \
                                            T*, Stream);                                             \
  template std::string deepfool<T>(const NetShape&, const T*, int, const T*, int64_t, int,           \
                                   const DeepFoolOptions&, T*, int*, int*, Stream);                  \
  template std::string count_bad_labels<T>(const T*, int64_t, int, int64_t*, Stream);               \
  template bool flipping_scale_supported<T>(const NetShape&);                                      \
  template std::string flipping_scale<T>(const NetShape&, const T*, int, const T*, int64_t, int,     \
                                         const double*, double, int, T*, int*, int*, Stream);
FS_INSTANTIATE(float)
FS_INSTANTIATE(double)
#undef FS_INSTANTIATE

}  // namespace cuda
}  // namespace fs
