"""Every ```python block in README.md and docs/*.md runs verbatim (in a fresh interpreter, in a temporary
directory): a documented snippet that fails is a bug (an earlier README example ended in a NameError)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _snippets() -> list[tuple[str, str]]:
    out = []
    for path in FILES:
        for i, code in enumerate(BLOCK.findall(path.read_text())):
            out.append((f"{path.relative_to(ROOT)}#{i + 1}", code))
    return out


SNIPPETS = _snippets()


def test_the_docs_have_snippets():
    assert len(SNIPPETS) >= 6


@pytest.mark.parametrize("name,code", SNIPPETS, ids=[n for n, _ in SNIPPETS])
def test_snippet_runs_verbatim(name, code, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env=env, check=False)
    assert out.returncode == 0, f"{name} failed:\n{code}\n{out.stderr[-3000:]}"
