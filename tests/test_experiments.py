"""Structure verdicts, experiment settings (presets), plots and the reproduce command."""
import json

import numpy as np
import pytest

import falsestruct_fast as fs
from falsestruct_fast.cli import main as cli_main
from falsestruct_fast.experiments import (PRESETS, Exp1Setting, Exp2Setting, classify_structure, exp1,
                                          exp2, preset)


def _constant_net(logit):
    net = fs.MLP([2, 1])
    return net, fs.from_keras(net, {"dense/kernel": np.zeros((2, 1)), "dense/bias": np.array([logit])})


def test_verdicts_of_constructed_networks():
    assert classify_structure(*exp1.stable_network()).verdict.tolist() == ["original"]
    assert classify_structure(*exp1.x2_network()).verdict.tolist() == ["false"]
    for logit in (-1.0, 1.0):
        assert classify_structure(*_constant_net(logit)).verdict.tolist() == ["neither"]


def test_verdict_scores_equal_direct_computation():
    net = fs.MLP([2, 16, 1])
    params = fs.init(net, seeds=range(5), dtype="float64")
    v = classify_structure(net, params)
    Xd, labels = exp1.evaluation_set()
    X0, _ = exp1.evaluation_set(delta=0.0)
    keep = exp1.in_stable_region(Xd[:, 0])
    assert v.n_points == keep.sum()
    np.testing.assert_array_equal(v.agreement_delta, (fs.predict(net, params, Xd[keep]) == labels[keep]).mean(1))
    np.testing.assert_array_equal(v.agreement_0, (fs.predict(net, params, X0[keep]) == labels[keep]).mean(1))
    np.testing.assert_array_equal(v.ones_0, fs.predict(net, params, X0[keep]).mean(1))
    assert classify_structure(net, params, stable_only=False).n_points == 501
    assert sum(v.fractions().values()) == pytest.approx(1.0)
    assert "verdict" in str(v)


def test_verdict_thresholds():
    # The x2-only net predicts 0 on all of C_0 and agrees with f_a on C_delta: "false" at any
    # threshold; a net agreeing on 90% of C_delta is "false" only when 0.9 is enough.
    net, params = exp1.x2_network()
    assert classify_structure(net, params, agreement=1.0, zero=1.0).verdict[0] == "false"
    for name in ("agreement", "zero"):
        for bad in (0.5, 1.01):
            with pytest.raises(ValueError, match=name):
                classify_structure(net, params, **{name: bad})
    with pytest.raises(ValueError, match="net"):
        classify_structure(fs.MLP([3, 1]), fs.init(fs.MLP([3, 1])))


def test_diverged_network_is_neither_not_an_error():
    net = fs.MLP([2, 8, 1])
    params = fs.init(net, seeds=range(3), dtype="float64")
    params[2][1, 0, 0] = np.nan
    v = classify_structure(net, params)
    assert v.verdict[1] == "neither" and np.isnan(v.agreement_delta[1])
    ref = classify_structure(net, params.select([0, 2]))
    np.testing.assert_array_equal(v.agreement_delta[[0, 2]], ref.agreement_delta)


def test_presets_follow_the_paper():
    expect = {"psi1": ("delta", 7, 7, "none", "false"), "psi2": ("zero", 5000, 50, "batches", "neither"),
              "psi3": ("delta", 5000, 50, "batches", "false"), "psi4": ("zero", 10000, 50, "batches", "original")}
    for name, (kind, r, batch, shuffle, outcome) in expect.items():
        s = PRESETS[name]
        assert (s.kind, s.r, s.batch_size, s.shuffle, s.paper_outcome) == (kind, r, batch, shuffle, outcome)
        assert (s.epochs, s.dtype, s.delta, s.eps, s.sampler) == (30000, "float64", 1e-4, 1e-2, "interval")
        assert s.widths == [2, 104, 1]
    e = PRESETS["exp2"]
    assert (e.epochs, e.batch_size, e.a, e.layout, e.horizontal_label) == (10, 60, 0.01, "paper", 1)
    assert e.network() == fs.paper_cnn()


@pytest.mark.parametrize("name, changes, exc, field", [
    ("psi3", dict(batch_size=6000), ValueError, "batch_size"),
    ("psi3", dict(eps=0.05), ValueError, "eps"),
    ("psi3", dict(delta=0.02), ValueError, "delta"),
    ("psi3", dict(shuffle="epoch"), ValueError, "shuffle"),
    ("psi3", dict(sampler="grid"), ValueError, "sampler"),
    ("psi3", dict(dtype="float16"), TypeError, "dtype"),
    ("psi3", dict(widths=[2, 3]), ValueError, "widths"),
    ("psi3", dict(learning_rate=-1.0), ValueError, "learning_rate"),
    ("exp2", dict(layout="keras"), ValueError, "layout"),
    ("exp2", dict(intervals=[(0.01, 0.009)]), ValueError, "intervals"),
    ("exp2", dict(batch_size=61), ValueError, "batch_size"),
    ("exp2", dict(horizontal_label=2), ValueError, "horizontal_label"),
])
def test_bad_settings_are_refused(name, changes, exc, field):
    with pytest.raises(exc, match=rf"\b{field}\b"):
        preset(name, **changes)


def test_preset_overrides_and_dict_round_trip():
    s = preset("psi3", epochs=20, shuffle="samples", hidden=[32])
    assert (s.epochs, s.shuffle, s.hidden, s.widths) == (20, "samples", (32,), [2, 32, 1])
    d = s.as_dict()
    assert d["experiment"] == "exp1" and json.loads(json.dumps(d)) == d
    assert Exp1Setting(**{k: v for k, v in d.items() if k != "experiment"}) == s
    e = preset("exp2", test_size=10)
    d2 = e.as_dict()
    assert Exp2Setting(**{k: v for k, v in d2.items() if k != "experiment"}) == e
    with pytest.raises(ValueError, match="preset"):
        preset("psi5")


def test_setting_train_equals_manual_pipeline():
    s = preset("psi3", r=200, epochs=3)
    fit = s.train([4, 9], progress=False)
    net = fs.MLP([2, 104, 1])
    X, y = exp1.training_set(200, 1e-4, seed=[4, 9])
    ref = fs.train(net, fs.init(net, seeds=[4, 9], dtype="float64"), X, y, epochs=3, batch_size=50,
                   shuffle="batches", progress=False)
    np.testing.assert_array_equal(fit.params.flat, ref.params.flat)
    # T_0 settings train on x2 = 0.
    X0, _ = preset("psi2", r=100).data([1])
    np.testing.assert_array_equal(X0[..., 1], 0.0)


def test_psi1_fits_its_data_and_is_unstable_at_the_scale_of_delta():
    """Psi1 (T^7_delta, batch 7, no shuffle, the paper's 30000 epochs in float64), for each of
    the paper's four seeds: the network fits its 7 training points, agrees with f_a on every
    stable point of C_delta, and DeepFool flips every one of those points with a median radius
    of about delta / 2 (0.43 to 0.59 delta over seeds 0..63): the label rides on x2 = delta."""
    s = preset("psi1")
    seeds = [0, 1, 2, 3]
    fit = s.train(seeds, progress=False)
    net = s.network()
    X_train, y_train = s.data(seeds)
    for i in range(len(seeds)):
        np.testing.assert_array_equal(fs.predict(net, fit.params.select([i]), X_train[i])[0],
                                      y_train[i], err_msg=f"seed {seeds[i]}: training points")
    v = s.evaluate(net, fit.params)
    np.testing.assert_array_equal(v.agreement_delta, 1.0)
    summary = fs.stability(net, fit.params, s.attack_points())
    np.testing.assert_array_equal(summary.flipped_fraction, 1.0)
    assert np.all(np.abs(summary.median_radius / exp1.DELTA - 0.5) < 0.15), summary.median_radius


def test_psi1_seed0_verdict_is_pinned():
    """A pinned regression value, not a property of Psi1: with the paper's protocol only about
    half of the seeds (2 of seeds 0..3, 54% of 1,000) end "false"; seed 0 does, and any change
    in the training arithmetic or data shows up here first."""
    s = preset("psi1")
    fit = s.train([0], progress=False)
    v = s.evaluate(s.network(), fit.params)
    assert v.verdict.tolist() == ["false"]
    assert v.agreement_delta[0] == 1.0 and v.ones_0[0] == 0.0


def test_exp2_setting_trains_and_evaluates():
    s = preset("exp2", layout="authors", test_size=50, epochs=2)
    X, y = s.data()
    np.testing.assert_array_equal(X, exp2.training_set(layout="authors")[0])
    fit = s.train([0], progress=False)
    table = s.evaluate(s.network(), fit.params)
    assert table.tilde.shape == (1, 4) and table.size == 50
    # each entry is the trained network's accuracy counted directly on that test set
    for i, (b, c) in enumerate(s.intervals):
        for code, acc in (("tilde", table.tilde), ("hat", table.hat)):
            Xt, yt, _ = exp2.test_set(b, c, n=50, code=code, seed=i, dtype=s.dtype,
                                      horizontal_label=s.horizontal_label)
            direct = (fs.predict(s.network(), fit.params, Xt) == yt.astype(np.int64)).mean(axis=1)
            np.testing.assert_array_equal(acc[:, i], direct, err_msg=f"{code} interval {i}")


def test_plots(tmp_path):
    pytest.importorskip("matplotlib")
    from falsestruct_fast.experiments import plots
    net, params = exp1.stable_network()
    fig = plots.figure2(net, params, titles=["stable"])
    assert len(fig.axes) == 2
    fig.savefig(tmp_path / "f2.png")
    cnn = fs.paper_cnn()
    X = exp2.stripe_images(0.01, [True, False], [3, 7])
    cnn_params = fs.init(cnn, seeds=[0, 1])
    for network in (0, 1):
        for horizontal_label in (0, 1):
            fig = plots.figure3(cnn, cnn_params, X, network=network, columns=2,
                                horizontal_label=horizontal_label)
            labels = fs.predict(cnn, cnn_params, X)[network]
            want = [f"Phi(x{i + 1}) = " + ("horizontal" if label == horizontal_label else "vertical")
                    for i, label in enumerate(labels)]
            assert [ax.get_title() for ax in fig.axes] == want
    fig = plots.radius_histogram({"a": np.array([1e-4, 2e-4, np.inf]), "b": np.array([0.1])})
    assert "1 not flipped" in fig.axes[0].get_legend().get_texts()[0].get_text()
    with pytest.raises(ValueError, match="titles"):
        plots.figure2(net, params, titles=["a", "b"])


def test_reproduce_quick_command(tmp_path):
    out = tmp_path / "rep"
    assert cli_main(["reproduce", "--quick", "--seeds", "1", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["quick"] and res["seeds"] == 1
    assert set(res["exp1"]) == {"psi1", "psi2", "psi3", "psi4", "stable"}
    assert res["exp1"]["stable"]["verdict"] == ["original"]
    # seed 0 with the full psi1 protocol even when quick: a pinned value (see
    # test_psi1_seed0_verdict_is_pinned), not a property of every seed
    assert res["exp1"]["psi1"]["verdict"] == ["false"]
    assert set(res["exp2"]) == {"paper", "authors"}
    report = (out / "report.md").read_text()
    assert "| psi1 |" in report and "Table 1" in report
    for name in ("psi1", "psi2", "psi3", "psi4", "exp2_paper", "exp2_authors"):
        with np.load(out / f"weights_{name}.npz") as w:
            assert len(w.files) > 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert all((out / f).stat().st_size > 0 for f in ("figure2.png", "figure3.png", "radii.png"))
