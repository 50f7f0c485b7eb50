// Output losses: gradient with respect to the logits and per-sample loss / correctness.
//
// Logits z and targets y are feature-major (z[j * ld + n], valid columns n < B, the padding
// columns up to ld get a zero gradient). For the sigmoid loss y holds 0/1 targets per logit;
// for the softmax loss y[n] holds the class index (as a float).
#pragma once
#include "config.h"
#include "fs_math.h"

namespace fs {

enum class LossKind : int { SigmoidCE = 0, SoftmaxCE = 1 };

// Mean sigmoid cross-entropy over the B * K logits:
//   dz = (sigmoid(z) - y) / (B * K).
template <class Block, class T>
FS_HD void sigmoid_ce_grad(const Block& blk, const T* z, const T* y, T* dz, int K, int B, int ld) {
  const T scale = T(1) / T(B * K);
  blk.map_2d(K, ld, [=](int j, int n) {
    const int e = j * ld + n;
    const T g = (T(1) / (T(1) + exp_poly(-z[e])) - y[e]) * scale;
    dz[e] = n < B ? g : T(0);
  });
}

// Per sample n: loss[n] = mean_j [max(z,0) - z*y + log1p(exp(-|z|))] (stable form),
// correct[n] = mean_j [(z > 0) == (y > 0.5)]  (prediction = round(sigmoid(z))).
template <class Block, class T>
FS_HD void sigmoid_ce_terms(const Block& blk, const T* z, const T* y, T* loss, T* correct,
                            int K, int B, int ld) {
  blk.map_1d(B, [=](int n) {
    T l = T(0), c = T(0);
    for (int j = 0; j < K; ++j) {
      const T zz = z[j * ld + n], yy = y[j * ld + n];
      l += (zz > T(0) ? zz : T(0)) - zz * yy + fs_log1p(fs_exp(-fs_abs(zz)));
      c += ((zz > T(0)) == (yy > T(0.5))) ? T(1) : T(0);
    }
    loss[n] = l / T(K);
    correct[n] = c / T(K);
  });
}

// Mean softmax cross-entropy over the batch: dz[j][n] = (softmax(z[:, n])_j - [j == y_n]) / B.
template <class Block, class T>
FS_HD void softmax_ce_grad(const Block& blk, const T* z, const T* y, T* dz, int K, int B, int ld) {
  const T scale = T(1) / T(B);
  blk.map_1d(ld, [=](int n) {
    if (n >= B) {
      for (int j = 0; j < K; ++j) dz[j * ld + n] = T(0);
      return;
    }
    T m = z[n];
    for (int j = 1; j < K; ++j) m = z[j * ld + n] > m ? z[j * ld + n] : m;
    T s = T(0);
    for (int j = 0; j < K; ++j) s += fs_exp(z[j * ld + n] - m);
    const int label = static_cast<int>(y[n]);
    for (int j = 0; j < K; ++j)
      dz[j * ld + n] = (fs_exp(z[j * ld + n] - m) / s - (j == label ? T(1) : T(0))) * scale;
  });
}

// loss[n] = logsumexp(z[:, n]) - z[y_n][n];  correct[n] = [argmax_j z[j][n] == y_n].
template <class Block, class T>
FS_HD void softmax_ce_terms(const Block& blk, const T* z, const T* y, T* loss, T* correct,
                            int K, int B, int ld) {
  blk.map_1d(B, [=](int n) {
    T m = z[n];
    int arg = 0;
    for (int j = 1; j < K; ++j)
      if (z[j * ld + n] > m) { m = z[j * ld + n]; arg = j; }
    T s = T(0);
    for (int j = 0; j < K; ++j) s += fs_exp(z[j * ld + n] - m);
    const int label = static_cast<int>(y[n]);
    loss[n] = m + fs_log(s) - z[label * ld + n];
    correct[n] = arg == label ? T(1) : T(0);
  });
}

template <class Block, class T>
FS_HD void loss_grad(const Block& blk, LossKind kind, const T* z, const T* y, T* dz, int K, int B,
                     int ld) {
  if (kind == LossKind::SigmoidCE) sigmoid_ce_grad(blk, z, y, dz, K, B, ld);
  else softmax_ce_grad(blk, z, y, dz, K, B, ld);
}

template <class Block, class T>
FS_HD void loss_terms(const Block& blk, LossKind kind, const T* z, const T* y, T* loss, T* correct,
                      int K, int B, int ld) {
  if (kind == LossKind::SigmoidCE) sigmoid_ce_terms(blk, z, y, loss, correct, K, B, ld);
  else softmax_ce_terms(blk, z, y, loss, correct, K, B, ld);
}

// Number of target values per sample for a loss: K for sigmoid, 1 (the class) for softmax.
FS_HD FS_INLINE int targets_per_sample(LossKind kind, int K) {
  return kind == LossKind::SigmoidCE ? K : 1;
}

}  // namespace fs
