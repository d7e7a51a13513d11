"""Intrinsic rewards (RND, ICM) in checkpoints: the modules' parameters, optimizers and running statistics
are saved, resuming continues bit for bit, and the trained policy still loads and acts as an agent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rlworks import algos
from rlworks.core.checkpoint import load_checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _state(ckpt: Path) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, state, *_ = load_checkpoint(ckpt)
    return tensors, state


def _assert_same(a: Path, b: Path) -> None:
    ta, sa = _state(a)
    tb, sb = _state(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    assert sa["train"]["learned"] == sb["train"]["learned"]  # learning rates, intrinsic statistics
    assert sa["sampler"] == sb["sampler"]
    assert sa["train"]["recent"] == sb["train"]["recent"]


@pytest.mark.parametrize("algo,kind", [("ppo", "icm"), ("a2c", "rnd"), ("a2c", "icm")])
def test_resume_equals_uninterrupted_run(tmp_path, algo, kind):
    kw = {"total_steps": 1024, "seed": 3, "n_envs": 4, "n_steps": 64, "intrinsic": kind, "norm_obs": True,
          "checkpoint_every": 512}
    if algo == "ppo":
        kw.update(batch_size=64, n_epochs=2)
    algos.train(algo, "MountainCar-v0", checkpoint_dir=tmp_path / "full", **kw)
    shutil.copytree(tmp_path / "full", tmp_path / "half")
    shutil.rmtree(tmp_path / "half" / "step-1024")
    algos.train(algo, "MountainCar-v0", checkpoint_dir=tmp_path / "half", resume_from=tmp_path / "half" / "step-512",
                **kw)
    _assert_same(tmp_path / "full" / "step-1024", tmp_path / "half" / "step-1024")


def test_checkpoint_holds_the_intrinsic_modules_and_loads_as_an_agent(tmp_path):
    agent = algos.train("ppo", "MountainCar-v0", total_steps=512, seed=0, n_envs=4, n_steps=64, batch_size=64,
                        n_epochs=1, intrinsic="rnd", checkpoint_dir=tmp_path)
    tensors, state = _state(tmp_path)
    keys = set(tensors)
    assert any(k.startswith("value_int/") for k in keys)
    assert any(k.startswith("intrinsic/net.target.") for k in keys)
    n_predictor = sum(1 for k in keys if k.startswith("intrinsic/net.predictor."))
    assert n_predictor > 0  # the optimizer holds the predictor's parameters only, not the frozen target's
    assert sum(1 for k in keys if k.startswith("optim/intrinsic_optimizer/exp_avg/")) == n_predictor
    # the main optimizer steps the model and the intrinsic value head: one Adam moment per parameter
    n_model = sum(1 for k in keys if k.startswith("model/"))
    n_head = sum(1 for k in keys if k.startswith("value_int/"))
    assert sum(1 for k in keys if k.startswith("optim/optimizer/exp_avg/")) == n_model + n_head
    stats = state["train"]["learned"]["intrinsic"]
    assert stats["kind"] == "rnd" and stats["obs_norm"]["rms"]["count"] > 512
    assert len(stats["ret"]) == 4 and any(stats["ret"])
    loaded = algos.load(tmp_path)  # a training checkpoint loads as an agent: the acting half only
    obs = np.array([-0.5, 0.0], dtype=np.float32)
    assert loaded.act(obs) == agent.act(obs)
    agent.save(tmp_path / "agent")
    assert list(algos.load(tmp_path / "agent").evaluate(1, seed=0).lengths) == [200]


RESUME = """
import sys, torch
torch.set_num_threads(1)
from rlworks.commands import deep
sys.exit(deep.{fn}({args}))
"""


def _run(code: str) -> None:
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=ENV,
                         timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]


def test_cli_resume_of_ppo_rnd_is_bit_identical(tmp_path):
    n = 512
    run = tmp_path / "full"
    args = ["--total-steps", str(2 * n), "--checkpoint-every", str(n), "--run-dir", str(run), "--quiet",
            "--intrinsic", "rnd", "--n-envs", "4", "--n-steps", "64", "--batch-size", "64", "--n-epochs", "2",
            "--norm-obs", "--seed", "5"]
    _run(RESUME.format(fn="train", args=f"'ppo', 'MountainCar-v0', {args!r}"))
    half = tmp_path / "half"
    shutil.copytree(run, half)
    shutil.rmtree(half / "checkpoints" / f"step-{2 * n}")
    (half / "checkpoints" / "latest").write_text(f"step-{n}\n")
    _run(RESUME.format(fn="resume", args=f"{str(half)!r}, []"))
    _assert_same(run / "checkpoints" / f"step-{2 * n}", half / "checkpoints" / f"step-{2 * n}")
    config = json.loads((half / "config.json").read_text())
    assert json.dumps(config).count('"rnd"') >= 1
