// Whole-network kernels for one network ("block") of dense, conv and pool layers: forward,
// backward, fused training.
#pragma once
#include <stdint.h>
#include "adam.h"
#include "config.h"
#include "conv_layer.h"
#include "dense_layer.h"
#include "losses.h"
#include "net_shape.h"
#include "philox.h"
#include "pool_layer.h"
#if !defined(__CUDACC__)
#include <type_traits>
#include "host_shallow_backward.h"
#include "host_shallow_step.h"
#endif

namespace fs {

enum class ShuffleMode : int { None = 0, Samples = 1, Batches = 2 };

// Per-network scratch for a batch of up to B rows and a permutation of up to N items (carved
// out of one buffer by the executor). Every part starts at a multiple of kScratchAlign scalars,
// so parts are as aligned as the buffer (64 bytes on the host, 256 on the GPU).
// Every batch array is sample-major: row n of the batch, then the units of that row.
constexpr int64_t kScratchAlign = 16;
FS_HD FS_INLINE int64_t scratch_align(int64_t n) {
  return (n + kScratchAlign - 1) / kScratchAlign * kScratchAlign;
}

template <class T>
struct NetWorkspace {
  T* acts;      // B * sum_width: activations of every layer, layer l at acts + act_row(l) * B
  T* delta_a;   // B * max_width: gradient w.r.t. a layer's output (ping)
  T* delta_b;   // B * max_width: (pong)
  T* targets;   // B * n_logits
  T* terms;     // 2 * B: per-sample loss and correctness
  T* grad;      // n_params
  T* kernel_t;  // max_layer_weights: a kernel transposed (conv: channels swapped)
  T* padded;    // B * max_conv_scratch: a conv layer's input or output gradient, padded
  // n_params each: theta, m, v of the network being trained, private to its worker (networks
  // side by side in (S, P) arrays would share cache lines between threads).
  T* theta;
  T* adam_m;
  T* adam_v;
  int* rows;    // B: data rows of the current batch
  int* order;   // max(N, n_batches): per-epoch permutation
  int* draws;   // max(N, n_batches): its random swap partners

  FS_HD static int64_t scalars(const NetShape& s, int B) {
    int64_t offset[kParts];
    return layout(s, B, offset);
  }
  // Scalars per batch row (the workspace is about this times B, plus per-network parts).
  FS_HD static int64_t scalars_per_row(const NetShape& s) { return workspace_scalars_per_row(s); }
  FS_HD static int64_t ints(int B, int N) { return (int64_t)B + 2LL * (N > B ? N : B); }
  // Offsets of the scalar parts, in the order of the members above; returns the total.
  static constexpr int kParts = 11;
  FS_HD static int64_t layout(const NetShape& s, int B, int64_t* offset) {
    const int64_t size[kParts] = {(int64_t)s.sum_width * B, (int64_t)s.max_width * B,
                                  (int64_t)s.max_width * B, (int64_t)s.n_logits() * B, 2LL * B,
                                  s.n_params, s.max_layer_weights, s.max_conv_scratch * B,
                                  s.n_params, s.n_params, s.n_params};
    int64_t total = 0;
    for (int i = 0; i < kParts; ++i) {
      offset[i] = total;
      total += scratch_align(size[i]);
    }
    return total;
  }
  FS_HD static NetWorkspace carve(const NetShape& s, int B, int N, T* scalar_buf, int* int_buf) {
    int64_t at[kParts];
    layout(s, B, at);
    NetWorkspace w;
    T** part[kParts] = {&w.acts, &w.delta_a, &w.delta_b, &w.targets, &w.terms, &w.grad,
                        &w.kernel_t, &w.padded, &w.theta, &w.adam_m, &w.adam_v};
    for (int i = 0; i < kParts; ++i) *part[i] = scalar_buf + at[i];
    w.rows = int_buf;
    w.order = int_buf + B;
    w.draws = w.order + (N > B ? N : B);
    return w;
  }
};

// Copies data rows `rows[0..B)` of X (N, d) and Y (N, t) into the batch buffers xb (B, d)
// and yb (B, t).
template <class Block, class T>
FS_HD void gather_batch(const Block& blk, const T* X, const T* Y, const int* rows, T* xb, T* yb,
                        int d, int t, int B) {
  blk.map_2d(B, d, [=](int n, int k) { xb[(int64_t)n * d + k] = X[(int64_t)rows[n] * d + k]; });
  if (Y) blk.map_2d(B, t, [=](int n, int k) { yb[(int64_t)n * t + k] = Y[(int64_t)rows[n] * t + k]; });
}

// Forward through all layers; the input batch (B, width[0]) must already be at acts.
// `padded`: scratch of B * s.max_conv_scratch scalars (NetWorkspace::padded).
template <class Block, class T>
FS_HD void net_forward(const Block& blk, const NetShape& s, const T* theta, T* acts, T* padded,
                       int B) {
  for (int l = 0; l < s.n_layers; ++l) {
    const Layer& L = s.layer[l];
    const T* x = acts + (int64_t)s.act_row(l) * B;
    T* y = acts + (int64_t)s.act_row(l + 1) * B;
    const T* W = theta + s.w_offset[l];
    const T* b = theta + s.b_offset[l];
    switch (L.kind) {
      case LayerKind::Dense:
        dense_forward(blk, W, b, x, y, s.n_in(l), s.n_out(l), B, L.relu);
        break;
      case LayerKind::Conv2D:
        conv2d_forward(blk, ConvGeometry{B, L.in_h, L.in_w, L.in_c, L.out_c, L.k}, W, b, x,
                       padded, y, L.relu);
        break;
      case LayerKind::MaxPool2:
        maxpool2_forward(blk, PoolGeometry{B, L.in_h, L.in_w, L.in_c}, x, y);
        break;
    }
  }
}

// Backward from the logit gradient in ws.delta_a (B, K); writes all parameter gradients to
// ws.grad unless want_param_grads is false. With want_input_grad, also the gradient w.r.t. the
// input batch (B, d); the returned pointer is the delta buffer that holds it (nullptr
// otherwise).
template <class Block, class T>
FS_HD T* net_backward(const Block& blk, const NetShape& s, const T* theta,
                      const NetWorkspace<T>& ws, int B, bool want_input_grad,
                      bool want_param_grads = true) {
#if !defined(__CUDACC__)
  // The CPU engine runs Experiment I's shallow network in one fused pass (same sums).
  if constexpr (std::is_same<Block, HostBlock>::value) {
    if (want_param_grads && !want_input_grad && is_shallow_binary_mlp(s)) {
      host_shallow_backward(s, theta, ws.acts, ws.acts + (int64_t)s.act_row(1) * B, ws.delta_a,
                            ws.grad, B);
      return nullptr;
    }
  }
#endif
  T* dy = ws.delta_a;
  T* dx = ws.delta_b;
  for (int l = s.n_layers - 1; l >= 0; --l) {
    const Layer& L = s.layer[l];
    const T* x = ws.acts + (int64_t)s.act_row(l) * B;
    const T* W = theta + s.w_offset[l];
    T* dW = ws.grad + s.w_offset[l];
    T* db = ws.grad + s.b_offset[l];
    const bool need_dx = l > 0 || want_input_grad;
    // The ReLU of the layer below is applied to the gradient here (x > 0 exactly where its
    // pre-activation was > 0).
    const bool relu_input = l > 0 && s.layer[l - 1].relu;
    switch (L.kind) {
      case LayerKind::Dense:
        if (need_dx)
          dense_backward_input(blk, W, ws.kernel_t, x, dy, dx, s.n_in(l), s.n_out(l), B, relu_input);
        if (want_param_grads) dense_backward_params(blk, x, dy, dW, db, s.n_in(l), s.n_out(l), B);
        break;
      case LayerKind::Conv2D: {
        const ConvGeometry g{B, L.in_h, L.in_w, L.in_c, L.out_c, L.k};
        // Behind a max-pool dy has one nonzero per window and channel (conv_layer.h).
        const bool pooled = l + 1 < s.n_layers && s.layer[l + 1].kind == LayerKind::MaxPool2;
        if (need_dx) {
          conv2d_transpose_kernel(blk, g, W, ws.kernel_t);
          conv2d_backward_input(blk, g, ws.kernel_t, x, dy, ws.padded, dx, relu_input, pooled);
        }
        if (want_param_grads)
          conv2d_backward_params(blk, g, x, dy, ws.padded, ws.kernel_t, pooled, dW, db);
        break;
      }
      case LayerKind::MaxPool2:
        if (need_dx)
          maxpool2_backward_input(blk, PoolGeometry{B, L.in_h, L.in_w, L.in_c}, x, dy, dx, relu_input);
        break;
    }
    T* tmp = dy;
    dy = dx;
    dx = tmp;
  }
  return want_input_grad ? dy : nullptr;
}

// Arguments of the fused training of S networks (net_train_host, the CUDA engine's train):
// epochs x floor(N / B) Adam steps per network. Arrays are C-contiguous, network axis first;
// the caller allocates everything (n_records = n_records_for(epochs, record_every)) and nothing
// is validated here (the Python bindings check every argument: cpp/network_args.h).
template <class T>
struct TrainArgs {
  NetShape shape;
  LossKind loss;
  ShuffleMode shuffle;
  AdamHyper adam;
  const T* X;             // (N, d) shared or (S, N, d)
  int64_t x_net_stride;   // 0 when shared
  const T* Y;             // (N, t) shared or (S, N, t); t = targets_per_sample
  int64_t y_net_stride;
  int N, B, epochs;
  int64_t step0;          // Adam updates already applied (continuing a run)
  T* theta;               // (S, P) updated in place
  T* adam_m;              // (S, P)
  T* adam_v;              // (S, P)
  const uint64_t* seeds;  // (S,) seed of each network (batch order)
  int record_every;       // record loss/accuracy every k epochs (and at the last epoch)
  int n_records;
  // This call runs epochs [epoch_begin, epoch_end) of the run of `epochs` epochs that started
  // at step0 (epoch_end -1: through `epochs`). A long GPU run is launched in chunks of epochs;
  // records and batch order refer to the whole run, so the chunks equal one call bitwise.
  int epoch_begin = 0;
  int epoch_end = -1;
  double* loss_history;   // (S, n_records) mean loss over the samples of the epoch
  double* acc_history;    // (S, n_records) mean accuracy over the samples of the epoch
};

FS_HD FS_INLINE int n_records_for(int epochs, int every) {
  return epochs / every + (epochs % every != 0 ? 1 : 0);
}

// Copies a network's parameters and Adam moments (P each) from (theta, m, v) to (theta_to,
// m_to, v_to): into the worker's private copies before training, back after every epoch.
template <class Block, class T>
FS_HD void copy_network_state(const Block& blk, int64_t P, const T* theta, const T* m, const T* v,
                              T* theta_to, T* m_to, T* v_to) {
  blk.map_1d(static_cast<int>(P), [=](int p) {
    theta_to[p] = theta[p];
    m_to[p] = m[p];
    v_to[p] = v[p];
  });
}

// Cancellation hook of the long per-network loops (training steps, DeepFool iterations): the
// GPU, and a caller that cannot cancel, never stops.
struct NeverStop {
  FS_HD bool operator()() const { return false; }
};

// Steps between two checks of the stop hook in a long epoch.
constexpr int kStopCheckSteps = 64;

// Trains network `net` for epochs [args.epoch_begin, args.epoch_end) of args.epochs. `on_epoch(epoch)` is called after each epoch
// and returns false to stop early (cancellation); the GPU passes a hook that always continues.
// Within an epoch, stop() is asked every kStopCheckSteps steps (an epoch of many batches may
// be long); when it returns true the epoch is abandoned and the outputs keep the state after
// the last whole epoch.
// Training-set row of sample n of batch `step` in an epoch whose permutation `order` is of the
// samples (Samples) or of the batches (Batches); without shuffling, rows in order.
FS_HD FS_INLINE int batch_row(ShuffleMode mode, const int* order, int step, int B, int n) {
  const int k = step * B + n;
  return mode == ShuffleMode::Samples ? order[k] : mode == ShuffleMode::Batches ? order[step] * B + n : k;
}

template <class Block, class T, class EpochHook, class StopHook = NeverStop>
FS_HD void train_network(const Block& blk, const TrainArgs<T>& a, int net,
                             const NetWorkspace<T>& ws, EpochHook on_epoch, StopHook stop = StopHook{}) {
  const NetShape& s = a.shape;
  const int B = a.B, N = a.N, d = s.width[0], K = s.n_logits();
  const int t_per = targets_per_sample(a.loss, K);
  const int n_batches = N / B;
  const uint64_t seed = a.seeds[net];
  const T* X = a.X + a.x_net_stride * net;
  const T* Y = a.Y + a.y_net_stride * net;
  const int64_t P = s.n_params;
  T* theta = ws.theta;
  T* m = ws.adam_m;
  T* v = ws.adam_v;
  T* theta_out = a.theta + P * net;
  T* m_out = a.adam_m + P * net;
  T* v_out = a.adam_v + P * net;
  copy_network_state(blk, P, theta_out, m_out, v_out, theta, m, v);
  const T* logits = ws.acts + (int64_t)s.act_row(s.n_layers) * B;
  const int epoch_end = a.epoch_end < 0 ? a.epochs : a.epoch_end;
  int64_t t = a.step0 + (int64_t)a.epoch_begin * n_batches;
  const ShuffleMode mode = a.shuffle;
  int* order = ws.order;
  int* draws = ws.draws;
  int* rows = ws.rows;
  // The CPU engine runs Experiment I's shallow network's step fused (same sums), up to Adam.
  bool fused_step = false;
#if !defined(__CUDACC__)
  if constexpr (std::is_same<Block, HostBlock>::value)
    fused_step = host_shallow_step_applies<T>(s, a.loss, B);
#endif

  for (int epoch = a.epoch_begin; epoch < epoch_end; ++epoch) {
    const int epoch_no = epoch + 1;
    const bool record = (epoch_no % a.record_every == 0) || epoch_no == a.epochs;
    if (mode != ShuffleMode::None) {
      // The epoch counter continues across calls (step0 / n_batches epochs already done), so
      // training in several calls gives the same batch order as one long call.
      const uint32_t global_epoch = static_cast<uint32_t>(a.step0 / n_batches + epoch);
      const int n_perm = mode == ShuffleMode::Samples ? N : n_batches;
      blk.map_1d(n_perm, [=](int i) { draws[i] = i > 0 ? shuffle_draw(seed, global_epoch, i) : 0; });
      blk.single([=] { apply_shuffle_draws(n_perm, draws, order); });
    }
    double loss_sum = 0.0, correct_sum = 0.0;
    for (int step = 0; step < n_batches; ++step) {
      blk.map_1d(B, [=](int n) { rows[n] = batch_row(mode, order, step, B, n); });
      if (fused_step) {
#if !defined(__CUDACC__)
        host_shallow_step(s, theta, X, Y, rows, B, ws.acts, ws.acts + (int64_t)s.act_row(2) * B,
                          ws.targets, ws.delta_a, ws.grad);
#endif
      } else {
        gather_batch(blk, X, Y, rows, ws.acts, ws.targets, d, t_per, B);
        net_forward(blk, s, theta, ws.acts, ws.padded, B);
        loss_grad(blk, a.loss, logits, ws.targets, ws.delta_a, K, B);
      }
      if (record) {
        loss_terms(blk, a.loss, logits, ws.targets, ws.terms, ws.terms + B, K, B);
        blk.single([&] {
          for (int n = 0; n < B; ++n) {
            loss_sum += ws.terms[n];
            correct_sum += ws.terms[B + n];
          }
        });
      }
      if (!fused_step) net_backward(blk, s, theta, ws, B, false);
      ++t;
      adam_update(blk, a.adam, t, ws.grad, theta, m, v, s.n_params);
      if (step % kStopCheckSteps == kStopCheckSteps - 1 && stop()) return;
    }
    if (record) {
      const int r = epoch_no % a.record_every == 0 ? epoch_no / a.record_every - 1 : a.n_records - 1;
      const double count = static_cast<double>(n_batches) * B;
      blk.single([=] {
        a.loss_history[(int64_t)net * a.n_records + r] = loss_sum / count;
        a.acc_history[(int64_t)net * a.n_records + r] = correct_sum / count;
      });
    }
    copy_network_state(blk, P, theta, m, v, theta_out, m_out, v_out);
    if (!on_epoch(epoch)) return;
  }
}

// Rows evaluated at once by forward: at most kForwardTile, and at most what fits in about
// kForwardScratch scalars of activations, so the workspace is bounded for any N and network.
// Small enough that a tile's layer outputs are still in cache when the next layer reads them
// (the paper's CNN: 18 images, 8 MiB in float32; tiles 4 times larger ran 7-15% slower).
constexpr int kForwardTile = 512;
constexpr int64_t kForwardScratch = int64_t(1) << 21;
FS_HD inline int forward_tile(const NetShape& s, int N) {
  const int64_t fit = kForwardScratch / NetWorkspace<float>::scalars_per_row(s);
  int tile = static_cast<int>(fit < kForwardTile ? fit : kForwardTile);
  if (tile > N) tile = N;
  return tile > 1 ? tile : 1;  // at least one row, also for N = 0 (no tiles then)
}

// Logits of B data rows for one network: X rows [row0, row0 + B) -> out (B, K) row-major.
template <class Block, class T>
FS_HD void net_forward_rows(const Block& blk, const NetShape& s, const T* theta, const T* X,
                            int row0, int B, T* out, const NetWorkspace<T>& ws) {
  const int d = s.width[0], K = s.n_logits();
  blk.map_1d(B * d, [=](int e) { ws.acts[e] = X[(int64_t)row0 * d + e]; });
  net_forward(blk, s, theta, ws.acts, ws.padded, B);
  const T* z = ws.acts + (int64_t)s.act_row(s.n_layers) * B;
  blk.map_1d(B * K, [=](int e) { out[e] = z[e]; });
}

// Mean loss over all N rows, its gradient w.r.t. theta (written to grad_out[P]) and, if
// input_grad_out is non-null, w.r.t. X (N, d). The whole data set is one batch (B = N).
template <class Block, class T>
FS_HD void net_loss_and_grad(const Block& blk, const NetShape& s, LossKind loss, const T* theta,
                             const T* X, const T* Y, int N, const NetWorkspace<T>& ws,
                             T* loss_out, T* grad_out, T* input_grad_out) {
  const int d = s.width[0], K = s.n_logits();
  const int B = N;
  blk.map_1d(B, [=](int n) { ws.rows[n] = n; });
  gather_batch(blk, X, Y, ws.rows, ws.acts, ws.targets, d, targets_per_sample(loss, K), B);
  net_forward(blk, s, theta, ws.acts, ws.padded, B);
  const T* z = ws.acts + (int64_t)s.act_row(s.n_layers) * B;
  loss_grad(blk, loss, z, ws.targets, ws.delta_a, K, B);
  loss_terms(blk, loss, z, ws.targets, ws.terms, ws.terms + B, K, B);
  blk.single([=] {
    double acc = 0.0;
    for (int n = 0; n < B; ++n) acc += ws.terms[n];
    *loss_out = static_cast<T>(acc / B);
  });
  const T* dx = net_backward(blk, s, theta, ws, B, input_grad_out != nullptr);
  blk.map_1d(static_cast<int>(s.n_params), [=](int p) { grad_out[p] = ws.grad[p]; });
  if (input_grad_out) blk.map_1d(N * d, [=](int e) { input_grad_out[e] = dx[e]; });
}

}  // namespace fs
