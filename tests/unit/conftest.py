"""Shared fixtures of the unit tests."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test, restored after: tiny MLPs run fastest on one, and on a loaded 2-core
    machine more threads spin and stall."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class DictObsEnv(gym.Env):
    """A Dict observation (a Box and a Discrete: 5 numbers flattened) with random values; every step ends the
    episode when ``terminates``, else none does (pair it with ``max_episode_steps``)."""

    observation_space = gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (2,)), "b": gym.spaces.Discrete(3)})
    action_space = gym.spaces.Discrete(2)

    def __init__(self, terminates: bool = False) -> None:
        self.terminates = terminates

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, self.terminates, False, {}


@pytest.fixture
def dict_obs_env():
    """The ``DictObsEnv`` class (test modules cannot import conftest under --import-mode=importlib)."""
    return DictObsEnv
