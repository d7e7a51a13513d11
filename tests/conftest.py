"""Fixtures shared by every test folder."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from rlworks.core.checkpoint import load_checkpoint

# nothing in the suite may reach a model hub (RLHF's models, tokenizers and data are made here)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def assert_same_checkpoints(a, b) -> None:
    """Two training checkpoints hold the same tensors, replay arrays, training state and env state, bit for bit."""
    ta, sa, ba, _ = load_checkpoint(a, with_buffer=True)
    tb, sb, bb, _ = load_checkpoint(b, with_buffer=True)
    assert ta.keys() == tb.keys() and ba.keys() == bb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    for k in ba:
        np.testing.assert_array_equal(ba[k], bb[k], err_msg=k)
    assert json.dumps({k: sa[k] for k in ("train", "sampler")}, sort_keys=True) == \
        json.dumps({k: sb[k] for k in ("train", "sampler")}, sort_keys=True)


@pytest.fixture
def same_checkpoints():
    """``same_checkpoints(a, b)`` asserts two training checkpoints are identical (exact resume tests)."""
    return assert_same_checkpoints


def resign_manifest(ckpt: Path, name: str) -> None:
    """Rewrite the sha256 of ``ckpt/name`` in the checkpoint's MANIFEST.json, as someone who edited the file on
    purpose would, so that a test reaches the checks behind the manifest's."""
    manifest = json.loads((ckpt / "MANIFEST.json").read_text())
    manifest["files"][name] = hashlib.sha256((ckpt / name).read_bytes()).hexdigest()
    (ckpt / "MANIFEST.json").write_text(json.dumps(manifest))


@pytest.fixture
def resign():
    """``resign(ckpt, name)``: the manifest made to match an edited file (``resign_manifest``)."""
    return resign_manifest
