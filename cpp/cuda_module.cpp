// pybind11 bindings of the CUDA engine (module falsestruct_fast._cuda). Built only when CMake
// finds a CUDA compiler; the CUDA runtime is linked statically, so importing it never fails
// on a machine without a GPU: device_count() is then 0 and the kernels raise RuntimeError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "array_checks.h"
#include "falsestruct/network_cuda.h"
#include "network_args.h"

namespace py = pybind11;
using namespace fs_py;

namespace {

void require_device() {
  if (fs::cuda::device_count() == 0)
    throw std::runtime_error("no CUDA device is available (engine='cuda')");
}

void raise_on_error(const std::string& err) {
  if (!err.empty()) throw std::runtime_error("CUDA error: " + err);
}

template <class T>
void train_impl(const fs::NetShape& s, int64_t loss_kind, int64_t shuffle, py::handle adam,
                py::handle X, py::handle Y, py::handle theta, py::handle m, py::handle v,
                py::handle seeds, int64_t epochs, int64_t batch_size, int64_t step0,
                int64_t record_every, py::handle loss_hist, py::handle acc_hist) {
  const auto a = train_args_from_python<T>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds,
                                           epochs, batch_size, step0, record_every, loss_hist, acc_hist);
  const int S = leading_dim(theta, "theta");
  require_device();
  if (S == 0 || a.epochs == 0) return;  // nothing to do (a grid of 0 blocks is a CUDA error)
  std::string err;
  {
    py::gil_scoped_release release;
    err = fs::cuda::train(a, S, a.x_net_stride ? S : 1, a.y_net_stride ? S : 1);
  }
  raise_on_error(err);
}

template <class T>
void forward_impl(const fs::NetShape& s, py::handle theta, py::handle X, py::handle out) {
  const auto a = forward_args_from_python<T>(s, theta, X, out);
  require_device();
  if (a.S == 0 || a.N == 0) return;  // an empty result
  std::string err;
  {
    py::gil_scoped_release release;
    err = fs::cuda::net_forward(s, a.theta, a.S, a.X, a.x_net_stride, a.N, a.out);
  }
  raise_on_error(err);
}

}  // namespace

PYBIND11_MODULE(_cuda, mod) {
  mod.doc() =
      "falsestruct_fast CUDA engine (one CUDA block per network). Arguments are checked as by "
      "_native (the same binding-layer checks); array values are the caller's responsibility.";
  mod.def("device_count", &fs::cuda::device_count);
  mod.def("device_name", &fs::cuda::device_name, py::arg("device") = 0);
  mod.def(
      "net_train",
      [](py::handle spec, int64_t loss_kind, int64_t shuffle, py::handle adam, py::handle X,
         py::handle Y, py::handle theta, py::handle m, py::handle v, py::handle seeds,
         int64_t epochs, int64_t batch_size, int64_t step0, int64_t record_every,
         py::handle loss_hist, py::handle acc_hist) {
        const auto s = shape_from(spec);
        if (is_float64(theta, "theta"))
          train_impl<double>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds, epochs,
                             batch_size, step0, record_every, loss_hist, acc_hist);
        else
          train_impl<float>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds, epochs,
                            batch_size, step0, record_every, loss_hist, acc_hist);
      },
      py::arg("spec"), py::arg("loss_kind"), py::arg("shuffle"), py::arg("adam"), py::arg("X"),
      py::arg("Y"), py::arg("theta"), py::arg("adam_m"), py::arg("adam_v"), py::arg("seeds"),
      py::arg("epochs"), py::arg("batch_size"), py::arg("step0"), py::arg("record_every"),
      py::arg("loss_history"), py::arg("acc_history"),
      "Same contract as _native.net_train (host arrays, copied to and from the GPU); not "
      "interruptible once the kernel runs.");
  mod.def(
      "net_forward",
      [](py::handle spec, py::handle theta, py::handle X, py::handle out) {
        const auto s = shape_from(spec);
        if (is_float64(theta, "theta")) forward_impl<double>(s, theta, X, out);
        else forward_impl<float>(s, theta, X, out);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("out"),
      "Same contract as _native.net_forward.");
}
