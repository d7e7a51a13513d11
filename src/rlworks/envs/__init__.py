"""rlworks' environments; importing this module registers them with Gymnasium."""

import gymnasium as gym

from rlworks.envs.gridworld import DEFAULT_LAYOUT, GridWorld

GRIDWORLD_ID = "rlworks/GridWorld-v0"

if GRIDWORLD_ID not in gym.registry:
    gym.register(id=GRIDWORLD_ID, entry_point="rlworks.envs.gridworld:GridWorld", max_episode_steps=100)

__all__ = ["DEFAULT_LAYOUT", "GRIDWORLD_ID", "GridWorld"]
