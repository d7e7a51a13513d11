"""DDPG reliability: exact resume (the OU process's state included), save/load/evaluate, the run folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import rlworks
from rlworks.algos import ddpg
from rlworks.algos.agent import load_agent
from rlworks.core.checkpoint import load_checkpoint
from rlworks.core.run import RunContext

SMALL = dict(learning_starts=100, batch_size=32, hidden=(32, 32), buffer_size=500)


def _train(steps: int, noise: str, **kw):
    cfg = ddpg.DDPGConfig(**SMALL, action_noise=noise)
    return ddpg.train("Pendulum-v1", cfg, total_steps=steps, seed=3, run=RunContext(**kw))


@pytest.mark.parametrize("noise", ["gaussian", "ou"])
def test_train_2n_equals_train_n_checkpoint_resume_n(tmp_path, noise, same_checkpoints):
    torch.set_num_threads(1)
    n = 250  # Pendulum's first episode ends at 200: the OU restart happens before the checkpoint
    _train(2 * n, noise, checkpoint_dir=tmp_path / "full", checkpoint_every=n)
    half = tmp_path / "half"
    half.mkdir()
    shutil.copytree(tmp_path / "full" / f"step-{n}", half / f"step-{n}")
    (half / "latest").write_text(f"step-{n}\n")
    _train(2 * n, noise, checkpoint_dir=half, checkpoint_every=n, resume_from=half / f"step-{n}")
    same_checkpoints(tmp_path / "full" / f"step-{2 * n}", half / f"step-{2 * n}")
    tensors, _, _, _ = load_checkpoint(half / f"step-{2 * n}")
    assert ("noise/x" in tensors) == (noise == "ou")
    if noise == "ou":  # and the resumed noise differs from a fresh start (the comparison can fail)
        assert not torch.equal(tensors["noise/x"], torch.zeros_like(tensors["noise/x"]))


def test_save_load_evaluate_round_trip(tmp_path):
    torch.set_num_threads(1)
    agent = _train(300, "ou")
    agent.save(tmp_path / "agent")
    loaded = load_agent(tmp_path / "agent")
    assert loaded.algo == "ddpg" and loaded.config == agent.config
    obs = np.random.default_rng(0).uniform(-1, 1, size=(30, 3)).astype(np.float32)
    np.testing.assert_array_equal(agent.act(obs), loaded.act(obs))
    a = np.asarray(loaded.act(obs))
    assert a.min() >= -2.0 and a.max() <= 2.0  # rescaled to Pendulum's Box bounds
    assert loaded.evaluate(2, seed=1) == agent.evaluate(2, seed=1)
    np.testing.assert_array_equal(rlworks.load(tmp_path / "agent").act(obs), agent.act(obs))


def test_run_folder_eval_and_resume(tmp_path):
    run = tmp_path / "run"
    agent = rlworks.train("ddpg", "Pendulum-v1", total_steps=300, seed=0, run_dir=run, checkpoint_every=150,
                          action_noise="ou", **SMALL)
    assert (run / "config.json").is_file() and (run / "checkpoints" / "latest").is_file()
    resumed = rlworks.train("ddpg", "Pendulum-v1", total_steps=300, seed=0, run_dir=tmp_path / "run2",
                            resume_from=run / "checkpoints" / "step-150", action_noise="ou", **SMALL)
    ckpts = tmp_path / "run2" / "checkpoints"
    assert (ckpts / "step-300").is_dir() and not (ckpts / "step-60").exists()  # it went on from step 150
    obs = np.zeros((4, 3), np.float32)
    np.testing.assert_array_equal(agent.act(obs), resumed.act(obs))
    assert rlworks.load(run).evaluate(1, seed=0) == agent.evaluate(1, seed=0)
