"""A CNN policy learns from pixels on the CPU in seconds: the right action is drawn in the picture (a bar in
one of three columns of a 36x36 frame), so only a policy that reads the frame beats chance (8/3 per episode).
Fixed seeds with margins; not timing tests."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlworks import algos


class BarEnv(gym.Env):
    """A bright bar in one of three columns of a 36x36 grey frame (H, W, 1); the action naming that column
    earns 1. Eight steps per episode, a new column each step."""

    observation_space = gym.spaces.Box(0, 255, (36, 36, 1), np.uint8)
    action_space = gym.spaces.Discrete(3)

    def _obs(self) -> np.ndarray:
        img = np.zeros((36, 36, 1), np.uint8)
        img[6:30, self.side * 12 + 2:self.side * 12 + 10] = 255
        return img

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.side = 0, int(self.np_random.integers(3))
        return self._obs(), {}

    def step(self, action):
        reward = float(int(action) == self.side)
        self.t += 1
        self.side = int(self.np_random.integers(3))
        return self._obs(), reward, False, self.t >= 8, {}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("seed", [0, 1])
def test_ppo_with_the_nature_cnn_reads_the_frame(seed):
    agent = algos.train("ppo", BarEnv, total_steps=6000, seed=seed, n_envs=4, n_steps=64, batch_size=64, n_epochs=4,
                        learning_rate=5e-4, shared_trunk=True, hidden=[], ent_coef=0.01)
    assert agent.net["features"] == "cnn"
    assert agent.evaluate(10, seed=0, env=BarEnv).mean_return >= 7.5  # chance: 2.7; every step right: 8


def test_dqn_with_the_nature_cnn_reads_the_frame():
    agent = algos.train("dqn", BarEnv, total_steps=5000, seed=0, learning_starts=500, buffer_size=5000, hidden=[],
                        target_update_interval=250, learning_rate=5e-4, exploration_fraction=0.3, batch_size=32)
    assert agent.net["features"] == "cnn"
    assert agent.evaluate(10, seed=0, env=BarEnv).mean_return >= 7.5
