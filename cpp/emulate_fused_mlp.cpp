// _native.cuda_emulation.fused_mlp_train: the fused MLP training kernel
// (src/falsestruct/cuda/fused_mlp_train.h) run on the CPU by EmulatedThreads, for the tests.
#include <pybind11/pybind11.h>

#include "array_checks.h"
#include "falsestruct/cuda/fused_mlp_train.h"
#include "network_args.h"

namespace py = pybind11;

namespace {

constexpr int kMaxEmulatedNetworks = 1 << 16;  // a test-sized grid

template <class T>
int64_t fused_train_impl(const fs::NetShape& s, int64_t loss_kind, int64_t shuffle, py::handle adam,
                         py::handle X, py::handle Y, py::handle theta, py::handle m, py::handle v,
                         py::handle seeds, int64_t epochs, int64_t batch_size, int64_t step0,
                         int64_t record_every, py::handle loss_hist, py::handle acc_hist,
                         int64_t epoch_begin, int64_t epoch_end, int64_t threads_per_net,
                         int64_t nets_per_block, bool reverse_threads) {
  auto a = fs_py::train_args_from_python<T>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds,
                                            epochs, batch_size, step0, record_every, loss_hist,
                                            acc_hist);
  const int S = fs_py::int_option(fs_py::leading_dim(theta, "theta"), "theta networks", 0,
                                  kMaxEmulatedNetworks);
  a.epoch_end = epoch_end < 0 ? a.epochs : fs_py::int_option(epoch_end, "epoch_end", 0, a.epochs);
  a.epoch_begin = fs_py::int_option(epoch_begin, "epoch_begin", 0, a.epoch_end);
  if (!fs::cuda::fused_mlp_train_supported(a))
    throw py::value_error(
        "spec: the fused kernel takes one ReLU dense hidden layer of at most 512 units and a "
        "linear dense output layer (at most 4 inputs and 10 logits) whose shared memory fits");
  fs::cuda::FusedMlpConfig c = fs::cuda::fused_mlp_config<T>(s, a.loss, a.shuffle, a.B, a.N, S);
  if (threads_per_net != 0)
    c.threads_per_net = fs_py::int_option(threads_per_net, "threads_per_net", 1, fs::cuda::kFusedMaxThreads);
  if (nets_per_block != 0)
    c.nets_per_block = fs_py::int_option(nets_per_block, "nets_per_block", 1, fs::cuda::kFusedMaxThreads);
  if (const char* err = fs::cuda::fused_mlp_config_error<T>(s, a.loss, a.shuffle, a.B, a.N, c))
    throw py::value_error(std::string(threads_per_net != 0 || nets_per_block != 0
                                          ? "threads_per_net/nets_per_block: "
                                          : "spec: ") + err);
  {
    py::gil_scoped_release release;
    fs::cuda::fused_mlp_train_emulate(a, S, c, reverse_threads);
  }
  return static_cast<int64_t>(S) * (a.epoch_end - a.epoch_begin);
}

}  // namespace

void register_fused_mlp_emulation(py::module_& m) {
  m.def(
      "fused_mlp_train",
      [](py::handle spec, int64_t loss_kind, int64_t shuffle, py::handle adam, py::handle X,
         py::handle Y, py::handle theta, py::handle adam_m, py::handle adam_v, py::handle seeds,
         int64_t epochs, int64_t batch_size, int64_t step0, int64_t record_every,
         py::handle loss_hist, py::handle acc_hist, int64_t epoch_begin, int64_t epoch_end,
         int64_t threads_per_net, int64_t nets_per_block, bool reverse_threads) {
        const auto s = fs_py::shape_from(spec);
        if (fs_py::is_float64(theta, "theta"))
          return fused_train_impl<double>(s, loss_kind, shuffle, adam, X, Y, theta, adam_m, adam_v,
                                          seeds, epochs, batch_size, step0, record_every, loss_hist,
                                          acc_hist, epoch_begin, epoch_end, threads_per_net,
                                          nets_per_block, reverse_threads);
        return fused_train_impl<float>(s, loss_kind, shuffle, adam, X, Y, theta, adam_m, adam_v,
                                       seeds, epochs, batch_size, step0, record_every, loss_hist,
                                       acc_hist, epoch_begin, epoch_end, threads_per_net,
                                       nets_per_block, reverse_threads);
      },
      py::arg("spec"), py::arg("loss_kind"), py::arg("shuffle"), py::arg("adam"), py::arg("X"),
      py::arg("Y"), py::arg("theta"), py::arg("adam_m"), py::arg("adam_v"), py::arg("seeds"),
      py::arg("epochs"), py::arg("batch_size"), py::arg("step0"), py::arg("record_every"),
      py::arg("loss_history"), py::arg("acc_history"), py::arg("epoch_begin") = 0,
      py::arg("epoch_end") = -1, py::arg("threads_per_net") = 0, py::arg("nets_per_block") = 0,
      py::arg("reverse_threads") = false,
      "The GPU's fused MLP training kernel emulated on the CPU: the contract of _native.net_train "
      "(arrays checked the same way) for epochs [epoch_begin, epoch_end) of a run of `epochs` "
      "(epoch_end -1: through the end); threads_per_net and nets_per_block 0 take the GPU's "
      "launch configuration; reverse_threads runs each phase's threads last to first. "
      "ValueError for a network outside the kernel's tiles. Returns the network-epochs run.");
}
