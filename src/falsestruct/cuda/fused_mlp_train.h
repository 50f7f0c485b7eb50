// Fused GPU training of one-hidden-layer MLPs (Experiment I's 2 -> 104 -> 1 and the like):
// the whole run of epochs x steps of forward, loss, backward and Adam inside one kernel launch,
// every network's parameters and Adam moments on chip. Same contract as train_network
// (network.h): the same batch order (Philox draws, shuffle modes), the same Adam (adam.h), the
// same loss formulas (losses.h) and the same loss/accuracy records; sums may be ordered
// differently from the CPU engine's, so results agree to rounding, not bit for bit.
//
// Design. A network is a group of threads_per_net threads (whole warps); a block holds
// nets_per_block networks side by side (small H: several networks, so a block still has ~128
// threads). Hidden unit i of a network belongs to lane i mod threads_per_net (Tile::kUnits units
// per lane): the lane keeps that unit's input weights W0[:, i], bias b0[i], output weights
// W1[i, :] and their Adam moments in registers for the whole launch (lane j < K also owns the
// logit bias b1[j]). Shared memory per network: b1 and (read when K > 1) W1, the hidden
// activations of the batch (B x H, row stride odd: no bank conflicts), logits and their
// gradient (B x K), two batch buffers (x and targets, double-buffered), the epoch's order.
// One step is two phases (two barriers):
//   B  lanes over samples n: logits z[n] = b1 + h[n] . W1 (lane_dot_rows, the CPU's order;
//      with one logit phase A stores h[n][i] W1[i], so a term is one shared load),
//      loss gradient and (recorded epochs) loss terms (losses.h); the next batch is fetched
//      into the other buffer; one lane computes the step's Adam step size.
//   C  lanes over hidden units: the fused backward of host_shallow_backward.h over the batch
//      (dW1, dh, dW0, db0 in registers; the lane's activations recomputed from the inputs, one
//      vector load per sample), Adam on the lane's parameters, W1 back to shared memory; then,
//      without a barrier (it writes only the lane's own column and reads the batch fetched
//      before the last barrier), the next step's forward A: h[n][i] = relu(b0 + x.W0).
// An epoch of a shuffle mode adds four phases (Philox draws by all lanes, Fisher-Yates by one,
// the first batch, its forward); recorded epochs sum each lane's loss terms with a warp
// butterfly and the warps' partial sums in order. Launches may cover a range of epochs of one
// run (chunks for progress and Ctrl-C): parameters and moments go back to global memory at the
// end of each launch, and the batch order, Adam's step count and the records are those of the
// whole run.
// Shapes outside the tiles below (or whose shared memory does not fit) take the generic
// one-block-per-network kernel.
#pragma once
#include <stdint.h>
#include "../adam.h"
#include "../executor.h"
#include "../losses.h"
#include "../net_shape.h"
#include "../network.h"
#include "../philox.h"
#include "emulation.h"
#include <string>

namespace fs {
namespace cuda {

// Compile-time bounds of a kernel instantiation: at most D inputs and K logits, kUnits hidden
// units per lane (register arrays of fixed size, loops fully unrolled and guarded).
template <int D, int K, int U>
struct FusedMlpTile {
  static constexpr int kInputs = D, kLogits = K, kUnits = U;
  static constexpr int kParams = D + 1 + K;  // per hidden unit: W0[:, i], b0[i], W1[i, :]
};

constexpr int kFusedMaxThreads = 256;       // per block (__launch_bounds__)
constexpr int kFusedTargetThreads = 128;    // networks per block until a block has this many
// Dynamic shared memory of one block, at most: what sm_80 to sm_90 all grant (opt-in above
// 48 KiB).
constexpr int64_t kFusedMaxSharedBytes = 99 * 1024;
constexpr int64_t kFusedDefaultSharedBytes = 48 * 1024;

// Calls f(Tile{}) with the first tile that holds d inputs, K logits and H hidden units in
// kFusedMaxThreads lanes; returns false when none does.
template <class F>
bool with_fused_tile(int d, int K, int H, F&& f) {
  auto fits = [&](int D, int KM, int U) { return d <= D && K <= KM && H <= U * kFusedMaxThreads; };
  if (fits(2, 1, 1)) { f(FusedMlpTile<2, 1, 1>{}); return true; }   // Experiment I
  if (fits(4, 2, 2)) { f(FusedMlpTile<4, 2, 2>{}); return true; }
  if (fits(4, 10, 1)) { f(FusedMlpTile<4, 10, 1>{}); return true; }
  return false;
}

struct FusedMlpConfig {
  int threads_per_net = 0;  // a multiple of kWarpSize, times kUnits at least H
  int nets_per_block = 0;
};

// Byte offsets of one network's shared memory (each part 16-byte aligned).
struct FusedMlpLayout {
  int64_t w1, b1, hidden, logits, dlogits, terms, batch_x, batch_y, step_size, partials, order,
      draws, bytes;
  int hidden_stride;  // H rounded up to odd
  int n_perm;         // entries of the epoch's order (0 without shuffling)
};

template <class T>
FusedMlpLayout fused_mlp_layout(const NetShape& s, LossKind loss, ShuffleMode mode, int B,
                                      int N, int threads_per_net) {
  const int d = s.width[0], H = s.width[1], K = s.n_logits();
  const int t_per = targets_per_sample(loss, K);
  FusedMlpLayout L;
  L.hidden_stride = H | 1;
  L.n_perm = mode == ShuffleMode::Samples ? N : (mode == ShuffleMode::Batches ? N / B : 0);
  int64_t at = 0;
  auto part = [&](int64_t bytes) {
    const int64_t here = at;
    at += (bytes + 15) / 16 * 16;
    return here;
  };
  const int64_t t = sizeof(T);
  L.w1 = part((int64_t)H * K * t);
  L.b1 = part(K * t);
  L.hidden = part((int64_t)B * L.hidden_stride * t);
  L.logits = part((int64_t)B * K * t);
  L.dlogits = part((int64_t)B * K * t);
  L.terms = part(2LL * B * t);
  L.batch_x = part(2LL * B * d * t);
  L.batch_y = part(2LL * B * t_per * t);
  L.step_size = part(t);
  L.partials = part(2LL * (threads_per_net / kWarpSize) * (int64_t)sizeof(double));
  L.order = part((int64_t)L.n_perm * (int64_t)sizeof(int));
  // The draws live from the epoch's draw phase to its Fisher-Yates phase, while the hidden
  // activations are dead (the last step's phase B read them; the first step's phase A writes
  // them after the permutation): they share that space when they fit.
  const int64_t draw_bytes = (int64_t)L.n_perm * (int64_t)sizeof(int);
  L.draws = draw_bytes <= L.logits - L.hidden ? L.hidden : part(draw_bytes);
  L.bytes = at;
  return L;
}

// True for the networks this kernel trains: one ReLU dense hidden layer, a linear dense output,
// within a tile, and one network's shared memory within kFusedMaxSharedBytes.
template <class T>
bool fused_mlp_train_supported(const NetShape& s, LossKind loss, ShuffleMode mode, int B, int N) {
  if (s.n_layers != 2 || s.layer[0].kind != LayerKind::Dense || !s.layer[0].relu ||
      s.layer[1].kind != LayerKind::Dense || s.layer[1].relu || B < 1 || N < B)
    return false;
  int units = 0;
  if (!with_fused_tile(s.width[0], s.n_logits(), s.width[1], [&](auto tile) { units = tile.kUnits; }))
    return false;
  const int lanes = (s.width[1] + units - 1) / units;
  const int tpn = (lanes + kWarpSize - 1) / kWarpSize * kWarpSize;
  return fused_mlp_layout<T>(s, loss, mode, B, N, tpn).bytes <= kFusedMaxSharedBytes;
}

// The launch configuration for S networks: the fewest whole warps per network, and networks
// per block until kFusedTargetThreads threads (at most S, within the shared memory limit).
// Call only when fused_mlp_train_supported.
template <class T>
FusedMlpConfig fused_mlp_config(const NetShape& s, LossKind loss, ShuffleMode mode, int B,
                                      int N, int S) {
  int units = 1;
  with_fused_tile(s.width[0], s.n_logits(), s.width[1], [&](auto tile) { units = tile.kUnits; });
  FusedMlpConfig c;
  const int lanes = (s.width[1] + units - 1) / units;
  c.threads_per_net = (lanes + kWarpSize - 1) / kWarpSize * kWarpSize;
  const int64_t bytes = fused_mlp_layout<T>(s, loss, mode, B, N, c.threads_per_net).bytes;
  int g = kFusedTargetThreads / c.threads_per_net;
  if (g > S) g = S;
  while (g > 1 && g * bytes > kFusedMaxSharedBytes) --g;
  c.nets_per_block = g > 1 ? g : 1;
  return c;
}

template <class T>
bool fused_mlp_train_supported(const TrainArgs<T>& a) {
  return fused_mlp_train_supported<T>(a.shape, a.loss, a.shuffle, a.B, a.N);
}

// Everything a block needs (passed as one __grid_constant__ kernel parameter): epochs
// [epoch_begin, epoch_end) of the run in args (epoch_end resolved from args.epoch_end).
template <class T>
struct FusedMlpRun {
  TrainArgs<T> args;
  int S, epoch_begin, epoch_end;
  FusedMlpConfig config;
  FusedMlpLayout layout;
  FusedMlpRun(const TrainArgs<T>& a, int n_nets, const FusedMlpConfig& c)
      : args(a), S(n_nets), epoch_begin(a.epoch_begin),
        epoch_end(a.epoch_end < 0 ? a.epochs : a.epoch_end), config(c),
        layout(fused_mlp_layout<T>(a.shape, a.loss, a.shuffle, a.B, a.N, c.threads_per_net)) {}
};

// A lane's registers: for each of its units, the kParams parameters with their Adam moments
// (W0[:, i] at [0, D), b0[i] at D, W1[i, :] at D + 1 + j), the logit bias it owns (lane < K),
// and its loss / correctness sums over the epoch's samples it evaluated.
template <class Tile, class T>
struct FusedThreadState {
  T p[Tile::kUnits][Tile::kParams], m[Tile::kUnits][Tile::kParams], v[Tile::kUnits][Tile::kParams];
  T b1, b1_m, b1_v;
  double loss_sum, correct_sum;
  int lane, slot;  // lane within the network, network slot within the block
};

// One network's shared memory: each part's address computed where it is used, from the base and
// the layout's offsets (kernel parameters), so that no pointer stays live in registers.
template <class T>
struct FusedShared {
  unsigned char* base;
  const FusedMlpLayout& L;
  FS_HD FS_INLINE T* at(int64_t offset) const { return reinterpret_cast<T*>(base + offset); }
  FS_HD FS_INLINE T* w1() const { return at(L.w1); }
  FS_HD FS_INLINE T* b1() const { return at(L.b1); }
  FS_HD FS_INLINE T* hidden() const { return at(L.hidden); }
  FS_HD FS_INLINE T* logits() const { return at(L.logits); }
  FS_HD FS_INLINE T* dlogits() const { return at(L.dlogits); }
  FS_HD FS_INLINE T* terms() const { return at(L.terms); }
  FS_HD FS_INLINE T* batch_x() const { return at(L.batch_x); }
  FS_HD FS_INLINE T* batch_y() const { return at(L.batch_y); }
  FS_HD FS_INLINE T* step_size() const { return at(L.step_size); }
  FS_HD FS_INLINE double* partials() const { return reinterpret_cast<double*>(base + L.partials); }
  FS_HD FS_INLINE int* order() const { return reinterpret_cast<int*>(base + L.order); }
  FS_HD FS_INLINE int* draws() const { return reinterpret_cast<int*>(base + L.draws); }
};

// The per-block program. Its helpers below are the phases' per-thread code.
template <class Tile, class T>
struct FusedMlpBlock {
  static constexpr int D = Tile::kInputs, KM = Tile::kLogits, U = Tile::kUnits, NP = Tile::kParams;
  using State = FusedThreadState<Tile, T>;

  const FusedMlpRun<T>& run;
  const TrainArgs<T>& a;
  int block;
  unsigned char* smem;
  int d, H, K, t_per, B, n_batches, Tn, Hs;
  ShuffleMode mode;

  FS_HD FusedMlpBlock(const FusedMlpRun<T>& r, int block_index, unsigned char* shared)
      : run(r), a(r.args), block(block_index), smem(shared) {
    d = a.shape.width[0];
    H = a.shape.width[1];
    K = a.shape.n_logits();
    t_per = targets_per_sample(a.loss, K);
    B = a.B;
    n_batches = a.N / a.B;
    Tn = r.config.threads_per_net;
    Hs = r.layout.hidden_stride;
    mode = a.shuffle;
  }

  FS_HD FS_INLINE int net_of(const State& st) const { return block * run.config.nets_per_block + st.slot; }
  FS_HD FS_INLINE bool active(const State& st) const { return net_of(st) < run.S; }
  FS_HD FS_INLINE FusedShared<T> shared_of(const State& st) const {
    return FusedShared<T>{smem + run.layout.bytes * st.slot, run.layout};
  }
  FS_HD FS_INLINE int64_t param_index(int q, int i) const {  // theta index of parameter q of unit i
    const NetShape& s = a.shape;
    if (q < D) return s.w_offset[0] + (int64_t)q * H + i;
    if (q == D) return s.b_offset[0] + i;
    return s.w_offset[1] + (int64_t)i * K + (q - D - 1);
  }
  FS_HD FS_INLINE bool param_used(int q) const { return q < D ? q < d : (q == D || q - D - 1 < K); }

  // Registers (and W1, b1 in shared memory) from the network's theta, m, v.
  FS_HD void load_state(int tid, State& st) const {
    st.lane = tid % Tn;
    st.slot = tid / Tn;
    st.loss_sum = st.correct_sum = 0.0;
    st.b1 = st.b1_m = st.b1_v = T(0);
    for (int u = 0; u < U; ++u)
      for (int q = 0; q < NP; ++q) st.p[u][q] = st.m[u][q] = st.v[u][q] = T(0);
    if (!active(st)) return;
    const int64_t base = a.shape.n_params * net_of(st);
    const FusedShared<T> sh = shared_of(st);
FS_UNROLL
    for (int u = 0; u < U; ++u) {
      const int i = st.lane + u * Tn;
      if (i >= H) continue;
FS_UNROLL
      for (int q = 0; q < NP; ++q) {
        if (!param_used(q)) continue;
        const int64_t e = base + param_index(q, i);
        st.p[u][q] = a.theta[e];
        st.m[u][q] = a.adam_m[e];
        st.v[u][q] = a.adam_v[e];
        if (q > D) sh.w1()[i * K + (q - D - 1)] = st.p[u][q];
      }
    }
    if (st.lane < K) {
      const int64_t e = base + a.shape.b_offset[1] + st.lane;
      st.b1 = a.theta[e];
      st.b1_m = a.adam_m[e];
      st.b1_v = a.adam_v[e];
      sh.b1()[st.lane] = st.b1;
    }
  }

  // Registers back to the network's theta, m, v.
  FS_HD void store_state(const State& st) const {
    if (!active(st)) return;
    const int64_t base = a.shape.n_params * net_of(st);
FS_UNROLL
    for (int u = 0; u < U; ++u) {
      const int i = st.lane + u * Tn;
      if (i >= H) continue;
FS_UNROLL
      for (int q = 0; q < NP; ++q) {
        if (!param_used(q)) continue;
        const int64_t e = base + param_index(q, i);
        a.theta[e] = st.p[u][q];
        a.adam_m[e] = st.m[u][q];
        a.adam_v[e] = st.v[u][q];
      }
    }
    if (st.lane < K) {
      const int64_t e = base + a.shape.b_offset[1] + st.lane;
      a.theta[e] = st.b1;
      a.adam_m[e] = st.b1_m;
      a.adam_v[e] = st.b1_v;
    }
  }

  // Epoch `epoch` of the run (shuffle modes): this lane's Philox draws, then (lane 0, next
  // phase) the permutation, as train_network.
  FS_HD uint32_t global_epoch(int epoch) const {
    return static_cast<uint32_t>(a.step0 / n_batches + epoch);
  }
  FS_HD void draw_order(const State& st, int epoch) const {
    if (!active(st)) return;
    const FusedShared<T> sh = shared_of(st);
    const uint64_t seed = a.seeds[net_of(st)];
    const uint32_t ge = global_epoch(epoch);
    for (int i = st.lane; i < run.layout.n_perm; i += Tn)
      sh.draws()[i] = i > 0 ? shuffle_draw(seed, ge, i) : 0;
  }
  FS_HD void permute(const State& st) const {
    if (!active(st) || st.lane != 0) return;
    const FusedShared<T> sh = shared_of(st);
    apply_shuffle_draws(run.layout.n_perm, sh.draws(), sh.order());
  }

  // Batch `step` of the current epoch's order into buffer `buf` (lanes over its elements).
  FS_HD void fetch_batch(const State& st, int buf, int step) const {
    if (!active(st)) return;
    const FusedShared<T> sh = shared_of(st);
    const int net = net_of(st);
    const T* X = a.X + a.x_net_stride * net;
    const T* Y = a.Y + a.y_net_stride * net;
    auto row = [&](int n) -> int64_t { return batch_row(mode, sh.order(), step, B, n); };
    T* xb = sh.batch_x() + (int64_t)buf * B * d;
    T* yb = sh.batch_y() + (int64_t)buf * B * t_per;
    for (int e = st.lane; e < B * d; e += Tn) xb[e] = X[row(e / d) * d + e % d];
    for (int e = st.lane; e < B * t_per; e += Tn) yb[e] = Y[row(e / t_per) * t_per + e % t_per];
  }

  // Inputs of batch row n (buffer xb; zeros beyond d): one vector load when d == D.
  FS_HD FS_INLINE void x_row(const T* xb, int n, T (&x)[D]) const {
    if (d == D) {
      load_row<D>(xb + n * D, x);
      return;
    }
FS_UNROLL
    for (int k = 0; k < D; ++k) x[k] = k < d ? xb[n * d + k] : T(0);
  }

  // Activation of the lane's unit u for inputs x: relu(b0 + sum_k x[k] W0[k]).
  FS_HD FS_INLINE T hidden_unit(const State& st, int u, const T (&x)[D]) const {
    T sum = T(0);
FS_UNROLL
    for (int k = 0; k < D; ++k)
      if (k < d) sum += x[k] * st.p[u][k];
    return relu_if(true, st.p[u][D] + sum);
  }

  // Phase A (per unit): hidden activations of the batch in buffer `buf` (times W1[i] for one
  // logit).
  FS_HD void hidden_forward(const State& st, int buf) const {
    if (!active(st)) return;
    const FusedShared<T> sh = shared_of(st);
    const T* xb = sh.batch_x() + (int64_t)buf * B * d;
    for (int n = 0; n < B; ++n) {
      T x[D];
      x_row(xb, n, x);
FS_UNROLL
      for (int u = 0; u < U; ++u) {
        const int i = st.lane + u * Tn;
        // One logit: the product with W1[i] (phase B's dot is then one load per term).
        if (i < H) sh.hidden()[n * Hs + i] = K == 1 ? hidden_unit(st, u, x) * st.p[u][D + 1]
                                                    : hidden_unit(st, u, x);
      }
    }
  }

  // Phase B (per sample): logits (lane_dot_rows over the hidden units), their loss gradient and (record) loss terms; then the fetch
  // of batch `next_step` (< 0: none) into the other buffer and this step's Adam step size.
  FS_HD void logits_and_loss(State& st, int buf, bool record, int next_step, int64_t t) const {
    if (!active(st)) return;
    const FusedShared<T> sh = shared_of(st);
    const T* yb = sh.batch_y() + (int64_t)buf * B * t_per;
    for (int n = st.lane; n < B; n += Tn) {
      const T* hn = sh.hidden() + n * Hs;
      for (int j = 0; j < K; ++j) {
        auto term = [&](int, int i) { return K == 1 ? hn[i] : hn[i] * sh.w1()[i * K + j]; };
        T sum;
        lane_dot_rows<1>(H, term, &sum);
        sh.logits()[n * K + j] = sh.b1()[j] + sum;
      }
      if (a.loss == LossKind::SigmoidCE)
        sigmoid_ce_grad(ThreadRange{n * K, K}, sh.logits(), yb, sh.dlogits(), K, B);
      else
        softmax_ce_grad(ThreadRange{n, 1}, sh.logits(), yb, sh.dlogits(), K, B);
      if (record) {
        loss_terms(ThreadRange{n, 1}, a.loss, sh.logits(), yb, sh.terms(), sh.terms() + B, K, B);
        st.loss_sum += static_cast<double>(sh.terms()[n]);
        st.correct_sum += static_cast<double>(sh.terms()[B + n]);
      }
    }
    if (next_step >= 0) fetch_batch(st, buf ^ 1, next_step);
    if (st.lane == Tn - 1) *sh.step_size() = static_cast<T>(adam_step_size(a.adam, t));
  }

  // Phase C (per unit): gradients over the batch in buffer `buf` (host_shallow_backward's
  // order), Adam on the lane's parameters, W1 and b1 back to shared memory. The lane's hidden
  // activations are recomputed from the inputs it loads anyway (the weights have not changed
  // since phase A): arithmetic instead of a shared-memory load per sample.
  FS_HD void backward_adam(State& st, int buf) const {
    if (!active(st)) return;
    const FusedShared<T> sh = shared_of(st);
    const T* xb = sh.batch_x() + (int64_t)buf * B * d;
    const AdamStep<T> step(a.adam, *sh.step_size());
    T g[U][NP];
FS_UNROLL
    for (int u = 0; u < U; ++u)
FS_UNROLL
      for (int q = 0; q < NP; ++q) g[u][q] = T(0);
    for (int n = 0; n < B && st.lane < H; ++n) {  // (a lane >= H has no unit)
      T x[D];
      x_row(xb, n, x);
FS_UNROLL
      for (int u = 0; u < U; ++u) {
        const T h = hidden_unit(st, u, x);
        T dh = T(0);
FS_UNROLL
        for (int j = 0; j < KM; ++j) {
          if (j >= K) continue;
          const T gz = sh.dlogits()[n * K + j];
          g[u][D + 1 + j] += gz * h;
          dh += gz * st.p[u][D + 1 + j];
        }
        dh = relu_grad_if(true, h, dh);
FS_UNROLL
        for (int k = 0; k < D; ++k)
          if (k < d) g[u][k] += x[k] * dh;
        g[u][D] += dh;
      }
    }
FS_UNROLL
    for (int u = 0; u < U; ++u) {
      const int i = st.lane + u * Tn;
      if (i >= H) continue;  // (its sums above are of zero weights: unused)
FS_UNROLL
      for (int q = 0; q < NP; ++q)
        if (param_used(q)) step.apply(g[u][q], st.p[u][q], st.m[u][q], st.v[u][q]);
FS_UNROLL
      for (int j = 0; j < KM; ++j)
        if (j < K) sh.w1()[i * K + j] = st.p[u][D + 1 + j];
    }
    if (st.lane < K) {
      T g = T(0);
      for (int n = 0; n < B; ++n) g += sh.dlogits()[n * K + st.lane];
      step.apply(g, st.b1, st.b1_m, st.b1_v);
      sh.b1()[st.lane] = st.b1;
    }
  }

  // After a recorded epoch's last phase (warp sums in `partials`): lane 0 adds the warps' sums
  // in order and writes the record.
  FS_HD void write_record(const State& st, int epoch) const {
    if (!active(st) || st.lane != 0 || epoch < 0) return;
    const FusedShared<T> sh = shared_of(st);
    double loss = 0.0, correct = 0.0;
    for (int w = 0; w < Tn / kWarpSize; ++w) {
      loss += sh.partials()[2 * w];
      correct += sh.partials()[2 * w + 1];
    }
    const int epoch_no = epoch + 1;
    const int r = epoch_no % a.record_every == 0 ? epoch_no / a.record_every - 1 : a.n_records - 1;
    const double count = static_cast<double>(n_batches) * B;
    const int64_t at = (int64_t)net_of(st) * a.n_records + r;
    a.loss_history[at] = loss / count;
    a.acc_history[at] = correct / count;
  }

  FS_HD bool records(int epoch) const {
    const int epoch_no = epoch + 1;
    return epoch_no % a.record_every == 0 || epoch_no == a.epochs;
  }

  // Epochs [epoch_begin, epoch_end) of the run (epoch_begin < epoch_end).
  template <class Exec>
  FS_HD void operator()(Exec& ex) const {
    const bool shuffled = mode != ShuffleMode::None;
    const int e0 = run.epoch_begin, e1 = run.epoch_end;
    ex.phase([&](int tid, State& st) {
      load_state(tid, st);
      if (shuffled) draw_order(st, e0);
    });
    if (shuffled) ex.phase([&](int, State& st) { permute(st); });
    ex.phase([&](int, State& st) { fetch_batch(st, 0, 0); });
    ex.phase([&](int, State& st) { hidden_forward(st, 0); });
    int gs = 0;           // steps done in this launch (parity: the batch buffer)
    int pending = -1;     // a recorded epoch whose warp sums await write_record
    for (int epoch = e0; epoch < e1; ++epoch) {
      const bool record = records(epoch);
      const bool more = epoch + 1 < e1;
      for (int step = 0; step < n_batches; ++step, ++gs) {
        const int buf = gs & 1;
        const bool last = step + 1 == n_batches;
        // Without shuffling the next epoch's first batch is known now: fetch it here too.
        const int next = !last ? step + 1 : (!shuffled && more ? 0 : -1);
        const int64_t t = a.step0 + (int64_t)epoch * n_batches + step + 1;
        ex.phase([&](int, State& st) {
          write_record(st, pending);
          logits_and_loss(st, buf, record, next, t);
        });
        pending = -1;
        const bool forward_next = next >= 0;
        if (last && record) {
          ex.template phase_warp_sum<2, double>(
              [&](int, State& st, double* vals) {
                backward_adam(st, buf);
                vals[0] = st.loss_sum;
                vals[1] = st.correct_sum;
                st.loss_sum = st.correct_sum = 0.0;
              },
              [&](int, const State& st, const double* sums) {
                if (st.lane % kWarpSize == 0) {
                  const FusedShared<T> sh = shared_of(st);
                  sh.partials()[2 * (st.lane / kWarpSize)] = sums[0];
                  sh.partials()[2 * (st.lane / kWarpSize) + 1] = sums[1];
                }
                if (forward_next) hidden_forward(st, buf ^ 1);
              });
          pending = epoch;
        } else {
          ex.phase([&](int, State& st) {
            backward_adam(st, buf);
            if (forward_next) hidden_forward(st, buf ^ 1);
          });
        }
      }
      if (more && shuffled) {
        const int p = pending;
        ex.phase([&](int, State& st) {
          write_record(st, p);
          draw_order(st, epoch + 1);
        });
        pending = -1;
        ex.phase([&](int, State& st) { permute(st); });
        ex.phase([&](int, State& st) { fetch_batch(st, gs & 1, 0); });
        ex.phase([&](int, State& st) { hidden_forward(st, gs & 1); });
      }
    }
    ex.phase([&](int, State& st) {
      write_record(st, pending);
      store_state(st);
    });
  }
};

// Queues the kernel for epochs [args.epoch_begin, args.epoch_end) of the run described by
// args (device pointers, TrainArgs as for train_network), S networks, on `stream` (a
// cudaStream_t). Requires fused_mlp_train_supported(args). Returns "" or the CUDA error text
// of the launch (execution errors show at the stream's next synchronisation).
template <class T>
std::string fused_mlp_train_launch(const TrainArgs<T>& device_args, int S, void* stream);

#if !defined(__CUDACC__)
// The kernel run on the CPU by EmulatedThreads (tests): host pointers in args, the given
// configuration (checked by the caller: fused_mlp_config_error), either thread order. The
// grid's blocks run one after the other.
template <class T>
void fused_mlp_train_emulate(const TrainArgs<T>& args, int S, const FusedMlpConfig& config,
                             bool reverse_threads) {
  const NetShape& s = args.shape;
  const FusedMlpRun<T> run(args, S, config);
  if (S == 0 || run.epoch_end <= run.epoch_begin) return;
  const int n_blocks = (S + config.nets_per_block - 1) / config.nets_per_block;
  with_fused_tile(s.width[0], s.n_logits(), s.width[1], [&](auto tile) {
    using Block = FusedMlpBlock<decltype(tile), T>;
    emulate_grid<typename Block::State>(
        n_blocks, config.threads_per_net * config.nets_per_block,
        run.layout.bytes * config.nets_per_block, reverse_threads,
        [&](auto& ex, int b, unsigned char* shared) { Block(run, b, shared)(ex); });
  });
}
#endif

// Why `config` cannot run this shape, or nullptr (tests pass their own configurations).
template <class T>
inline const char* fused_mlp_config_error(const NetShape& s, LossKind loss, ShuffleMode mode,
                                          int B, int N, const FusedMlpConfig& c) {
  int units = 0;
  with_fused_tile(s.width[0], s.n_logits(), s.width[1], [&](auto tile) { units = tile.kUnits; });
  if (c.threads_per_net < kWarpSize || c.threads_per_net % kWarpSize != 0)
    return "threads_per_net must be a positive multiple of 32";
  if ((int64_t)c.threads_per_net * units < s.width[1])
    return "threads_per_net times the tile's units per lane must be at least the hidden width";
  if (c.nets_per_block < 1 || (int64_t)c.nets_per_block * c.threads_per_net > kFusedMaxThreads)
    return "nets_per_block must be >= 1 with at most 256 threads per block";
  if (c.nets_per_block * fused_mlp_layout<T>(s, loss, mode, B, N, c.threads_per_net).bytes >
      kFusedMaxSharedBytes)
    return "nets_per_block networks exceed the shared memory limit";
  return nullptr;
}

}  // namespace cuda
}  // namespace fs
