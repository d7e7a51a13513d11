"""DeepSea: bsuite's deep-exploration chain as a Gymnasium env, and a batched NumPy version.

An N x N grid. The agent starts at the top-left cell and falls one row per step, so every
episode lasts exactly N steps. Each step it moves one column left or right (left at column 0
stays put). Moving right costs ``move_cost / N``; choosing right in the last column on the last
row (the bottom-right cell) pays +1, the treasure. The only way there is N rights in a row, so
the optimal return is ``1 - move_cost`` (0.99) and a uniformly random policy finds the treasure
with probability 2^-N, while every step of a myopic agent is told that "left" is cheaper.

Which action (0 or 1) means "right" is drawn per cell from ``mapping_seed``, so that no
generalisation across cells (e.g. "action 1 is always good") solves it. This follows
``bsuite.environments.deep_sea`` with ``deterministic=True, randomize_actions=True``
(Osband et al., *Behaviour Suite for Reinforcement Learning*, ICLR 2020; Osband et al., *Deep
Exploration via Randomized Value Functions*, JMLR 2019), with its rules: the treasure is paid
on the final step when the agent stands in the last column and moves right, and the observation
after the final step is all zeros. The mapping is drawn with ``numpy.random.default_rng``, so a
given seed gives a different (equally random) mapping from bsuite's ``RandomState``.

Observations: ``obs_type="grid"`` (default, as bsuite) is an N x N float32 one-hot image;
``obs_type="index"`` is the state index ``row * N + col`` (``Discrete(N * N + 1)``, with
``N * N`` the state after the last step) for the tabular learners, which also find the exact
model in ``env.unwrapped.model``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlworks.config import ConfigError, check_choice, check_range
from rlworks.tabular.mdp import TabularModel

OBS_TYPES = ("grid", "index")


def action_mapping(size: int, mapping_seed: int | None, randomize_actions: bool = True) -> np.ndarray:
    """(size, size) int64 array: the action that means "right" in each cell (the other means "left").

    Without randomisation, action 1 is "right" everywhere (bsuite's debug mode).
    """
    if not randomize_actions:
        return np.ones((size, size), dtype=np.int64)
    return np.random.default_rng(mapping_seed).integers(0, 2, size=(size, size), dtype=np.int64)


def _check(size: int, obs_type: str, move_cost: float) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ConfigError(f"size={size!r} must be a whole number")
    check_range("size", size, 1, 10_000)
    check_choice("obs_type", obs_type, OBS_TYPES)
    check_range("move_cost", move_cost, 0.0, None)


def step_arrays(mapping, rows, cols, actions, move_cost):
    """One step for arrays of cells: ``(new_cols, rewards)``. Rows advance by one (the caller's job).

    ``mapping`` is (..., N, N) indexed per env by ``rows, cols``, or (N, N) shared.
    """
    size = mapping.shape[-1]
    if mapping.ndim == 3:
        right = actions == mapping[np.arange(len(rows)), rows, cols]
    else:
        right = actions == mapping[rows, cols]
    # The treasure: moving right from the last column (reachable only on the last row).
    rewards = np.where(right & (cols == size - 1), 1.0, 0.0) - np.where(right, move_cost / size, 0.0)
    new_cols = np.clip(cols + np.where(right, 1, -1), 0, size - 1)
    return new_cols, rewards


def build_model(mapping: np.ndarray, move_cost: float) -> TabularModel:
    """The exact (deterministic) model over states ``row * N + col`` plus the end state ``N * N``."""
    size = mapping.shape[0]
    n = size * size
    rows, cols = np.divmod(np.arange(n), size)
    outcomes = []
    per_action = [step_arrays(mapping, rows, cols, np.full(n, a), move_cost) for a in (0, 1)]
    last = rows == size - 1
    for s in range(n):
        outcomes.append([
            [(1.0, n if last[s] else (rows[s] + 1) * size + int(new_cols[s]), float(rewards[s]), bool(last[s]))]
            for new_cols, rewards in per_action
        ])  # fmt: skip
    outcomes.append([[(1.0, n, 0.0, True)], [(1.0, n, 0.0, True)]])  # the end state absorbs
    start = np.zeros(n + 1)
    start[0] = 1.0
    terminal = np.zeros(n + 1, dtype=bool)
    terminal[n] = True
    return TabularModel.from_outcomes(outcomes, start, terminal=terminal)


class DeepSea(gym.Env):
    """bsuite's DeepSea (deterministic, randomised actions) as a Gymnasium env.

    Args:
        size: N, the side of the grid and the length of every episode (default 10).
        mapping_seed: seeds the per-cell action mapping; the same seed gives the same mapping.
        obs_type: ``"grid"`` (N x N float32 one-hot, as bsuite) or ``"index"`` (``row * N + col``,
            ``Discrete(N * N + 1)``; ``N * N`` is the state after the last step).
        move_cost: the cost of N moves right (each costs ``move_cost / N``; bsuite's
            ``unscaled_move_cost``, default 0.01).
        randomize_actions: if False, action 1 is "right" everywhere (bsuite's debug mode; not
            DeepSea proper).
        render_mode: ``"ansi"`` or ``"rgb_array"``.

    ``optimal_return`` is ``1 - move_cost``. ``unwrapped.model`` is the exact ``TabularModel``
    over state indices, for ``value_iteration`` and the compiled tabular learners.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        size: int = 10,
        *,
        mapping_seed: int | None = 0,
        obs_type: str = "grid",
        move_cost: float = 0.01,
        randomize_actions: bool = True,
        render_mode: str | None = None,
    ) -> None:
        _check(size, obs_type, move_cost)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"render_mode={render_mode!r} is not one of 'ansi', 'rgb_array'")
        self.size = int(size)
        self.mapping_seed = mapping_seed
        self.obs_type = obs_type
        self.move_cost = float(move_cost)
        self.mapping = action_mapping(self.size, mapping_seed, randomize_actions)
        self.optimal_return = 1.0 - self.move_cost
        if obs_type == "grid":
            self.observation_space = spaces.Box(0.0, 1.0, (self.size, self.size), dtype=np.float32)
        else:
            self.observation_space = spaces.Discrete(self.size * self.size + 1)
        self.action_space = spaces.Discrete(2)
        self.render_mode = render_mode
        self.row, self.col = 0, 0

    @cached_property
    def model(self) -> TabularModel:
        return build_model(self.mapping, self.move_cost)

    def right_action(self, row: int, col: int) -> int:
        """The action that moves right in cell (row, col)."""
        return int(self.mapping[row, col])

    def _obs(self):
        n = self.size
        if self.obs_type == "index":
            return self.row * n + self.col if self.row < n else n * n
        obs = np.zeros((n, n), dtype=np.float32)
        if self.row < n:  # after the last step: all zeros, as bsuite
            obs[self.row, self.col] = 1.0
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)  # the dynamics are deterministic: the seed draws nothing
        self.row, self.col = 0, 0
        return self._obs(), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        if self.row >= self.size:
            raise RuntimeError("DeepSea episode is over: call reset()")
        n = self.size
        right = int(action) == self.mapping[self.row, self.col]
        reward = 0.0
        if right:
            if self.col == n - 1:
                reward += 1.0  # the treasure
            reward -= self.move_cost / n
            self.col = min(self.col + 1, n - 1)
        else:
            self.col = max(self.col - 1, 0)
        self.row += 1
        return self._obs(), reward, self.row == n, False, {}

    def render(self):
        if self.render_mode == "ansi":
            cells = np.full((self.size, self.size), ".")
            cells[-1, -1] = "$"  # the treasure
            if self.row < self.size:
                cells[self.row, self.col] = "A"
            return "\n".join("".join(row) for row in cells) + "\n"
        if self.render_mode == "rgb_array":
            cell = 16
            img = np.full((self.size * cell, self.size * cell, 3), 248, dtype=np.uint8)
            img[::cell, :] = img[:, ::cell] = 200  # grid lines
            n = self.size
            img[(n - 1) * cell + 1 : n * cell, (n - 1) * cell + 1 : n * cell] = (249, 115, 22)  # orange treasure
            if self.row < n:
                r, c = self.row, self.col
                img[r * cell + 3 : (r + 1) * cell - 3, c * cell + 3 : (c + 1) * cell - 3] = (79, 70, 229)  # agent
            return img
        return None


class DeepSeaBatch:
    """B DeepSea envs stepped at once with NumPy arrays, one mapping seed each.

    Every episode lasts exactly ``size`` steps, so the B envs start and end together: ``step``
    returns ``terminated`` all True on the ``size``-th step, after which ``reset`` must be called.
    Env ``i`` behaves exactly as ``DeepSea(size, mapping_seed=mapping_seeds[i], ...)``.

    Args:
        mapping_seeds: one mapping seed per env (B of them).
        size, obs_type, move_cost, randomize_actions: as for ``DeepSea``.
    """

    def __init__(
        self,
        mapping_seeds: Sequence[int],
        size: int = 10,
        *,
        obs_type: str = "grid",
        move_cost: float = 0.01,
        randomize_actions: bool = True,
    ) -> None:
        _check(size, obs_type, move_cost)
        seeds = list(mapping_seeds)
        if not seeds:
            raise ConfigError("mapping_seeds is empty: give one mapping seed per env")
        self.size = int(size)
        self.num_envs = len(seeds)
        self.obs_type = obs_type
        self.move_cost = float(move_cost)
        self.mapping = np.stack([action_mapping(self.size, s, randomize_actions) for s in seeds])  # (B, N, N)
        self.optimal_return = 1.0 - self.move_cost
        self.row = 0  # shared: every env is on the same row
        self.cols = np.zeros(self.num_envs, dtype=np.int64)  # (B,)

    def _obs(self) -> np.ndarray:
        n, b = self.size, self.num_envs
        if self.obs_type == "index":
            return self.row * n + self.cols if self.row < n else np.full(b, n * n, dtype=np.int64)
        obs = np.zeros((b, n, n), dtype=np.float32)  # (B, N, N)
        if self.row < n:
            obs[np.arange(b), self.row, self.cols] = 1.0
        return obs

    def reset(self) -> np.ndarray:
        """Start all B episodes; returns (B, N, N) float32 or (B,) int64 observations."""
        self.row = 0
        self.cols[:] = 0
        return self._obs()

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``actions`` (B,) in {0, 1} -> (obs, rewards (B,) float64, terminated (B,) bool)."""
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions has shape {actions.shape}; expected ({self.num_envs},)")
        if not np.isin(actions, (0, 1)).all():
            raise ValueError("actions must be 0 or 1")
        if self.row >= self.size:
            raise RuntimeError("DeepSeaBatch episodes are over: call reset()")
        rows = np.full(self.num_envs, self.row)
        self.cols, rewards = step_arrays(self.mapping, rows, self.cols, actions, self.move_cost)
        self.row += 1
        return self._obs(), rewards, np.full(self.num_envs, self.row == self.size)
