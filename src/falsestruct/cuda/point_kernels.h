// Per-point kernels for MLPs on the GPU: one thread owns one data point, the weights of one
// network sit in shared memory (staged once per block, then read by every thread of the block
// at the same address: broadcasts), and a point's state stays in the thread (registers for
// Experiment I's shallow binary nets, else a private scratch array in local memory, which
// the GPU interleaves across threads and caches in L1). There is no
// barrier inside a point's loop, so DeepFool points that need more steps do not hold back the
// others. Forward (logits), input gradients of every logit, DeepFool (the contract of
// deepfool.h's deepfool_rows, decided per point) and the baselines' flipping-scale search are
// written here once, for the CUDA kernels (src/cuda/point_kernels.cu) and for their CPU
// emulation (cpp/emulate_point_kernels.cpp), which runs the same block/thread mapping
// (PointGrid) and shared-memory staging.
//
// Sums run in a different order than the CPU engine's lane sums: results agree to rounding.
#pragma once
#include <stdint.h>
#include <string>
#include "../config.h"
#include "../deepfool.h"
#include "../fs_math.h"
#include "../net_shape.h"

namespace fs {
namespace cuda {

constexpr int kPointThreads = 128;  // threads per block of the per-point kernels
// Shallow binary nets with at most this many inputs keep a point's vectors in registers
// (the input width is a template parameter); wider or deeper nets use the scratch path.
constexpr int kPointRegisterInputs = 4;
// The scratch path's per-thread scratch (scalars) comes in two sizes (the kernel's local
// array; the driver reserves it for every resident thread, so small nets get the small one).
// Networks needing more run on the generic block-per-tile kernels of network_cuda.cu, which
// share a wide layer's work among a block's threads.
constexpr int kPointSmallScratch = 128;
constexpr int64_t kPointMaxScratch = 512;

// ---- which networks, and how much memory ------------------------------------------------
// Input width D when `s` is a shallow binary MLP (dense, one ReLU hidden layer, one logit)
// with D <= kPointRegisterInputs inputs: the register path; 0 otherwise (scratch path).
FS_HD FS_INLINE int point_register_inputs(const NetShape& s) {
  const bool shallow = s.n_layers == 2 && s.layer[0].kind == LayerKind::Dense && s.layer[0].relu &&
                       s.layer[1].kind == LayerKind::Dense && !s.layer[1].relu && s.width[2] == 1;
  return shallow && s.width[0] <= kPointRegisterInputs ? s.width[0] : 0;
}

// Scratch scalars per thread of the scratch path: every layer's output, two backward
// buffers, and (DeepFool) the evaluated point x, r~, the chosen direction and a gradient.
FS_HD FS_INLINE int64_t point_scratch_scalars(const NetShape& s, bool deepfool) {
  if (point_register_inputs(s) > 0) return 0;
  return (int64_t)s.sum_width - s.width[0] + 2LL * s.max_width + (deepfool ? 4LL * s.width[0] : 0);
}
// Scratch ints per thread (DeepFool's candidate classes: fewer than K <= max_width, so at
// most half the scalars).
FS_HD FS_INLINE int64_t point_scratch_ints(const NetShape& s, int candidates) {
  return point_register_inputs(s) > 0 ? 0 : (s.n_logits() > 1 ? candidates : 1);
}
// The local array size for a scratch of `scalars`: 0 (register path), kPointSmallScratch or
// kPointMaxScratch.
FS_HD FS_INLINE int point_scratch_tier(int64_t scalars) {
  return scalars == 0 ? 0 : (scalars <= kPointSmallScratch ? kPointSmallScratch : (int)kPointMaxScratch);
}

template <class T>
FS_HD FS_INLINE int64_t point_shared_bytes(const NetShape& s) {
  return s.n_params * (int64_t)sizeof(T);
}

// True when the per-point kernels take this network: a dense MLP (ReLU hidden layers, linear
// logits) whose weights fit in `shared_bytes_limit` bytes of shared memory and whose
// per-thread scratch is at most kPointMaxScratch scalars. Everything else (CNNs, wide
// networks) runs on the block-per-tile kernels.
template <class T>
FS_HD FS_INLINE bool point_kernels_supported(const NetShape& s, int64_t shared_bytes_limit) {
  for (int l = 0; l < s.n_layers; ++l)
    if (s.layer[l].kind != LayerKind::Dense || s.layer[l].relu != (l + 1 < s.n_layers)) return false;
  return point_shared_bytes<T>(s) <= shared_bytes_limit && point_scratch_scalars(s, true) <= kPointMaxScratch;
}

// ---- block / thread mapping (shared by the kernels and their emulation) ------------------
// A unit is (network, chunk): blocks_per_net blocks share one network's points. A block
// stages the unit's weights, then thread tid takes points chunk * threads + tid +
// q * blocks_per_net * threads. Blocks loop over units (unit = blockIdx.x + q * gridDim.x),
// so any number of networks fits in a grid of bounded size.
struct PointGrid {
  int S = 0, N = 0;
  int threads = kPointThreads;
  int64_t blocks_per_net = 1;
  FS_HD int64_t units() const { return (int64_t)S * blocks_per_net; }
};

// 128-thread blocks resident on one SM at full occupancy: the grid's target size per SM.
constexpr int kPointBlocksPerSm = 16;

// Splits each network's points over enough blocks that about target_blocks units exist
// (at least one block per network, at most one per `threads` points).
inline PointGrid make_point_grid(int S, int N, int threads, int64_t target_blocks) {
  PointGrid g;
  g.S = S;
  g.N = N;
  g.threads = threads;
  const int64_t max_chunks = ((int64_t)N + threads - 1) / threads;
  int64_t per_net = S > 0 ? target_blocks / S : 1;
  if (per_net > max_chunks) per_net = max_chunks;
  g.blocks_per_net = per_net < 1 ? 1 : per_net;
  return g;
}

// Blocks of the grid: every unit when there are at most max_blocks (blocks loop over the
// rest).
inline int64_t point_grid_blocks(const PointGrid& g, int64_t max_blocks) {
  const int64_t blocks = g.units() < max_blocks ? g.units() : max_blocks;
  return blocks < 1 ? 1 : blocks;
}

// Calls f(net, n) for every point n of network `net` that thread tid owns in `unit`.
template <class F>
FS_HD FS_INLINE void for_each_point_of_thread(const PointGrid& g, int64_t unit, int tid, F&& f) {
  const int net = static_cast<int>(unit / g.blocks_per_net);
  const int64_t chunk = unit % g.blocks_per_net;
  const int64_t step = g.blocks_per_net * g.threads;
  for (int64_t n = chunk * g.threads + tid; n < g.N; n += step) f(net, static_cast<int>(n));
}

// Thread tid's share of copying one network's P parameters into shared memory.
template <class T>
FS_HD FS_INLINE void stage_weights(int tid, int threads, const T* theta, int64_t P, T* shared) {
  for (int64_t e = tid; e < P; e += threads) shared[e] = theta[e];
}

// ---- one point's network --------------------------------------------------------------
// Both models: eval(x, with_grad) forwards one point and returns its K logits; grad(c, l0, g)
// then writes g = d(z_c - z_l0)/dx at that point (K = 1: d(-+z)/dx, minus for l0 = 1, the
// sign DeepFool moves the single logit in), and logit_grad(k, g) = d z_k / dx.

// Shallow binary MLP with D inputs (W1 (D, H), b1 (H), W2 (H, 1), b2 (1) in shared memory):
// the logit and its input gradient in one pass over the hidden units, nothing stored.
template <class T, int D>
struct ShallowBinaryPoint {
  const T* w;
  int H;
  T z;
  T gz[D];  // d z / dx at the last point evaluated with_grad

  template <bool kGrad>
  FS_HD FS_INLINE void run(const T* x) {
    const T* W1 = w;
    const T* b1 = w + D * H;
    const T* W2 = b1 + H;
    T sum = T(0);
    for (int i = 0; i < D; ++i) gz[i] = T(0);
    for (int j = 0; j < H; ++j) {
      T pre = T(0);
      for (int i = 0; i < D; ++i) pre += x[i] * W1[i * H + j];
      const T h = relu_if(true, b1[j] + pre);
      sum += h * W2[j];
      if (kGrad) {
        const T gate = relu_grad_if(true, h, W2[j]);
        for (int i = 0; i < D; ++i) gz[i] += gate * W1[i * H + j];
      }
    }
    z = W2[H] + sum;
  }
  FS_HD FS_INLINE const T* eval(const T* x, bool with_grad) {
    if (with_grad) run<true>(x);
    else run<false>(x);
    return &z;
  }
  FS_HD FS_INLINE void grad(int, int l0, T* g) const {
    const T sign = l0 == 1 ? T(-1) : T(1);
    for (int i = 0; i < D; ++i) g[i] = sign * gz[i];
  }
  FS_HD FS_INLINE void logit_grad(int, T* g) const {
    for (int i = 0; i < D; ++i) g[i] = gz[i];
  }
};

// Any dense ReLU MLP: the forward keeps every layer's output in the thread's scratch (acts,
// then two backward buffers of max_width), and each gradient is one backward pass.
template <class T>
struct MlpPoint {
  const NetShape* s;
  const T* w;
  T* acts;  // sum_width - width[0]: outputs of layers 0 .. L-1 (the logits last)
  T* buf0;  // max_width
  T* buf1;  // max_width

  FS_HD FS_INLINE MlpPoint(const NetShape& shape, const T* weights, T* scratch)
      : s(&shape), w(weights), acts(scratch), buf0(scratch + (shape.sum_width - shape.width[0])),
        buf1(buf0 + shape.max_width) {}

  FS_HD const T* eval(const T* x, bool) {
    const T* in = x;
    T* out = acts;
    for (int l = 0; l < s->n_layers; ++l) {
      const int n_in = s->width[l], n_out = s->width[l + 1];
      const bool relu = s->layer[l].relu;
      const T* W = w + s->w_offset[l];
      const T* b = w + s->b_offset[l];
      for (int j = 0; j < n_out; ++j) {
        T sum = T(0);
        for (int i = 0; i < n_in; ++i) sum += in[i] * W[i * n_out + j];
        out[j] = relu_if(relu, b[j] + sum);
      }
      in = out;
      out += n_out;
    }
    return in;
  }
  // g = d(delta . z)/dx for delta (K) in buf0 (overwritten).
  FS_HD void backward(T* g) const {
    T* cur = buf0;
    T* other = buf1;
    int out_off = s->sum_width - s->width[0] - s->n_logits();  // layer l's output in acts
    for (int l = s->n_layers - 1; l >= 0; --l) {
      const int n_in = s->width[l], n_out = s->width[l + 1];
      const int in_off = out_off - n_in;
      const T* W = w + s->w_offset[l];
      // The ReLU below layer l is applied here (its output > 0 exactly where it passed).
      const bool relu_input = l > 0 && s->layer[l - 1].relu;
      const T* a_in = acts + (l > 0 ? in_off : 0);
      T* dst = l == 0 ? g : other;
      for (int i = 0; i < n_in; ++i) {
        T sum = T(0);
        for (int j = 0; j < n_out; ++j) sum += cur[j] * W[i * n_out + j];
        dst[i] = l > 0 ? relu_grad_if(relu_input, a_in[i], sum) : sum;
      }
      other = cur;
      cur = dst;
      out_off = in_off;
    }
  }
  FS_HD FS_INLINE void grad(int c, int l0, T* g) const {
    const int K = s->n_logits();
    if (K == 1) buf0[0] = l0 == 1 ? T(-1) : T(1);
    else
      for (int k = 0; k < K; ++k) buf0[k] = T(k == c ? 1 : 0) - T(k == l0 ? 1 : 0);
    backward(g);
  }
  FS_HD FS_INLINE void logit_grad(int c, T* g) const {
    for (int k = 0; k < s->n_logits(); ++k) buf0[k] = T(k == c ? 1 : 0);
    backward(g);
  }
};

// ---- DeepFool for one point -----------------------------------------------------------
// DeepFool's options in the kernels' precision (as deepfool_rows converts them).
template <class T>
struct PointDeepFoolParams {
  T over, lo, hi, dist_eps, norm_eps;
  int max_iter, candidates;
  bool clip, linf, foolbox;
  static PointDeepFoolParams from(const DeepFoolOptions& o) {
    PointDeepFoolParams p;
    p.over = static_cast<T>(1.0 + o.overshoot);
    p.lo = static_cast<T>(o.lo);
    p.hi = static_cast<T>(o.hi);
    p.dist_eps = o.foolbox ? T(1e-4) : T(0);
    p.norm_eps = o.foolbox ? T(1e-8) : T(0);
    p.max_iter = o.max_iter;
    p.candidates = o.candidates;
    p.clip = o.clip;
    p.linf = o.linf;
    p.foolbox = o.foolbox;
    return p;
  }
};

template <class T>
FS_HD FS_INLINE T clamp_to(T v, T lo, T hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// deepfool_rows' algorithm for the point x0 (d values): the same checks in the same order,
// the same statuses and iteration counts; pert (d) is the last checked perturbation (NaN for
// kAttackNonFinite). Thread-private vectors of d: x (evaluated point), r (r~), w_best, g;
// cand (C ints, multiclass). The label is checked at exactly x0 + pert. Foolbox variant:
// linearised at the checked point itself.
template <class Model, class T>
FS_HD FS_INLINE void deepfool_point(Model& net, int d, int K, const PointDeepFoolParams<T>& o,
                                    const T* x0, T* pert, int* iters_out, int* status_out, T* x,
                                    T* r, T* w_best, T* g, int* cand) {
  const int C = K == 1 ? 1 : o.candidates;
  for (int i = 0; i < d; ++i) r[i] = T(0);
  int label0 = 0, status = kAttackActive, it = 0;
  for (;; ++it) {
    // 1. The label at x0 + (1 + eta) r~ (at it = 0: the original point).
    for (int i = 0; i < d; ++i) {
      T p = o.over * r[i];
      if (o.clip) p = clamp_to(x0[i] + p, o.lo, o.hi) - x0[i];
      pert[i] = p;
      x[i] = x0[i] + p;
    }
    // The check point is also where Foolbox linearises, and the slides at it = 0 (x0 itself).
    const T* z = net.eval(x, o.foolbox || it == 0);
    bool finite = true;
    for (int k = 0; k < K; ++k) finite = finite && is_finite(z[k]);
    if (!finite) {
      status = kAttackNonFinite;
      break;
    }
    const int label = predicted_label(z, K);
    if (it == 0) {
      label0 = label;
      if (K > 1) pick_candidates(z, K, label, C, cand);
    } else if (label != label0) {
      status = kAttackFlipped;
      break;
    }
    if (it == o.max_iter) {
      status = kAttackMaxIter;
      break;
    }
    // 2. Linearise at x0 + r~ (slides, it > 0).
    if (!o.foolbox && it > 0) {
      for (int i = 0; i < d; ++i) {
        const T v = x0[i] + r[i];
        x[i] = o.clip ? clamp_to(v, o.lo, o.hi) : v;
      }
      z = net.eval(x, true);
    }
    // 3. Nearest linearised boundary over the candidates (one candidate: w_best is g).
    T best_dist = T(0), best_norm = T(0);
    for (int j = 0; j < C; ++j) {
      const int c = K == 1 ? 1 - label0 : cand[j];
      net.grad(c, label0, g);
      const T margin = K == 1 ? (label0 == 1 ? -z[0] : z[0]) : z[c] - z[label0];
      T sum = T(0);
      for (int i = 0; i < d; ++i) sum += o.linf ? fs_abs(g[i]) : g[i] * g[i];
      const T nrm = o.linf ? sum : fs_sqrt(sum);
      const T dist = fs_abs(margin) / (nrm + o.norm_eps);
      if (j == 0 || dist < best_dist) {
        best_dist = dist;
        best_norm = nrm;
        if (C > 1)
          for (int i = 0; i < d; ++i) w_best[i] = g[i];
      }
    }
    // 4. Step r~ += r_i, or stop where there is no usable direction.
    if (best_norm == T(0) || !is_finite(best_norm) || !is_finite(best_dist)) {
      status = best_norm == T(0) ? kAttackZeroGradient : kAttackNonFinite;
      break;
    }
    const T* w = C > 1 ? w_best : g;
    // l2: r = (dist + eps) / ||w|| * w (= |m| / ||w||^2 * w);  l-inf: r = (dist + eps) * sign(w)
    const T coef = o.linf ? best_dist + o.dist_eps : (best_dist + o.dist_eps) / (best_norm + o.norm_eps);
    for (int i = 0; i < d; ++i) {
      const T v = w[i];
      r[i] += coef * (o.linf ? T(v > T(0) ? 1 : (v < T(0) ? -1 : 0)) : v);
    }
  }
  if (status == kAttackNonFinite)
    for (int i = 0; i < d; ++i) pert[i] = T(NAN);
  *iters_out = it;
  *status_out = status;
}

// ---- the baselines' flipping-scale search for one point ----------------------------------
constexpr int kFlipMaxBisections = 200;

// ||v||_2 of n float64 values; measured again scaled by the largest entry when the squares
// overflow (as falsestruct_fast.attacks.result.norms).
template <class V>
FS_HD FS_INLINE double norm2_rescaled(const V* v, int n) {
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += double(v[i]) * double(v[i]);
  double nrm = sqrt(sum);
  if (isinf(nrm)) {
    double big = 0;
    for (int i = 0; i < n; ++i) big = fmax(big, fabs(double(v[i])));
    if (isfinite(big)) {
      sum = 0;
      for (int i = 0; i < n; ++i) sum += (double(v[i]) / big) * (double(v[i]) / big);
      nrm = big * sqrt(sum);
    }
  }
  return nrm;
}

// The search of falsestruct_fast.attacks.baselines.smallest_flipping_scale for x0 (d) along
// dir (d, float64): doubling alpha from 1e-6 max(||x0||, 1) at most max_doublings times, then
// bisection to relative width rtol (at most kFlipMaxBisections steps), the returned scale
// checked once more. Writes r (d) = alpha * dir rounded to T (NaN: kAttackNonFinite), *evals
// (forward evaluations) and returns the status. x: a thread-private vector of d.
template <class Model, class T>
FS_HD FS_INLINE int flipping_scale_point(Model& net, int d, int K, const T* x0, const double* dir,
                                         double rtol, int max_doublings, T* r, int* evals, T* x) {
  for (int i = 0; i < d; ++i) x[i] = x0[i];
  const T* z0 = net.eval(x, false);
  bool finite = true;
  for (int k = 0; k < K; ++k) finite = finite && is_finite(z0[k]);
  const int label0 = predicted_label(z0, K);
  for (int i = 0; i < d; ++i) finite = finite && is_finite(x0[i]) && isfinite(dir[i]);
  *evals = 0;
  if (!finite || norm2_rescaled(dir, d) == 0) {
    for (int i = 0; i < d; ++i) r[i] = finite ? T(0) : T(NAN);
    return finite ? kAttackZeroGradient : kAttackNonFinite;
  }
  auto flips_at = [&](double alpha) {
    for (int i = 0; i < d; ++i) {
      r[i] = static_cast<T>(alpha * dir[i]);
      x[i] = x0[i] + r[i];
    }
    return predicted_label(net.eval(x, false), K) != label0;
  };
  int n_evals = 0;
  const double norm_x = norm2_rescaled(x0, d);
  double lo = 0, hi = 1e-6 * (norm_x > 1 ? norm_x : 1.0);
  bool found = false;
  for (int q = 0; q < max_doublings && !found; ++q) {
    ++n_evals;
    found = flips_at(hi);
    if (!found) {
      lo = hi;
      hi = 2 * hi;
    }
  }
  for (int q = 0; found && q < kFlipMaxBisections && hi - lo > rtol * hi; ++q) {
    const double mid = 0.5 * lo + 0.5 * hi;  // lo + hi may overflow
    ++n_evals;
    if (flips_at(mid)) hi = mid;
    else lo = mid;
  }
  *evals = n_evals;
  // A rounding of alpha * dir could land back on the boundary: then reported as not flipped.
  const bool flipped = flips_at(found ? hi : 0.0);
  return found && flipped ? kAttackFlipped : kAttackMaxIter;
}

// ---- the operations, per point ----------------------------------------------------------
// Each op is called as op(w, net, n, scratch, int_scratch) by a thread for its point n of
// network net, with w the network's weights in shared memory and the thread's private
// scratch. D > 0: the register path for a shallow binary MLP with D inputs; D = 0: MlpPoint.
template <class T, int D>
struct PointForwardOp {
  static constexpr int kRegisterInputs = D;
  NetShape s;
  const T* X;
  int64_t x_net_stride;
  int N;
  T* out;  // (S, N, K)
  FS_HD FS_INLINE void operator()(const T* w, int net, int n, T* scratch, int*) const {
    const int d = s.width[0], K = s.n_logits();
    const T* x = X + x_net_stride * net + (int64_t)n * d;
    T* o = out + ((int64_t)net * N + n) * K;
    if constexpr (D > 0) {
      T xr[D];
      for (int i = 0; i < D; ++i) xr[i] = x[i];
      ShallowBinaryPoint<T, D> m{w, s.width[1]};
      o[0] = *m.eval(xr, false);
    } else {
      MlpPoint<T> m(s, w, scratch);
      const T* z = m.eval(x, false);
      for (int k = 0; k < K; ++k) o[k] = z[k];
    }
  }
};

template <class T, int D>
struct PointInputGradsOp {
  static constexpr int kRegisterInputs = D;
  NetShape s;
  const T* X;
  int64_t x_net_stride;
  int N;
  T* out;  // (S, N, K, d)
  FS_HD FS_INLINE void operator()(const T* w, int net, int n, T* scratch, int*) const {
    const int d = s.width[0], K = s.n_logits();
    const T* x = X + x_net_stride * net + (int64_t)n * d;
    T* o = out + ((int64_t)net * N + n) * K * d;
    if constexpr (D > 0) {
      T xr[D];
      for (int i = 0; i < D; ++i) xr[i] = x[i];
      ShallowBinaryPoint<T, D> m{w, s.width[1]};
      m.eval(xr, true);
      m.logit_grad(0, o);
    } else {
      MlpPoint<T> m(s, w, scratch);
      m.eval(x, true);
      for (int k = 0; k < K; ++k) m.logit_grad(k, o + (int64_t)k * d);
    }
  }
};

template <class T, int D>
struct PointDeepFoolOp {
  static constexpr int kRegisterInputs = D;
  NetShape s;
  const T* X;
  int64_t x_net_stride;
  int N;
  PointDeepFoolParams<T> o;
  T* pert;  // (S, N, d)
  int* iters;
  int* status;
  FS_HD FS_INLINE void operator()(const T* w, int net, int n, T* scratch, int* ints) const {
    const int d = s.width[0];
    const int64_t row = (int64_t)net * N + n;
    const T* x0 = X + x_net_stride * net + (int64_t)n * d;
    if constexpr (D > 0) {
      T x0r[D], x[D], r[D], g[D];
      for (int i = 0; i < D; ++i) x0r[i] = x0[i];
      ShallowBinaryPoint<T, D> m{w, s.width[1]};
      deepfool_point(m, D, 1, o, x0r, pert + row * D, iters + row, status + row, x, r, g, g, ints);
    } else {
      MlpPoint<T> m(s, w, scratch);
      T* v = scratch + point_scratch_scalars(s, false);
      deepfool_point(m, d, s.n_logits(), o, x0, pert + row * d, iters + row, status + row, v, v + d,
                     v + 2 * d, v + 3 * d, ints);
    }
  }
};

template <class T, int D>
struct PointFlippingScaleOp {
  static constexpr int kRegisterInputs = D;
  NetShape s;
  const T* X;
  int64_t x_net_stride;
  int N;
  const double* directions;  // (S, N, d)
  double rtol;
  int max_doublings;
  T* r;  // (S, N, d)
  int* status;
  int* evals;
  FS_HD FS_INLINE void operator()(const T* w, int net, int n, T* scratch, int*) const {
    const int d = s.width[0];
    const int64_t row = (int64_t)net * N + n;
    const T* x0 = X + x_net_stride * net + (int64_t)n * d;
    if constexpr (D > 0) {
      T x0r[D], x[D];
      for (int i = 0; i < D; ++i) x0r[i] = x0[i];
      ShallowBinaryPoint<T, D> m{w, s.width[1]};
      status[row] = flipping_scale_point(m, D, 1, x0r, directions + row * D, rtol, max_doublings,
                                         r + row * D, evals + row, x);
    } else {
      MlpPoint<T> m(s, w, scratch);
      status[row] = flipping_scale_point(m, d, s.n_logits(), x0, directions + row * d, rtol, max_doublings,
                                         r + row * d, evals + row, scratch + point_scratch_scalars(s, false));
    }
  }
};

// Calls body(PointPath<D>{}) with D the register width of `s` (1 .. kPointRegisterInputs)
// or 0 (scratch path), so that the ops are instantiated with D known at compile time.
template <int D>
struct PointPath {
  static constexpr int value = D;
};
template <class Body>
inline void with_point_path(const NetShape& s, Body&& body) {
  static_assert(kPointRegisterInputs == 4, "one case per register width below");
  switch (point_register_inputs(s)) {
    case 1: body(PointPath<1>{}); break;
    case 2: body(PointPath<2>{}); break;
    case 3: body(PointPath<3>{}); break;
    case 4: body(PointPath<4>{}); break;
    default: body(PointPath<0>{}); break;
  }
}

// ---- launch functions (src/cuda/point_kernels.cu; device pointers) ------------------------
// Opt-in shared memory per block of the current device (bytes; 0 on error): the limit to
// pass to point_kernels_supported.
int64_t point_shared_bytes_limit();

// Same contracts as fs::cuda::forward / logit_input_grads / deepfool (network_cuda.h), for
// networks with point_kernels_supported<T>(s, point_shared_bytes_limit()). One kernel is
// queued on `stream` (a cudaStream_t; nullptr: the default stream) and not waited for; it
// allocates nothing. Returns "" or the CUDA error message (the launch is checked).
template <class T>
std::string point_forward_launch(const NetShape& s, const T* theta, int S, const T* X,
                                 int64_t x_net_stride, int N, T* out, void* stream);
template <class T>
std::string point_input_grads_launch(const NetShape& s, const T* theta, int S, const T* X,
                                     int64_t x_net_stride, int N, T* out, void* stream);
// The baselines' search (flipping_scale_point) of every point of X along directions
// (S, N, d) float64: r (S, N, d) T, status and evals (S, N) int32.
template <class T>
std::string point_flipping_scale_launch(const NetShape& s, const T* theta, int S, const T* X,
                                        int64_t x_net_stride, int N, const double* directions,
                                        double rtol, int max_doublings, T* r, int* status, int* evals,
                                        void* stream);
template <class T>
std::string point_deepfool_launch(const NetShape& s, const T* theta, int S, const T* X,
                                  int64_t x_net_stride, int N, const DeepFoolOptions& o, T* pert,
                                  int* iters, int* status, void* stream);

}  // namespace cuda
}  // namespace fs
