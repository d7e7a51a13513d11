"""rlworks.offline.interop.to_d3rlpy: d3rlpy's MDPDataset holds the same episodes as the OfflineDataset, step for
step (observations, actions, rewards, terminal flag), for Discrete and Box actions and for episodes that end
terminated, truncated, or with neither flag."""

from __future__ import annotations

import dataclasses
import sys

import gymnasium as gym
import numpy as np
import pytest

from rlworks.config import ConfigError
from rlworks.offline.data import OfflineDataset
from rlworks.offline.interop import to_d3rlpy

pytest.importorskip("d3rlpy")

#: (length, terminated, truncated) of each episode: the last one ends with neither flag (the data just stops)
SHAPES = ((5, True, False), (7, False, True), (1, True, False), (4, False, True), (3, False, False))


def synthetic(action_space: gym.Space, seed: int = 0) -> OfflineDataset:
    rng = np.random.default_rng(seed)
    obs_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    episodes = []
    for length, term, trunc in SHAPES:
        if isinstance(action_space, gym.spaces.Discrete):
            actions = rng.integers(action_space.start, action_space.start + action_space.n, length)
        else:
            actions = rng.uniform(action_space.low, action_space.high, (length, *action_space.shape))
        episodes.append({"observations": rng.standard_normal((length + 1, 3)).astype(np.float32),
                         "actions": actions, "rewards": rng.standard_normal(length).astype(np.float32),
                         "terminations": (np.arange(length) == length - 1) & term,
                         "truncations": (np.arange(length) == length - 1) & trunc})
    return OfflineDataset.from_episodes("test/synthetic-v0", episodes, obs_space, action_space)


def assert_same_episodes(data: OfflineDataset, mdp, actions: np.ndarray) -> None:
    assert len(mdp.episodes) == data.n_episodes == len(SHAPES)
    bounds = np.append(data.episode_starts, len(data))
    for e, ep in enumerate(mdp.episodes):
        rows = slice(bounds[e], bounds[e + 1])
        np.testing.assert_array_equal(ep.observations, data.observations[rows])
        np.testing.assert_array_equal(ep.actions.reshape(len(actions[rows]), -1),
                                      actions[rows].reshape(len(actions[rows]), -1))
        np.testing.assert_array_equal(ep.rewards.reshape(-1), data.rewards[rows])
        assert ep.terminated == bool(data.terminations[bounds[e + 1] - 1]) == SHAPES[e][1]
    # a transition for every step, less the last step of each episode that is not terminal (no s' in d3rlpy)
    assert mdp.transition_count == len(data) - sum(not term for _, term, _ in SHAPES)


def test_discrete_episodes_match_and_actions_start_at_zero():
    data = synthetic(gym.spaces.Discrete(3, start=-1))
    mdp = to_d3rlpy(data)
    assert mdp.dataset_info.action_size == 3
    assert_same_episodes(data, mdp, data.actions + 1)
    assert {int(a) for ep in mdp.episodes for a in ep.actions.reshape(-1)} <= {0, 1, 2}


def test_box_episodes_match_in_env_units():
    space = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)
    data = synthetic(space)
    mdp = to_d3rlpy(data)
    assert mdp.dataset_info.action_size == 2
    assert_same_episodes(data, mdp, data.actions)
    # s' of a mid-episode transition is the next row, as in the OfflineDataset
    t = mdp.transition_picker(mdp.episodes[1], 2)
    np.testing.assert_array_equal(t.next_observation, data.next_observations[data.episode_starts[1] + 2])


def test_a_flag_inside_an_episode_is_refused():
    data = synthetic(gym.spaces.Discrete(2))
    flags = data.truncations.copy()
    flags[1] = True  # row 1 is inside the first episode (5 steps)
    with pytest.raises(ConfigError, match="does not end an episode"):
        to_d3rlpy(dataclasses.replace(data, truncations=flags))


def test_without_d3rlpy_a_config_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "d3rlpy", None)  # import d3rlpy now raises ImportError
    with pytest.raises(ConfigError, match="--no-deps d3rlpy==2.8.1"):
        to_d3rlpy(synthetic(gym.spaces.Discrete(2)))
