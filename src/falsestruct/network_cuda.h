// CUDA engine entry points (implemented in src/network_cuda.cu, compiled by nvcc).
//
// Device-pointer API: every array argument is a DEVICE pointer (C-contiguous, network axis
// first, the same shapes as the CPU engine's network_host.h), and `stream` is a cudaStream_t
// passed as an integer (0: the legacy default stream; CuPy's current stream otherwise).
// Work is queued on `stream`; each call checks the error of every launch and returns "" or
// the CUDA error text. Scratch memory is allocated stream-ordered (cudaMallocAsync) and freed
// before the call returns to the stream; callers synchronize(stream) to see execution errors.
// Nothing is validated here: cpp/cuda_module.cpp checks every argument first.
#pragma once
#include <stdint.h>

#include <string>

#include "deepfool.h"
#include "network.h"

namespace fs {
namespace cuda {

using Stream = uintptr_t;

// Number of visible CUDA devices; 0 when there is no driver or no GPU.
int device_count();
std::string device_name(int device);
// Device of the calling thread (cudaGetDevice), -1 on error.
int current_device();
// Streaming multiprocessors of `device` (0 on error): sizes the training chunks.
int multiprocessor_count(int device);
// Waits for `stream`; returns "" or the first error of the work queued on it.
std::string synchronize(Stream stream);

// Epochs [args.epoch_begin, args.epoch_end) of the training run described by `args` (device
// pointers; TrainArgs as for net_train_host). Chunks of epochs in successive calls give
// bitwise the result of one call.
template <class T>
std::string train_epochs(const TrainArgs<T>& args, int S, Stream stream);

// out (S, N, K): logits of X (N, d) or (S, N, d) (x_net_stride 0 or N * d).
template <class T>
std::string forward(const NetShape& s, const T* theta, int S, const T* X, int64_t x_net_stride,
                    int N, T* out, Stream stream);

// loss (S,), grad (S, P) and, when input_grad is not null, input_grad (S, N, d): the mean loss
// over the N rows (one batch) and its gradients, as net_loss_and_grad_host.
template <class T>
std::string loss_and_grad(const NetShape& s, LossKind loss, const T* theta, int S, const T* X,
                          int64_t x_net_stride, const T* Y, int64_t y_net_stride, int N,
                          T* loss_out, T* grad_out, T* input_grad_out, Stream stream);

// out (S, N, K, d): the gradient of every logit w.r.t. each input row.
template <class T>
std::string logit_input_grads(const NetShape& s, const T* theta, int S, const T* X,
                              int64_t x_net_stride, int N, T* out, Stream stream);

// DeepFool with the contract of deepfool_host: pert (S, N, d), iters and status (S, N) int32.
template <class T>
std::string deepfool(const NetShape& s, const T* theta, int S, const T* X, int64_t x_net_stride,
                     int N, const DeepFoolOptions& o, T* pert, int* iters, int* status,
                     Stream stream);

// The baselines' search (attacks/baselines.py smallest_flipping_scale) of every point of X along
// directions (S, N, d) float64, one GPU thread per point: r (S, N, d), status and evals
// (S, N) int32. Only for networks with flipping_scale_supported<T>(s) (the per-point
// kernels hold them); others run the search on the host over forward.
template <class T>
bool flipping_scale_supported(const NetShape& s);
template <class T>
std::string flipping_scale(const NetShape& s, const T* theta, int S, const T* X, int64_t x_net_stride,
                           int N, const double* directions, double rtol, int max_doublings, T* r,
                           int* status, int* evals, Stream stream);

// Softmax labels are array indices in the kernels: counts the entries of y (count values)
// that are not integers in [0, K), into *bad (host), so that a bad label is refused before
// any kernel reads with it. Synchronizes `stream`.
template <class T>
std::string count_bad_labels(const T* y, int64_t count, int K, int64_t* bad, Stream stream);

}  // namespace cuda
}  // namespace fs
