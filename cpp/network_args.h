// Conversion of Python arguments into kernel argument structs, shared by the CPU (_native)
// and CUDA (_cuda) binding modules.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "array_checks.h"
#include "falsestruct/network.h"

namespace fs_py {
namespace py = pybind11;

// Network spec from Python: {in_h, in_w, in_c} then fs::kSpecInts ints per layer
// {kind, units or filters, k, relu} (see fs::make_net_shape).
inline fs::NetShape shape_from(const std::vector<int>& spec) {
  const int n = static_cast<int>(spec.size());
  if (n < 3 + fs::kSpecInts || (n - 3) % fs::kSpecInts != 0)
    throw py::value_error("spec: expected [in_h, in_w, in_c] and 4 ints per layer");
  fs::NetShape s;
  if (const char* err = fs::make_net_shape(spec[0], spec[1], spec[2], spec.data() + 3,
                                           (n - 3) / fs::kSpecInts, &s))
    throw py::value_error(std::string("spec: ") + err);
  return s;
}

inline bool is_float64(const py::array& a) { return a.dtype().is(py::dtype::of<double>()); }

// Number of networks from the leading axis of a (S, ...) array, checked before use.
inline int leading_dim(const py::array& a, const char* name) {
  if (a.ndim() < 1)
    throw py::value_error(std::string(name) + ": expected an array with a leading network axis, got a scalar");
  return static_cast<int>(a.shape(0));
}

inline void check_loss_kind(int loss_kind) {
  if (loss_kind < 0 || loss_kind > 1) throw py::value_error("loss_kind: unknown kind (0 sigmoid, 1 softmax)");
}

// Softmax targets are class indices that the kernels use as array indices: refuse anything
// outside [0, K) here so that no kernel can read out of bounds.
template <class T>
void check_class_labels(const T* y, int64_t count, int K, const char* name) {
  for (int64_t i = 0; i < count; ++i)
    if (!(y[i] >= T(0) && y[i] < T(K)) || y[i] != static_cast<T>(static_cast<int>(y[i])))
      throw py::value_error(std::string(name) + ": softmax labels must be integer class indices in [0, " +
                            std::to_string(K) + ")");
}

// Data X is (N, cols) shared by all networks or (S, N, cols); returns the per-network stride.
template <class T>
const T* data_array(const py::array& a, const char* name, int S, int cols, int64_t* net_stride,
                    int* N) {
  if (a.ndim() == 2) {
    *N = static_cast<int>(a.shape(0));
    *net_stride = 0;
    return checked_data<T>(a, name, {-1, cols}, false);
  }
  *N = a.ndim() == 3 ? static_cast<int>(a.shape(1)) : 0;
  *net_stride = static_cast<int64_t>(*N) * cols;
  return checked_data<T>(a, name, {S, -1, cols}, false);
}

template <class T>
struct ForwardArgs {
  int S, N;
  const T* theta;
  const T* X;
  int64_t x_net_stride;
  T* out;
};

// theta (S, P), X (N, d) or (S, N, d), out (S, N, K) writeable.
template <class T>
ForwardArgs<T> forward_args_from_python(const fs::NetShape& s, py::array theta, py::array X,
                                        py::array out) {
  ForwardArgs<T> a;
  a.S = leading_dim(theta, "theta");
  a.theta = checked_data<T>(theta, "theta", {-1, s.n_params}, false);
  a.X = data_array<T>(X, "X", a.S, s.width[0], &a.x_net_stride, &a.N);
  a.out = checked_data<T>(out, "out", {a.S, a.N, s.n_logits()}, true);
  return a;
}

template <class T>
fs::TrainArgs<T> train_args_from_python(const fs::NetShape& s, int loss_kind, int shuffle,
                                           py::tuple adam, py::array X, py::array Y,
                                           py::array theta, py::array m, py::array v,
                                           py::array seeds, int epochs, int batch_size,
                                           int64_t step0, int record_every, py::array loss_hist,
                                           py::array acc_hist) {
  if (shuffle < 0 || shuffle > 2) throw py::value_error("shuffle: unknown mode");
  check_loss_kind(loss_kind);
  if (py::len(adam) != 4) throw py::value_error("adam: expected (lr, beta1, beta2, eps)");
  fs::TrainArgs<T> a;
  a.shape = s;
  a.loss = static_cast<fs::LossKind>(loss_kind);
  a.shuffle = static_cast<fs::ShuffleMode>(shuffle);
  try {
    a.adam.lr = adam[0].cast<double>();
    a.adam.beta1 = adam[1].cast<double>();
    a.adam.beta2 = adam[2].cast<double>();
    a.adam.eps = adam[3].cast<double>();
  } catch (const py::cast_error&) {
    throw py::type_error("adam: expected four floats (lr, beta1, beta2, eps)");
  }
  const int S = leading_dim(theta, "theta");
  a.theta = checked_data<T>(theta, "theta", {-1, s.n_params}, true);
  a.adam_m = checked_data<T>(m, "adam_m", {S, s.n_params}, true);
  a.adam_v = checked_data<T>(v, "adam_v", {S, s.n_params}, true);
  a.seeds = checked_data<uint64_t>(seeds, "seeds", {S}, false);
  int NY;
  a.X = data_array<T>(X, "X", S, s.width[0], &a.x_net_stride, &a.N);
  a.Y = data_array<T>(Y, "Y", S, fs::targets_per_sample(a.loss, s.n_logits()), &a.y_net_stride, &NY);
  if (NY != a.N) throw py::value_error("Y: number of rows differs from X");
  if (a.loss == fs::LossKind::SoftmaxCE)
    check_class_labels(a.Y, (a.y_net_stride ? S : 1) * static_cast<int64_t>(a.N), s.n_logits(), "Y");
  if (batch_size < 1 || batch_size > a.N)
    throw py::value_error("batch_size: must be in [1, N=" + std::to_string(a.N) + "]");
  if (epochs < 0) throw py::value_error("epochs: must be >= 0");
  if (record_every < 1) throw py::value_error("record_every: must be >= 1");
  if (step0 < 0) throw py::value_error("step0: must be >= 0");
  a.B = batch_size;
  a.epochs = epochs;
  a.step0 = step0;
  a.record_every = record_every;
  a.n_records = epochs > 0 ? fs::n_records_for(epochs, record_every) : 0;
  a.loss_history = checked_data<double>(loss_hist, "loss_history", {S, a.n_records}, true);
  a.acc_history = checked_data<double>(acc_hist, "acc_history", {S, a.n_records}, true);
  return a;
}

}  // namespace fs_py
