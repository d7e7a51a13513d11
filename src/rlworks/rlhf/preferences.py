"""Preference data: pairs of completions sampled from the SFT model, labelled by the simulated labeller or by
a person on the lab's labelling page, in TRL's ``prompt`` / ``chosen`` / ``rejected`` format.

    pairs    {"id", "prompt", "a", "b"}                      what a labeller is shown (``rlworks lab --label``)
    labels   {"prompt", "chosen", "rejected", "tie"?, …}     what the reward model and DPO learn from

Both are JSON lines; the labelling page's files (``lab/labelling.py``) are read with ``read_preferences``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError
from . import lm
from .task import TASK, Labeller, ReviewTask


@torch.no_grad()
def sample_completions(model, tok, prompts: list[str], *, max_new_tokens: int, batch_size: int = 256,
                       generator: torch.Generator | None = None, temperature: float = 1.0,
                       greedy: bool = False) -> list[str]:
    """One sampled completion per prompt, in batches."""
    out: list[str] = []
    for i in range(0, len(prompts), batch_size):
        q, qm = lm.encode_prompts(tok, prompts[i:i + batch_size])
        s = lm.sample(model, q, qm, max_new_tokens, tok.eos_token_id, tok.pad_token_id, temperature=temperature,
                      greedy=greedy, generator=generator)
        out += lm.decode_completions(tok, s.response, s.response_mask)
    return out


def make_pairs(model_dir: str | Path, n: int, *, seed: int, task: ReviewTask = TASK,
               max_new_tokens: int = 24) -> list[dict]:
    """``n`` pairs ``{"id", "prompt", "a", "b"}``: two completions of the same prompt from the model in
    ``model_dir`` (the SFT model, as in Ouyang et al. 2022)."""
    tok, model = lm.load_tokenizer(model_dir), lm.load_model(model_dir)
    rng = np.random.default_rng([seed, 2])
    prompts = task.prompts(n, rng)
    gen = torch.Generator().manual_seed(seed + 2)
    a = sample_completions(model, tok, prompts, max_new_tokens=max_new_tokens, generator=gen)
    b = sample_completions(model, tok, prompts, max_new_tokens=max_new_tokens, generator=gen)
    return [{"id": str(i), "prompt": p, "a": x, "b": y} for i, (p, x, y) in enumerate(zip(prompts, a, b))]


def simulate_labels(pairs: list[dict], labeller: Labeller, *, seed: int) -> list[dict]:
    """The simulated labeller's preference for each pair (with its probability ``p_chosen``)."""
    rng = np.random.default_rng([seed, 3])
    return [{"id": p["id"], **labeller.label(p["prompt"], p["a"], p["b"], rng), "tie": False} for p in pairs]


def write_jsonl(path: str | Path, rows: list[dict]) -> Path:
    """All rows at once, atomically (a temporary file, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)
    return path


def read_preferences(path: str | Path) -> list[dict]:
    """Preference rows from a JSONL file in TRL's format (simulated, written by the labelling page, or any other);
    each needs string ``prompt``, ``chosen`` and ``rejected``. Ties (``"tie": true``) are kept: the reward model
    learns them as soft labels of ½, DPO skips them. A torn last line (a kill mid-write) is left out."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"preference file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1].strip() and not text.endswith("\n"):
        lines = lines[:-1]  # a partial last line: the page repairs it on its next start
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("prompt", "chosen", "rejected")):
            raise ConfigError(f"{path}:{number}: a preference row needs string prompt, chosen and rejected")
        if not isinstance(row.get("tie", False), bool):
            raise ConfigError(f"{path}:{number}: tie must be true or false")
        rows.append(row)
    if not rows:
        raise ConfigError(f"{path}: no preference rows")
    return rows


def split(rows: list[dict], held_out: float, *, seed: int) -> tuple[list[dict], list[dict]]:
    """A seeded shuffle into (train, held-out)."""
    order = np.random.default_rng([seed, 4]).permutation(len(rows))
    cut = len(rows) - int(round(held_out * len(rows)))
    return [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]
