"""DeepFool benchmark cases: the same networks and points for falsestruct_fast, Foolbox and ART.

MLP case: Experiment I networks (2 -> 104 -> 1, trained briefly on T^5000_delta, one per seed)
on the 501 points of C_delta. CNN case: the paper's CNN (trained for a few steps on stripe
images) on 1000 stripe images. Both peers get PyTorch copies of exactly our weights; single
logit nets are wrapped as logits [0, z] (Foolbox and ART need two classes). falsestruct_fast
runs variant="foolbox" with the same box, i.e. the same algorithm as Foolbox 3.
"""
from __future__ import annotations

import numpy as np

OVERSHOOT, STEPS = 0.02, 50


def mlp_case(S: int, dtype: str = "float32", epochs: int = 30):
    """(net, params, X (501, 2), bounds) with S trained Experiment I networks."""
    import falsestruct_fast as fs
    from falsestruct_fast.experiments import exp1

    X_train, y_train = exp1.training_set(5000, dtype=dtype)
    net = fs.MLP([2, 104, 1])
    params = fs.init(net, seeds=range(S), dtype=dtype)
    params = fs.train(net, params, X_train, y_train, epochs=epochs, batch_size=50,
                      progress=False).params
    X, _ = exp1.evaluation_set(501, dtype=dtype)
    return net, params, X, (-1.0, 2.0)


def stripe_images(n: int, seed: int = 0, lo: float = 0.009, hi: float = 0.01, dtype="float32"):
    """n 32x32x1 stripe images in colour code M~ (horizontal: -a / 1-a, vertical: +a / 1+a)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(lo, hi, n)
    horizontal = rng.random(n) < 0.5
    pos = rng.integers(0, 30, n)
    X = np.empty((n, 32, 32, 1))
    for i in range(n):
        sign = -1.0 if horizontal[i] else 1.0
        X[i] = sign * a[i]
        if horizontal[i]:
            X[i, pos[i]:pos[i] + 3, :, 0] += 1.0
        else:
            X[i, :, pos[i]:pos[i] + 3, 0] += 1.0
    return X.astype(dtype), horizontal.astype(dtype)


def cnn_case(n_images: int, dtype: str = "float32", epochs: int = 5):
    """(net, params, X (n, 32, 32, 1), bounds) with one paper CNN trained on 60 images."""
    import falsestruct_fast as fs

    net = fs.paper_cnn()
    X_train, y_train = stripe_images(60, seed=1, dtype=dtype)
    params = fs.init(net, seeds=[0], dtype=dtype)
    params = fs.train(net, params, X_train, y_train, epochs=epochs, batch_size=60,
                      progress=False).params
    X, _ = stripe_images(n_images, seed=2, dtype=dtype)
    return net, params, X, (-1.0, 2.0)


def falsestruct_runner(net, params, X, bounds, threads: int, engine: str = "native"):
    import falsestruct_fast as fs

    return lambda: fs.deepfool(net, params, X, overshoot=OVERSHOOT, max_iter=STEPS,
                               variant="foolbox", clip=bounds, threads=threads, engine=engine)


def torch_models(net, params, dtype: str):
    """One PyTorch module per network computing [0, z] from NCHW (CNN) or (N, d) input."""
    import torch
    import falsestruct_fast as fs

    tdt = torch.float64 if dtype == "float64" else torch.float32
    models = []
    for s in range(params[0].shape[0]):
        if isinstance(net, fs.MLP):
            W0, b0, W1, b1 = (torch.from_numpy(np.ascontiguousarray(a[s])).to(tdt) for a in params)
            body = lambda x, W0=W0, b0=b0, W1=W1, b1=b1: torch.relu(x @ W0 + b0) @ W1 + b1
        else:
            nn = torch.nn
            seq = nn.Sequential(nn.Conv2d(1, 24, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                nn.Conv2d(24, 48, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                nn.Flatten(), nn.Linear(3072, 10), nn.Linear(10, 1)).to(tdt)
            k0, c0, k1, c1, w2, d2, w3, d3 = (np.ascontiguousarray(a[s]) for a in params)
            # Keras layout -> PyTorch: HWIO -> OIHW; the Dense after Flatten sees (h, w, c)
            # order in Keras and (c, h, w) in PyTorch.
            w2_t = w2.reshape(8, 8, 48, 10).transpose(2, 0, 1, 3).reshape(3072, 10)
            with torch.no_grad():
                for layer, (w, b) in zip([seq[0], seq[3], seq[7], seq[8]],
                                         [(k0.transpose(3, 2, 0, 1), c0), (k1.transpose(3, 2, 0, 1), c1),
                                          (w2_t.T, d2), (w3.T, d3)]):
                    layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
                    layer.bias.copy_(torch.from_numpy(b))
            body = seq

        class Wrapped(torch.nn.Module):
            def __init__(self, f):
                super().__init__()
                self.f = f
                if isinstance(f, torch.nn.Module):
                    self.add_module("net", f)

            def forward(self, x):
                z = self.f(x)
                return torch.cat([torch.zeros_like(z), z], dim=1)

        models.append(Wrapped(body).eval())
    return models


def batched_torch_model(net, params, dtype: str):
    """One PyTorch module for all S Experiment I networks: rows s*N .. (s+1)*N - 1 of its input
    (S*N, d) go through network s (batched matrix products), output [0, z] per row. Each row's
    logits depend on that row alone, so an attack on it is S attacks in one batch."""
    import torch
    import falsestruct_fast as fs

    if not isinstance(net, fs.MLP) or len(params) != 4:
        raise ValueError("net: the batched model is written for one-hidden-layer MLPs")
    tdt = torch.float64 if dtype == "float64" else torch.float32
    W0, b0, W1, b1 = (torch.from_numpy(np.ascontiguousarray(a)).to(tdt) for a in params)
    S = W0.shape[0]

    class Stacked(torch.nn.Module):
        def forward(self, x):
            xs = x.reshape(S, -1, x.shape[-1])                      # (S, N, d)
            h = torch.relu(torch.baddbmm(b0[:, None, :], xs, W0))   # (S, N, H)
            z = torch.baddbmm(b1[:, None, :], h, W1).reshape(-1, 1)  # (S*N, 1)
            return torch.cat([torch.zeros_like(z), z], dim=1)

    return Stacked().eval()


def indexed_torch_model(net, params, dtype: str):
    """One PyTorch module for all S Experiment I networks whose input rows carry their network:
    (x, s) of shape (B, d + 1), s in the last column, output [0, z(x) of network s]. For attacks
    that evaluate subsets of rows (ART's DeepFool), where the row order cannot say the network.
    The index is read through a non-differentiable cast, so its gradient is 0 and an attack
    never moves it."""
    import torch
    import falsestruct_fast as fs

    if not isinstance(net, fs.MLP) or len(params) != 4:
        raise ValueError("net: the batched model is written for one-hidden-layer MLPs")
    tdt = torch.float64 if dtype == "float64" else torch.float32
    W0, b0, W1, b1 = (torch.from_numpy(np.ascontiguousarray(a)).to(tdt) for a in params)

    class Indexed(torch.nn.Module):
        def forward(self, xi):
            x, s = xi[:, :-1], xi[:, -1].detach().round().long()
            h = torch.relu(torch.einsum("bd,bdh->bh", x, W0[s]) + b0[s])
            z = torch.einsum("bh,bh->b", h, W1[s][:, :, 0])[:, None] + b1[s]
            return torch.cat([torch.zeros_like(z), z], dim=1)

    return Indexed().eval()


def _torch_input(net, X):
    import torch
    import falsestruct_fast as fs

    x = torch.from_numpy(np.ascontiguousarray(X))
    return x if isinstance(net, fs.MLP) else x.permute(0, 3, 1, 2).contiguous()


def foolbox_runner(net, params, X, bounds, dtype: str, threads: int, batched: bool = False):
    """Returns run() -> (perturbations (S, N, ...) in our layout, success (S, N)).

    batched=False: one Foolbox model and attack call per network (S Python calls);
    batched=True: one call on the batched model of all S networks (see batched_torch_model)."""
    import foolbox as fb
    import torch

    torch.set_num_threads(threads)
    S, N = params[0].shape[0], len(X)
    x = _torch_input(net, X)
    attack = fb.attacks.L2DeepFoolAttack(steps=STEPS, candidates=2, overshoot=OVERSHOOT)
    if batched:
        model = fb.PyTorchModel(batched_torch_model(net, params, dtype), bounds=bounds)
        xs = x.repeat(S, *([1] * (x.dim() - 1)))

        def run():
            labels = model(xs).argmax(dim=1)
            _, adv, success = attack(model, xs, labels, epsilons=None)
            return (adv - xs).numpy().reshape((S, N) + tuple(X.shape[1:])), success.numpy().reshape(S, N)

        return run
    models = [fb.PyTorchModel(m, bounds=bounds) for m in torch_models(net, params, dtype)]

    def run():
        perts, wins = [], []
        for model in models:
            labels = model(x).argmax(dim=1)
            _, adv, success = attack(model, x, labels, epsilons=None)
            p = (adv - x).numpy()
            perts.append(p if p.ndim == 2 else p.transpose(0, 2, 3, 1))
            wins.append(success.numpy())
        return np.stack(perts), np.stack(wins)

    return run


def art_runner(net, params, X, bounds, dtype: str, threads: int, batched: bool = False):
    """ART's DeepFool (overshoot applied once at the end): run() -> perturbations (S, N, ...).
    batched=False: one classifier and attack call per network; batched=True: one call on a
    model of all S networks (indexed_torch_model: ART evaluates subsets of rows)."""
    import torch
    from art.attacks.evasion import DeepFool
    from art.estimators.classification import PyTorchClassifier

    torch.set_num_threads(threads)
    S = params[0].shape[0]
    x = _torch_input(net, X).numpy()
    if batched:
        # ART evaluates subsets of the rows (the points not yet flipped): each row carries its
        # network's index (see indexed_torch_model)
        modules = [indexed_torch_model(net, params, dtype)]
        index = np.repeat(np.arange(S, dtype=x.dtype), len(x))[:, None]
        inputs = np.concatenate([np.concatenate([x] * S), index], axis=1)
    else:
        modules, inputs = torch_models(net, params, dtype), x
    attacks = []
    for m in modules:
        clf = PyTorchClassifier(m, loss=torch.nn.CrossEntropyLoss(), input_shape=inputs.shape[1:],
                                nb_classes=2, clip_values=bounds, device_type="cpu")
        attacks.append(DeepFool(clf, max_iter=STEPS, epsilon=OVERSHOOT, nb_grads=2,
                                batch_size=len(inputs), verbose=False))

    def run():
        out = []
        for attack in attacks:
            p = attack.generate(inputs) - inputs
            if batched:
                p = p[:, :-1]
            out.append(p if p.ndim == 2 else p.transpose(0, 2, 3, 1))
        return np.stack(out).reshape((S,) + X.shape)

    return run
