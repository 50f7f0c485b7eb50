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

// Conv layers with fewer input channels than this take their input gradient as a product with
// k k Cin columns per output pixel (conv_layer.h, conv2d_narrow_input), whose B H W k k Cin
// scalars need scratch.
constexpr int kConvNarrowInput = 8;

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

// Limits of a network's sizes. The kernels index a batch's arrays, a network's parameters and
// a layer's kernel with 32-bit ints, so every such count (and a batch of B rows, B times
// scalars_per_row) is at most kMaxIntCount; a layer has at most kMaxWidth units per sample.
constexpr int64_t kMaxIntCount = 2147483647;
constexpr int64_t kMaxWidth = int64_t(1) << 28;

// Scalars of the training/forward workspace per batch row: activations of every layer, two
// gradient buffers, targets, loss terms, padded conv scratch (NetWorkspace in network.h).
FS_HD FS_INLINE int64_t workspace_scalars_per_row(const NetShape& s) {
  return s.sum_width + 2LL * s.max_width + s.n_logits() + 2 + s.max_conv_scratch;
}

// a * b for a, b >= 0 when it is at most limit, else -1 (checked before it can overflow).
FS_HD FS_INLINE int64_t product_within(int64_t a, int64_t b, int64_t limit) {
  return (b == 0 || a <= limit / b) ? a * b : -1;
}

// Fills offsets and widths once the layers' shapes are set (every size >= 1). Returns an
// error message if a size exceeds the limits above, or nullptr.
inline const char* finish_net_shape(NetShape* s) {
  const Layer& first = s->layer[0];
  const int64_t in = product_within(product_within(first.in_h, first.in_w, kMaxWidth), first.in_c, kMaxWidth);
  if (in < 0) return "input has more than 2^28 units per sample";
  int64_t off = 0, sum = in;
  s->width[0] = static_cast<int>(in);
  s->max_width = s->width[0];
  s->max_conv_scratch = 0;
  s->max_layer_weights = 0;
  for (int l = 0; l < s->n_layers; ++l) {
    const Layer& L = s->layer[l];
    const int64_t out = product_within(product_within(L.out_h, L.out_w, kMaxWidth), L.out_c, kMaxWidth);
    if (out < 1) return "a layer has more than 2^28 units per sample";
    s->width[l + 1] = static_cast<int>(out);
    if (out > s->max_width) s->max_width = static_cast<int>(out);
    sum += out;
    int64_t n_w = 0;
    if (L.kind == LayerKind::Dense) n_w = product_within(s->width[l], L.out_c, kMaxIntCount);
    if (L.kind == LayerKind::Conv2D) {
      const int64_t taps = product_within(L.k, L.k, kMaxIntCount);
      n_w = product_within(product_within(taps, L.in_c, kMaxIntCount), L.out_c, kMaxIntCount);
      // One sample's input or output gradient, padded by k / 2 rows and columns on each side.
      const int64_t padded_w = (int64_t)L.in_w + 2 * (L.k / 2), padded_h = (int64_t)L.in_h + 2 * (L.k / 2);
      int64_t pad = product_within(product_within(padded_h, padded_w, kMaxIntCount),
                                   L.in_c > L.out_c ? L.in_c : L.out_c, kMaxIntCount);
      if (L.in_c < kConvNarrowInput && pad >= 0 && taps >= 0) {
        const int64_t z = product_within(product_within((int64_t)L.in_h * L.in_w, taps, kMaxIntCount),
                                         L.in_c, kMaxIntCount);
        pad = z < 0 ? z : (z > pad ? z : pad);
      }
      if (taps < 0 || pad < 0) return "conv kernel size too large for 32-bit indexing";
      if (pad > s->max_conv_scratch) s->max_conv_scratch = pad;
    }
    if (n_w < 0) return "a layer has more than 2147483647 weights";
    if (n_w > s->max_layer_weights) s->max_layer_weights = n_w;
    s->w_offset[l] = off;
    off += n_w;
    s->b_offset[l] = off;
    if (L.kind != LayerKind::MaxPool2) off += L.out_c;
    if (off > kMaxIntCount) return "network has more than 2147483647 parameters";
  }
  if (sum > (int64_t(1) << 30)) return "layers have more than 2^30 units per sample in all";
  s->sum_width = static_cast<int>(sum);
  s->n_params = off;
  if (workspace_scalars_per_row(*s) > kMaxIntCount)
    return "one sample needs more than 2147483647 workspace scalars";
  return nullptr;
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
  if (finish_net_shape(&s)) return false;
  *shape = s;
  return true;
}

// Layer spec as passed from Python: per layer {kind, units (dense) or filters (conv), k, relu}.
constexpr int kSpecInts = 4;

// A sequential network on (in_h, in_w, in_c) inputs. Conv2D: k x k (odd), stride 1, 'same'
// zero padding. MaxPool2: 2 x 2, stride 2, 'same' (output ceil(h / 2) x ceil(w / 2), the
// window clipped at the bottom/right edge, as Keras/TensorFlow). Dense flattens its input.
// Every size must be positive and within the limits above (kMaxWidth, kMaxIntCount). Returns
// an error message, or nullptr on success.
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
    // Each layer's input width is checked before a dense layer flattens it (h * w * c in int).
    if (product_within(product_within(h, w, kMaxWidth), c, kMaxWidth) < 0)
      return l ? "a layer has more than 2^28 units per sample" : "input has more than 2^28 units per sample";
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
  if (const char* err = finish_net_shape(&s)) return err;
  *shape = s;
  return nullptr;
}

}  // namespace fs
