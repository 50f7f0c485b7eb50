"""A small case of every CUDA operation, for compute-sanitizer (memcheck, racecheck) in
benchmarks/gpu/run_all.sh: any invalid access or race is reported by the tool."""
import numpy as np

import falsestruct_fast as fs

for net in (fs.MLP([2, 9, 1]), fs.MLP([3, 7, 3], loss="softmax"),
            fs.CNN((6, 6, 1), [fs.Conv2D(2, 3), fs.MaxPool2D(), fs.Flatten(), fs.Dense(2)], loss="softmax")):
    rng = np.random.default_rng(0)
    X = rng.random((13,) + tuple(net.input_shape)).astype(np.float32)
    y = rng.integers(0, net.n_logits, 13) if net.loss == "softmax" else (rng.random(13) < 0.5).astype(np.float32)
    params = fs.init(net, range(3))
    fit = fs.train(net, params, X, y, epochs=2, batch_size=5, engine="cuda", progress=False)
    fs.forward(net, fit.params, X, engine="cuda")
    fs.input_grad(net, fit.params, X, engine="cuda")
    fs.loss_and_grad(net, fit.params, X, y, wrt_input=True, engine="cuda")
    fs.deepfool(net, fit.params, X, max_iter=5, engine="cuda")
print("sanitize_case: done")
