// Conversion of Python arguments into kernel argument structs, shared by the CPU (_native)
// and CUDA (_cuda) binding modules.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "array_checks.h"
#include "falsestruct/deepfool.h"
#include "falsestruct/network.h"

namespace fs_py {
namespace py = pybind11;

// Network spec from Python: a sequence of ints {in_h, in_w, in_c} then fs::kSpecInts ints per
// layer {kind, units or filters, k, relu}. Every entry must fit in 32 bits; fs::make_net_shape
// checks the sizes (positive, and every count the kernels hold within its limit).
inline fs::NetShape shape_from(py::handle spec) {
  if (!PySequence_Check(spec.ptr()) || py::isinstance<py::str>(spec) || py::isinstance<py::bytes>(spec))
    throw py::type_error(std::string("spec: expected a sequence of ints, got ") + Py_TYPE(spec.ptr())->tp_name);
  const auto seq = py::reinterpret_borrow<py::sequence>(spec);
  const size_t n = seq.size();
  if (n < 3 + fs::kSpecInts || (n - 3) % fs::kSpecInts != 0)
    throw py::value_error("spec: expected [in_h, in_w, in_c] and 4 ints per layer");
  if (n > 3 + static_cast<size_t>(fs::kSpecInts) * fs::kMaxLayers)
    throw py::value_error("spec: a network has 1 to " + std::to_string(fs::kMaxLayers) + " layers");
  std::vector<int> v(n);
  for (size_t i = 0; i < n; ++i) {
    const py::object item = seq[i];
    if (!PyIndex_Check(item.ptr()))
      throw py::type_error("spec: entry " + std::to_string(i) + " is not an int (" +
                           Py_TYPE(item.ptr())->tp_name + ")");
    const py::int_ value = py::reinterpret_steal<py::int_>(PyNumber_Index(item.ptr()));
    if (!value) throw py::error_already_set();
    int overflow = 0;
    const long long x = PyLong_AsLongLongAndOverflow(value.ptr(), &overflow);
    if (overflow || x < INT32_MIN || x > INT32_MAX)
      throw py::value_error("spec: entry " + std::to_string(i) + " = " + std::string(py::str(value)) +
                            " is outside the 32-bit range");
    v[i] = static_cast<int>(x);
  }
  fs::NetShape s;
  if (const char* err = fs::make_net_shape(v[0], v[1], v[2], v.data() + 3,
                                           static_cast<int>((n - 3) / fs::kSpecInts), &s))
    throw py::value_error(std::string("spec: ") + err);
  return s;
}

// A count the kernels hold in a 32-bit int (rows, networks), checked on the 64-bit value before
// it is narrowed: e.g. "X: 2147483653 rows; at most 2147483647 per call".
inline int int_count(int64_t n, const char* name, const char* what) {
  if (n > fs::kMaxIntCount)
    throw py::value_error(std::string(name) + ": " + std::to_string(n) + " " + what + "; at most " +
                          std::to_string(fs::kMaxIntCount) + " per call");
  return static_cast<int>(n);
}

// A batch of `rows` rows is one workspace whose elements the kernels index with 32-bit ints.
inline void check_batch_rows(const fs::NetShape& s, int64_t rows, const char* name) {
  const int64_t per_row = fs::workspace_scalars_per_row(s);
  if (rows > fs::kMaxIntCount / per_row)
    throw py::value_error(std::string(name) + ": " + std::to_string(rows) + " rows in one batch; at most " +
                          std::to_string(fs::kMaxIntCount / per_row) + " for this network (" +
                          std::to_string(per_row) + " workspace scalars per row, 32-bit indexing)");
}

// An integer option within [lo, hi] (hi at most kMaxIntCount), as an int.
inline int int_option(int64_t v, const char* name, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    throw py::value_error(std::string(name) + ": must be >= " + std::to_string(lo) + " and <= " +
                          std::to_string(hi) + ", got " + std::to_string(v));
  return static_cast<int>(v);
}

// A float as Python writes it (1e+300, 0.5, nan), for messages.
inline std::string float_str(double v) { return std::string(py::repr(py::float_(v))); }

// A float option that must be finite (NaN and inf are refused by every option).
inline double finite_option(double v, const char* name) {
  if (!std::isfinite(v)) throw py::value_error(std::string(name) + ": must be finite, got " + float_str(v));
  return v;
}

// The floats of a fixed-size sequence such as Adam's (lr, beta1, beta2, eps) or a clip box
// (lo, hi); `fields` names them, e.g. "(lo, hi)", and n_word is their number in words.
inline std::vector<double> float_sequence(py::handle obj, size_t n, const char* n_word, const char* name,
                                          const char* fields) {
  const std::string type_message = std::string(name) + ": expected " + n_word + " floats " + fields;
  if (!PySequence_Check(obj.ptr()) || py::isinstance<py::str>(obj)) throw py::type_error(type_message);
  if (py::len(obj) != n)
    throw py::value_error(std::string(name) + ": expected " + fields + ", got " +
                          std::to_string(py::len(obj)) + " values");
  std::vector<double> out;
  try {
    for (const auto item : py::reinterpret_borrow<py::sequence>(obj)) out.push_back(item.cast<double>());
  } catch (const py::cast_error&) {
    throw py::type_error(type_message);
  }
  return out;
}

// Adam's hyperparameters (lr, beta1, beta2, eps): finite, lr > 0, 0 <= beta < 1, eps > 0.
inline fs::AdamHyper adam_from(py::handle adam) {
  const auto h = float_sequence(adam, 4, "four", "adam", "(lr, beta1, beta2, eps)");
  fs::AdamHyper a;
  a.lr = finite_option(h[0], "adam lr");
  a.beta1 = finite_option(h[1], "adam beta1");
  a.beta2 = finite_option(h[2], "adam beta2");
  a.eps = finite_option(h[3], "adam eps");
  if (!(a.lr > 0)) throw py::value_error("adam lr: must be > 0, got " + float_str(a.lr));
  if (!(a.beta1 >= 0 && a.beta1 < 1)) throw py::value_error("adam beta1: must be in [0, 1), got " + float_str(a.beta1));
  if (!(a.beta2 >= 0 && a.beta2 < 1)) throw py::value_error("adam beta2: must be in [0, 1), got " + float_str(a.beta2));
  if (!(a.eps > 0)) throw py::value_error("adam eps: must be > 0, got " + float_str(a.eps));
  return a;
}

inline bool is_float64(py::handle a, const char* name) {
  return array_arg(a, name).dtype().is(py::dtype::of<double>());
}

// Number of networks from the leading axis of a (S, ...) array, checked before use.
inline int leading_dim(py::handle obj, const char* name) {
  const py::array a = array_arg(obj, name);
  if (a.ndim() < 1)
    throw py::value_error(std::string(name) + ": expected an array with a leading network axis, got a scalar");
  return int_count(a.shape(0), name, "networks");
}

inline fs::LossKind loss_kind_from(int64_t loss_kind) {
  if (loss_kind < 0 || loss_kind > 1) throw py::value_error("loss_kind: unknown kind (0 sigmoid, 1 softmax)");
  return static_cast<fs::LossKind>(loss_kind);
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
// The row count is checked against the 32-bit limit before anything else.
template <class T>
const T* data_array(py::handle obj, const char* name, int S, int cols, int64_t* net_stride,
                    int* N) {
  const py::array a = array_arg(obj, name);
  if (a.ndim() == 2) {
    *N = int_count(a.shape(0), name, "rows");
    *net_stride = 0;
    return checked_data<T>(a, name, {-1, cols}, false);
  }
  *N = a.ndim() == 3 ? int_count(a.shape(1), name, "rows") : 0;
  *net_stride = static_cast<int64_t>(*N) * cols;
  return checked_data<T>(a, name, {S, -1, cols}, false);
}

// DeepFool's options, checked: overshoot finite >= 0, max_iter in [0, 2^31 - 1], candidates in
// [1, K - 1] for K > 1 logits, clip (lo, hi) finite with lo < hi.
inline fs::DeepFoolOptions deepfool_options_from(const fs::NetShape& s, double overshoot, int64_t max_iter,
                                          bool linf, int64_t candidates, bool foolbox,
                                          const py::object& clip) {
  fs::DeepFoolOptions o;
  o.overshoot = finite_option(overshoot, "overshoot");
  if (!(o.overshoot >= 0)) throw py::value_error("overshoot: must be >= 0, got " + float_str(overshoot));
  o.max_iter = int_option(max_iter, "max_iter", 0, fs::kMaxIntCount);
  o.linf = linf;
  o.foolbox = foolbox;
  const int K = s.n_logits();
  o.candidates = K > 1 ? int_option(candidates, "candidates", 1, K - 1) : 1;
  if (!clip.is_none()) {
    const auto box = float_sequence(clip, 2, "two", "clip", "(lo, hi)");
    o.clip = true;
    o.lo = finite_option(box[0], "clip lo");
    o.hi = finite_option(box[1], "clip hi");
    if (!(o.lo < o.hi)) throw py::value_error("clip: expected lo < hi");
  }
  return o;
}

// A double option the kernels round to T (float32 may overflow to inf).
template <class T>
void check_representable(double v, const char* name) {
  if (!std::isfinite(static_cast<T>(v)))
    throw py::value_error(std::string(name) + ": " + float_str(v) + " overflows " +
                          std::string(py::str(py::dtype::of<T>())));
}

// ---- the arguments of each operation, checked: one implementation for both engines ------
// `arrays` says how an array argument is read: NumpyArrays (below) for _native, and
// fs_cuda_py::GpuArrays (cpp/cuda_array_checks.h) for _cuda. Each provides
//   leading_dim(obj, name)                      networks S from the leading axis,
//   data<T>(obj, name, expected, writeable)     the checked data pointer (-1: any size),
//   rows<T>(obj, name, S, cols, &stride, &N)    data X (N, cols) shared or (S, N, cols),
//   disjoint(named arrays, n_outputs)           outputs share no memory with other arrays.
struct NumpyArrays {
  static int leading_dim(py::handle obj, const char* name) { return fs_py::leading_dim(obj, name); }
  template <class T>
  static T* data(py::handle obj, const char* name, const std::vector<py::ssize_t>& expected, bool writeable) {
    return checked_data<T>(obj, name, expected, writeable);
  }
  template <class T>
  static const T* rows(py::handle obj, const char* name, int S, int cols, int64_t* net_stride, int* N) {
    return data_array<T>(obj, name, S, cols, net_stride, N);
  }
  static void disjoint(const std::vector<NamedArray>& arrays, size_t n_outputs) {
    check_outputs_disjoint(arrays, n_outputs);
  }
};

template <class T>
struct ForwardArgs {  // forward, logit input gradients
  int S = 0, N = 0;
  const T* theta = nullptr;
  const T* X = nullptr;
  int64_t x_net_stride = 0;
  T* out = nullptr;
};

// theta (S, P), X (N, d) or (S, N, d), out (S, N, K) writeable, or (S, N, K, d) for the logits'
// input gradients.
template <class T, class Arrays>
ForwardArgs<T> forward_args(const Arrays& arrays, const fs::NetShape& s, py::handle theta, py::handle X,
                            py::handle out, bool logit_input_grads = false) {
  ForwardArgs<T> a;
  a.S = arrays.leading_dim(theta, "theta");
  a.theta = arrays.template data<T>(theta, "theta", {-1, s.n_params}, false);
  a.X = arrays.template rows<T>(X, "X", a.S, s.width[0], &a.x_net_stride, &a.N);
  if (logit_input_grads)
    a.out = arrays.template data<T>(out, "out", {a.S, a.N, s.n_logits(), s.width[0]}, true);
  else
    a.out = arrays.template data<T>(out, "out", {a.S, a.N, s.n_logits()}, true);
  arrays.disjoint({{"out", out}, {"theta", theta}, {"X", X}}, 1);
  return a;
}

template <class T>
ForwardArgs<T> forward_args_from_python(const fs::NetShape& s, py::handle theta, py::handle X,
                                        py::handle out) {
  return forward_args<T>(NumpyArrays{}, s, theta, X, out);
}

template <class T>
struct LossGradArgs {
  fs::LossKind loss;
  int S = 0, N = 0;
  const T* theta = nullptr;
  const T* X = nullptr;
  const T* Y = nullptr;
  int64_t x_net_stride = 0, y_net_stride = 0;
  T* loss_out = nullptr;
  T* grad_out = nullptr;
  T* input_grad_out = nullptr;  // optional (None)
};

// The labels are not read here: the caller checks them (check_class_labels, or on the device).
template <class T, class Arrays>
LossGradArgs<T> loss_grad_args(const Arrays& arrays, const fs::NetShape& s, int64_t loss_kind,
                               py::handle theta, py::handle X, py::handle Y, py::handle loss_out,
                               py::handle grad_out, py::handle input_grad_out) {
  LossGradArgs<T> a;
  a.loss = loss_kind_from(loss_kind);
  a.S = arrays.leading_dim(theta, "theta");
  a.theta = arrays.template data<T>(theta, "theta", {-1, s.n_params}, false);
  int NY;
  a.X = arrays.template rows<T>(X, "X", a.S, s.width[0], &a.x_net_stride, &a.N);
  a.Y = arrays.template rows<T>(Y, "Y", a.S, fs::targets_per_sample(a.loss, s.n_logits()), &a.y_net_stride, &NY);
  if (NY != a.N) throw py::value_error("Y: number of rows differs from X");
  if (a.N < 1) throw py::value_error("X: no data rows");
  check_batch_rows(s, a.N, "X");  // the whole data set is one batch
  a.loss_out = arrays.template data<T>(loss_out, "loss_out", {a.S}, true);
  a.grad_out = arrays.template data<T>(grad_out, "grad_out", {a.S, s.n_params}, true);
  if (!input_grad_out.is_none())
    a.input_grad_out = arrays.template data<T>(input_grad_out, "input_grad_out", {a.S, a.N, s.width[0]}, true);
  arrays.disjoint({{"loss_out", loss_out}, {"grad_out", grad_out}, {"input_grad_out", input_grad_out},
                   {"theta", theta}, {"X", X}, {"Y", Y}}, 3);
  return a;
}

// Arguments of net_train (shared by the CPU and CUDA engines), every one checked but the labels
// (the caller's: train_args_from_python on the host, the CUDA module on the device). *S_out:
// the number of networks.
template <class T, class Arrays>
fs::TrainArgs<T> train_args(const Arrays& arrays, const fs::NetShape& s, int64_t loss_kind, int64_t shuffle,
                            py::handle adam, py::handle X, py::handle Y, py::handle theta, py::handle m,
                            py::handle v, py::handle seeds, int64_t epochs, int64_t batch_size,
                            int64_t step0, int64_t record_every, py::handle loss_hist,
                            py::handle acc_hist, int* S_out) {
  fs::TrainArgs<T> a;
  a.shape = s;
  a.loss = loss_kind_from(loss_kind);
  if (shuffle < 0 || shuffle > 2) throw py::value_error("shuffle: unknown mode (0 none, 1 samples, 2 batches)");
  a.shuffle = static_cast<fs::ShuffleMode>(shuffle);
  a.adam = adam_from(adam);
  const int S = arrays.leading_dim(theta, "theta");
  a.theta = arrays.template data<T>(theta, "theta", {-1, s.n_params}, true);
  a.adam_m = arrays.template data<T>(m, "adam_m", {S, s.n_params}, true);
  a.adam_v = arrays.template data<T>(v, "adam_v", {S, s.n_params}, true);
  a.seeds = arrays.template data<uint64_t>(seeds, "seeds", {S}, false);
  int NY;
  a.X = arrays.template rows<T>(X, "X", S, s.width[0], &a.x_net_stride, &a.N);
  a.Y = arrays.template rows<T>(Y, "Y", S, fs::targets_per_sample(a.loss, s.n_logits()), &a.y_net_stride, &NY);
  if (NY != a.N) throw py::value_error("Y: number of rows differs from X");
  if (a.N < 1) throw py::value_error("X: no data rows");
  if (batch_size < 1 || batch_size > a.N)
    throw py::value_error("batch_size: must be in [1, N=" + std::to_string(a.N) + "], got " +
                          std::to_string(batch_size));
  a.B = static_cast<int>(batch_size);
  check_batch_rows(s, a.B, "batch_size");
  a.epochs = int_option(epochs, "epochs", 0, fs::kMaxIntCount);
  a.record_every = int_option(record_every, "record_every", 1, fs::kMaxIntCount);
  // Adam's step counter continues from step0 and must not overflow.
  const int64_t steps = static_cast<int64_t>(a.epochs) * (a.N / a.B);
  if (step0 < 0 || step0 > INT64_MAX - steps)
    throw py::value_error("step0: must be >= 0 and <= " + std::to_string(INT64_MAX - steps) +
                          " (Adam's step count after these epochs), got " + std::to_string(step0));
  a.step0 = step0;
  a.n_records = a.epochs > 0 ? fs::n_records_for(a.epochs, a.record_every) : 0;
  a.loss_history = arrays.template data<double>(loss_hist, "loss_history", {S, a.n_records}, true);
  a.acc_history = arrays.template data<double>(acc_hist, "acc_history", {S, a.n_records}, true);
  arrays.disjoint({{"theta", theta}, {"adam_m", m}, {"adam_v", v}, {"loss_history", loss_hist},
                   {"acc_history", acc_hist}, {"X", X}, {"Y", Y}, {"seeds", seeds}}, 5);
  *S_out = S;
  return a;
}

// train_args on NumPy arrays, softmax labels included.
template <class T>
fs::TrainArgs<T> train_args_from_python(const fs::NetShape& s, int64_t loss_kind, int64_t shuffle,
                                        py::handle adam, py::handle X, py::handle Y,
                                        py::handle theta, py::handle m, py::handle v,
                                        py::handle seeds, int64_t epochs, int64_t batch_size,
                                        int64_t step0, int64_t record_every, py::handle loss_hist,
                                        py::handle acc_hist) {
  int S;
  const auto a = train_args<T>(NumpyArrays{}, s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds, epochs,
                               batch_size, step0, record_every, loss_hist, acc_hist, &S);
  // Read last: the labels are the only data read here, after every shape is known to be valid.
  if (a.loss == fs::LossKind::SoftmaxCE)
    check_class_labels(a.Y, (a.y_net_stride ? S : 1) * static_cast<int64_t>(a.N), s.n_logits(), "Y");
  return a;
}

template <class T>
struct DeepFoolArgs {
  int S = 0, N = 0;
  const T* theta = nullptr;
  const T* X = nullptr;
  int64_t x_net_stride = 0;
  T* pert = nullptr;
  int* iters = nullptr;
  int* status = nullptr;
};

// theta (S, P), X (N, d) or (S, N, d) with N >= 1; perturbation (S, N, d), iterations and status
// (S, N) int32 written in place.
template <class T, class Arrays>
DeepFoolArgs<T> deepfool_args(const Arrays& arrays, const fs::NetShape& s, py::handle theta, py::handle X,
                              py::handle pert, py::handle iters, py::handle status) {
  DeepFoolArgs<T> a;
  a.S = arrays.leading_dim(theta, "theta");
  a.theta = arrays.template data<T>(theta, "theta", {-1, s.n_params}, false);
  a.X = arrays.template rows<T>(X, "X", a.S, s.width[0], &a.x_net_stride, &a.N);
  if (a.N < 1) throw py::value_error("X: no points");
  a.pert = arrays.template data<T>(pert, "perturbation_out", {a.S, a.N, s.width[0]}, true);
  a.iters = arrays.template data<int>(iters, "iterations_out", {a.S, a.N}, true);
  a.status = arrays.template data<int>(status, "status_out", {a.S, a.N}, true);
  arrays.disjoint({{"perturbation_out", pert}, {"iterations_out", iters}, {"status_out", status},
                   {"theta", theta}, {"X", X}}, 3);
  return a;
}

template <class T>
struct FlippingScaleArgs {
  int S = 0, N = 0;
  const T* theta = nullptr;
  const T* X = nullptr;
  int64_t x_net_stride = 0;
  const double* directions = nullptr;
  T* r = nullptr;
  int* status = nullptr;
  int* evals = nullptr;
};

// theta (S, P), X (N, d) or (S, N, d), directions (S, N, d) float64; perturbation (S, N, d),
// status and evaluations (S, N) int32 written in place.
template <class T, class Arrays>
FlippingScaleArgs<T> flipping_scale_args(const Arrays& arrays, const fs::NetShape& s, py::handle theta,
                                         py::handle X, py::handle directions, py::handle r,
                                         py::handle status, py::handle evals) {
  FlippingScaleArgs<T> a;
  a.S = arrays.leading_dim(theta, "theta");
  a.theta = arrays.template data<T>(theta, "theta", {-1, s.n_params}, false);
  a.X = arrays.template rows<T>(X, "X", a.S, s.width[0], &a.x_net_stride, &a.N);
  a.directions = arrays.template data<double>(directions, "directions", {a.S, a.N, s.width[0]}, false);
  a.r = arrays.template data<T>(r, "perturbation_out", {a.S, a.N, s.width[0]}, true);
  a.status = arrays.template data<int>(status, "status_out", {a.S, a.N}, true);
  a.evals = arrays.template data<int>(evals, "evaluations_out", {a.S, a.N}, true);
  arrays.disjoint({{"perturbation_out", r}, {"status_out", status}, {"evaluations_out", evals},
                   {"theta", theta}, {"X", X}, {"directions", directions}}, 3);
  return a;
}

}  // namespace fs_py
