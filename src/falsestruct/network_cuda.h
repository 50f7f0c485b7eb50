// CUDA engine entry points for the MLP (implemented in src/network_cuda.cu, compiled by nvcc).
// Host-pointer API: arrays are copied to the device, trained there, and copied back.
#pragma once
#include <string>
#include "deepfool.h"
#include "network.h"

namespace fs {
namespace cuda {

// Number of visible CUDA devices; 0 when there is no driver or no GPU.
int device_count();
std::string device_name(int device);

// Same contract as net_train_host, with host pointers in args. Returns "" on success or the
// CUDA error message.
template <class T>
std::string train(const TrainArgs<T>& args, int S, int S_x, int S_y);

template <class T>
std::string net_forward(const NetShape& s, const T* theta, int S, const T* X, int64_t x_net_stride,
                        int N, T* out);

// DeepFool with the same contract as deepfool_host (one CUDA block per network and tile of
// points). Returns "" on success or the CUDA error message.
template <class T>
std::string deepfool(const NetShape& s, const T* theta, int S, const T* X, int64_t x_net_stride,
                     int N, const DeepFoolOptions& o, T* pert, int* iters, int* status);

}  // namespace cuda
}  // namespace fs
