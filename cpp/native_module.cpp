// pybind11 bindings of the CPU engine (module falsestruct_fast._native).
//
// These are the low-level entry points used by the Python API; they check array structure
// (dtype, shape, contiguity, writeability) and release the GIL while kernels run. Value
// checks (NaN, label ranges, option names) are done once in the Python layer.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <thread>

#include "array_checks.h"
#include "network_args.h"
#include "falsestruct/network_host.h"

namespace py = pybind11;
using fs_py::checked_data;
using fs_py::data_array;
using fs_py::is_float64;
using fs_py::shape_from;

#ifndef FS_SOURCE_HASH
#define FS_SOURCE_HASH "unknown"
#endif

namespace {

int threads_or_default(int n_threads) {
  if (n_threads > 0) return n_threads;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

// Called on the calling thread while workers run: re-acquires the GIL for Ctrl-C and the
// progress callback progress(done, total). A KeyboardInterrupt or an exception from the
// callback is stored in `pending` and cancels the run.
std::function<bool()> python_poll(fs::RunControl& control, py::object progress, int64_t total,
                                  std::exception_ptr& pending) {
  return [&control, progress, total, &pending]() -> bool {
    py::gil_scoped_acquire gil;
    try {
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      if (!progress.is_none()) progress(control.units_done.load(), total);
      return true;
    } catch (...) {
      pending = std::current_exception();
      return false;
    }
  };
}

template <class T>
void deepfool_impl(const fs::NetShape& s, py::array theta, py::array X, py::array pert,
                   py::array iters, py::array status, const fs::DeepFoolOptions& o,
                   py::object progress, int n_threads, int emulate) {
  const int S = fs_py::leading_dim(theta, "theta");
  const T* th = checked_data<T>(theta, "theta", {-1, s.n_params}, false);
  int64_t xs;
  int N;
  const T* x = data_array<T>(X, "X", S, s.width[0], &xs, &N);
  if (N < 1) throw py::value_error("X: no points");
  T* p = checked_data<T>(pert, "perturbation_out", {S, N, s.width[0]}, true);
  int* it = checked_data<int>(iters, "iterations_out", {S, N}, true);
  int* st = checked_data<int>(status, "status_out", {S, N}, true);
  if (o.max_iter < 0) throw py::value_error("max_iter: must be >= 0");
  if (!(o.overshoot >= 0)) throw py::value_error("overshoot: must be >= 0");
  const int K = s.n_logits();
  if (K > 1 && (o.candidates < 1 || o.candidates > K - 1))
    throw py::value_error("candidates: must be in [1, " + std::to_string(K - 1) + "]");
  if (o.clip && !(o.lo < o.hi)) throw py::value_error("clip: expected lo < hi");
  fs::RunControl control;
  std::exception_ptr pending;
  const auto poll = python_poll(control, progress, static_cast<int64_t>(S) * N, pending);
  {
    py::gil_scoped_release release;
    fs::deepfool_host(s, th, S, x, xs, N, o, p, it, st, n_threads, control, poll, 0.5, emulate);
  }
  if (pending) std::rethrow_exception(pending);
  if (!progress.is_none()) progress(control.units_done.load(), static_cast<int64_t>(S) * N);
}

template <class T>
void logit_input_grads_impl(const fs::NetShape& s, py::array theta, py::array X, py::array out,
                            int n_threads, int emulate) {
  const int S = fs_py::leading_dim(theta, "theta");
  const T* th = checked_data<T>(theta, "theta", {-1, s.n_params}, false);
  int64_t xs;
  int N;
  const T* x = data_array<T>(X, "X", S, s.width[0], &xs, &N);
  T* o = checked_data<T>(out, "out", {S, N, s.n_logits(), s.width[0]}, true);
  py::gil_scoped_release release;
  fs::logit_input_grads_host(s, th, S, x, xs, N, o, n_threads, emulate);
}

template <class T>
void init_impl(const fs::NetShape& s, py::array seeds, py::array theta, int n_threads) {
  const int S = fs_py::leading_dim(seeds, "seeds");
  const uint64_t* sd = checked_data<uint64_t>(seeds, "seeds", {-1}, false);
  T* th = checked_data<T>(theta, "theta", {S, s.n_params}, true);
  py::gil_scoped_release release;
  fs::net_init_host(s, sd, S, th, n_threads);
}

template <class T>
void forward_impl(const fs::NetShape& s, py::array theta, py::array X, py::array out,
                  int n_threads, int emulate) {
  const auto a = fs_py::forward_args_from_python<T>(s, theta, X, out);
  py::gil_scoped_release release;
  fs::net_forward_host(s, a.theta, a.S, a.X, a.x_net_stride, a.N, a.out, n_threads, emulate);
}

template <class T>
void loss_and_grad_impl(const fs::NetShape& s, int loss_kind, py::array theta, py::array X,
                        py::array Y, py::array loss_out, py::array grad_out,
                        py::object input_grad_out, int n_threads, int emulate) {
  fs_py::check_loss_kind(loss_kind);
  const auto kind = static_cast<fs::LossKind>(loss_kind);
  const int S = fs_py::leading_dim(theta, "theta");
  const T* th = checked_data<T>(theta, "theta", {-1, s.n_params}, false);
  int64_t xs, ys;
  int N, NY;
  const T* x = data_array<T>(X, "X", S, s.width[0], &xs, &N);
  const T* y = data_array<T>(Y, "Y", S, fs::targets_per_sample(kind, s.n_logits()), &ys, &NY);
  if (NY != N) throw py::value_error("Y: number of rows differs from X");
  if (N < 1) throw py::value_error("X: no data rows");
  if (kind == fs::LossKind::SoftmaxCE)
    fs_py::check_class_labels(y, (ys ? S : 1) * static_cast<int64_t>(N), s.n_logits(), "Y");
  T* lo = checked_data<T>(loss_out, "loss_out", {S}, true);
  T* go = checked_data<T>(grad_out, "grad_out", {S, s.n_params}, true);
  T* ig = nullptr;
  if (!input_grad_out.is_none())
    ig = checked_data<T>(input_grad_out.cast<py::array>(), "input_grad_out", {S, N, s.width[0]}, true);
  py::gil_scoped_release release;
  fs::net_loss_and_grad_host(s, kind, th, S, x, xs, y, ys, N, lo, go, ig, n_threads, emulate);
}

template <class T>
int64_t train_impl(const fs::NetShape& s, int loss_kind, int shuffle, py::tuple adam, py::array X,
                   py::array Y, py::array theta, py::array m, py::array v, py::array seeds,
                   int epochs, int batch_size, int64_t step0, int record_every,
                   py::array loss_hist, py::array acc_hist, int n_threads,
                   py::object progress, double progress_seconds, int emulate) {
  const auto a = fs_py::train_args_from_python<T>(s, loss_kind, shuffle, adam, X, Y, theta, m, v,
                                                  seeds, epochs, batch_size, step0, record_every,
                                                  loss_hist, acc_hist);
  const int S = fs_py::leading_dim(theta, "theta");
  fs::RunControl control;
  const int64_t total = static_cast<int64_t>(S) * epochs;
  std::exception_ptr pending;
  const auto poll = python_poll(control, progress, total, pending);
  {
    py::gil_scoped_release release;
    fs::net_train_host(a, S, threads_or_default(n_threads), control, poll, progress_seconds, emulate);
  }
  if (pending) std::rethrow_exception(pending);
  if (!progress.is_none()) progress(control.units_done.load(), total);
  return control.units_done.load();
}

}  // namespace

PYBIND11_MODULE(_native, mod) {
  mod.doc() = "falsestruct_fast CPU engine (C++ kernels, threads over networks).";
  mod.def("source_hash", [] { return std::string(FS_SOURCE_HASH); },
          "SHA-256 of the kernel and binding sources this module was compiled from.");
  mod.def("default_threads", [] { return threads_or_default(0); });
  mod.def(
      "scratch_cache_bytes", [] { return fs::ScratchCache::process().kept_bytes(); },
      "Bytes of CPU workspace kept between calls (ScratchCache).");
  mod.def(
      "release_scratch_cache", [] { return fs::ScratchCache::process().clear(); },
      "Frees the CPU workspace kept between calls; returns the bytes freed.");
  mod.def("n_params", [](const std::vector<int>& spec) { return shape_from(spec).n_params; });
  mod.def(
      "workspace_scalars_per_row",
      [](const std::vector<int>& spec) {
        return fs::NetWorkspace<float>::scalars_per_row(shape_from(spec));
      },
      "Scalars of native workspace one batch row needs (activations, gradients, conv padding).");

  mod.def(
      "net_init",
      [](const std::vector<int>& spec, py::array seeds, py::array theta, int n_threads) {
        const auto s = shape_from(spec);
        if (is_float64(theta)) init_impl<double>(s, seeds, theta, threads_or_default(n_threads));
        else init_impl<float>(s, seeds, theta, threads_or_default(n_threads));
      },
      py::arg("spec"), py::arg("seeds"), py::arg("theta"), py::arg("n_threads") = 0,
      "Glorot-uniform weights, zero biases into theta (S, P) for seeds (S,) uint64.");

  mod.def(
      "net_forward",
      [](const std::vector<int>& spec, py::array theta, py::array X, py::array out, int n_threads,
         int emulate_threads) {
        const auto s = shape_from(spec);
        if (is_float64(theta)) forward_impl<double>(s, theta, X, out, threads_or_default(n_threads), emulate_threads);
        else forward_impl<float>(s, theta, X, out, threads_or_default(n_threads), emulate_threads);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("out"), py::arg("n_threads") = 0,
      py::arg("emulate_threads") = 0,
      "Logits out (S, N, K) of X (N, d) or (S, N, d) for parameters theta (S, P).");

  mod.def(
      "net_loss_and_grad",
      [](const std::vector<int>& spec, int loss_kind, py::array theta, py::array X, py::array Y,
         py::array loss_out, py::array grad_out, py::object input_grad_out, int n_threads,
         int emulate_threads) {
        const auto s = shape_from(spec);
        if (is_float64(theta))
          loss_and_grad_impl<double>(s, loss_kind, theta, X, Y, loss_out, grad_out, input_grad_out,
                                     threads_or_default(n_threads), emulate_threads);
        else
          loss_and_grad_impl<float>(s, loss_kind, theta, X, Y, loss_out, grad_out, input_grad_out,
                                    threads_or_default(n_threads), emulate_threads);
      },
      py::arg("spec"), py::arg("loss_kind"), py::arg("theta"), py::arg("X"), py::arg("Y"),
      py::arg("loss_out"), py::arg("grad_out"), py::arg("input_grad_out") = py::none(),
      py::arg("n_threads") = 0, py::arg("emulate_threads") = 0,
      "Mean loss (S,), gradient (S, P) and optionally input gradient (S, N, d) over all rows.");

  mod.def(
      "net_deepfool",
      [](const std::vector<int>& spec, py::array theta, py::array X, py::array pert, py::array iters,
         py::array status, double overshoot, int max_iter, bool linf, int candidates, bool foolbox,
         py::object clip, int n_threads, py::object progress, int emulate_threads) {
        const auto s = shape_from(spec);
        fs::DeepFoolOptions o;
        o.overshoot = overshoot;
        o.max_iter = max_iter;
        o.linf = linf;
        o.candidates = candidates;
        o.foolbox = foolbox;
        if (!clip.is_none()) {
          const auto box = clip.cast<std::pair<double, double>>();
          o.clip = true;
          o.lo = box.first;
          o.hi = box.second;
        }
        n_threads = threads_or_default(n_threads);
        if (is_float64(theta))
          deepfool_impl<double>(s, theta, X, pert, iters, status, o, progress, n_threads, emulate_threads);
        else
          deepfool_impl<float>(s, theta, X, pert, iters, status, o, progress, n_threads, emulate_threads);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("perturbation_out"),
      py::arg("iterations_out"), py::arg("status_out"), py::arg("overshoot"), py::arg("max_iter"),
      py::arg("linf"), py::arg("candidates"), py::arg("foolbox"), py::arg("clip") = py::none(),
      py::arg("n_threads") = 0, py::arg("progress") = py::none(), py::arg("emulate_threads") = 0,
      "DeepFool on every point of X (N, d) or (S, N, d) for each network: perturbation (S, N, d), "
      "iterations (S, N) int32, status (S, N) int32 written in place.");

  mod.def(
      "net_logit_input_grads",
      [](const std::vector<int>& spec, py::array theta, py::array X, py::array out, int n_threads,
         int emulate_threads) {
        const auto s = shape_from(spec);
        n_threads = threads_or_default(n_threads);
        if (is_float64(theta)) logit_input_grads_impl<double>(s, theta, X, out, n_threads, emulate_threads);
        else logit_input_grads_impl<float>(s, theta, X, out, n_threads, emulate_threads);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("out"), py::arg("n_threads") = 0,
      py::arg("emulate_threads") = 0,
      "Gradient of every logit w.r.t. the input: out (S, N, K, d) for X (N, d) or (S, N, d).");

  mod.def(
      "net_train",
      [](const std::vector<int>& spec, int loss_kind, int shuffle, py::tuple adam, py::array X,
         py::array Y, py::array theta, py::array m, py::array v, py::array seeds, int epochs,
         int batch_size, int64_t step0, int record_every, py::array loss_hist, py::array acc_hist,
         int n_threads, py::object progress, double progress_seconds, int emulate_threads) {
        const auto s = shape_from(spec);
        if (is_float64(theta))
          return train_impl<double>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds, epochs,
                                    batch_size, step0, record_every, loss_hist, acc_hist, n_threads,
                                    progress, progress_seconds, emulate_threads);
        return train_impl<float>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds, epochs,
                                 batch_size, step0, record_every, loss_hist, acc_hist, n_threads,
                                 progress, progress_seconds, emulate_threads);
      },
      py::arg("spec"), py::arg("loss_kind"), py::arg("shuffle"), py::arg("adam"), py::arg("X"),
      py::arg("Y"), py::arg("theta"), py::arg("adam_m"), py::arg("adam_v"), py::arg("seeds"),
      py::arg("epochs"), py::arg("batch_size"), py::arg("step0"), py::arg("record_every"),
      py::arg("loss_history"), py::arg("acc_history"), py::arg("n_threads") = 0,
      py::arg("progress") = py::none(), py::arg("progress_seconds") = 2.0,
      py::arg("emulate_threads") = 0,
      "Fused Adam training of S networks in place; returns the number of network-epochs run.");
}
