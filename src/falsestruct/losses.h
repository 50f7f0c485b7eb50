// Output losses: gradient with respect to the logits and per-sample loss / correctness.
//
// Logits z are sample-major (z[n * K + j], like the network's output array). For the sigmoid
// loss y[n * K + j] holds 0/1 targets per logit; for the softmax loss y[n] holds the class
// index (as a float).
#pragma once
#include "config.h"
#include "fs_math.h"

namespace fs {

enum class LossKind : int { SigmoidCE = 0, SoftmaxCE = 1 };

// Gradient of one logit's term of the mean sigmoid cross-entropy, scale = 1 / (B * K).
template <class T>
FS_HD FS_INLINE T sigmoid_ce_dz(T z, T y, T scale) {
  return (T(1) / (T(1) + exp_poly(-z)) - y) * scale;
}

// Mean sigmoid cross-entropy over the B * K logits:
//   dz = (sigmoid(z) - y) / (B * K).
template <class Block, class T>
FS_HD void sigmoid_ce_grad(const Block& blk, const T* z, const T* y, T* dz, int K, int B) {
  const T scale = T(1) / T(B * K);
  blk.map_1d(B * K, [=](int e) { dz[e] = sigmoid_ce_dz(z[e], y[e], scale); });
}

// Per sample n: loss[n] = mean_j [max(z,0) - z*y + log1p(exp(-|z|))] (stable form),
// correct[n] = mean_j [(z > 0) == (y > 0.5)]  (prediction = round(sigmoid(z))).
template <class Block, class T>
FS_HD void sigmoid_ce_terms(const Block& blk, const T* z, const T* y, T* loss, T* correct,
                            int K, int B) {
  blk.map_1d(B, [=](int n) {
    T l = T(0), c = T(0);
    for (int j = 0; j < K; ++j) {
      const T zz = z[n * K + j], yy = y[n * K + j];
      l += (zz > T(0) ? zz : T(0)) - zz * yy + fs_log1p(fs_exp(-fs_abs(zz)));
      c += ((zz > T(0)) == (yy > T(0.5))) ? T(1) : T(0);
    }
    loss[n] = l / T(K);
    correct[n] = c / T(K);
  });
}

// Mean softmax cross-entropy over the batch: dz[j][n] = (softmax(z[:, n])_j - [j == y_n]) / B.
template <class Block, class T>
FS_HD void softmax_ce_grad(const Block& blk, const T* z, const T* y, T* dz, int K, int B) {
  const T scale = T(1) / T(B);
  blk.map_1d(B, [=](int n) {
    const T* zn = z + (int64_t)n * K;
    T m = zn[0];
    for (int j = 1; j < K; ++j) m = zn[j] > m ? zn[j] : m;
    T s = T(0);
    for (int j = 0; j < K; ++j) s += fs_exp(zn[j] - m);
    const int label = static_cast<int>(y[n]);
    for (int j = 0; j < K; ++j)
      dz[(int64_t)n * K + j] = (fs_exp(zn[j] - m) / s - (j == label ? T(1) : T(0))) * scale;
  });
}

// loss[n] = logsumexp(z[:, n]) - z[y_n][n];  correct[n] = [argmax_j z[j][n] == y_n].
template <class Block, class T>
FS_HD void softmax_ce_terms(const Block& blk, const T* z, const T* y, T* loss, T* correct,
                            int K, int B) {
  blk.map_1d(B, [=](int n) {
    const T* zn = z + (int64_t)n * K;
    T m = zn[0];
    int arg = 0;
    for (int j = 1; j < K; ++j)
      if (zn[j] > m) { m = zn[j]; arg = j; }
    T s = T(0);
    for (int j = 0; j < K; ++j) s += fs_exp(zn[j] - m);
    const int label = static_cast<int>(y[n]);
    loss[n] = m + fs_log(s) - zn[label];
    correct[n] = arg == label ? T(1) : T(0);
  });
}

template <class Block, class T>
FS_HD void loss_grad(const Block& blk, LossKind kind, const T* z, const T* y, T* dz, int K, int B) {
  if (kind == LossKind::SigmoidCE) sigmoid_ce_grad(blk, z, y, dz, K, B);
  else softmax_ce_grad(blk, z, y, dz, K, B);
}

template <class Block, class T>
FS_HD void loss_terms(const Block& blk, LossKind kind, const T* z, const T* y, T* loss, T* correct,
                      int K, int B) {
  if (kind == LossKind::SigmoidCE) sigmoid_ce_terms(blk, z, y, loss, correct, K, B);
  else softmax_ce_terms(blk, z, y, loss, correct, K, B);
}

// Number of target values per sample for a loss: K for sigmoid, 1 (the class) for softmax.
FS_HD FS_INLINE int targets_per_sample(LossKind kind, int K) {
  return kind == LossKind::SigmoidCE ? K : 1;
}

}  // namespace fs
