// CPU emulation of the per-point kernels (src/falsestruct/cuda/point_kernels.h): the grid of
// src/cuda/point_kernels.cu run block by block, each unit's weights staged into a per-block
// buffer (shared memory, poisoned with NaN before staging) and then every thread's points
// run one after the other with the thread's own scratch (the kernel's local arrays). Bound as
// _native.cuda_emulation.point_forward / point_input_grads / point_deepfool, with the
// arguments and contracts of _native.net_forward / net_logit_input_grads / net_deepfool, and
// point_flipping_scale (the baselines' search of attacks/baselines.py).
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "falsestruct/cuda/point_kernels.h"
#include "network_args.h"

namespace py = pybind11;

namespace {

namespace fc = fs::cuda;

// The emulated launch: what the CUDA kernel's geometry would be with `threads` per block on a
// device of sm_count SMs and `shared_bytes` of shared memory per block.
struct EmulatedDevice {
  int threads;
  int64_t sm_count;
  int64_t shared_bytes;
};

EmulatedDevice device_from(int64_t threads, int64_t sm_count, int64_t shared_bytes) {
  EmulatedDevice e;
  e.threads = fs_py::int_option(threads, "threads_per_block", 1, 1024);
  e.sm_count = fs_py::int_option(sm_count, "sm_count", 1, 65536);
  e.shared_bytes = fs_py::int_option(shared_bytes, "shared_bytes", 0, fs::kMaxIntCount);
  return e;
}

template <class T>
void require_supported(const fs::NetShape& s, const EmulatedDevice& dev) {
  if (!fc::point_kernels_supported<T>(s, dev.shared_bytes))
    throw py::value_error("spec: the per-point kernels take dense ReLU MLPs whose weights fit in shared_bytes=" +
                          std::to_string(dev.shared_bytes) + " bytes of shared memory (this one needs " +
                          std::to_string(fc::point_shared_bytes<T>(s)) + ") and at most " +
                          std::to_string(fc::kPointMaxScratch) + " scratch scalars per point (this one " +
                          std::to_string(fc::point_scratch_scalars(s, true)) + ")");
}

// point_kernel of point_kernels.cu, block by block and thread by thread.
template <class T, class Op>
void emulate_point_kernel(const fs::NetShape& s, const T* theta, int S, int N, const Op& op,
                          int64_t scalars_per_thread, int64_t ints_per_thread, const EmulatedDevice& dev) {
  if (S == 0 || N == 0) return;
  const int64_t max_blocks = dev.sm_count * fc::kPointBlocksPerSm;
  const fc::PointGrid g = fc::make_point_grid(S, N, dev.threads, max_blocks);
  const int64_t blocks = fc::point_grid_blocks(g, max_blocks);
  std::vector<T> scratch(blocks * dev.threads * scalars_per_thread);
  std::vector<int> ints(blocks * dev.threads * ints_per_thread);
  std::vector<T> shared(s.n_params);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t u = b; u < g.units(); u += blocks) {
      const int net = static_cast<int>(u / g.blocks_per_net);
      std::fill(shared.begin(), shared.end(), std::numeric_limits<T>::quiet_NaN());
      for (int tid = 0; tid < dev.threads; ++tid)
        fc::stage_weights(tid, dev.threads, theta + s.n_params * net, s.n_params, shared.data());
      for (int tid = 0; tid < dev.threads; ++tid) {
        const int64_t slot = b * dev.threads + tid;
        fc::for_each_point_of_thread(g, u, tid, [&](int n_net, int n) {
          op(shared.data(), n_net, n, scratch.data() + slot * scalars_per_thread, ints.data() + slot * ints_per_thread);
        });
      }
    }
}

template <class T>
void forward_impl(const fs::NetShape& s, py::handle theta, py::handle X, py::handle out, const EmulatedDevice& dev) {
  const auto a = fs_py::forward_args_from_python<T>(s, theta, X, out);
  require_supported<T>(s, dev);
  fc::with_point_path(s, [&](auto path) {
    constexpr int D = decltype(path)::value;
    const fc::PointForwardOp<T, D> op{s, a.X, a.x_net_stride, a.N, a.out};
    emulate_point_kernel(s, a.theta, a.S, a.N, op, fc::point_scratch_scalars(s, false), 0, dev);
  });
}

template <class T>
void input_grads_impl(const fs::NetShape& s, py::handle theta, py::handle X, py::handle out,
                      const EmulatedDevice& dev) {
  const auto a = fs_py::forward_args<T>(fs_py::NumpyArrays{}, s, theta, X, out, /*logit_input_grads=*/true);
  require_supported<T>(s, dev);
  fc::with_point_path(s, [&](auto path) {
    constexpr int D = decltype(path)::value;
    const fc::PointInputGradsOp<T, D> op{s, a.X, a.x_net_stride, a.N, a.out};
    emulate_point_kernel(s, a.theta, a.S, a.N, op, fc::point_scratch_scalars(s, false), 0, dev);
  });
}

template <class T>
void deepfool_impl(const fs::NetShape& s, py::handle theta, py::handle X, py::handle pert, py::handle iters,
                   py::handle status, const fs::DeepFoolOptions& o, const EmulatedDevice& dev) {
  fs_py::check_representable<T>(1.0 + o.overshoot, "overshoot");
  if (o.clip) {
    fs_py::check_representable<T>(o.lo, "clip lo");
    fs_py::check_representable<T>(o.hi, "clip hi");
  }
  const auto a = fs_py::deepfool_args<T>(fs_py::NumpyArrays{}, s, theta, X, pert, iters, status);
  require_supported<T>(s, dev);
  fc::with_point_path(s, [&](auto path) {
    constexpr int D = decltype(path)::value;
    const fc::PointDeepFoolOp<T, D> op{s, a.X, a.x_net_stride, a.N, fc::PointDeepFoolParams<T>::from(o),
                                       a.pert, a.iters, a.status};
    emulate_point_kernel(s, a.theta, a.S, a.N, op, fc::point_scratch_scalars(s, true),
                         fc::point_scratch_ints(s, o.candidates), dev);
  });
}

template <class T>
void flipping_scale_impl(const fs::NetShape& s, py::handle theta, py::handle X, py::handle directions,
                         double rtol, int64_t max_doublings, py::handle r_out, py::handle status,
                         py::handle evals, const EmulatedDevice& dev) {
  if (!(std::isfinite(rtol) && rtol > 0 && rtol < 1))
    throw py::value_error("rtol: must be in (0, 1), got " + fs_py::float_str(rtol));
  const int doublings = fs_py::int_option(max_doublings, "max_doublings", 0, fs::kMaxIntCount);
  const auto a =
      fs_py::flipping_scale_args<T>(fs_py::NumpyArrays{}, s, theta, X, directions, r_out, status, evals);
  require_supported<T>(s, dev);
  fc::with_point_path(s, [&](auto path) {
    constexpr int D = decltype(path)::value;
    const fc::PointFlippingScaleOp<T, D> op{s, a.X, a.x_net_stride, a.N, a.directions, rtol, doublings,
                                            a.r, a.status, a.evals};
    emulate_point_kernel(s, a.theta, a.S, a.N, op, fc::point_scratch_scalars(s, true), 0, dev);
  });
}

// The default shared memory per block: an H100/H200's opt-in limit (227 KiB).
constexpr int64_t kDefaultSharedBytes = 232448;

#define FS_EMULATED_DEVICE_DOC                                                                      \
  " Emulated launch: threads_per_block in [1, 1024] (the GPU uses 128), a device of sm_count SMs " \
  "(the grid's size) with shared_bytes of shared memory per block; ValueError naming spec for a "   \
  "network the per-point kernels do not take."

}  // namespace

void register_point_kernels_emulation(py::module_& m) {
  m.def(
      "point_forward",
      [](py::handle spec, py::handle theta, py::handle X, py::handle out, int64_t threads_per_block,
         int64_t sm_count, int64_t shared_bytes) {
        const auto s = fs_py::shape_from(spec);
        const auto dev = device_from(threads_per_block, sm_count, shared_bytes);
        if (fs_py::is_float64(theta, "theta")) forward_impl<double>(s, theta, X, out, dev);
        else forward_impl<float>(s, theta, X, out, dev);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("out"), py::arg("threads_per_block") = 128,
      py::arg("sm_count") = 2, py::arg("shared_bytes") = kDefaultSharedBytes,
      "The per-point forward kernel on the CPU: the contract of _native.net_forward." FS_EMULATED_DEVICE_DOC);
  m.def(
      "point_input_grads",
      [](py::handle spec, py::handle theta, py::handle X, py::handle out, int64_t threads_per_block,
         int64_t sm_count, int64_t shared_bytes) {
        const auto s = fs_py::shape_from(spec);
        const auto dev = device_from(threads_per_block, sm_count, shared_bytes);
        if (fs_py::is_float64(theta, "theta")) input_grads_impl<double>(s, theta, X, out, dev);
        else input_grads_impl<float>(s, theta, X, out, dev);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("out"), py::arg("threads_per_block") = 128,
      py::arg("sm_count") = 2, py::arg("shared_bytes") = kDefaultSharedBytes,
      "The per-point logit input gradients on the CPU: the contract of _native.net_logit_input_grads."
      FS_EMULATED_DEVICE_DOC);
  m.def(
      "point_deepfool",
      [](py::handle spec, py::handle theta, py::handle X, py::handle pert, py::handle iters, py::handle status,
         double overshoot, int64_t max_iter, bool linf, int64_t candidates, bool foolbox, py::object clip,
         int64_t threads_per_block, int64_t sm_count, int64_t shared_bytes) {
        const auto s = fs_py::shape_from(spec);
        const auto o = fs_py::deepfool_options_from(s, overshoot, max_iter, linf, candidates, foolbox, clip);
        const auto dev = device_from(threads_per_block, sm_count, shared_bytes);
        if (fs_py::is_float64(theta, "theta")) deepfool_impl<double>(s, theta, X, pert, iters, status, o, dev);
        else deepfool_impl<float>(s, theta, X, pert, iters, status, o, dev);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("perturbation_out"), py::arg("iterations_out"),
      py::arg("status_out"), py::arg("overshoot"), py::arg("max_iter"), py::arg("linf"), py::arg("candidates"),
      py::arg("foolbox"), py::arg("clip") = py::none(), py::arg("threads_per_block") = 128,
      py::arg("sm_count") = 2, py::arg("shared_bytes") = kDefaultSharedBytes,
      "The per-point DeepFool kernel on the CPU: the contract of _native.net_deepfool (no progress, "
      "not interruptible)." FS_EMULATED_DEVICE_DOC);
  m.def(
      "point_flipping_scale",
      [](py::handle spec, py::handle theta, py::handle X, py::handle directions, double rtol,
         int64_t max_doublings, py::handle pert, py::handle status, py::handle evals,
         int64_t threads_per_block, int64_t sm_count, int64_t shared_bytes) {
        const auto s = fs_py::shape_from(spec);
        const auto dev = device_from(threads_per_block, sm_count, shared_bytes);
        if (fs_py::is_float64(theta, "theta"))
          flipping_scale_impl<double>(s, theta, X, directions, rtol, max_doublings, pert, status, evals, dev);
        else
          flipping_scale_impl<float>(s, theta, X, directions, rtol, max_doublings, pert, status, evals, dev);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("directions"), py::arg("rtol"),
      py::arg("max_doublings"), py::arg("perturbation_out"), py::arg("status_out"),
      py::arg("evaluations_out"), py::arg("threads_per_block") = 128, py::arg("sm_count") = 2,
      py::arg("shared_bytes") = kDefaultSharedBytes,
      "The baselines' search (falsestruct_fast.attacks.baselines.smallest_flipping_scale) per point "
      "on the CPU: X (N, d) or (S, N, d) T, directions (S, N, d) float64, rtol in (0, 1), "
      "max_doublings >= 0; writes perturbation (S, N, d) T, status and evaluations (S, N) int32."
      FS_EMULATED_DEVICE_DOC);
}
