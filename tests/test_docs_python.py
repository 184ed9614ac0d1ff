"""Every ```python block of README.md and docs/*.md runs, as a user would run it: saved as a
script and started in a fresh interpreter, from a directory that holds a copy of ``examples/``
(the README's commands are given from the repository root).

A block that must not run is preceded, on the line right before its opening fence, by the
marker ``<!-- docs-test: skip -->`` (none needs it today).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_MARKER = "<!-- docs-test: skip -->"
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def python_blocks(path: Path) -> list[tuple[int, str, bool]]:
    """(line number, code, skipped) of every ```python block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        out.append((line, m.group(1), before == SKIP_MARKER))
    return out


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [pytest.param(code, skip, id=f"{p.relative_to(ROOT)}:{line}")
          for p in DOCS for line, code, skip in python_blocks(p)]


def test_the_blocks_are_found():
    # the README has its Python quick start and its API block; docs/campaigns.md its example
    ids = [p.id for p in BLOCKS]
    assert sum(i.startswith("README.md") for i in ids) >= 2
    assert any(i.startswith("docs/campaigns.md") for i in ids)


def test_marker_and_fence_parsing(tmp_path):
    md = tmp_path / "x.md"
    md.write_text(f"text\n```python\nx = 1\n```\n{SKIP_MARKER}\n```python\nraise SystemExit(3)\n"
                  f"```\n```toml\na = 1\n```\n")
    assert python_blocks(md) == [(2, "x = 1\n", False), (6, "raise SystemExit(3)\n", True)]


@pytest.mark.parametrize("code,skip", BLOCKS)
def test_python_block_runs(code, skip, tmp_path):
    if skip:
        pytest.skip(f"marked {SKIP_MARKER}")
    shutil.copytree(str(resources.files("kmc.examples")), tmp_path / "examples")
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"the block failed:\n{code}\n--- stderr ---\n{proc.stderr}"
