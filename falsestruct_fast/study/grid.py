"""Grids of settings: every combination of some fields' values, from Python or a TOML file.

TOML layout (one or more ``[[study]]`` tables; a single table may also sit at the top level)::

    [[study]]
    preset = "psi3"               # the base setting (psi1..psi4, exp2)
    epochs = 20                   # fixed overrides: any field of the setting
    [study.grid]                  # every combination of these values
    r = [100, 1000, 5000]
    delta = [1e-4, 1e-3]
"""
from __future__ import annotations

import itertools
from pathlib import Path

from ..experiments.settings import Exp1Setting, Exp2Setting, format_field, named_variant, preset, with_label


def grid(base, axes: dict | None = None, **fixed) -> list:
    """Every combination of `axes` (field -> list of values) applied to `base` (a setting or a
    preset name), after the `fixed` overrides. Names get the fixed fields that differ from
    `base` and every varied value appended, e.g. ``psi3[epochs=20,r=100,delta=0.001]``.
    Every setting is validated here, before any work."""
    if isinstance(base, str):
        base = preset(base, **fixed)
    elif isinstance(base, (Exp1Setting, Exp2Setting)):
        base = named_variant(base, **fixed) if fixed else base
    else:
        raise TypeError(f"base: expected a setting or a preset name, got {type(base).__name__}")
    if axes is not None and not isinstance(axes, dict):
        raise TypeError(f"axes: expected a dict of field -> list of values, got {type(axes).__name__}")
    axes = dict(axes or {})
    for field, values in axes.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise TypeError(f"{field}: grid values must be a list, got {values!r}")
        if not list(values):
            raise ValueError(f"{field}: empty list of grid values")
    if not axes:
        return [base]
    names = list(axes)
    out = []
    for combo in itertools.product(*(list(axes[n]) for n in names)):
        changes = dict(zip(names, combo))
        label = ",".join(f"{n}={format_field(v)}" for n, v in changes.items())
        out.append(base.replace(name=with_label(base.name, label), **changes))
    return out


def load_toml(path) -> list:
    """The settings of a TOML study file (see the module docstring)."""
    import tomllib
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"grid: no such file {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"grid: {path} is not valid TOML ({exc})") from None
    tables = data.get("study", [data])
    if isinstance(tables, dict):
        tables = [tables]
    out = []
    for i, table in enumerate(tables):
        table = dict(table)
        if "preset" not in table:
            raise ValueError(f"grid: study table {i} in {path} needs a 'preset' (psi1..psi4, exp2)")
        base = table.pop("preset")
        axes = table.pop("grid", {})
        if "intervals" in table:
            table["intervals"] = tuple(tuple(iv) for iv in table["intervals"])
        out += grid(base, axes, **table)
    return out


__all__ = ["grid", "load_toml"]
