"""Every algorithm's MuJoCo preset (HalfCheetah-v5, Hopper-v5) builds, trains a few updates and acts.

A smoke test of the preset + env + algorithm wiring, with the budget shortened (and the off-policy
warm-up cut so that updates happen); learning at full budgets is measured by
``benchmarks/learning_quality.py`` (docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rlworks import algos

pytest.importorskip("mujoco")

SHORT = {  # algo -> (total_steps, overrides that keep the run to a couple of seconds)
    "ppo": (1024, dict(n_epochs=1)),
    "a2c": (256, {}),
    "reinforce": (2048, {}),
    "sac": (300, dict(learning_starts=200, batch_size=64)),
    "td3": (300, dict(learning_starts=200, batch_size=64)),
}


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "Hopper-v5"])
@pytest.mark.parametrize("algo", sorted(SHORT))
def test_mujoco_preset_trains_and_acts(algo, env_id):
    torch.set_num_threads(1)
    steps, kw = SHORT[algo]
    agent = algos.train(algo, env_id, total_steps=steps, seed=0, **kw)
    assert agent.meta["global_step"] >= steps
    preset, name = algos.preset_config(algo, env_id, None)
    assert name == env_id  # the env's own preset was picked, and the run used it (plus the overrides)
    assert agent.config == dataclasses.replace(preset, **kw)
    obs = np.zeros(agent.spec["obs_dim"], dtype=np.float32)
    a = np.asarray(agent.act(obs))
    assert a.shape == ({"HalfCheetah-v5": 6, "Hopper-v5": 3}[env_id],)
    assert np.all(np.isfinite(a)) and np.all(np.abs(a) <= 1.0)
    for p in agent.model.parameters():
        assert torch.isfinite(p).all()
