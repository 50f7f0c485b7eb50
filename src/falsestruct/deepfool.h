// DeepFool (Moosavi-Dezfooli et al. 2016) and logit input gradients for a tile of points of one
// network, written once for every executor.
//
// Binary nets (one logit f, label = [f > 0]) follow the slides: linearise at x_i = x + r~,
// step r_i = -f(x_i) / ||grad f(x_i)||^2 * grad f(x_i), stop when the label at
// x + (1 + eta) r~ differs from the label at x, return (1 + eta) r~. Multiclass nets run the
// original algorithm: at x_i, for each candidate class k, w_k = grad(f_k - f_orig) and
// m_k = f_k - f_orig; the step goes to the nearest linearised boundary,
// r_i = |m_l| / ||w_l||^2 * w_l with l = argmin_k |m_k| / ||w_k||. The l-inf variant uses the
// dual norm ||w||_1 for distances and steps along sign(w). A binary net is the one-candidate
// case with w = -+grad f, m = -+f.
//
// Points are processed as a compacted list of active rows: each iteration forwards only the
// points that have not finished, so a few slow points do not cost a full tile per iteration.
#pragma once
#include <math.h>
#include <stdint.h>
#include "config.h"
#include "network.h"

namespace fs {

// Per-point outcome of an attack (stored as int32).
enum AttackStatus : int {
  kAttackActive = -1,       // still iterating (never returned)
  kAttackFlipped = 0,       // the returned perturbation changes the label
  kAttackMaxIter = 1,       // max_iter steps without a label change
  kAttackZeroGradient = 2,  // every candidate's gradient is zero: no direction to step in
  kAttackNonFinite = 3,     // NaN/inf in the point, the logits or the gradients
};

struct DeepFoolOptions {
  double overshoot = 0.02;
  int max_iter = 50;
  bool linf = false;       // l-inf instead of l2
  int candidates = 1;      // other classes tried per step (multiclass), in [1, K - 1]
  // Foolbox 3 / LTS4 form: linearise and check at x0 + (1 + eta) r~ (one point per step), add
  // 1e-4 to each step's distance and 1e-8 to gradient norms.
  bool foolbox = false;
  bool clip = false;       // box constraint: every evaluated point is clipped to [lo, hi]
  double lo = 0.0, hi = 1.0;
};

// Class predicted from a row of K logits: [z > 0] for one logit, else the first maximum.
template <class T>
FS_HD FS_INLINE int predicted_label(const T* z, int K) {
  if (K == 1) return z[0] > T(0) ? 1 : 0;
  int best = 0;
  for (int k = 1; k < K; ++k)
    if (z[k] > z[best]) best = k;
  return best;
}

template <class T>
FS_HD FS_INLINE bool is_finite(T v) {
  return v - v == T(0);  // false for NaN and +-inf
}

// Scratch of one tile of B points: the network workspace plus the attack's state.
template <class T>
struct DeepFoolWorkspace {
  NetWorkspace<T> net;
  T* r_tot;   // B * d: accumulated perturbation r~ of each tile row
  T* w_best;  // B * d: chosen step direction of each active slot
  T* dist;    // B: chosen distance (then the step coefficient) of each active slot
  T* wnorm;   // B: norm of the chosen direction
  T* margin;  // B: m of the current candidate
  int* label0;  // B: label at the original point
  int* cand;    // B * C: candidate classes (most likely first)
  int* act;     // B: tile rows of the active slots
  int* taken;   // B: the current candidate is the best so far
  int* count;   // [0] number of active slots, [1] whether the last check changed the list

  FS_HD static int64_t scalars(const NetShape& s, int B) {
    return NetWorkspace<T>::scalars(s, B) + 2LL * B * s.width[0] + 3LL * B;
  }
  FS_HD static int64_t ints(int B, int C) { return NetWorkspace<T>::ints(B, B) + (int64_t)B * (3 + C) + 2; }
  FS_HD static DeepFoolWorkspace carve(const NetShape& s, int B, int C, T* scalar_buf, int* int_buf) {
    DeepFoolWorkspace w;
    w.net = NetWorkspace<T>::carve(s, B, B, scalar_buf, int_buf);
    T* p = scalar_buf + NetWorkspace<T>::scalars(s, B);
    const int64_t bd = (int64_t)B * s.width[0];
    w.r_tot = p;
    w.w_best = p + bd;
    w.dist = p + 2 * bd;
    w.wnorm = w.dist + B;
    w.margin = w.wnorm + B;
    int* q = int_buf + NetWorkspace<T>::ints(B, B);
    w.label0 = q;
    w.cand = q + B;
    w.act = w.cand + (int64_t)B * C;
    w.taken = w.act + B;
    w.count = w.taken + B;
    return w;
  }
};

// The C classes other than `label` with the largest logits, most likely first (ties: lower
// index first). One logit: the other label.
template <class T>
FS_HD FS_INLINE void pick_candidates(const T* z, int K, int label, int C, int* out) {
  if (K == 1) {
    out[0] = 1 - label;
    return;
  }
  for (int j = 0; j < C; ++j) {
    int best = -1;
    for (int k = 0; k < K; ++k) {
      if (k == label) continue;
      bool used = false;
      for (int q = 0; q < j; ++q) used = used || out[q] == k;
      if (!used && (best < 0 || z[k] > z[best])) best = k;
    }
    out[j] = best;
  }
}

// DeepFool for tile rows [0, B) = data rows X[row0 + t] of one network. Writes, per tile row,
// pert (B, d) = the returned perturbation (NaN for kAttackNonFinite), iters (B) = steps taken,
// status (B) = an AttackStatus. The label is always checked at exactly x0 + pert.
// stop() is asked once per iteration (max_iter may be 2^31 - 1); when it returns true the
// unfinished points are left with status kAttackActive and the outputs are incomplete.
template <class Block, class T, class Stop = NeverStop>
FS_HD void deepfool_rows(const Block& blk, const NetShape& s, const T* theta, const T* X, int row0,
                         int B, const DeepFoolOptions& o, const DeepFoolWorkspace<T>& ws, T* pert,
                         int* iters, int* status, Stop stop = Stop{}) {
  const int d = s.width[0], K = s.n_logits();
  const int C = K == 1 ? 1 : o.candidates;
  const T* x0 = X + (int64_t)row0 * d;
  const T over = static_cast<T>(1.0 + o.overshoot);
  const bool clip = o.clip, linf = o.linf;
  const T lo = static_cast<T>(o.lo), hi = static_cast<T>(o.hi);
  const T dist_eps = o.foolbox ? T(1e-4) : T(0), norm_eps = o.foolbox ? T(1e-8) : T(0);
  T* in = ws.net.acts;

  blk.map_1d(B * d, [=](int e) { ws.r_tot[e] = T(0); });
  blk.map_1d(B, [=](int t) {
    ws.act[t] = t;
    status[t] = kAttackActive;
    iters[t] = 0;
  });
  blk.single([=] {
    ws.count[0] = B;
    ws.count[1] = 1;
  });

  // Network input rows: slot a holds x0 + r~ of its tile row (clipped to the box).
  auto load_points = [&](int A) {
    blk.map_2d(A, d, [=](int a, int k) {
      const int64_t e = (int64_t)ws.act[a] * d + k;
      T v = x0[e] + ws.r_tot[e];
      if (clip) v = v < lo ? lo : (v > hi ? hi : v);
      in[(int64_t)a * d + k] = v;
    });
  };
  // Slot a holds x0 + pert of its tile row: the checked point.
  auto load_perturbed = [&](int A) {
    blk.map_2d(A, d, [=](int a, int k) {
      const int64_t e = (int64_t)ws.act[a] * d + k;
      in[(int64_t)a * d + k] = x0[e] + pert[e];
    });
  };
  // Points to check: the perturbation p = (1 + eta) r~ (clipped: clip(x0 + p) - x0) is
  // stored first, and the network sees x0 + p added in a separate phase, so the checked point
  // is exactly what a user gets by adding the returned perturbation to x.
  auto load_check_points = [&](int A) {
    blk.map_2d(A, d, [=](int a, int k) {
      const int64_t e = (int64_t)ws.act[a] * d + k;
      T p = over * ws.r_tot[e];
      if (clip) {
        const T v = x0[e] + p;
        p = (v < lo ? lo : (v > hi ? hi : v)) - x0[e];
      }
      pert[e] = p;
    });
    load_perturbed(A);
  };
  // Drops the slots of points that have finished (ws.count[0]: the slots left); points that
  // stop at a step are otherwise dropped at the next check.
  auto compact = [&](int A) {
    blk.single([=] {
      int n = 0;
      for (int a = 0; a < A; ++a)
        if (status[ws.act[a]] == kAttackActive) ws.act[n++] = ws.act[a];
      ws.count[0] = n;
    });
  };

  for (int it = 0;; ++it) {
    int A = ws.count[0];
    if (A == 0) break;
    // 1. Check the label at x0 + (1 + eta) r~ (at it = 0: the original point).
    load_check_points(A);
    net_forward(blk, s, theta, in, ws.net.padded, A);
    {
      const T* z = in + (int64_t)s.act_row(s.n_layers) * A;
      const int max_iter = o.max_iter;
      blk.map_1d(A, [=](int a) {
        const int t = ws.act[a];
        if (status[t] != kAttackActive) return;  // stopped at the last step
        const T* za = z + (int64_t)a * K;
        bool finite = true;
        for (int k = 0; k < K; ++k) finite = finite && is_finite(za[k]);
        if (!finite) {
          status[t] = kAttackNonFinite;
          iters[t] = it;
          return;
        }
        const int label = predicted_label(za, K);
        if (it == 0) {
          ws.label0[t] = label;
          pick_candidates(za, K, label, C, ws.cand + (int64_t)t * C);
        } else if (label != ws.label0[t]) {
          status[t] = kAttackFlipped;
          iters[t] = it;
          return;
        }
        if (it == max_iter) {
          status[t] = kAttackMaxIter;
          iters[t] = it;
        }
      });
    }
    // Foolbox form: the checked points' activations are those to linearise at. While most
    // slots are still active, the gradient runs on all of them (the finished ones idle, their
    // results unused) instead of compacting and evaluating the others again at the same
    // points; the slots are compacted after the step.
    const bool foolbox = o.foolbox;
    blk.single([=] {
      int n = 0;
      for (int a = 0; a < A; ++a) n += status[ws.act[a]] == kAttackActive;
      const bool keep = foolbox && 2 * n > A;
      if (!keep) {
        n = 0;
        for (int a = 0; a < A; ++a)
          if (status[ws.act[a]] == kAttackActive) ws.act[n++] = ws.act[a];
      }
      // 1: the slots changed, evaluate them again; 2: finished slots kept, compact after the step
      ws.count[1] = n == A ? 0 : keep ? 2 : 1;
      ws.count[0] = stop() || n == 0 ? 0 : keep ? A : n;  // cancelled: every thread leaves
    });
    const bool changed = ws.count[1] == 1, kept_finished = ws.count[1] == 2;
    A = ws.count[0];
    if (A == 0) break;
    // 2. Linearise at x0 + r~ (Foolbox form: at the checked point, whose activations are
    // still in place unless the slots changed).
    if (changed || (!o.foolbox && it > 0)) {
      if (o.foolbox) load_perturbed(A);
      else load_points(A);
      net_forward(blk, s, theta, in, ws.net.padded, A);
    }
    const T* z = in + (int64_t)s.act_row(s.n_layers) * A;
    // 3. Nearest linearised boundary over the candidates.
    for (int j = 0; j < C; ++j) {
      blk.map_2d(A, K, [=](int a, int k) {
        const int t = ws.act[a];
        const int l0 = ws.label0[t];
        T g;
        if (K == 1) g = l0 == 1 ? T(-1) : T(1);
        else g = T(k == ws.cand[(int64_t)t * C + j] ? 1 : 0) - T(k == l0 ? 1 : 0);
        ws.net.delta_a[(int64_t)a * K + k] = g;
      });
      blk.map_1d(A, [=](int a) {
        const int t = ws.act[a];
        const int l0 = ws.label0[t];
        const T* za = z + (int64_t)a * K;
        ws.margin[a] = K == 1 ? (l0 == 1 ? -za[0] : za[0]) : za[ws.cand[(int64_t)t * C + j]] - za[l0];
      });
      const T* g = net_backward(blk, s, theta, ws.net, A, true, false);
      blk.map_2d_dot(
          A, 1, d,
          [=](int a, int, int k) {
            const T v = g[(int64_t)a * d + k];
            return linf ? fs_abs(v) : v * v;
          },
          [=](int a, int, T sum) {
            const T nrm = linf ? sum : fs_sqrt(sum);
            const T dist = fs_abs(ws.margin[a]) / (nrm + norm_eps);
            const bool take = j == 0 || dist < ws.dist[a];
            ws.taken[a] = take;
            if (take) {
              ws.dist[a] = dist;
              ws.wnorm[a] = nrm;
            }
          });
      blk.map_2d(A, d, [=](int a, int k) {
        if (ws.taken[a]) ws.w_best[(int64_t)a * d + k] = g[(int64_t)a * d + k];
      });
    }
    // 4. Step r~ += r_i, or stop where there is no usable direction.
    blk.map_1d(A, [=](int a) {
      const int t = ws.act[a];
      if (status[t] != kAttackActive) return;  // finished at this iteration's check
      const T nrm = ws.wnorm[a], dist = ws.dist[a];
      if (nrm == T(0) || !is_finite(nrm) || !is_finite(dist)) {
        status[t] = nrm == T(0) ? kAttackZeroGradient : kAttackNonFinite;
        iters[t] = it;
      }
      // l2: r = (dist + eps) / ||w|| * w (= |m| / ||w||^2 * w);  l-inf: r = (dist + eps) * sign(w)
      ws.dist[a] = linf ? dist + dist_eps : (dist + dist_eps) / (nrm + norm_eps);
    });
    blk.map_2d(A, d, [=](int a, int k) {
      const int t = ws.act[a];
      if (status[t] != kAttackActive) return;
      const T v = ws.w_best[(int64_t)a * d + k];
      const T dir = linf ? T(v > T(0) ? 1 : (v < T(0) ? -1 : 0)) : v;
      ws.r_tot[(int64_t)t * d + k] += ws.dist[a] * dir;
    });
    if (kept_finished) compact(A);
  }
  // pert holds the perturbation of the last checked point of every row.
  blk.map_2d(B, d, [=](int t, int k) {
    if (status[t] == kAttackNonFinite) pert[(int64_t)t * d + k] = T(NAN);
  });
}

// Gradients of every logit w.r.t. the input for data rows [row0, row0 + B) of one network:
// out (B, K, d), out[n][k][:] = d z_k(x_n) / d x_n.
template <class Block, class T>
FS_HD void logit_input_grads_rows(const Block& blk, const NetShape& s, const T* theta, const T* X,
                                  int row0, int B, T* out, const NetWorkspace<T>& ws) {
  const int d = s.width[0], K = s.n_logits();
  blk.map_1d(B * d, [=](int e) { ws.acts[e] = X[(int64_t)row0 * d + e]; });
  net_forward(blk, s, theta, ws.acts, ws.padded, B);
  for (int k = 0; k < K; ++k) {
    blk.map_2d(B, K, [=](int n, int j) { ws.delta_a[(int64_t)n * K + j] = T(j == k ? 1 : 0); });
    const T* g = net_backward(blk, s, theta, ws, B, true, false);
    blk.map_2d(B, d, [=](int n, int i) { out[((int64_t)n * K + k) * d + i] = g[(int64_t)n * d + i]; });
  }
}

}  // namespace fs
