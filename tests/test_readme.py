"""Every ```python block of README.md runs, top to bottom, as one reader's session.

The blocks run in ONE Python process with shared globals (a later block may use a name an
earlier one defined), in a temporary working directory (files the snippets write land there).
To keep the run short, the literal sizes in SMALLER_SIZES are replaced first; README.md lists
the same replacements, and each must still occur in a block.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import falsestruct_fast as fs

README = Path(__file__).resolve().parent.parent / "README.md"

# literal in README.md -> what the test runs (a digit may not follow the literal)
SMALLER_SIZES = {
    "range(1000)": "range(4)",
    "range(64)": "range(4)",
    "range(8)": "range(2)",
    "epochs=30000": "epochs=20",
    "epochs=3000": "epochs=3",
    "epochs=2000": "epochs=2",
}

# Runs the blocks in order; each is compiled with README.md's line numbers, so a traceback
# points at the README line that failed.
RUNNER = """
import json, sys
blocks = json.load(open(sys.argv[1]))
session = {"__name__": "__main__"}
for first_line, code in blocks:
    print(f"--- README.md block at line {first_line}", flush=True)
    exec(compile("\\n" * first_line + code, "README.md", "exec"), session)
"""


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the opening fence, code) of every ```python block, in order."""
    return [(text.count("\n", 0, m.start()) + 1, m.group(1))
            for m in re.finditer(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)]


def shrink(code: str) -> tuple[str, set[str]]:
    """code with SMALLER_SIZES applied, and the literals that occurred."""
    used = set()
    for literal, small in SMALLER_SIZES.items():
        code, n = re.subn(re.escape(literal) + r"(?!\d)", small, code)
        if n:
            used.add(literal)
    return code, used


def test_readme_lists_the_smaller_sizes_the_test_uses():
    text = README.read_text()
    for literal, small in SMALLER_SIZES.items():
        assert f"`{literal}` → `{small}`" in text, f"README.md does not list `{literal}` → `{small}`"


def test_readme_python_blocks_run_in_order(tmp_path):
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 5, "README.md's ```python blocks were not found"
    shrunk, used = [], set()
    for first_line, code in blocks:
        code, literals = shrink(code)
        shrunk.append((first_line, code))
        used |= literals
    assert used == set(SMALLER_SIZES), f"no longer in README.md: {set(SMALLER_SIZES) - used}"

    (tmp_path / "blocks.json").write_text(json.dumps(shrunk))
    env = dict(os.environ, MPLBACKEND="Agg")
    # The same falsestruct_fast as this test process (the checkout in development).
    package_root = str(Path(fs.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    run = subprocess.run([sys.executable, "-c", RUNNER, str(tmp_path / "blocks.json")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    assert run.stdout.count("--- README.md block") == len(blocks)
