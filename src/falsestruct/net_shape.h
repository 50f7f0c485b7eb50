// Shape of a sequential network (dense, conv2d and max-pool layers) and the layout of its
// parameters and activations.
//
// Activations are NHWC and sample-major: one sample's activation of layer l is width[l] =
// h * w * c contiguous values in (h, w, c) order, which is also Keras' Flatten order, so a
// dense layer after a conv/pool layer reads the flattened activation directly.
//
// Parameters of one network are one contiguous vector theta[P] in Keras `get_weights()`
// order: for each layer with parameters, its kernel then its bias. Dense kernels are
// (in, out) row-major, conv kernels HWIO (k, k, c_in, c_out).
#pragma once
#include <stdint.h>
#include "config.h"

namespace fs {

constexpr int kMaxLayers = 16;

enum class LayerKind : int { Dense = 0, Conv2D = 1, MaxPool2 = 2 };

struct Layer {
  LayerKind kind = LayerKind::Dense;
  bool relu = false;
  int in_h = 1, in_w = 1, in_c = 0;     // input activation (dense: 1 x 1 x n_in)
  int out_h = 1, out_w = 1, out_c = 0;  // output activation
  int k = 0;                            // conv kernel size (odd)
};

struct NetShape {
  int n_layers = 0;
  Layer layer[kMaxLayers];
  int width[kMaxLayers + 1] = {};    // units per sample: width[0] input, width[L] logits
  int64_t w_offset[kMaxLayers] = {};  // kernel offset in theta (layers without parameters: 0)
  int64_t b_offset[kMaxLayers] = {};
  int64_t n_params = 0;
  int max_width = 0;
  int sum_width = 0;                 // width[0] + ... + width[L]
  int64_t max_layer_weights = 0;     // largest kernel (scratch for its transpose)
  int64_t max_conv_scratch = 0;      // per sample: largest padded conv activation

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

// Fills offsets and widths once the layers' shapes are set. False if a size overflows.
inline bool finish_net_shape(NetShape* s) {
  int64_t off = 0, sum = 0;
  s->width[0] = s->layer[0].in_h * s->layer[0].in_w * s->layer[0].in_c;
  s->max_width = s->width[0];
  sum = s->width[0];
  for (int l = 0; l < s->n_layers; ++l) {
    const Layer& L = s->layer[l];
    const int64_t out = (int64_t)L.out_h * L.out_w * L.out_c;
    if (out <= 0 || out > (1 << 28)) return false;
    s->width[l + 1] = static_cast<int>(out);
    if (out > s->max_width) s->max_width = static_cast<int>(out);
    sum += out;
    int64_t n_w = 0;
    if (L.kind == LayerKind::Dense) n_w = (int64_t)s->width[l] * L.out_c;
    if (L.kind == LayerKind::Conv2D) {
      n_w = (int64_t)L.k * L.k * L.in_c * L.out_c;
      const int64_t pad = (int64_t)L.in_h * (L.in_w + 2 * (L.k / 2)) *
                          (L.in_c > L.out_c ? L.in_c : L.out_c);
      if (pad > s->max_conv_scratch) s->max_conv_scratch = pad;
    }
    if (n_w > s->max_layer_weights) s->max_layer_weights = n_w;
    s->w_offset[l] = off;
    off += n_w;
    s->b_offset[l] = off;
    if (L.kind != LayerKind::MaxPool2) off += L.out_c;
  }
  if (sum > (1LL << 30) || off > (1LL << 40)) return false;
  s->sum_width = static_cast<int>(sum);
  s->n_params = off;
  return true;
}

// A dense ReLU network with a linear output layer. False if the widths are invalid
// (validated again in Python).
inline bool make_mlp_shape(const int* widths, int n_widths, NetShape* shape) {
  if (n_widths < 2 || n_widths > kMaxLayers + 1) return false;
  NetShape s;
  s.n_layers = n_widths - 1;
  for (int l = 0; l < n_widths; ++l)
    if (widths[l] <= 0) return false;
  for (int l = 0; l < s.n_layers; ++l) {
    Layer& L = s.layer[l];
    L.kind = LayerKind::Dense;
    L.relu = l + 1 < s.n_layers;
    L.in_c = widths[l];
    L.out_c = widths[l + 1];
  }
  if (!finish_net_shape(&s)) return false;
  *shape = s;
  return true;
}

// Layer spec as passed from Python: per layer {kind, units (dense) or filters (conv), k, relu}.
constexpr int kSpecInts = 4;

// A sequential network on (in_h, in_w, in_c) inputs. Conv2D: k x k (odd), stride 1, 'same'
// zero padding. MaxPool2: 2 x 2, stride 2, 'same' (output ceil(h / 2) x ceil(w / 2), the
// window clipped at the bottom/right edge, as Keras/TensorFlow). Dense flattens its input.
// Returns an error message, or nullptr on success.
inline const char* make_net_shape(int in_h, int in_w, int in_c, const int* spec, int n_layers,
                                  NetShape* shape) {
  if (n_layers < 1 || n_layers > kMaxLayers) return "a network has 1 to 16 layers";
  if (in_h < 1 || in_w < 1 || in_c < 1) return "input shape must be positive";
  NetShape s;
  s.n_layers = n_layers;
  int h = in_h, w = in_w, c = in_c;
  for (int l = 0; l < n_layers; ++l) {
    const int* p = spec + kSpecInts * l;
    Layer& L = s.layer[l];
    L.kind = static_cast<LayerKind>(p[0]);
    L.relu = p[3] != 0;
    L.in_h = h;
    L.in_w = w;
    L.in_c = c;
    switch (L.kind) {
      case LayerKind::Dense:
        if (p[1] < 1) return "dense units must be positive";
        L.in_h = L.in_w = 1;
        L.in_c = h * w * c;
        h = w = 1;
        c = p[1];
        break;
      case LayerKind::Conv2D:
        if (p[1] < 1) return "conv filters must be positive";
        if (p[2] < 1 || p[2] % 2 == 0) return "conv kernel size must be odd and positive";
        L.k = p[2];
        c = p[1];
        break;
      case LayerKind::MaxPool2:
        if (L.relu) return "max-pool has no activation";
        h = (h + 1) / 2;
        w = (w + 1) / 2;
        break;
      default:
        return "unknown layer kind";
    }
    L.out_h = h;
    L.out_w = w;
    L.out_c = c;
  }
  if (!finish_net_shape(&s)) return "network too large";
  *shape = s;
  return nullptr;
}

}  // namespace fs
