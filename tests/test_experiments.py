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


@pytest.mark.parametrize("name, changes, field", [
    ("psi3", dict(batch_size=6000), "batch_size"), ("psi3", dict(eps=0.05), "eps"),
    ("psi3", dict(delta=0.02), "delta"), ("psi3", dict(shuffle="epoch"), "shuffle"),
    ("psi3", dict(sampler="grid"), "sampler"), ("psi3", dict(dtype="float16"), "dtype"),
    ("psi3", dict(widths=[2, 3]), "widths"), ("psi3", dict(learning_rate=-1.0), "learning_rate"),
    ("exp2", dict(layout="keras"), "layout"), ("exp2", dict(intervals=[(0.01, 0.009)]), "intervals"),
    ("exp2", dict(batch_size=61), "batch_size"), ("exp2", dict(horizontal_label=2), "horizontal_label"),
])
def test_bad_settings_are_refused(name, changes, field):
    with pytest.raises((ValueError, TypeError), match=field):
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


def test_psi1_reaches_the_false_structure():
    """Psi1 (T^7_delta, batch 7, no shuffle, the paper's 30000 epochs in float64) with seed 0
    learns the false structure: it reads x2 and predicts 0 on all of C_0."""
    s = preset("psi1")
    fit = s.train([0], progress=False)
    v = s.evaluate(s.network(), fit.params)
    assert v.verdict.tolist() == ["false"]
    assert v.agreement_delta[0] == 1.0 and v.ones_0[0] == 0.0
    X, _ = exp1.evaluation_set()
    radius = fs.stability(s.network(), fit.params, X[exp1.in_stable_region(X[:, 0])]).median_radius[0]
    assert radius < exp1.DELTA  # a perturbation of the order of delta flips it


def test_exp2_setting_trains_and_evaluates():
    s = preset("exp2", layout="authors", test_size=50, epochs=2)
    X, y = s.data()
    np.testing.assert_array_equal(X, exp2.training_set(layout="authors")[0])
    fit = s.train([0], progress=False)
    table = s.evaluate(s.network(), fit.params)
    assert table.tilde.shape == (1, 4) and table.size == 50


def test_plots(tmp_path):
    pytest.importorskip("matplotlib")
    from falsestruct_fast.experiments import plots
    net, params = exp1.stable_network()
    fig = plots.figure2(net, params, titles=["stable"])
    assert len(fig.axes) == 2
    fig.savefig(tmp_path / "f2.png")
    cnn = fs.paper_cnn()
    X = exp2.stripe_images(0.01, [True, False], [3, 7])
    fig = plots.figure3(cnn, fs.init(cnn), X, columns=2)
    assert [ax.get_title().split(" = ")[1] for ax in fig.axes] in (["horizontal", "vertical"],
                                                                   ["vertical", "horizontal"],
                                                                   ["horizontal", "horizontal"],
                                                                   ["vertical", "vertical"])
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
    assert res["exp1"]["psi1"]["verdict"] == ["false"]  # seed 0, full psi1 protocol even when quick
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
