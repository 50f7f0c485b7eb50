"""Keras-layout weight import/export (dict, list, .npz) and PyTorch import."""
from __future__ import annotations

import numpy as np
import pytest

import falsestruct_fast as fs


def small_cnn():
    return fs.CNN((7, 6, 2), [fs.Conv2D(3, 3), fs.MaxPool2D(), fs.Conv2D(4, 1, activation=None),
                              fs.Flatten(), fs.Dense(5, activation="relu"), fs.Dense(1)])


@pytest.mark.parametrize("net", [fs.MLP([2, 6, 3]), small_cnn()], ids=["mlp", "cnn"])
def test_keras_dict_and_npz_round_trip(net, tmp_path):
    params = fs.init(net, seeds=[3, 9], dtype="float64")
    d = fs.to_keras(net, params)
    assert list(d) == fs.weight_names(net)
    for a, shape in zip(d.values(), net.param_shapes()):
        assert a.shape == (2,) + shape
    back = fs.from_keras(net, d)
    for a, b in zip(back, params):
        np.testing.assert_array_equal(a, b)
    path = tmp_path / "w.npz"
    fs.save_npz(path, net, params)
    loaded = fs.from_keras(net, path)
    for a, b in zip(loaded, params):
        np.testing.assert_array_equal(a, b)
    one = fs.to_keras(net, params, network=1)
    single = fs.from_keras(net, list(one.values()))
    assert single.n_networks == 1
    X = np.random.default_rng(0).normal(size=(5,) + net.input_shape)
    np.testing.assert_array_equal(fs.forward(net, single, X)[0], fs.forward(net, params, X)[1])


def test_keras_names_follow_keras_defaults():
    assert fs.weight_names(fs.paper_cnn()) == [
        "conv2d/kernel", "conv2d/bias", "conv2d_1/kernel", "conv2d_1/bias",
        "dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"]


def test_from_keras_refuses_wrong_input(tmp_path):
    net = fs.MLP([2, 3, 1])
    with pytest.raises(ValueError, match="weights: missing"):
        fs.from_keras(net, {"dense/kernel": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="weights: .* has 4 arrays, got 2"):
        fs.from_keras(net, [np.zeros((2, 3)), np.zeros(3)])
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        fs.from_keras(net, [np.zeros((3, 3)), np.zeros(3), np.zeros((3, 1)), np.zeros(1)])
    with pytest.raises(TypeError, match="weights: expected a list"):
        fs.from_keras(net, 5)


def test_from_torch_matches_torch_model():
    torch = pytest.importorskip("torch")
    net = small_cnn()
    torch.manual_seed(0)
    model = torch.nn.ModuleDict({
        "c1": torch.nn.Conv2d(2, 3, 3, padding=1), "c2": torch.nn.Conv2d(3, 4, 1),
        "d1": torch.nn.Linear(4 * 4 * 3, 5), "d2": torch.nn.Linear(5, 1)}).double()

    def torch_forward(x_nchw):
        h = torch.relu(model["c1"](x_nchw))
        h = torch.nn.functional.max_pool2d(h, 2, ceil_mode=True)
        h = model["c2"](h)
        h = torch.relu(model["d1"](h.flatten(1)))
        return model["d2"](h)

    tensors = [t for k in ("c1", "c2", "d1", "d2") for t in (model[k].weight, model[k].bias)]
    params = fs.from_torch(net, tensors)
    X = np.random.default_rng(1).normal(size=(6, 7, 6, 2))
    ours = fs.forward(net, params, X)[0]
    theirs = torch_forward(torch.from_numpy(X).permute(0, 3, 1, 2)).detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
