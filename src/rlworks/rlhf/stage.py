"""One RLHF stage's folder, shared by every stage: the Hugging Face model folder it ends with, its metrics
(``metrics.csv``, TensorBoard, ``curves.png``), its checkpoints for an exact resume, and ``stage.json``.

    <stage dir>/config.json, model.safetensors, tokenizer.json …   the model (``from_pretrained`` loads it)
    <stage dir>/value/                                              PPO's value model, also a model folder
    <stage dir>/metrics.csv, tb/, curves.png                        what happened
    <stage dir>/checkpoints/step-<N>/                               models, optimizers, RNGs, counters
    <stage dir>/stage.json                                          config, results, seconds; written last

A stage whose ``stage.json`` says ``done`` is not run again by the pipeline; a stage with checkpoints resumes
from the newest one (``core/checkpoint.py``: safetensors + JSON, written atomically, verified on load).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core import checkpoint as ckpt
from ..core.logging import RunLogger
from ..core.optim import Adam

STAGE_FILE = "stage.json"


class Stage:
    """The folder of one stage. ``modules`` and ``optimizers`` are what a checkpoint holds."""

    def __init__(self, out_dir: str | Path, name: str, config: dict[str, Any], seed: int,
                 checkpoint_every: int = 0, stop_at: int | None = None) -> None:
        self.dir = Path(out_dir)
        self.name, self.config, self.seed = name, config, seed
        self.checkpoint_every, self.stop_at = checkpoint_every, stop_at
        self.dir.mkdir(parents=True, exist_ok=True)
        self.t0 = time.perf_counter()
        self.seconds_before = 0.0
        self.logger: RunLogger | None = None
        self.history: list[dict[str, float]] = []

    # -- resume ---------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return is_done(self.dir)

    def restore(self, modules: dict[str, nn.Module], optimizers: dict[str, Adam]) -> tuple[int, dict[str, Any]]:
        """Load the newest checkpoint into ``modules``/``optimizers``: ``(step, extra state)``, or ``(0, {})``."""
        root = self.dir / "checkpoints"
        if not ckpt.list_checkpoints(root):
            self._open_logger(None)
            return 0, {}
        tensors, state, _, _ = ckpt.load_checkpoint(root)
        if state.get("config") != self.config:
            raise ckpt.CheckpointError(f"{root}: saved with another configuration of stage {self.name!r}; "
                                       "delete the folder or use the same settings")
        for name, m in modules.items():
            m.load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + "/")})
        for name, opt in optimizers.items():
            opt.load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + "/")})
        self.seconds_before = float(state["seconds"])
        self._open_logger(int(state["step"]))
        return int(state["step"]), state["extra"]

    def save(self, step: int, modules: dict[str, nn.Module], optimizers: dict[str, Adam],
             extra: dict[str, Any]) -> None:
        """A checkpoint at ``step`` (the previous one is dropped): every tensor, and ``extra`` as JSON."""
        tensors = {f"{n}/{k}": v for n, m in modules.items() for k, v in m.state_dict().items()}
        tensors |= {f"{n}/{k}": v for n, o in optimizers.items() for k, v in o.state_dict().items()}
        state = {"stage": self.name, "config": self.config, "step": step, "seconds": self.seconds, "extra": extra}
        ckpt.save_checkpoint(self.dir / "checkpoints", step, _unshared(tensors), state, keep=1)

    def due(self, step: int, total: int) -> bool:
        return self.checkpoint_every > 0 and step % self.checkpoint_every == 0 and step < total

    def stopped(self, step: int) -> bool:
        """True where a test asked the stage to stop early (``stop_at``), as a kill would."""
        return self.stop_at is not None and step >= self.stop_at

    # -- logging --------------------------------------------------------------------------------

    def _open_logger(self, resume_step: int | None) -> None:
        self.logger = RunLogger(self.dir, tensorboard=True, resume_step=resume_step)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        row = {k: float(v) for k, v in metrics.items()}
        self.history.append({"step": step, **row})
        if self.logger is not None:
            self.logger.log(step, row)

    @property
    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.t0

    # -- the end --------------------------------------------------------------------------------

    def finish(self, results: dict[str, Any], curves: tuple[str, ...] = ()) -> dict[str, Any]:
        """Close the logs, draw ``curves.png`` and write ``stage.json`` (last: it marks the stage done)."""
        if self.logger is not None:
            self.logger.close(plot=False)
            (self.dir / "episodes.csv").unlink(missing_ok=True)  # an RL env's file; a stage has no episodes
        if curves:
            plot_curves(self.dir / "metrics.csv", self.dir / "curves.png", curves, f"{self.name} (seed {self.seed})")
        out = {"stage": self.name, "done": True, "seed": self.seed, "seconds": round(self.seconds, 2),
               "config": self.config, "results": results}
        tmp = self.dir / f".{STAGE_FILE}.tmp"
        tmp.write_text(json.dumps(out, indent=1))
        os.replace(tmp, self.dir / STAGE_FILE)
        return out


def is_done(stage_dir: str | Path) -> bool:
    path = Path(stage_dir) / STAGE_FILE
    try:
        return bool(json.loads(path.read_text()).get("done"))
    except (OSError, ValueError):
        return False


def read_stage(stage_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(stage_dir) / STAGE_FILE).read_text())


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors sharing storage (tied embeddings): give each its own copy."""
    seen: set[int] = set()
    out = {}
    for k, v in tensors.items():
        ptr = v.untyped_storage().data_ptr()
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out


def epoch_order(start: int, count: int, n: int, seed: int, stream: int) -> np.ndarray:
    """Positions ``start`` … ``start + count − 1`` of the endless sequence of shuffled epochs over ``n`` rows, epoch
    e shuffled by ``default_rng([seed, stream, e])``: every row once per epoch, as TRL's trainers visit a dataset,
    and a function of the position alone, so a resumed stage takes the same rows (DPO's pairs, GRPO's prompts)."""
    positions = np.arange(start, start + count)
    out = np.empty(count, dtype=np.int64)
    for epoch in np.unique(positions // n):
        order = np.random.default_rng([seed, stream, int(epoch)]).permutation(n)
        here = positions // n == epoch
        out[here] = order[positions[here] % n]
    return out


def rng_state(rng: np.random.Generator, gen: torch.Generator) -> dict[str, Any]:
    """Both random streams as JSON (the torch one as a list of bytes)."""
    return {"numpy": rng.bit_generator.state, "torch": gen.get_state().tolist()}


def set_rng_state(rng: np.random.Generator, gen: torch.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state["numpy"]
    gen.set_state(torch.tensor(state["torch"], dtype=torch.uint8))


def plot_curves(csv_path: Path, png_path: Path, columns: tuple[str, ...], title: str) -> Path | None:
    """One panel per metric of ``columns`` against the stage's step."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not csv_path.is_file():
        return None
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = tuple(c for c in columns if rows and c in rows[0])
    if not columns:
        return None
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3), squeeze=False)
    for ax, col in zip(axes[0], columns):
        pts = [(float(r["step"]), float(r[col])) for r in rows if r.get(col) not in ("", None)]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.2)
        ax.set_title(col, fontsize=9)
        ax.set_xlabel("step")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
    return png_path
