"""What a Stable-Baselines3 user types on day one: ``predict`` returning ``(action, None)``, and a preset
that adapts its minibatch to ``n_envs`` (``--n-envs 2`` used to fail with "batch_size=256 is out of range")."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import rlworks
from rlworks.algos.ppo import PPOConfig
from rlworks.config import ConfigError, overlay


@pytest.fixture(scope="module")
def agent():
    return rlworks.train("ppo", "CartPole-v1", total_steps=512, seed=0, n_envs=2, n_steps=64, batch_size=64,
                         hidden=(16, 16))


def test_predict_is_sb3s_call(agent):
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    action, state = agent.predict(obs, deterministic=True)
    assert state is None and action == agent.act(obs)
    env.step(action)
    batch = np.stack([obs, obs, obs])
    actions, _ = agent.predict(batch, deterministic=True)
    assert actions.shape == (3,)


def test_predict_samples_by_default_as_sb3_does(agent):
    obs = np.zeros(4, np.float32)
    seen = {agent.predict(obs)[0] for _ in range(200)}  # an untrained policy is near uniform
    assert seen == {0, 1}


def test_predict_refuses_a_recurrent_state(agent):
    with pytest.raises(ConfigError, match="recurrent"):
        agent.predict(np.zeros(4), state=np.zeros(1))


def test_n_envs_alone_scales_the_presets_minibatch():
    base = PPOConfig(n_envs=8, n_steps=32, batch_size=256)  # the CartPole preset: one minibatch per epoch
    assert overlay(PPOConfig, base, {"n_envs": 2}).batch_size == 64
    assert overlay(PPOConfig, base, {"n_envs": 16}).batch_size == 512
    # what the user sets is kept as given (and checked as given)
    assert overlay(PPOConfig, base, {"n_envs": 2, "n_steps": 128}).batch_size == 256
    with pytest.raises(ConfigError, match="batch_size=256 is out of range"):
        overlay(PPOConfig, base, {"n_envs": 2, "batch_size": 256})


def test_train_with_fewer_envs_than_the_preset():
    agent = rlworks.train("ppo", "CartPole-v1", total_steps=256, seed=0, n_envs=2)
    assert agent.config.n_envs == 2 and agent.config.batch_size == 64


def test_cli_n_envs_2_uses_the_preset():
    out = subprocess.run([sys.executable, "-m", "rlworks.cli", "train", "ppo", "--env", "CartPole-v1", "--n-envs", "2",
                          "--print-config"], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "batch_size = 64" in out.stdout
