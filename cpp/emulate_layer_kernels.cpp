// CPU emulation of the layer-wise CNN kernels (src/falsestruct/cuda/layer_kernels.h): the same
// step driver and kernel bodies as src/cuda/layer_kernels.cu, each elementwise kernel a loop
// over (network, element) and each product's blocks run thread by thread, phase by phase
// between the barriers (load the shared slices, accumulate, store), with the GPU's block and
// thread index mapping. Bound as _native.cuda_emulation.layerwise_train / layerwise_forward.
#include <pybind11/pybind11.h>

#include <vector>

#include "falsestruct/cuda/layer_kernels.h"
#include "network_args.h"

namespace py = pybind11;

namespace {

namespace lw = fs::layerwise;

struct EmulatedExec {
  int64_t target_blocks;
  bool ok() const { return true; }
  template <class F>
  void each(int S, int64_t n, const F& f) {
    for (int net = 0; net < S; ++net)
      for (int64_t e = 0; e < n; ++e) f(net, e);
  }
  template <class P, class T>
  void gemm(int S, const P& p, const lw::GemmGrid& g, T* partial, int64_t net_stride) {
    lw::GemmShared<T> shared;
    std::vector<lw::GemmAcc<T>> acc(lw::kGemmThreads);
    for (int net = 0; net < S; ++net)
      for (int b = 0; b < g.blocks(); ++b) {
        const lw::GemmBlockPos pos = lw::gemm_block_pos(g, b);
        for (auto& a : acc) a = lw::GemmAcc<T>{};
        for (int64_t k0 = pos.k_begin; k0 < pos.k_end; k0 += lw::kTileK) {
          for (int tid = 0; tid < lw::kGemmThreads; ++tid) lw::gemm_load_slice(p, net, g, pos, k0, tid, shared);
          for (int tid = 0; tid < lw::kGemmThreads; ++tid) lw::gemm_accumulate_slice(shared, tid, acc[tid]);
        }
        for (int tid = 0; tid < lw::kGemmThreads; ++tid)
          lw::gemm_store(p, net, g, pos, tid, acc[tid], partial + net_stride * net);
      }
  }
};

int64_t split_target_from(int64_t split_target) {
  if (split_target < 1 || split_target > (int64_t(1) << 20))
    throw py::value_error("split_target: must be >= 1 and <= 1048576, got " + std::to_string(split_target));
  return split_target;
}

template <class T>
int64_t train_impl(const fs::NetShape& s, int64_t loss_kind, int64_t shuffle, py::handle adam, py::handle X,
                   py::handle Y, py::handle theta, py::handle m, py::handle v, py::handle seeds, int64_t epochs,
                   int64_t batch_size, int64_t step0, int64_t record_every, py::handle loss_hist,
                   py::handle acc_hist, int64_t split_target, int64_t epoch_chunk) {
  const auto a = fs_py::train_args_from_python<T>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds, epochs,
                                                  batch_size, step0, record_every, loss_hist, acc_hist);
  const int S = fs_py::leading_dim(theta, "theta");
  if (epoch_chunk < 0) throw py::value_error("epoch_chunk: must be >= 0, got " + std::to_string(epoch_chunk));
  EmulatedExec ex{split_target_from(split_target)};
  const int64_t partial = lw::partial_scalars<T>(s, a.B, true, ex.target_blocks);
  const auto sizes = lw::layerwise_sizes(s, a.B, a.N, partial);
  std::vector<T> scalars(static_cast<size_t>(sizes.scalars_per_net * S));
  std::vector<int> ints(static_cast<size_t>(sizes.ints_per_net * S));
  std::vector<double> sums(2 * static_cast<size_t>(S));
  const auto buf = lw::carve_buffers(sizes, scalars.data(), ints.data(), sums.data());
  const int chunk = epoch_chunk > 0 && epoch_chunk < a.epochs ? static_cast<int>(epoch_chunk) : a.epochs;
  {
    py::gil_scoped_release unlocked;
    for (int e0 = 0; e0 < a.epochs; e0 += chunk)
      lw::layerwise_train_epochs(ex, a, S, e0, a.epochs - e0 < chunk ? a.epochs : e0 + chunk, buf);
  }
  return static_cast<int64_t>(S) * a.epochs;
}

template <class T>
void forward_impl(const fs::NetShape& s, py::handle theta, py::handle X, py::handle out, int64_t split_target) {
  const auto a = fs_py::forward_args_from_python<T>(s, theta, X, out);
  if (a.N == 0 || a.S == 0) return;
  EmulatedExec ex{split_target_from(split_target)};
  const int rows = lw::forward_chunk_rows(s, a.S, a.N);
  const int64_t partial = lw::partial_scalars<T>(s, rows, false, ex.target_blocks);
  const auto sizes = lw::layerwise_sizes(s, rows, 0, partial);
  std::vector<T> scalars(static_cast<size_t>(sizes.scalars_per_net * a.S));
  std::vector<int> ints(static_cast<size_t>(sizes.ints_per_net * a.S));
  const auto buf = lw::carve_buffers(sizes, scalars.data(), ints.data(), static_cast<double*>(nullptr));
  py::gil_scoped_release unlocked;
  lw::layerwise_forward_rows(ex, s, a.theta, a.S, a.X, a.x_net_stride, a.N, rows, a.out, buf);
}

}  // namespace

void register_layer_kernels_emulation(py::module_& m) {
  m.def(
      "layerwise_train",
      [](py::handle spec, int64_t loss_kind, int64_t shuffle, py::handle adam, py::handle X, py::handle Y,
         py::handle theta, py::handle m, py::handle v, py::handle seeds, int64_t epochs, int64_t batch_size,
         int64_t step0, int64_t record_every, py::handle loss_hist, py::handle acc_hist, int64_t split_target,
         int64_t epoch_chunk) {
        const auto s = fs_py::shape_from(spec);
        if (fs_py::is_float64(theta, "theta"))
          return train_impl<double>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds, epochs, batch_size,
                                    step0, record_every, loss_hist, acc_hist, split_target, epoch_chunk);
        return train_impl<float>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds, epochs, batch_size, step0,
                                 record_every, loss_hist, acc_hist, split_target, epoch_chunk);
      },
      py::arg("spec"), py::arg("loss_kind"), py::arg("shuffle"), py::arg("adam"), py::arg("X"), py::arg("Y"),
      py::arg("theta"), py::arg("adam_m"), py::arg("adam_v"), py::arg("seeds"), py::arg("epochs"),
      py::arg("batch_size"), py::arg("step0"), py::arg("record_every"), py::arg("loss_history"),
      py::arg("acc_history"), py::kw_only(), py::arg("split_target") = lw::kSplitTargetBlocks, py::arg("epoch_chunk") = 0,
      "The CUDA engine's layer-wise training (one network's step over many blocks: per-layer "
      "kernels, tiled products split over the reduction) emulated on the CPU. Arguments and "
      "results as _native.net_train (validated the same way; no progress or Ctrl-C). split_target: "
      "blocks per network the products' reductions are split up to (the GPU's value by default; "
      "others only change the partial sums' rounding); epoch_chunk > 0: launched in "
      "chunks of that many epochs, as the engine does. Returns the number of network-epochs.");
  m.def(
      "layerwise_forward",
      [](py::handle spec, py::handle theta, py::handle X, py::handle out, int64_t split_target) {
        const auto s = fs_py::shape_from(spec);
        if (fs_py::is_float64(theta, "theta")) forward_impl<double>(s, theta, X, out, split_target);
        else forward_impl<float>(s, theta, X, out, split_target);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("out"), py::kw_only(), py::arg("split_target") = lw::kSplitTargetBlocks,
      "The CUDA engine's layer-wise forward emulated on the CPU: logits out (S, N, K) T of X (N, d) "
      "or (S, N, d) T for theta (S, P) T, as _native.net_forward.");
}
