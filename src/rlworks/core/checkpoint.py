"""Crash-safe, code-free checkpoints (format: CONVENTIONS.md "Checkpoints").

    checkpoints/step-<N>/model.safetensors   weights and optimizer tensors
                        /state.json          config, counters, RNG states, versions
                        /buffer.npz          optional arrays (loaded with allow_pickle=False)
                        /MANIFEST.json       sha256 of each file above, written last
    checkpoints/latest                       name of the newest complete checkpoint

A checkpoint is written into a temporary sibling directory, fsynced, and moved into place with
``os.replace``; ``latest`` is replaced atomically afterwards. A crash at any point leaves either
the old or the new checkpoint complete and ``latest`` naming a complete one. Loading verifies the
manifest before parsing anything and never unpickles.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .guards import NonFiniteError

SCHEMA_VERSION = 1
MODEL, STATE, BUFFER, MANIFEST, LATEST = "model.safetensors", "state.json", "buffer.npz", "MANIFEST.json", "latest"


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupt or unsafe; the message names the file."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    root: str | Path,
    step: int,
    tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
    buffer: dict[str, np.ndarray] | None = None,
    *,
    keep: int | None = None,
) -> Path:
    """Write ``root/step-<step>/`` atomically and point ``root/latest`` at it. Refuses non-finite
    tensors (nothing is written). ``keep`` keeps only that many newest checkpoints."""
    root = Path(root)
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise NonFiniteError("checkpoint", f"tensor {name!r} is not finite; checkpoint step-{step} not written")
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{int(step)}"
    final = root / name
    tmp = root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    save_file(tensors, str(tmp / MODEL))
    (tmp / STATE).write_text(json.dumps({"schema_version": SCHEMA_VERSION, **state}, indent=1, allow_nan=True))
    files = [MODEL, STATE]
    if buffer is not None:
        with open(tmp / BUFFER, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in buffer.items()})
        files.append(BUFFER)
    for f in files:
        _fsync_file(tmp / f)
    manifest = {"schema_version": SCHEMA_VERSION, "step": int(step), "files": {f: _sha256(tmp / f) for f in files}}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    _fsync_file(tmp / MANIFEST)
    _fsync_dir(tmp)
    if final.exists():  # re-saving a step: move the old one aside first (os.replace needs an empty target)
        trash = root / f".old-{name}-{os.getpid()}"
        os.replace(final, trash)
        os.replace(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    latest_tmp = root / f".{LATEST}.tmp-{os.getpid()}"
    latest_tmp.write_text(name + "\n")
    _fsync_file(latest_tmp)
    os.replace(latest_tmp, root / LATEST)
    _fsync_dir(root)
    if keep is not None:
        # the checkpoint just written is the newest even where a run resumed from an earlier one left higher
        # steps of its abandoned continuation behind: those go, then all but the keep - 1 next older ones
        others = [p for p in list_checkpoints(root) if p != final]
        later = [p for p in others if _step_of(p) > step]
        earlier = [p for p in others if _step_of(p) < step]
        for old in later + earlier[:max(len(earlier) - (keep - 1), 0)]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _step_of(path: Path) -> int:
    return int(path.name.split("-", 1)[1])


def _numbered(root: Path) -> list[tuple[int, Path]]:
    """(step, directory) of every ``step-<N>`` under ``root``, oldest first."""
    found = []
    for p in root.glob("step-*"):
        try:
            found.append((int(p.name.split("-", 1)[1]), p))
        except ValueError:
            continue
    return sorted(found)


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete-looking checkpoint directories under ``root``, oldest first."""
    return [p for _, p in _numbered(Path(root)) if (p / MANIFEST).is_file()]


def resolve(path: str | Path) -> Path:
    """A run dir, a ``checkpoints`` dir or a ``step-N`` dir → the checkpoint directory to load."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint or run directory")
    if (p / MANIFEST).exists() or (p / MODEL).exists() or (p / STATE).exists():
        return p
    if (p / "checkpoints").is_dir():
        p = p / "checkpoints"
    latest = p / LATEST
    if latest.is_file():
        name = latest.read_text().strip()
        if not name.startswith("step-") or "/" in name or not (p / name).is_dir():
            raise CheckpointError(f"{latest}: names {name!r}, which is not a checkpoint directory")
        return p / name
    found = list_checkpoints(p)
    if not found:
        raise CheckpointError(f"{p}: no checkpoint found (no {LATEST} file, no step-N/{MANIFEST})")
    return found[-1]


def verify(ckpt: Path, *, with_buffer: bool = True) -> dict[str, Any]:
    """Check MANIFEST.json and every file's sha256 (``buffer.npz``'s only ``with_buffer``); return the manifest."""
    mpath = ckpt / MANIFEST
    if not mpath.is_file():
        raise CheckpointError(f"{mpath}: missing — the checkpoint is incomplete (interrupted save?)")
    try:
        manifest = json.loads(mpath.read_text())
        files = manifest["files"]
        assert isinstance(files, dict)
    except Exception:
        raise CheckpointError(f"{mpath}: not a valid manifest") from None
    if MODEL not in files or STATE not in files:
        raise CheckpointError(f"{mpath}: does not list {MODEL} and {STATE}")
    for name, digest in files.items():
        if name not in (MODEL, STATE, BUFFER):
            raise CheckpointError(f"{mpath}: lists unexpected file {name!r}")
        if name == BUFFER and not with_buffer:  # acting needs no replay buffer: a damaged one must not stop it
            continue
        f = ckpt / name
        if not f.is_file():
            raise CheckpointError(f"{f}: missing")
        if _sha256(f) != digest:
            raise CheckpointError(f"{f}: sha256 does not match {MANIFEST} (truncated or modified)")
    return manifest


def read_state(path: str | Path) -> dict[str, Any]:
    """Only ``state.json`` of the checkpoint ``path`` resolves to (counters, config, agent meta), for a
    caller that needs a number from it, without reading weights or replay buffers. Unverified:
    ``load_checkpoint`` checks the manifest when the checkpoint is actually loaded."""
    ckpt = resolve(path)
    try:
        state = json.loads((ckpt / STATE).read_text())
        assert isinstance(state, dict)
    except Exception:
        raise CheckpointError(f"{ckpt / STATE}: not valid JSON state") from None
    return state


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", *, with_buffer: bool = False):
    """Verify then load ``(tensors, state, buffer_or_None, checkpoint_dir)``. Never unpickles:
    weights come from safetensors, state from JSON, buffers from ``np.load(allow_pickle=False)``.
    The buffer (only resuming training needs it) is verified and read only ``with_buffer``; otherwise
    the buffer returned is None."""
    ckpt = resolve(path)
    manifest = verify(ckpt, with_buffer=with_buffer)
    try:
        tensors = load_file(str(ckpt / MODEL), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{ckpt / MODEL}: not a valid safetensors file ({exc})") from None
    try:
        state = json.loads((ckpt / STATE).read_text())
        assert isinstance(state, dict)
    except Exception:
        raise CheckpointError(f"{ckpt / STATE}: not valid JSON state") from None
    buffer = None
    if with_buffer and BUFFER in manifest["files"]:
        try:
            with np.load(ckpt / BUFFER, allow_pickle=False) as z:
                buffer = {k: z[k] for k in z.files}
        except Exception as exc:
            raise CheckpointError(f"{ckpt / BUFFER}: cannot be loaded without pickle ({exc})") from None
    return tensors, state, buffer, ckpt


def load_training_checkpoint(path: str | Path, algo: str, kind: str, *, with_buffer: bool = False):
    """``load_checkpoint`` for resuming ``algo``'s training: ``(tensors, state, buffer, checkpoint_dir, train)``,
    ``train`` being ``state["train"]``. CheckpointError when ``path`` holds an agent checkpoint (no training state,
    or with ``with_buffer`` no buffer; ``kind`` names what was expected, e.g. "an off-policy") or another
    algorithm's."""
    tensors, state, buffer, ckpt = load_checkpoint(path, device="cpu", with_buffer=with_buffer)
    train = state.get("train")
    if not isinstance(train, dict) or (with_buffer and buffer is None):
        raise CheckpointError(f"{ckpt / STATE}: an agent checkpoint, not {kind} training checkpoint")
    if train.get("algo") != algo:
        raise CheckpointError(f"{ckpt / STATE}: a {train.get('algo')} checkpoint, not {algo}")
    return tensors, state, buffer, ckpt, train


@contextlib.contextmanager
def matching_configuration(ckpt: Path, algo: str) -> Iterator[None]:
    """Loading a checkpoint's tensors into the session built from the run's configuration: a KeyError,
    ValueError or RuntimeError there (a missing tensor, another shape) becomes one CheckpointError."""
    try:
        yield
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{ckpt}: does not match this {algo} configuration ({exc})") from None


def intact_checkpoint(path: str | Path) -> tuple[Path, list[tuple[Path, str]]]:
    """The checkpoint ``path`` resolves to (a run dir: the one ``latest`` names) if it verifies, buffer
    included, else the newest earlier one that does; with the damaged ones passed over and why, newest
    first. Raises the first checkpoint's ``CheckpointError`` when none is intact."""
    p = Path(path)
    root = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    newest_first = _numbered(root)[::-1]
    try:
        first = resolve(p)
        candidates = [first] + [d for n, d in newest_first if n < _step_of(first)]
        error = None
    except CheckpointError as exc:  # ``latest`` names nothing usable: try every step, newest first
        candidates, error = [d for _, d in newest_first], exc
    skipped: list[tuple[Path, str]] = []
    for ckpt in candidates:
        try:
            verify(ckpt, with_buffer=True)
            return ckpt, skipped
        except CheckpointError as exc:
            error = error or exc
            skipped.append((ckpt, str(exc)))
    raise error or CheckpointError(f"{root}: no checkpoint found")
