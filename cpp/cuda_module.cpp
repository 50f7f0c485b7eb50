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
void train_impl(const fs::NetShape& s, int loss_kind, int shuffle, py::tuple adam, py::array X,
                py::array Y, py::array theta, py::array m, py::array v, py::array seeds, int epochs,
                int batch_size, int64_t step0, int record_every, py::array loss_hist,
                py::array acc_hist) {
  const auto a = train_args_from_python<T>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds,
                                           epochs, batch_size, step0, record_every, loss_hist, acc_hist);
  const int S = leading_dim(theta, "theta");
  require_device();
  std::string err;
  {
    py::gil_scoped_release release;
    err = fs::cuda::train(a, S, a.x_net_stride ? S : 1, a.y_net_stride ? S : 1);
  }
  raise_on_error(err);
}

template <class T>
void forward_impl(const fs::NetShape& s, py::array theta, py::array X, py::array out) {
  const auto a = forward_args_from_python<T>(s, theta, X, out);
  require_device();
  std::string err;
  {
    py::gil_scoped_release release;
    err = fs::cuda::net_forward(s, a.theta, a.S, a.X, a.x_net_stride, a.N, a.out);
  }
  raise_on_error(err);
}

}  // namespace

PYBIND11_MODULE(_cuda, mod) {
  mod.doc() = "falsestruct_fast CUDA engine (one CUDA block per network).";
  mod.def("device_count", &fs::cuda::device_count);
  mod.def("device_name", &fs::cuda::device_name, py::arg("device") = 0);
  mod.def(
      "net_train",
      [](const std::vector<int>& spec, int loss_kind, int shuffle, py::tuple adam, py::array X,
         py::array Y, py::array theta, py::array m, py::array v, py::array seeds, int epochs,
         int batch_size, int64_t step0, int record_every, py::array loss_hist, py::array acc_hist) {
        const auto s = shape_from(spec);
        if (is_float64(theta))
          train_impl<double>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds, epochs,
                             batch_size, step0, record_every, loss_hist, acc_hist);
        else
          train_impl<float>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds, epochs,
                            batch_size, step0, record_every, loss_hist, acc_hist);
      },
      "Same contract as _native.net_train (host arrays, copied to and from the GPU).");
  mod.def("net_forward", [](const std::vector<int>& spec, py::array theta, py::array X, py::array out) {
    const auto s = shape_from(spec);
    if (is_float64(theta)) forward_impl<double>(s, theta, X, out);
    else forward_impl<float>(s, theta, X, out);
  });
}
