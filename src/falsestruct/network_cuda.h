// CUDA engine entry points for the MLP (implemented in src/network_cuda.cu, compiled by nvcc).
// Host-pointer API: arrays are copied to the device, trained there, and copied back.
#pragma once
#include <string>
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

}  // namespace cuda
}  // namespace fs
