// The CUDA engine's plumbing on the CPU (tests, _native.cuda_emulation):
// - cuda_*_args: the _cuda module's argument checks (cpp/cuda_array_checks.h) on objects
//   exposing __cuda_array_interface__, returning what they parsed; nothing is dereferenced,
//   so fake interfaces with made-up pointers test every refusal without a GPU;
// - train_epochs: the generic training kernel on the EmulatedBlock executor (CudaBlock's index
//   mapping) for an epoch range, as the CUDA engine launches a long run in chunks of epochs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "cuda_array_checks.h"
#include "host_engine_registry.h"
#include "network_args.h"

namespace py = pybind11;
using namespace fs_cuda_py;

namespace {

DeviceContext context_from(int device, const py::object& device_of) {
  DeviceContext ctx;
  ctx.device = device;
  if (!device_of.is_none())
    ctx.device_of = [device_of](uintptr_t p) { return device_of(p).cast<int>(); };
  return ctx;
}

py::dict eval_dict(const DeviceContext& ctx, const fs::NetShape& s, py::handle theta, py::handle X,
                   py::handle out, bool grads) {
  py::dict d;
  auto fill = [&](auto a) {
    d["S"] = a.S, d["N"] = a.N, d["x_net_stride"] = a.x_net_stride;
    d["theta"] = reinterpret_cast<uintptr_t>(a.theta), d["X"] = reinterpret_cast<uintptr_t>(a.X);
    d["out"] = reinterpret_cast<uintptr_t>(a.out);
  };
  if (is_float64(theta, "theta")) fill(fs_py::forward_args<double>(GpuArrays{ctx}, s, theta, X, out, grads));
  else fill(fs_py::forward_args<float>(GpuArrays{ctx}, s, theta, X, out, grads));
  return d;
}

template <class T>
py::dict train_dict(const DeviceContext& ctx, const fs::NetShape& s, int64_t loss_kind, int64_t shuffle,
                    py::handle adam, py::handle X, py::handle Y, py::handle theta, py::handle m,
                    py::handle v, py::handle seeds, int64_t epochs, int64_t batch_size, int64_t step0,
                    int64_t record_every, py::handle loss_hist, py::handle acc_hist) {
  int S = 0;
  const auto a = fs_py::train_args<T>(GpuArrays{ctx}, s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds,
                                      epochs, batch_size, step0, record_every, loss_hist, acc_hist, &S);
  py::dict d;
  d["S"] = S, d["N"] = a.N, d["B"] = a.B, d["n_records"] = a.n_records;
  d["x_net_stride"] = a.x_net_stride, d["y_net_stride"] = a.y_net_stride;
  d["theta"] = reinterpret_cast<uintptr_t>(a.theta), d["X"] = reinterpret_cast<uintptr_t>(a.X);
  return d;
}

template <class T>
void train_epochs_impl(const fs::NetShape& s, int64_t loss_kind, int64_t shuffle, py::handle adam,
                       py::handle X, py::handle Y, py::handle theta, py::handle m, py::handle v,
                       py::handle seeds, int64_t epochs, int64_t batch_size, int64_t step0,
                       int64_t record_every, py::handle loss_hist, py::handle acc_hist,
                       int64_t epoch_begin, int64_t epoch_end, int64_t emulate_threads) {
  auto a = fs_py::train_args_from_python<T>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds,
                                            epochs, batch_size, step0, record_every, loss_hist, acc_hist);
  a.epoch_begin = fs_py::int_option(epoch_begin, "epoch_begin", 0, a.epochs);
  a.epoch_end = fs_py::int_option(epoch_end, "epoch_end", a.epoch_begin, a.epochs);
  const int threads = fs_py::int_option(emulate_threads, "emulate_threads", 1, 1024);
  const int S = fs_py::leading_dim(theta, "theta");
  fs::RunControl control;
  // the CPU engine's own training entry point (the variant chosen at import) on EmulatedBlock
  fs_host::select_host_engine().entry<T>().train(a, S, 1, control, nullptr, 0, threads);
}

}  // namespace

void register_network_emulation(py::module_& m) {
  m.def(
      "cuda_eval_args",
      [](py::handle spec, py::handle theta, py::handle X, py::handle out, bool logit_input_grads,
         int device, py::object device_of) {
        return eval_dict(context_from(device, device_of), fs_py::shape_from(spec), theta, X, out,
                         logit_input_grads);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("out"),
      py::arg("logit_input_grads") = false, py::arg("device") = 0, py::arg("device_of") = py::none(),
      "_cuda.net_forward's (or net_logit_input_grads') argument checks; returns S, N, strides "
      "and the pointers parsed. device_of(pointer) -> device (-1: host memory); default: every "
      "pointer is on `device`.");
  m.def(
      "cuda_loss_grad_args",
      [](py::handle spec, int64_t loss_kind, py::handle theta, py::handle X, py::handle Y,
         py::handle loss_out, py::handle grad_out, py::handle input_grad_out, int device,
         py::object device_of) {
        const auto ctx = context_from(device, device_of);
        const auto s = fs_py::shape_from(spec);
        py::dict d;
        auto fill = [&](auto a) {
          d["S"] = a.S, d["N"] = a.N, d["x_net_stride"] = a.x_net_stride, d["y_net_stride"] = a.y_net_stride;
          d["input_grad_out"] = reinterpret_cast<uintptr_t>(a.input_grad_out);
        };
        if (is_float64(theta, "theta"))
          fill(fs_py::loss_grad_args<double>(GpuArrays{ctx}, s, loss_kind, theta, X, Y, loss_out, grad_out,
                                             input_grad_out));
        else
          fill(fs_py::loss_grad_args<float>(GpuArrays{ctx}, s, loss_kind, theta, X, Y, loss_out, grad_out,
                                            input_grad_out));
        return d;
      },
      py::arg("spec"), py::arg("loss_kind"), py::arg("theta"), py::arg("X"), py::arg("Y"),
      py::arg("loss_out"), py::arg("grad_out"), py::arg("input_grad_out") = py::none(),
      py::arg("device") = 0, py::arg("device_of") = py::none(),
      "_cuda.net_loss_and_grad's argument checks (see cuda_eval_args).");
  m.def(
      "cuda_train_args",
      [](py::handle spec, int64_t loss_kind, int64_t shuffle, py::handle adam, py::handle X,
         py::handle Y, py::handle theta, py::handle m_, py::handle v, py::handle seeds,
         int64_t epochs, int64_t batch_size, int64_t step0, int64_t record_every,
         py::handle loss_hist, py::handle acc_hist, int device, py::object device_of) {
        const auto ctx = context_from(device, device_of);
        const auto s = fs_py::shape_from(spec);
        if (is_float64(theta, "theta"))
          return train_dict<double>(ctx, s, loss_kind, shuffle, adam, X, Y, theta, m_, v, seeds, epochs,
                                    batch_size, step0, record_every, loss_hist, acc_hist);
        return train_dict<float>(ctx, s, loss_kind, shuffle, adam, X, Y, theta, m_, v, seeds, epochs,
                                 batch_size, step0, record_every, loss_hist, acc_hist);
      },
      py::arg("spec"), py::arg("loss_kind"), py::arg("shuffle"), py::arg("adam"), py::arg("X"),
      py::arg("Y"), py::arg("theta"), py::arg("adam_m"), py::arg("adam_v"), py::arg("seeds"),
      py::arg("epochs"), py::arg("batch_size"), py::arg("step0"), py::arg("record_every"),
      py::arg("loss_history"), py::arg("acc_history"), py::arg("device") = 0,
      py::arg("device_of") = py::none(), "_cuda.net_train_epochs' argument checks (see cuda_eval_args).");
  m.def(
      "cuda_deepfool_args",
      [](py::handle spec, py::handle theta, py::handle X, py::handle pert, py::handle iters,
         py::handle status, int device, py::object device_of) {
        const auto ctx = context_from(device, device_of);
        const auto s = fs_py::shape_from(spec);
        py::dict d;
        auto fill = [&](auto a) { d["S"] = a.S, d["N"] = a.N, d["x_net_stride"] = a.x_net_stride; };
        if (is_float64(theta, "theta"))
          fill(fs_py::deepfool_args<double>(GpuArrays{ctx}, s, theta, X, pert, iters, status));
        else fill(fs_py::deepfool_args<float>(GpuArrays{ctx}, s, theta, X, pert, iters, status));
        return d;
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("perturbation_out"),
      py::arg("iterations_out"), py::arg("status_out"), py::arg("device") = 0,
      py::arg("device_of") = py::none(), "_cuda.net_deepfool's argument checks (see cuda_eval_args).");
  m.def(
      "train_epochs",
      [](py::handle spec, int64_t loss_kind, int64_t shuffle, py::handle adam, py::handle X,
         py::handle Y, py::handle theta, py::handle m_, py::handle v, py::handle seeds,
         int64_t epochs, int64_t batch_size, int64_t step0, int64_t record_every,
         py::handle loss_hist, py::handle acc_hist, int64_t epoch_begin, int64_t epoch_end,
         int64_t emulate_threads) {
        const auto s = fs_py::shape_from(spec);
        if (fs_py::is_float64(theta, "theta"))
          train_epochs_impl<double>(s, loss_kind, shuffle, adam, X, Y, theta, m_, v, seeds, epochs,
                                    batch_size, step0, record_every, loss_hist, acc_hist, epoch_begin,
                                    epoch_end, emulate_threads);
        else
          train_epochs_impl<float>(s, loss_kind, shuffle, adam, X, Y, theta, m_, v, seeds, epochs,
                                   batch_size, step0, record_every, loss_hist, acc_hist, epoch_begin,
                                   epoch_end, emulate_threads);
      },
      py::arg("spec"), py::arg("loss_kind"), py::arg("shuffle"), py::arg("adam"), py::arg("X"),
      py::arg("Y"), py::arg("theta"), py::arg("adam_m"), py::arg("adam_v"), py::arg("seeds"),
      py::arg("epochs"), py::arg("batch_size"), py::arg("step0"), py::arg("record_every"),
      py::arg("loss_history"), py::arg("acc_history"), py::arg("epoch_begin"), py::arg("epoch_end"),
      py::arg("emulate_threads") = 128,
      "The generic CUDA training kernel (EmulatedBlock, NumPy arrays as _native.net_train) for "
      "epochs [epoch_begin, epoch_end) of the run: _cuda.net_train_epochs' chunks on the CPU.");
}
