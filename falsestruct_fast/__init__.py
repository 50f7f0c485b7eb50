"""falsestruct_fast: native kernels for seed studies of false structures in small ReLU nets.

Quick start::

    import falsestruct_fast as fs
    net = fs.MLP([2, 104, 1])
    params = fs.init(net, seeds=range(256), dtype="float32")
    fit = fs.train(net, params, X, y, epochs=100, batch_size=50)
    logits = fs.forward(net, fit.params, X)        # (S, N, 1)
    adv = fs.deepfool(net, fit.params, X)          # adv.norm (S, N), adv.flipped, ...
"""
from ._native_loader import build_info
from .attacks import (AttackResult, AttackStatus, StabilitySummary, deepfool, fast_gradient_attack,
                      random_attack, stability)
from .cnn import CNN, Conv2D, Dense, Flatten, MaxPool2D, paper_cnn
from .fp_mode import flush_denormals, set_flush_denormals
from .memory import release_scratch, scratch_bytes
from .mlp import MLP
from .network import Network, Params, forward, init, input_grad, loss_and_grad, predict
from .optim import Adam, AdamState
from .training import TrainResult, train
from .weights import from_keras, from_torch, save_npz, to_keras, weight_names

__version__ = "0.1.0"


def get_cmake_dir() -> str:
    """Directory of the installed CMake package of the C++ core (falsestructConfig.cmake).

    ``cmake -Dfalsestruct_DIR=<this>`` lets ``find_package(falsestruct CONFIG REQUIRED)``
    find the INTERFACE target ``falsestruct::core`` (the headers of ``src/falsestruct``).
    Raises FileNotFoundError when the package is not installed with ``pip install .``
    (e.g. imported from a source checkout), where no package config exists.
    """
    import os

    cmake_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "share", "cmake", "falsestruct")
    if not os.path.isfile(os.path.join(cmake_dir, "falsestructConfig.cmake")):
        raise FileNotFoundError(
            f"falsestruct_fast.get_cmake_dir: no CMake package config in {cmake_dir}; it is "
            "installed by `pip install .` (a source checkout does not have one)")
    return cmake_dir

from . import experiments, study  # noqa: E402  (they use the names above)

__all__ = [
    "MLP", "CNN", "Conv2D", "MaxPool2D", "Flatten", "Dense", "paper_cnn", "Network", "Params", "init", "forward", "predict", "loss_and_grad", "train", "TrainResult",
    "Adam", "AdamState", "to_keras", "from_keras", "save_npz", "from_torch", "weight_names",
    "input_grad", "deepfool", "random_attack", "fast_gradient_attack", "AttackResult", "AttackStatus",
    "stability", "StabilitySummary", "build_info", "flush_denormals", "set_flush_denormals", "get_cmake_dir", "scratch_bytes", "release_scratch", "__version__", "experiments", "study",
]
