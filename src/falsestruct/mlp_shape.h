// Shape of a dense ReLU network and the layout of its parameters.
//
// Parameters of one network are one contiguous vector theta[P] in Keras `get_weights()`
// order: W_0 (in, out) row-major, b_0 (out), W_1, b_1, ... Hidden layers use ReLU, the last
// layer is linear (logits).
#pragma once
#include <stdint.h>
#include "config.h"

namespace fs {

constexpr int kMaxLayers = 16;

struct MlpShape {
  int n_layers = 0;                  // number of dense layers L
  int width[kMaxLayers + 1] = {};    // width[0] = input dim, width[L] = number of logits
  int64_t w_offset[kMaxLayers] = {};
  int64_t b_offset[kMaxLayers] = {};
  int64_t n_params = 0;
  int max_width = 0;
  int sum_width = 0;                 // width[0] + ... + width[L]

  FS_HD int n_in(int l) const { return width[l]; }
  FS_HD int n_out(int l) const { return width[l + 1]; }
  FS_HD int n_logits() const { return width[n_layers]; }
  // Units in the layers before l: layer l's activations start at acts + act_row(l) * B.
  FS_HD int act_row(int l) const {
    int r = 0;
    for (int k = 0; k < l; ++k) r += width[k];
    return r;
  }
};

// Returns false if the widths are not a valid network (validated again in Python).
inline bool make_mlp_shape(const int* widths, int n_widths, MlpShape* shape) {
  if (n_widths < 2 || n_widths > kMaxLayers + 1) return false;
  MlpShape s;
  s.n_layers = n_widths - 1;
  int64_t off = 0;
  for (int l = 0; l < n_widths; ++l) {
    if (widths[l] <= 0) return false;
    s.width[l] = widths[l];
    s.sum_width += widths[l];
    if (widths[l] > s.max_width) s.max_width = widths[l];
  }
  for (int l = 0; l < s.n_layers; ++l) {
    s.w_offset[l] = off;
    off += static_cast<int64_t>(s.width[l]) * s.width[l + 1];
    s.b_offset[l] = off;
    off += s.width[l + 1];
  }
  s.n_params = off;
  *shape = s;
  return true;
}

}  // namespace fs
