// pybind11 bindings of the CPU engine (module falsestruct_fast._native).
//
// These are the low-level entry points used by the Python API. They check everything a kernel
// relies on before it runs: that every array argument is a numpy.ndarray (never converted, so
// outputs are written where the caller sees them) of the right dtype, shape, C-contiguity and
// writeability; the network spec (every size positive, every count within the 32-bit limits of
// the kernels); row and network counts (at most 2^31 - 1 per call); and the scalar options.
// Array values (NaN/inf weights, data or Adam moments) are the caller's responsibility here:
// they give NaN results, not errors (the high-level API checks them). Long calls release the
// GIL and stop on Ctrl-C (KeyboardInterrupt; the outputs are then incomplete).
//
// The kernels run through the table of the instruction-set variant chosen at import
// (host_engine_registry.h: FALSESTRUCT_CPU_ISA and the CPU); this file is compiled for the
// x86-64 baseline, so that a CPU that runs no variant gets an ImportError.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <thread>

#include "array_checks.h"
#include "network_args.h"
#include "host_engine_registry.h"
#include "falsestruct/fp_env.h"

namespace py = pybind11;
// cpp/cuda_emulation_module.cpp: the CUDA kernels' logic run on the CPU (tests).
void register_cuda_emulation(py::module_& m);
using fs_py::check_representable;
using fs_py::checked_data;
using fs_py::deepfool_options_from;
using fs_py::is_float64;
using fs_py::shape_from;

#ifndef FS_SOURCE_HASH
#define FS_SOURCE_HASH "unknown"
#endif

namespace {

// The variant chosen at import (PYBIND11_MODULE below).
const fs_host::HostEngine* g_engine = nullptr;

// Whether CPU calls flush subnormal numbers to zero (falsestruct/fp_env.h says why); from
// FALSESTRUCT_FLUSH_DENORMALS at import, then set_flush_denormals.
constexpr const char* kFlushVariable = "FALSESTRUCT_FLUSH_DENORMALS";
std::atomic<bool> g_flush_denormals{true};

bool flush_denormals_from_environment() {
  const char* env = std::getenv(kFlushVariable);
  const std::string v = env ? env : "";
  if (v.empty() || v == "1" || v == "on" || v == "true") return true;
  if (v == "0" || v == "off" || v == "false") return false;
  throw py::import_error(std::string(kFlushVariable) + "='" + v +
                         "' is not a choice: set it to 1 (flush subnormal numbers to zero, the "
                         "default) or 0 (keep them: IEEE gradual underflow)");
}

template <class T>
const fs::HostEntryPoints<T>& host_engine() {
  return g_engine->entry<T>();
}

// n_threads: 0 = every hardware thread; more threads than work items are never started.
constexpr int kMaxThreads = 4096;
// emulate_threads (tests): CUDA threads per block emulated by EmulatedBlock.
constexpr int kMaxEmulatedThreads = 1024;
// How often a running call checks for Ctrl-C (and whether a progress report is due).
constexpr double kSignalPollSeconds = 0.05;

int threads_from(int64_t n_threads) {
  const int n = fs_py::int_option(n_threads, "n_threads", 0, kMaxThreads);
  if (n > 0) return n;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(std::min<unsigned>(hw, kMaxThreads)) : 1;
}

int emulate_from(int64_t emulate_threads) {
  return fs_py::int_option(emulate_threads, "emulate_threads", 0, kMaxEmulatedThreads);
}

// The one mechanism that makes a native call interruptible: run(control, poll, poll_seconds)
// starts the kernels with the GIL released; the executor calls `poll` on this thread every
// kSignalPollSeconds while its workers run. The poll re-acquires the GIL, checks for signals
// (Ctrl-C) and, every progress_seconds, calls progress(done, total); a KeyboardInterrupt or an
// exception from the callback cancels the run (the executor stops handing out work, DeepFool
// stops iterating) and is raised here once the workers have stopped. Returns units done.
template <class Run>
int64_t run_interruptible(int64_t total, const py::object& progress, double progress_seconds,
                          Run&& run) {
  fs::RunControl control;
  std::exception_ptr pending;
  using clock = std::chrono::steady_clock;
  auto next_report = clock::now() + std::chrono::duration<double>(progress_seconds);
  const bool caller_flushes = fs::flushes_subnormals();
  const std::function<bool()> poll = [&]() -> bool {
    fs::SubnormalModeScope caller_mode(caller_flushes);  // Python code runs in the caller's mode
    py::gil_scoped_acquire gil;
    try {
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      if (!progress.is_none() && clock::now() >= next_report) {
        progress(control.units_done.load(), total);
        next_report = clock::now() + std::chrono::duration<double>(progress_seconds);
      }
      return true;
    } catch (...) {
      pending = std::current_exception();
      return false;
    }
  };
  {
    py::gil_scoped_release release;
    fs::SubnormalModeScope fp_mode(g_flush_denormals.load());  // the workers take this thread's
    run(control, poll, kSignalPollSeconds);
  }
  if (pending) std::rethrow_exception(pending);
  if (!progress.is_none()) progress(control.units_done.load(), total);
  return control.units_done.load();
}

// progress(done, total) is called from the run: None or a callable.
const py::object& progress_from(const py::object& progress) {
  if (!progress.is_none() && !PyCallable_Check(progress.ptr()))
    throw py::type_error(std::string("progress: expected a callable or None, got ") + Py_TYPE(progress.ptr())->tp_name);
  return progress;
}

double progress_seconds_from(double progress_seconds) {
  if (!(std::isfinite(progress_seconds) && progress_seconds > 0))
    throw py::value_error("progress_seconds: must be finite and > 0, got " + fs_py::float_str(progress_seconds));
  return progress_seconds;
}

template <class T>
void deepfool_impl(const fs::NetShape& s, py::handle theta, py::handle X, py::handle pert,
                   py::handle iters, py::handle status, const fs::DeepFoolOptions& o,
                   const py::object& progress, int n_threads, int emulate) {
  check_representable<T>(1.0 + o.overshoot, "overshoot");
  if (o.clip) {
    check_representable<T>(o.lo, "clip lo");
    check_representable<T>(o.hi, "clip hi");
  }
  const auto a = fs_py::deepfool_args<T>(fs_py::NumpyArrays{}, s, theta, X, pert, iters, status);
  run_interruptible(static_cast<int64_t>(a.S) * a.N, progress, 0.5,
                    [&](fs::RunControl& control, const std::function<bool()>& poll, double seconds) {
                      host_engine<T>().deepfool(s, a.theta, a.S, a.X, a.x_net_stride, a.N, o, a.pert, a.iters,
                                        a.status, n_threads, control, poll, seconds, emulate);
                    });
}

template <class T>
void logit_input_grads_impl(const fs::NetShape& s, py::handle theta, py::handle X, py::handle out,
                            int n_threads, int emulate) {
  const auto a = fs_py::forward_args<T>(fs_py::NumpyArrays{}, s, theta, X, out, /*logit_input_grads=*/true);
  run_interruptible(0, py::none(), 0, [&](fs::RunControl&, const std::function<bool()>& poll, double seconds) {
    host_engine<T>().logit_input_grads(s, a.theta, a.S, a.X, a.x_net_stride, a.N, a.out, n_threads,
                                       emulate, poll, seconds);
  });
}

template <class T>
void init_impl(const fs::NetShape& s, py::handle seeds, py::handle theta, int n_threads) {
  const int S = fs_py::leading_dim(seeds, "seeds");
  const uint64_t* sd = checked_data<uint64_t>(seeds, "seeds", {-1}, false);
  T* th = checked_data<T>(theta, "theta", {S, s.n_params}, true);
  fs_py::check_outputs_disjoint({{"theta", theta}, {"seeds", seeds}}, 1);
  run_interruptible(0, py::none(), 0, [&](fs::RunControl&, const std::function<bool()>& poll, double seconds) {
    host_engine<T>().init(s, sd, S, th, n_threads, poll, seconds);
  });
}

template <class T>
void forward_impl(const fs::NetShape& s, py::handle theta, py::handle X, py::handle out,
                  int n_threads, int emulate) {
  const auto a = fs_py::forward_args_from_python<T>(s, theta, X, out);
  run_interruptible(0, py::none(), 0, [&](fs::RunControl&, const std::function<bool()>& poll, double seconds) {
    host_engine<T>().forward(s, a.theta, a.S, a.X, a.x_net_stride, a.N, a.out, n_threads, emulate, poll,
                             seconds);
  });
}

template <class T>
void loss_and_grad_impl(const fs::NetShape& s, int64_t loss_kind, py::handle theta, py::handle X,
                        py::handle Y, py::handle loss_out, py::handle grad_out,
                        py::handle input_grad_out, int n_threads, int emulate) {
  const auto a = fs_py::loss_grad_args<T>(fs_py::NumpyArrays{}, s, loss_kind, theta, X, Y, loss_out, grad_out,
                                          input_grad_out);
  if (a.loss == fs::LossKind::SoftmaxCE)
    fs_py::check_class_labels(a.Y, (a.y_net_stride ? a.S : 1) * static_cast<int64_t>(a.N), s.n_logits(), "Y");
  run_interruptible(0, py::none(), 0, [&](fs::RunControl&, const std::function<bool()>& poll, double seconds) {
    host_engine<T>().loss_and_grad(s, a.loss, a.theta, a.S, a.X, a.x_net_stride, a.Y, a.y_net_stride,
                                   a.N, a.loss_out, a.grad_out, a.input_grad_out, n_threads, emulate,
                                   poll, seconds);
  });
}

template <class T>
int64_t train_impl(const fs::NetShape& s, int64_t loss_kind, int64_t shuffle, py::handle adam,
                   py::handle X, py::handle Y, py::handle theta, py::handle m, py::handle v,
                   py::handle seeds, int64_t epochs, int64_t batch_size, int64_t step0,
                   int64_t record_every, py::handle loss_hist, py::handle acc_hist, int n_threads,
                   const py::object& progress, double progress_seconds, int emulate) {
  const auto a = fs_py::train_args_from_python<T>(s, loss_kind, shuffle, adam, X, Y, theta, m, v,
                                                  seeds, epochs, batch_size, step0, record_every,
                                                  loss_hist, acc_hist);
  const int S = fs_py::leading_dim(theta, "theta");
  return run_interruptible(static_cast<int64_t>(S) * a.epochs, progress, progress_seconds,
                           [&](fs::RunControl& control, const std::function<bool()>& poll, double seconds) {
                             host_engine<T>().train(a, S, n_threads, control, poll, seconds, emulate);
                           });
}

}  // namespace

// Docstring tail of every binding that reads arrays of numbers.
#define FS_VALUES_NOTE                                                                        \
  " Arguments are checked (TypeError/ValueError naming them); array values are not: NaN/inf " \
  "in theta, X, Y or Adam moments give NaN results (the high-level API checks them)."

PYBIND11_MODULE(_native, mod) {
  try {
    g_engine = &fs_host::select_host_engine();
  } catch (const std::runtime_error& e) {
    throw py::import_error(e.what());
  }
  mod.doc() =
      "falsestruct_fast CPU engine (C++ kernels, threads over networks).\n\n"
      "Every array argument must be a numpy.ndarray (lists are refused: outputs are written in "
      "place), C-contiguous, of the stated dtype and shape, outputs writeable; T is float32 or "
      "float64, chosen by theta. spec is a network's `spec`. Counts (rows N, networks S) are at "
      "most 2**31 - 1 per call. n_threads: 0 = all hardware threads, else 1..4096. Bad arguments "
      "raise TypeError/ValueError naming them. Array values are the caller's responsibility: "
      "NaN/inf in theta, X or Adam moments give NaN results, not errors (the high-level API "
      "checks them). Long calls stop on Ctrl-C with KeyboardInterrupt (outputs incomplete).";
  mod.def("source_hash", [] { return std::string(FS_SOURCE_HASH); },
          "SHA-256 of the kernel and binding sources this module was compiled from.");
  mod.def("default_threads", [] { return threads_from(0); });
  g_flush_denormals = flush_denormals_from_environment();
  mod.def(
      "flush_denormals", [] { return g_flush_denormals.load(); },
      "True when CPU calls flush subnormal (denormal) numbers to zero (x86 FTZ + DAZ, the "
      "default; FALSESTRUCT_FLUSH_DENORMALS=0 at import turns it off).");
  mod.def(
      "set_flush_denormals", [](bool flush) { return g_flush_denormals.exchange(flush); },
      py::arg("flush"),
      "Sets whether later CPU calls flush subnormal numbers to zero; returns the previous "
      "setting. The caller's own floating-point mode is restored after every call.");
  mod.def(
      "cpu_isa", [] { return g_engine->isa; },
      "Instruction-set variant of the CPU kernels in use: 'avx512', 'avx2', 'native' or "
      "'generic' (chosen at import from FALSESTRUCT_CPU_ISA and the CPU).");
  mod.def("cpu_isas", &fs_host::compiled_isas,
          "Instruction-set variants compiled into this module (list of str), in the order "
          "FALSESTRUCT_CPU_ISA=auto tries them.");
  mod.def(
      "scratch_cache_bytes", [] { return g_engine->f32->scratch_cache_bytes(); },
      "Bytes of CPU workspace kept between calls (ScratchCache).");
  mod.def(
      "release_scratch_cache", [] { return g_engine->f32->release_scratch_cache(); },
      "Frees the CPU workspace kept between calls; returns the bytes freed.");
  mod.def(
      "n_params", [](py::handle spec) { return shape_from(spec).n_params; }, py::arg("spec"),
      "Parameters P of one network; ValueError for an invalid spec or one whose sizes exceed the "
      "kernels' 32-bit limits (more than 2**31 - 1 parameters, 2**28 units in a layer).");
  mod.def(
      "workspace_scalars_per_row",
      [](py::handle spec) { return fs::workspace_scalars_per_row(shape_from(spec)); },
      py::arg("spec"),
      "Scalars of native workspace one batch row needs (activations, gradients, conv padding).");
  mod.def(
      "philox4x32_10",
      [](const std::array<uint32_t, 4>& counter, const std::array<uint32_t, 2>& key) {
        const uint64_t seed = (static_cast<uint64_t>(key[1]) << 32) | key[0];
        const fs::U32x4 r = fs::philox4x32(seed, counter[0], counter[1], counter[2], counter[3]);
        return py::make_tuple(r.v[0], r.v[1], r.v[2], r.v[3]);
      },
      py::arg("counter"), py::arg("key"),
      "The engine's Philox4x32-10 block: counter (4 uint32), key (2 uint32; the seed is "
      "key[0] + 2**32 * key[1]) -> tuple of 4 uint32.");

  mod.def(
      "net_init",
      [](py::handle spec, py::handle seeds, py::handle theta, int64_t n_threads) {
        const auto s = shape_from(spec);
        const int threads = threads_from(n_threads);
        if (is_float64(theta, "theta")) init_impl<double>(s, seeds, theta, threads);
        else init_impl<float>(s, seeds, theta, threads);
      },
      py::arg("spec"), py::arg("seeds"), py::arg("theta"), py::arg("n_threads") = 0,
      "Glorot-uniform weights, zero biases into theta (S, P) T for seeds (S,) uint64. Arguments "
      "are checked (TypeError/ValueError naming them).");

  mod.def(
      "net_forward",
      [](py::handle spec, py::handle theta, py::handle X, py::handle out, int64_t n_threads,
         int64_t emulate_threads) {
        const auto s = shape_from(spec);
        const int threads = threads_from(n_threads), emulate = emulate_from(emulate_threads);
        if (is_float64(theta, "theta")) forward_impl<double>(s, theta, X, out, threads, emulate);
        else forward_impl<float>(s, theta, X, out, threads, emulate);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("out"), py::arg("n_threads") = 0,
      py::arg("emulate_threads") = 0,
      "Logits out (S, N, K) T of X (N, d) or (S, N, d) T for parameters theta (S, P) T. N = 0 "
      "is an empty result." FS_VALUES_NOTE);

  mod.def(
      "net_loss_and_grad",
      [](py::handle spec, int64_t loss_kind, py::handle theta, py::handle X, py::handle Y,
         py::handle loss_out, py::handle grad_out, py::handle input_grad_out, int64_t n_threads,
         int64_t emulate_threads) {
        const auto s = shape_from(spec);
        const int threads = threads_from(n_threads), emulate = emulate_from(emulate_threads);
        if (is_float64(theta, "theta"))
          loss_and_grad_impl<double>(s, loss_kind, theta, X, Y, loss_out, grad_out, input_grad_out,
                                     threads, emulate);
        else
          loss_and_grad_impl<float>(s, loss_kind, theta, X, Y, loss_out, grad_out, input_grad_out,
                                    threads, emulate);
      },
      py::arg("spec"), py::arg("loss_kind"), py::arg("theta"), py::arg("X"), py::arg("Y"),
      py::arg("loss_out"), py::arg("grad_out"), py::arg("input_grad_out") = py::none(),
      py::arg("n_threads") = 0, py::arg("emulate_threads") = 0,
      "Mean loss (S,) T, gradient (S, P) T and optionally input gradient (S, N, d) T over all "
      "N >= 1 rows of X (N, d) or (S, N, d) and targets Y (N, t) or (S, N, t) (loss_kind 0 "
      "sigmoid: t = K; 1 softmax: t = 1, class indices in [0, K), checked). The rows are one "
      "batch: N times workspace_scalars_per_row(spec) must stay below 2**31." FS_VALUES_NOTE);

  mod.def(
      "net_deepfool",
      [](py::handle spec, py::handle theta, py::handle X, py::handle pert, py::handle iters,
         py::handle status, double overshoot, int64_t max_iter, bool linf, int64_t candidates,
         bool foolbox, py::object clip, int64_t n_threads, py::object progress,
         int64_t emulate_threads) {
        const auto s = shape_from(spec);
        const auto o = deepfool_options_from(s, overshoot, max_iter, linf, candidates, foolbox, clip);
        const int threads = threads_from(n_threads), emulate = emulate_from(emulate_threads);
        if (is_float64(theta, "theta"))
          deepfool_impl<double>(s, theta, X, pert, iters, status, o, progress_from(progress), threads, emulate);
        else
          deepfool_impl<float>(s, theta, X, pert, iters, status, o, progress_from(progress), threads, emulate);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("perturbation_out"),
      py::arg("iterations_out"), py::arg("status_out"), py::arg("overshoot"), py::arg("max_iter"),
      py::arg("linf"), py::arg("candidates"), py::arg("foolbox"), py::arg("clip") = py::none(),
      py::arg("n_threads") = 0, py::arg("progress") = py::none(), py::arg("emulate_threads") = 0,
      "DeepFool on every point of X (N, d) or (S, N, d) T (N >= 1) for each network: "
      "perturbation (S, N, d) T, iterations (S, N) int32, status (S, N) int32 written in place. "
      "overshoot finite >= 0, max_iter in [0, 2**31 - 1], candidates in [1, K - 1], clip None or "
      "(lo, hi) finite with lo < hi; progress(done, total) is called about every 0.5 s."
      FS_VALUES_NOTE);

  mod.def(
      "net_logit_input_grads",
      [](py::handle spec, py::handle theta, py::handle X, py::handle out, int64_t n_threads,
         int64_t emulate_threads) {
        const auto s = shape_from(spec);
        const int threads = threads_from(n_threads), emulate = emulate_from(emulate_threads);
        if (is_float64(theta, "theta")) logit_input_grads_impl<double>(s, theta, X, out, threads, emulate);
        else logit_input_grads_impl<float>(s, theta, X, out, threads, emulate);
      },
      py::arg("spec"), py::arg("theta"), py::arg("X"), py::arg("out"), py::arg("n_threads") = 0,
      py::arg("emulate_threads") = 0,
      "Gradient of every logit w.r.t. the input: out (S, N, K, d) T for X (N, d) or (S, N, d) T. "
      "N = 0 is an empty result." FS_VALUES_NOTE);

  mod.def(
      "net_train",
      [](py::handle spec, int64_t loss_kind, int64_t shuffle, py::handle adam, py::handle X,
         py::handle Y, py::handle theta, py::handle m, py::handle v, py::handle seeds,
         int64_t epochs, int64_t batch_size, int64_t step0, int64_t record_every,
         py::handle loss_hist, py::handle acc_hist, int64_t n_threads, py::object progress,
         double progress_seconds, int64_t emulate_threads) {
        const auto s = shape_from(spec);
        const int threads = threads_from(n_threads), emulate = emulate_from(emulate_threads);
        progress_seconds = progress_seconds_from(progress_seconds);
        progress_from(progress);
        if (is_float64(theta, "theta"))
          return train_impl<double>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds, epochs,
                                    batch_size, step0, record_every, loss_hist, acc_hist, threads,
                                    progress, progress_seconds, emulate);
        return train_impl<float>(s, loss_kind, shuffle, adam, X, Y, theta, m, v, seeds, epochs,
                                 batch_size, step0, record_every, loss_hist, acc_hist, threads,
                                 progress, progress_seconds, emulate);
      },
      py::arg("spec"), py::arg("loss_kind"), py::arg("shuffle"), py::arg("adam"), py::arg("X"),
      py::arg("Y"), py::arg("theta"), py::arg("adam_m"), py::arg("adam_v"), py::arg("seeds"),
      py::arg("epochs"), py::arg("batch_size"), py::arg("step0"), py::arg("record_every"),
      py::arg("loss_history"), py::arg("acc_history"), py::arg("n_threads") = 0,
      py::arg("progress") = py::none(), py::arg("progress_seconds") = 2.0,
      py::arg("emulate_threads") = 0,
      "Fused Adam training of S networks in place: theta, adam_m, adam_v (S, P) T, seeds (S,) "
      "uint64, X (N, d) or (S, N, d) T, Y as for net_loss_and_grad, loss_history and "
      "acc_history (S, n_records) float64. adam = (lr, beta1, beta2, eps): finite, lr > 0, "
      "0 <= beta < 1, eps > 0; shuffle 0 none, 1 samples, 2 batches; epochs in [0, 2**31 - 1], "
      "batch_size in [1, N], record_every >= 1, step0 >= 0; progress(done, total) every "
      "progress_seconds (finite, > 0). Returns the number of network-epochs run." FS_VALUES_NOTE);
  py::module_ emulation = mod.def_submodule(
      "cuda_emulation",
      "The CUDA engine's kernels run on the CPU by emulating their blocks and threads (for the "
      "test-suite: the GPU code's index mapping, shared memory and barriers, without a GPU).");
  register_cuda_emulation(emulation);
}
