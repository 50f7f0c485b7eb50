"""The Numba engine's kernels: plain ``@njit`` functions on NumPy arrays (float32 or float64),
callable from Python and from users' own ``@njit`` code.

Importing this module imports Numba (``import falsestruct_fast`` alone does not). Every kernel
is compiled on first use per dtype combination and cached on disk (``cache=True``).

Whole-network entry points take the spec as a 1-D int64 array (``np.asarray(net.spec,
np.int64)``) and ONE network's flat parameters theta (P,) in Keras order
(``params.flat[s]``):

- ``forward(spec, theta, X, out)``: X (N, d), out (N, K) logits.
- ``loss_and_grad(spec, loss_kind, theta, X, Y, grad_out[, input_grad_out]) -> loss``:
  loss_kind 0 sigmoid (Y (N, K)), 1 softmax (Y (N, 1) class indices); grad_out (P,),
  input_grad_out (N, d).
- ``logit_input_grads(spec, theta, X, out)``: out (N, K, d).
- ``glorot_init(spec, seed, theta)``, ``train_network(...)``, ``adam_update(...)``,
  ``deepfool(...)``; the layer kernels (dense, conv2d, max-pool, ReLU, losses) and Philox.
"""
from .adam import adam_step_size, adam_update
from .baselines import flipping_scale_search
from .conv2d import conv2d_backward_input, conv2d_backward_params, conv2d_forward
from .deepfool import deepfool
from .dense import dense_backward_input, dense_backward_params, dense_forward
from .init import glorot_init, glorot_init_networks
from .losses import (loss_grad, loss_terms, sigmoid_ce_grad, sigmoid_ce_terms, softmax_ce_grad,
                     softmax_ce_terms)
from .maxpool import maxpool2_backward_input, maxpool2_forward
from .network import forward, logit_input_grads, loss_and_grad, parameter_count
from .philox import epoch_permutation, philox4x32, shuffle_draw, uniform01, uniform_below
from .relu import relu, relu_backward
from .train import train_epochs, train_network, train_networks

__all__ = [
    "adam_step_size", "adam_update", "conv2d_backward_input", "conv2d_backward_params",
    "conv2d_forward", "deepfool", "dense_backward_input", "dense_backward_params", "dense_forward",
    "epoch_permutation", "flipping_scale_search", "forward", "glorot_init", "glorot_init_networks",
    "logit_input_grads", "loss_and_grad", "loss_grad", "loss_terms", "maxpool2_backward_input",
    "maxpool2_forward", "parameter_count", "philox4x32", "relu", "relu_backward", "shuffle_draw",
    "sigmoid_ce_grad", "sigmoid_ce_terms", "softmax_ce_grad", "softmax_ce_terms", "train_epochs",
    "train_network", "train_networks", "uniform01", "uniform_below",
]
