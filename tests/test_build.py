"""The compiled engines are present, the staleness check behind conftest.py can see a change,
and the CPU engine's instruction-set variants are chosen, refused and kept apart as documented.

(conftest.py already stops the run when the extension's source hash differs from the
checkout's, so comparing the two again here could not fail; what is tested instead is that
the fingerprint reacts to every kind of change it is meant to catch.)
"""
import os
import platform
import re
import shutil
import subprocess
from collections import defaultdict

import numpy as np
import pytest

import falsestruct_fast as fs
from falsestruct_fast import _build_info, _native, _native_loader
from helpers import assert_close, run_python


def _kernel_tree(root):
    (root / "src" / "falsestruct").mkdir(parents=True)
    (root / "cpp").mkdir()
    (root / "src" / "falsestruct" / "core.h").write_text("int f();\n")
    (root / "cpp" / "module.cpp").write_text("int f() { return 1; }\n")
    return root


def test_source_hash_sees_edits_new_files_and_renames(tmp_path):
    root = _kernel_tree(tmp_path / "a")
    base = _native_loader.source_hash(root)
    assert len(base) == 64 and set(base) <= set("0123456789abcdef")  # a SHA-256 hex digest
    # the fingerprint depends on the files' paths relative to the root and their bytes only
    assert _native_loader.source_hash(_kernel_tree(tmp_path / "b")) == base
    (root / "cpp" / "module.cpp").write_text("int f() { return 2; }\n")
    edited = _native_loader.source_hash(root)
    assert edited != base
    (root / "src" / "falsestruct" / "extra.h").write_text("")
    added = _native_loader.source_hash(root)
    assert added not in (base, edited)
    (root / "src" / "falsestruct" / "extra.h").rename(root / "src" / "falsestruct" / "other.h")
    assert _native_loader.source_hash(root) not in (base, edited, added)
    # files outside src/ and cpp/ are not kernel sources
    (root / "README.md").write_text("notes\n")
    (root / "src" / "falsestruct" / "other.h").rename(root / "src" / "falsestruct" / "extra.h")
    assert _native_loader.source_hash(root) == added


def test_build_info_reports_the_loaded_extension():
    info = fs.build_info()
    assert info["source_hash"] == _native.source_hash()
    assert info["default_threads"] == _native.default_threads() >= 1
    assert info["cuda_built"] == (_native_loader._cuda is not None)


def test_cuda_engine_built_when_nvcc_present():
    # CI has nvcc: the CUDA kernels must then have been compiled (sm_90 + PTX).
    if shutil.which("nvcc") is None:
        pytest.skip("no nvcc on PATH: the CUDA engine is not expected")
    info = fs.build_info()
    assert info["cuda_built"], "nvcc is on PATH but the CUDA engine was not built"
    from falsestruct_fast import _cuda  # importable without a GPU or driver

    n_devices = _cuda.device_count()
    assert isinstance(n_devices, int) and n_devices == info["cuda_devices"]
    assert callable(_cuda.net_train_epochs) and callable(_cuda.net_forward)
    if n_devices > 0:
        assert isinstance(_cuda.device_name(0), str) and _cuda.device_name(0)


# ---- instruction-set variants of the CPU engine (FALSESTRUCT_CPU_ISA) -----------------------
DISPATCHED = not _build_info.native_arch and platform.machine().lower() in ("x86_64", "amd64")


def test_build_info_reports_the_cpu_variant():
    info = fs.build_info()
    assert info["cpu_isa"] == _native.cpu_isa()
    assert info["cpu_isas"] == list(_native.cpu_isas())
    assert info["cpu_isa"] in info["cpu_isas"]
    if _build_info.native_arch:
        assert info["cpu_isas"] == ["native"]
    elif DISPATCHED:
        assert info["cpu_isas"] == ["avx512", "avx2"]  # the order FALSESTRUCT_CPU_ISA=auto tries
    else:
        assert info["cpu_isas"] == ["generic"]
    if os.environ.get("FALSESTRUCT_CPU_ISA", "auto") not in ("", "auto"):
        assert info["cpu_isa"] == os.environ["FALSESTRUCT_CPU_ISA"]


def _import_with_isa(monkeypatch, isa):
    """(returncode, stdout, stderr) of a fresh interpreter importing falsestruct_fast with
    FALSESTRUCT_CPU_ISA=isa and printing the variant it chose."""
    monkeypatch.setenv("FALSESTRUCT_CPU_ISA", isa)
    return run_python("import falsestruct_fast as f; print(f.build_info()['cpu_isa'])")


@pytest.mark.parametrize("value", ["bogus", "native", "AVX-512"])
def test_unknown_cpu_isa_value_is_a_clear_import_error(monkeypatch, value):
    if value == "native" and _build_info.native_arch:
        pytest.skip("native is the compiled variant of this build")
    rc, out, err = _import_with_isa(monkeypatch, value)
    assert rc == 1, (rc, err)  # an exception, not a signal
    last = err.strip().splitlines()[-1]
    assert last.startswith("ImportError: FALSESTRUCT_CPU_ISA=")
    assert value.lower() in last and "auto" in last
    for isa in _native.cpu_isas():
        assert isa in last
    if value == "native":
        assert "FS_NATIVE_ARCH=ON" in last


def test_cpu_isa_auto_takes_the_widest_runnable_variant(monkeypatch):
    rc, out, err = _import_with_isa(monkeypatch, " Auto ")  # case and blanks are ignored
    assert rc == 0, err
    runnable = [isa for isa in _native.cpu_isas() if _runs_here(monkeypatch, isa)]
    assert out.strip() == runnable[0]


def _runs_here(monkeypatch, isa):
    """Whether this CPU runs variant `isa`; a variant it cannot run must be refused at import
    with an ImportError naming the variable and the variants it runs (never SIGILL)."""
    rc, out, err = _import_with_isa(monkeypatch, isa)
    if rc == 0:
        assert out.strip() == isa
        return True
    assert rc == 1, (rc, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"ImportError: FALSESTRUCT_CPU_ISA={isa}: this CPU cannot run"), last
    return False


# Trains the Experiment I MLP and a small softmax CNN (conv 5x5 and 3x3, pools, dense) a few
# epochs in both dtypes, then forward and DeepFool; saves everything to argv[1].
VARIANT_RUN = """
import sys
import numpy as np
import falsestruct_fast as fs

out = {"isa": np.array(fs.build_info()["cpu_isa"])}
for dtype in ("float32", "float64"):
    rng = np.random.default_rng(7)
    mlp = fs.MLP([2, 104, 1])
    X = rng.standard_normal((96, 2)).astype(dtype)
    y = (X[:, 0] * X[:, 1] > 0).astype(np.float64)
    cnn = fs.CNN((12, 12, 1), [fs.Conv2D(8, 5), fs.MaxPool2D(), fs.Conv2D(12, 3), fs.MaxPool2D(),
                               fs.Flatten(), fs.Dense(10), fs.Dense(3)], loss="softmax")
    Xc = rng.standard_normal((40, 12, 12, 1)).astype(dtype)
    yc = rng.integers(0, 3, size=40).astype(np.float64)
    for name, net, data, labels, S, epochs, batch in (("mlp", mlp, X, y, 3, 4, 16),
                                                      ("cnn", cnn, Xc, yc, 2, 3, 8)):
        r = fs.train(net, fs.init(net, seeds=range(S), dtype=dtype), data, labels, epochs=epochs,
                     batch_size=batch, progress=False, threads=1)
        attack = fs.deepfool(net, r.params, data[:24], threads=1)
        out.update({f"{name}_{dtype}_theta": r.params.flat, f"{name}_{dtype}_loss": r.loss,
                    f"{name}_{dtype}_forward": fs.forward(net, r.params, data, threads=1),
                    f"{name}_{dtype}_deepfool": attack.perturbation,
                    f"{name}_{dtype}_iterations": attack.iterations,
                    f"{name}_{dtype}_status": attack.status})
np.savez(sys.argv[1], **out)
"""


def _variant_results(monkeypatch, tmp_path, isa):
    path = tmp_path / f"{isa or 'default'}.npz"
    if isa is None:
        monkeypatch.delenv("FALSESTRUCT_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("FALSESTRUCT_CPU_ISA", isa)
    rc, out, err = run_python(VARIANT_RUN, str(path), timeout=300)
    assert rc == 0, err
    return dict(np.load(path))


def test_every_runnable_variant_gives_the_default_results(monkeypatch, tmp_path):
    """Each variant the CPU runs trains, evaluates and attacks like the default one.

    The variants sum every element in the same order, but their vector widths and register
    tiles differ (kHostVectorBytes), so the compiler contracts multiply-adds into FMAs at
    different places: results agree to rounding, not bitwise (measured on Zen 5, avx2 vs
    avx512: most arrays bitwise equal, float64 MLP logits within 2 ulp, float32 CNN DeepFool
    within 2e-7 relative). DeepFool's iteration count is a step function of its inputs: a point
    whose stopping test is decided by the last bit may take other steps, so perturbations are
    compared where the iterations and status agree, which must be nearly everywhere.
    """
    default = _variant_results(monkeypatch, tmp_path, None)
    compared = 0
    for isa in _native.cpu_isas():
        if isa == str(default["isa"]) or not _runs_here(monkeypatch, isa):
            continue
        got = _variant_results(monkeypatch, tmp_path, isa)
        assert str(got["isa"]) == isa
        for key, want in default.items():
            if key == "isa" or key.endswith(("_iterations", "_status", "_deepfool")):
                continue
            rtol = 1e-5 if "float32" in key else 1e-12
            assert_close(got[key], want, rtol, f"{isa} vs {default['isa']}: {key}")
        for prefix in ("mlp_float32", "mlp_float64", "cnn_float32", "cnn_float64"):
            same = ((got[f"{prefix}_iterations"] == default[f"{prefix}_iterations"])
                    & (got[f"{prefix}_status"] == default[f"{prefix}_status"]))
            assert same.mean() >= 0.9, f"{isa}: {prefix} DeepFool steps differ at {np.sum(~same)} points"
            rtol = 1e-4 if "float32" in prefix else 1e-9
            assert_close(got[f"{prefix}_deepfool"][same], default[f"{prefix}_deepfool"][same], rtol,
                         f"{isa} vs {default['isa']}: {prefix} DeepFool")
        compared += 1
    if compared == 0:
        pytest.skip("this CPU runs only one compiled variant")


# Instructions only an AVX-512 CPU runs (EVEX registers, opmasks and EVEX-only mnemonics), and
# any VEX/EVEX instruction (AVX: mnemonics starting with v).
AVX512_INSN = re.compile(
    r"%zmm|%[xy]mm(?:1[6-9]|2\d|3[01])\b|%k[0-7]\b|\b(?:vpternlog\w*|vperm[it]2\w*|vp?compress\w*|"
    r"vp?expand\w*|vrndscale\w*|vrcp14\w*|vrsqrt14\w*|vscalef\w*|vgetexp\w*|vgetmant\w*|vfixupimm\w*|"
    r"vreduce\w*|vrange\w*|vpro[lr]\w*|vpsraq|vpabsq|vpmullq|vp(?:max|min)[su]q|vcvt\w*qq\w*|"
    r"vcvt\w*u\w*|vpmovm2\w*|vpmov\w*2m|valign[dq]|vpconflict\w*|vplzcnt\w*|vp?blendm\w*|vptestn?m\w*|"
    r"k(?:mov|or|and|not|xor|shift|test|add|unpck)\w*)\b")
AVX_INSN = re.compile(r"^\s*[0-9a-f]+:\s+v[a-z0-9]+\s")


@pytest.mark.skipif(not DISPATCHED, reason="one variant only: no instruction-set dispatch")
def test_wide_instructions_only_in_their_variant():
    """Code outside a variant's namespace (bindings, argument checks, the CUDA emulation and the
    std:: functions the linker kept one copy of) runs on any x86-64: no AVX; AVX-512 only in
    fs_isa_avx512. Nothing of a variant runs at load time (no static initialisers), so a CPU
    without AVX2 gets the ImportError."""
    if shutil.which("objdump") is None:
        pytest.skip("objdump (binutils) not installed")
    so = _native.__file__
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", so], capture_output=True,
                         text=True, check=True).stdout
    func, seen, wrong = None, defaultdict(int), defaultdict(set)
    for line in out.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if header:
            func = header.group(1)
            assert not func.startswith("_GLOBAL__sub_I_host_engine"), func
            continue
        if func is None or ":" not in line:
            continue
        variant = "avx512" if "fs_isa_avx512" in func else "avx2" if "fs_isa_avx2" in func else "base"
        wide = "avx512" if AVX512_INSN.search(line.split(":", 1)[1]) else "avx" if AVX_INSN.match(line) else None
        if wide:
            seen[variant, wide] += 1
            if (wide == "avx512" and variant != "avx512") or variant == "base":
                wrong[func].add(line.split(":", 1)[1].strip())
    if not seen:
        pytest.skip("the module is stripped: no function symbols to check")
    assert not wrong, "wide instructions outside their variant: " + "; ".join(
        f"{f[:120]}: {sorted(i)[:2]}" for f, i in list(wrong.items())[:5])
    assert seen["avx2", "avx"] > 0 and seen["avx512", "avx512"] > 0  # the scan sees both variants


# A team of threads on one network gives bitwise the single thread's result in every variant
# (each variant's register tiles are different code; a team must split phases only where the
# single thread's code starts a tile or a group of rows).
TEAM_RUN = """
import numpy as np, falsestruct_fast as fs
net = fs.CNN((16, 16, 2), [fs.Conv2D(8, 3), fs.MaxPool2D(), fs.Conv2D(6, 3), fs.Flatten(),
                           fs.Dense(4, activation="relu"), fs.Dense(1)])
rng = np.random.default_rng(3)
for dtype in ("float32", "float64"):
    X = rng.normal(size=(48, 16, 16, 2)).astype(dtype)
    y = (rng.random(48) > 0.5).astype(dtype)
    params = fs.init(net, seeds=[5], dtype=dtype)
    kw = dict(epochs=3, batch_size=24, shuffle="samples", optimizer=fs.Adam(lr=1e-2), progress=False)
    one = fs.train(net, params, X, y, threads=1, **kw).params
    for team in (2, 3):
        other = fs.train(net, params, X, y, threads=team, **kw).params
        for a, b in zip(one, other):
            assert np.array_equal(a, b), (dtype, team, float(np.max(np.abs(a - b))))
print(fs.build_info()["cpu_isa"])
"""


def test_team_of_threads_is_bitwise_the_single_thread_in_every_variant(monkeypatch):
    for isa in _native.cpu_isas():
        if not _runs_here(monkeypatch, isa):
            continue
        monkeypatch.setenv("FALSESTRUCT_CPU_ISA", isa)
        rc, out, err = run_python(TEAM_RUN, timeout=300)
        assert rc == 0, f"{isa}: {err[-2000:]}"
        assert out.strip() == isa
