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


# A path the docs cite: a repository folder then a path (globs and prefixes ending in "-" or "_" allowed).
CITED = re.compile(r"(?<![\w/.-])((?:src|benchmarks|docs|tests)/[\w./*{},-]*)")


def _expand(cited: str) -> list[str]:
    """Shell brace expansion of every group, unnested: ``a{,-b}.{json,txt}`` -> ``a.json``, ``a.txt``,
    ``a-b.json``, ``a-b.txt``."""
    m = re.search(r"\{([^{}]*)\}", cited)
    if not m:
        return [cited]
    return [x for alt in m.group(1).split(",") for x in _expand(cited[: m.start()] + alt + cited[m.end():])]


def test_brace_expansion_covers_every_group():
    assert _expand("a{,-b}.{json,txt}") == ["a.json", "a.txt", "a-b.json", "a-b.txt"]
    assert _expand("plain/path.md") == ["plain/path.md"]


def _cited_paths() -> list[tuple[str, str]]:
    out = []
    for path in FILES:
        for m in CITED.finditer(path.read_text()):
            out += [(str(path.relative_to(ROOT)), c.rstrip(".,")) for c in _expand(m.group(1))]
    return sorted(set(out))


def test_docs_cite_only_files_in_the_repository():
    cited_paths = _cited_paths()
    assert len(cited_paths) > 20  # the pattern finds the docs' citations at all
    missing = []
    for doc, cited in cited_paths:
        if "*" in cited or cited.endswith(("-", "_")):  # a glob or a file-name prefix: something must match
            pattern = cited if "*" in cited else cited + "*"
            if not list(ROOT.glob(pattern)):
                missing.append(f"{doc}: {cited}")
        elif not (ROOT / cited).exists():
            missing.append(f"{doc}: {cited}")
    assert not missing, "docs cite paths that are not in the repository:\n" + "\n".join(missing)
