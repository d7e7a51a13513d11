"""Checkpoint format: atomic layout, manifest verification, errors that name the file."""

import json

import numpy as np
import pytest
import torch

from rlworks.core.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from rlworks.core.guards import NonFiniteError


def _save(root, step, value=1.0, **kw):
    return save_checkpoint(root, step, {"w": torch.full((3,), value)}, {"step": step}, **kw)


def test_layout_and_round_trip(tmp_path):
    ck = save_checkpoint(tmp_path, 10, {"w": torch.arange(4.0)}, {"a": [1, 2]}, {"x": np.arange(3)})
    assert ck.name == "step-10"
    assert sorted(p.name for p in ck.iterdir()) == ["MANIFEST.json", "buffer.npz", "model.safetensors", "state.json"]
    assert (tmp_path / "latest").read_text().strip() == "step-10"
    tensors, state, buf, path = load_checkpoint(tmp_path, with_buffer=True)
    assert torch.equal(tensors["w"], torch.arange(4.0)) and state["a"] == [1, 2]
    assert buf["x"].tolist() == [0, 1, 2] and path == ck
    assert not list(tmp_path.glob(".tmp-*"))


def test_latest_points_to_newest_and_keep(tmp_path):
    for s in (1, 2, 3):
        _save(tmp_path, s, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-2", "step-3"]
    assert load_checkpoint(tmp_path)[1]["step"] == 3


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_manifest", "missing_state"])
def test_damaged_checkpoint_names_the_file_and_previous_still_loads(tmp_path, damage):
    _save(tmp_path, 1, 1.0)
    ck = _save(tmp_path, 2, 2.0)
    model = ck / "model.safetensors"
    if damage == "truncate":
        model.write_bytes(model.read_bytes()[:-7])
        expect = "model.safetensors"
    elif damage == "flip":
        data = bytearray(model.read_bytes())
        data[-3] ^= 0xFF
        model.write_bytes(bytes(data))
        expect = "model.safetensors"
    elif damage == "no_manifest":
        (ck / "MANIFEST.json").unlink()
        expect = "MANIFEST.json"
    else:
        (ck / "state.json").unlink()
        expect = "state.json"
    with pytest.raises(CheckpointError, match=expect):
        load_checkpoint(tmp_path)
    tensors, state, _, _ = load_checkpoint(tmp_path / "step-1")
    assert state["step"] == 1 and tensors["w"][0] == 1.0


def test_non_finite_tensors_are_never_written(tmp_path):
    _save(tmp_path, 1)
    with pytest.raises(NonFiniteError, match="checkpoint"):
        _save(tmp_path, 2, float("nan"))
    assert not (tmp_path / "step-2").exists()
    assert (tmp_path / "latest").read_text().strip() == "step-1"


def test_object_array_in_buffer_is_refused(tmp_path, resign):
    ck = _save(tmp_path, 1)
    np.savez(ck / "buffer.npz", x=np.array([{"a": 1}], dtype=object), allow_pickle=True)
    resign(ck, "buffer.npz")
    with pytest.raises(CheckpointError, match="buffer.npz"):
        load_checkpoint(ck, with_buffer=True)


def test_unknown_file_in_manifest_is_refused(tmp_path):
    ck = _save(tmp_path, 1)
    manifest = json.loads((ck / "MANIFEST.json").read_text())
    manifest["files"]["data.pkl"] = "0" * 64
    (ck / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="data.pkl"):
        load_checkpoint(ck)


def test_missing_path(tmp_path):
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "nope")
