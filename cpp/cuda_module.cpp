// pybind11 bindings of the CUDA engine (module falsestruct_fast._cuda). Built only when CMake
// finds a CUDA compiler; the CUDA runtime is linked statically, so importing it never fails
// on a machine without a GPU: device_count() is then 0 and every operation raises
// RuntimeError("no CUDA device is available (engine='cuda')").
//
// Every array argument is a GPU array (__cuda_array_interface__: CuPy, Numba, PyTorch, ...) on
// the current device, checked by cpp/cuda_array_checks.h exactly as _native checks NumPy
// arrays; `stream` is the cudaStream_t as an integer (cupy.cuda.get_current_stream().ptr;
// 0 = the legacy default stream). Each call queues its kernels on that stream and waits for
// them with the GIL released, so CUDA errors surface as RuntimeError("CUDA error: ...").
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>

#include "cuda_array_checks.h"
#include "falsestruct/network_cuda.h"
#include "network_args.h"

#ifndef FS_SOURCE_HASH
#define FS_SOURCE_HASH "unknown"
#endif

namespace py = pybind11;
using namespace fs_cuda_py;
using fs::cuda::Stream;

namespace {

// The calling thread's device and a pointer's device, from the CUDA runtime. Raises
// RuntimeError when there is no GPU (before any argument is looked at).
DeviceContext require_device() {
  if (fs::cuda::device_count() == 0)
    throw std::runtime_error("no CUDA device is available (engine='cuda')");
  DeviceContext ctx;
  ctx.device = fs::cuda::current_device();
  ctx.device_of = [](uintptr_t p) {
    cudaPointerAttributes attr;
    if (cudaPointerGetAttributes(&attr, reinterpret_cast<const void*>(p)) != cudaSuccess) {
      cudaGetLastError();  // not a CUDA pointer: clear the error
      return -1;
    }
    return (attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged) ? attr.device : -1;
  };
  return ctx;
}

void raise_on_error(const std::string& err) {
  if (!err.empty()) throw std::runtime_error("CUDA error: " + err);
}

// Runs `queue` (which returns "" or an error) and waits for the stream, GIL released.
template <class Queue>
void run_on_stream(Stream stream, Queue&& queue) {
  std::string err;
  {
    py::gil_scoped_release release;
    err = queue();
    if (err.empty()) err = fs::cuda::synchronize(stream);
  }
  raise_on_error(err);
}

// Softmax labels index arrays in the kernels: any label outside [0, K) is refused first.
template <class T>
void check_device_labels(const T* y, int64_t count, int K, Stream stream) {
  int64_t bad = 0;
  std::string err;
  {
    py::gil_scoped_release release;
    err = fs::cuda::count_bad_labels(y, count, K, &bad, stream);
  }
  raise_on_error(err);
  if (bad)
    throw py::value_error("Y: softmax labels must be integer class indices in [0, " + std::to_string(K) + ")");
}

template <class T>
void forward_impl(const fs::NetShape& s, py::handle theta, py::handle X, py::handle out, Stream stream,
                  bool logit_input_grads) {
  const DeviceContext ctx = require_device();
  const auto a = fs_py::forward_args<T>(GpuArrays{ctx}, s, theta, X, out, logit_input_grads);
  run_on_stream(stream, [&] {
    return logit_input_grads
               ? fs::cuda::logit_input_grads(s, a.theta, a.S, a.X, a.x_net_stride, a.N, a.out, stream)
               : fs::cuda::forward(s, a.theta, a.S, a.X, a.x_net_stride, a.N, a.out, stream);
  });
}

template <class T>
void loss_and_grad_impl(const fs::NetShape& s, int64_t loss_kind, py::handle theta, py::handle X,
                        py::handle Y, py::handle loss_out, py::handle grad_out,
                        py::handle input_grad_out, Stream stream) {
  const DeviceContext ctx = require_device();
  const auto a = fs_py::loss_grad_args<T>(GpuArrays{ctx}, s, loss_kind, theta, X, Y, loss_out, grad_out, input_grad_out);
  if (a.loss == fs::LossKind::SoftmaxCE)
    check_device_labels(a.Y, (a.y_net_stride ? a.S : 1) * static_cast<int64_t>(a.N), s.n_logits(), stream);
  run_on_stream(stream, [&] {
    return fs::cuda::loss_and_grad(s, a.loss, a.theta, a.S, a.X, a.x_net_stride, a.Y, a.y_net_stride, a.N,
                                   a.loss_out, a.grad_out, a.input_grad_out, stream);
  });
}

template <class T>
void train_impl(const fs::NetShape& s, int64_t loss_kind, int64_t shuffle, py::handle adam,
                py::handle X, py::handle Y, py::handle theta, py::handle m, py::handle v,
                py::handle seeds, int64_t epochs, int64_t batch_size, int64_t step0,
                int64_t record_every, py::handle loss_hist, py::handle acc_hist,
                int64_t epoch_begin, int64_t epoch_end, Stream stream) {
  const DeviceContext ctx = require_device();
  int S = 0;
  auto a = fs_py::train_args<T>(GpuArrays{ctx}, s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds, epochs,
                                batch_size, step0, record_every, loss_hist, acc_hist, &S);
  a.epoch_begin = fs_py::int_option(epoch_begin, "epoch_begin", 0, a.epochs);
  a.epoch_end = fs_py::int_option(epoch_end, "epoch_end", a.epoch_begin, a.epochs);
  if (a.loss == fs::LossKind::SoftmaxCE)
    check_device_labels(a.Y, (a.y_net_stride ? S : 1) * static_cast<int64_t>(a.N), s.n_logits(), stream);
  run_on_stream(stream, [&] { return fs::cuda::train_epochs(a, S, stream); });
}

template <class T>
void deepfool_impl(const fs::NetShape& s, py::handle theta, py::handle X, py::handle pert,
                   py::handle iters, py::handle status, const fs::DeepFoolOptions& o, Stream stream) {
  fs_py::check_representable<T>(1.0 + o.overshoot, "overshoot");
  if (o.clip) {
    fs_py::check_representable<T>(o.lo, "clip lo");
    fs_py::check_representable<T>(o.hi, "clip hi");
  }
  const DeviceContext ctx = require_device();
  const auto a = fs_py::deepfool_args<T>(GpuArrays{ctx}, s, theta, X, pert, iters, status);
  run_on_stream(stream, [&] {
    return fs::cuda::deepfool(s, a.theta, a.S, a.X, a.x_net_stride, a.N, o, a.pert, a.iters, a.status, stream);
  });
}

template <class T>
bool flipping_scale_impl(const fs::NetShape& s, py::handle theta, py::handle X, py::handle directions,
                         double rtol, int64_t max_doublings, py::handle r, py::handle status,
                         py::handle evals, Stream stream) {
  if (!(std::isfinite(rtol) && rtol > 0 && rtol < 1))
    throw py::value_error("rtol: must be in (0, 1), got " + fs_py::float_str(rtol));
  const int doublings = fs_py::int_option(max_doublings, "max_doublings", 0, fs::kMaxIntCount);
  const DeviceContext ctx = require_device();
  const auto a = fs_py::flipping_scale_args<T>(GpuArrays{ctx}, s, theta, X, directions, r, status, evals);
  if (!fs::cuda::flipping_scale_supported<T>(s)) return false;
  run_on_stream(stream, [&] {
    return fs::cuda::flipping_scale(s, a.theta, a.S, a.X, a.x_net_stride, a.N, a.directions, rtol, doublings,
                                    a.r, a.status, a.evals, stream);
  });
  return true;
}

// The float type of an operation comes from theta (float32 unless it is float64; every
// other array is then checked against it). No GPU: the RuntimeError comes first.
bool theta_is_float64(py::handle theta) {
  require_device();
  return is_float64(theta, "theta");
}

}  // namespace

PYBIND11_MODULE(_cuda, mod) {
  mod.doc() =
      "falsestruct_fast CUDA engine. Array arguments are GPU arrays (__cuda_array_interface__) on "
      "the current device, checked as _native checks NumPy arrays (TypeError/ValueError naming "
      "them); `stream` is a cudaStream_t as an int (0: the default stream). Array values are the "
      "caller's responsibility (NaN/inf give NaN results), except softmax labels (checked).";
  mod.def("source_hash", [] { return std::string(FS_SOURCE_HASH); });
  mod.def("device_count", &fs::cuda::device_count, "Visible CUDA devices (0 without a driver or GPU).");
  mod.def("device_name", &fs::cuda::device_name, py::arg("device") = 0);
  mod.def("multiprocessor_count", &fs::cuda::multiprocessor_count, py::arg("device") = 0);
  mod.def(
      "net_forward",
      [](py::handle spec, py::handle theta, py::handle X, py::handle out, Stream stream) {
        const auto s = fs_py::shape_from(spec);
        if (theta_is_float64(theta)) forward_impl<double>(s, theta, X, out, stream, false);
        else forward_impl<float>(s, theta, X, out, stream, false);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("out"), py::arg("stream") = 0,
      "Logits out (S, N, K) T of X (N, d) or (S, N, d) T for theta (S, P) T.");
  mod.def(
      "net_logit_input_grads",
      [](py::handle spec, py::handle theta, py::handle X, py::handle out, Stream stream) {
        const auto s = fs_py::shape_from(spec);
        if (theta_is_float64(theta)) forward_impl<double>(s, theta, X, out, stream, true);
        else forward_impl<float>(s, theta, X, out, stream, true);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("out"), py::arg("stream") = 0,
      "Gradient of every logit w.r.t. the input: out (S, N, K, d) T.");
  mod.def(
      "net_loss_and_grad",
      [](py::handle spec, int64_t loss_kind, py::handle theta, py::handle X, py::handle Y,
         py::handle loss_out, py::handle grad_out, py::handle input_grad_out, Stream stream) {
        const auto s = fs_py::shape_from(spec);
        if (theta_is_float64(theta))
          loss_and_grad_impl<double>(s, loss_kind, theta, X, Y, loss_out, grad_out, input_grad_out, stream);
        else
          loss_and_grad_impl<float>(s, loss_kind, theta, X, Y, loss_out, grad_out, input_grad_out, stream);
      },
      py::arg("spec"), py::arg("loss_kind"), py::arg("theta"), py::arg("X"), py::arg("Y"),
      py::arg("loss_out"), py::arg("grad_out"), py::arg("input_grad_out") = py::none(),
      py::arg("stream") = 0, "Same contract as _native.net_loss_and_grad, on GPU arrays.");
  mod.def(
      "net_train_epochs",
      [](py::handle spec, int64_t loss_kind, int64_t shuffle, py::handle adam, py::handle X,
         py::handle Y, py::handle theta, py::handle m, py::handle v, py::handle seeds,
         int64_t epochs, int64_t batch_size, int64_t step0, int64_t record_every,
         py::handle loss_hist, py::handle acc_hist, int64_t epoch_begin, int64_t epoch_end,
         Stream stream) {
        const auto s = fs_py::shape_from(spec);
        if (theta_is_float64(theta))
          train_impl<double>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds, epochs, batch_size,
                             step0, record_every, loss_hist, acc_hist, epoch_begin, epoch_end, stream);
        else
          train_impl<float>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds, epochs, batch_size,
                            step0, record_every, loss_hist, acc_hist, epoch_begin, epoch_end, stream);
      },
      py::arg("spec"), py::arg("loss_kind"), py::arg("shuffle"), py::arg("adam"), py::arg("X"),
      py::arg("Y"), py::arg("theta"), py::arg("adam_m"), py::arg("adam_v"), py::arg("seeds"),
      py::arg("epochs"), py::arg("batch_size"), py::arg("step0"), py::arg("record_every"),
      py::arg("loss_history"), py::arg("acc_history"), py::arg("epoch_begin"), py::arg("epoch_end"),
      py::arg("stream") = 0,
      "Epochs [epoch_begin, epoch_end) of the run _native.net_train(..., epochs, step0, ...) "
      "describes, on GPU arrays (seeds uint64, histories float64 on the device). Successive "
      "ranges give bitwise the result of one call (records and batch order follow the run).");
  mod.def(
      "net_flipping_scale",
      [](py::handle spec, py::handle theta, py::handle X, py::handle directions, double rtol,
         int64_t max_doublings, py::handle r, py::handle status, py::handle evals, Stream stream) {
        const auto s = fs_py::shape_from(spec);
        if (theta_is_float64(theta))
          return flipping_scale_impl<double>(s, theta, X, directions, rtol, max_doublings, r, status, evals, stream);
        return flipping_scale_impl<float>(s, theta, X, directions, rtol, max_doublings, r, status, evals, stream);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("directions"), py::arg("rtol"),
      py::arg("max_doublings"), py::arg("perturbation_out"), py::arg("status_out"),
      py::arg("evaluations_out"), py::arg("stream") = 0,
      "The baselines' search (attacks.baselines.smallest_flipping_scale) per point along directions "
      "(S, N, d) float64: perturbation (S, N, d) T, status and evaluations (S, N) int32. Returns "
      "False (nothing done) for networks the per-point kernels do not hold.");
  mod.def(
      "net_deepfool",
      [](py::handle spec, py::handle theta, py::handle X, py::handle pert, py::handle iters,
         py::handle status, double overshoot, int64_t max_iter, bool linf, int64_t candidates,
         bool foolbox, py::object clip, Stream stream) {
        const auto s = fs_py::shape_from(spec);
        const auto o = fs_py::deepfool_options_from(s, overshoot, max_iter, linf, candidates, foolbox, clip);
        if (theta_is_float64(theta)) deepfool_impl<double>(s, theta, X, pert, iters, status, o, stream);
        else deepfool_impl<float>(s, theta, X, pert, iters, status, o, stream);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("perturbation_out"),
      py::arg("iterations_out"), py::arg("status_out"), py::arg("overshoot"), py::arg("max_iter"),
      py::arg("linf"), py::arg("candidates"), py::arg("foolbox"), py::arg("clip") = py::none(),
      py::arg("stream") = 0, "Same contract as _native.net_deepfool, on GPU arrays.");
}
