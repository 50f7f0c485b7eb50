// The CPU engine as a table of function pointers, one table per instruction-set variant.
//
// The kernels (src/falsestruct) pick their vector width and register tiles at compile time
// (kHostVectorBytes from __AVX512F__), so a portable module compiles them once per variant:
// cpp/host_engine.cpp is compiled once per variant and dtype, with that variant's -march and
// with the namespace `fs` renamed to the variant's own (fs_isa_avx2, fs_isa_avx512, ...). The
// renaming keeps the variants' inline kernels apart: without it the linker would keep one copy
// of each same-named inline function, whichever variant compiled it, and an AVX2 machine could
// run AVX-512 code. The bindings (native_module.cpp) pick one table at import
// (cpp/host_engine_registry.cpp) and call through it; they check every argument first.
//
// This header is read both by the bindings (types in namespace fs) and by host_engine.cpp
// (where `fs` is the variant's namespace): the entry points' argument structs are then the
// variant's own copies of fs::NetShape, fs::TrainArgs<T>, ... compiled from the same source,
// so they have the same layout; layout_key() checks that at import.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include <functional>

#include "falsestruct/deepfool.h"
#include "falsestruct/host_runner.h"

namespace fs {

using PollFn = std::function<bool()>;

// One variant's entry points for scalar type T (float or double): the functions of
// falsestruct/network_host.h with every argument explicit (see there for shapes; arrays are
// C-contiguous, network axis first, and were checked by the caller). poll / poll_seconds as in
// parallel_for_networks; emulate_threads > 0 runs the kernels on EmulatedBlock (tests).
template <class T>
struct HostEntryPoints {
  // theta (S, P) <- Glorot-uniform weights, zero biases, from seeds (S,).
  void (*init)(const NetShape& s, const uint64_t* seeds, int S, T* theta, int n_threads,
               const PollFn& poll, double poll_seconds);
  // out (S, N, K) <- logits of X (N, d) or (S, N, d) (x_net_stride 0 or N * d).
  void (*forward)(const NetShape& s, const T* theta, int S, const T* X, int64_t x_net_stride,
                  int N, T* out, int n_threads, int emulate_threads, const PollFn& poll,
                  double poll_seconds);
  // pert (S, N, d), iters (S, N), status (S, N) <- DeepFool on every row of X.
  void (*deepfool)(const NetShape& s, const T* theta, int S, const T* X, int64_t x_net_stride,
                   int N, const DeepFoolOptions& o, T* pert, int* iters, int* status,
                   int n_threads, RunControl& control, const PollFn& poll, double poll_seconds,
                   int emulate_threads);
  // out (S, N, K, d) <- gradient of every logit w.r.t. the input row.
  void (*logit_input_grads)(const NetShape& s, const T* theta, int S, const T* X,
                            int64_t x_net_stride, int N, T* out, int n_threads,
                            int emulate_threads, const PollFn& poll, double poll_seconds);
  // loss (S,), grad (S, P), input_grad (S, N, d) or null <- one batch of all N rows.
  void (*loss_and_grad)(const NetShape& s, LossKind loss, const T* theta, int S, const T* X,
                        int64_t x_net_stride, const T* Y, int64_t y_net_stride, int N,
                        T* loss_out, T* grad_out, T* input_grad_out, int n_threads,
                        int emulate_threads, const PollFn& poll, double poll_seconds);
  // Fused Adam training of S networks in place (TrainArgs).
  void (*train)(const TrainArgs<T>& args, int S, int n_threads, RunControl& control,
                const PollFn& poll, double poll_seconds, int emulate_threads);
  // The variant's process-wide workspace cache (one per variant, shared by both dtypes).
  size_t (*scratch_cache_bytes)();
  size_t (*release_scratch_cache)();
  uint64_t layout_key;  // layout_key<T>() where this table was compiled
};

// Fingerprint of the layout of every struct the entry points take (sizes, alignments and the
// offsets of the last members): equal in the bindings and in each variant unless a kernel
// header made a struct's layout depend on the instruction set.
template <class T>
constexpr uint64_t layout_key() {
  const uint64_t parts[] = {
      sizeof(NetShape),         alignof(NetShape),        offsetof(NetShape, max_conv_scratch),
      sizeof(TrainArgs<T>),     alignof(TrainArgs<T>),    offsetof(TrainArgs<T>, acc_history),
      sizeof(DeepFoolOptions),  offsetof(DeepFoolOptions, hi),
      sizeof(RunControl),       offsetof(RunControl, cancelled),
      sizeof(LossKind),         sizeof(PollFn)};
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the parts
  for (uint64_t p : parts) h = (h ^ p) * 1099511628211ull;
  return h;
}

}  // namespace fs

// Each variant (host_engine.cpp) defines, with C linkage and no types in its name:
//   const void* fs_host_entry_points_<isa>_<f32|f64>(void);
// returning its HostEntryPoints<float | double> (the registry checks layout_key).
