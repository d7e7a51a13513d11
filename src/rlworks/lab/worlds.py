"""The worlds the lab can run: an editable GridWorld map, or bsuite's DeepSea.

A world gives the session what it needs to learn and the page what it needs to draw: the exact
model for the tabular learner, the grid (state ``row * cols + col`` is the cell at ``row, col``;
a model may have more states after those, e.g. DeepSea's end state, which are not drawn), one
character per cell, and the on-screen direction of each action in each cell (for the greedy
arrows, the optimal overlay and the hover text). The page knows nothing else about a world.

Cell characters: ``S`` start, ``.`` floor, ``W`` wall, ``G`` goal (GridWorld, see
``rlworks.envs.gridworld``); ``T`` DeepSea's treasure cell (an ordinary state: moving right
from it on the last step pays +1) and ``x`` a cell no episode can reach (DeepSea falls one row
per step and moves one column, so from the top-left corner column > row is out of reach).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlworks.envs.deepsea import DeepSea
from rlworks.envs.gridworld import GridWorld

#: Screen directions an action can have: (dx, dy) with y down, and the name the page shows.
DIRECTIONS: tuple[tuple[int, int, str], ...] = (
    (0, -1, "↑ up"), (1, 0, "→ right"), (0, 1, "↓ down"), (-1, 0, "← left"),
    (-1, 1, "↙ left"), (1, 1, "↘ right"),
)  # fmt: skip
GRID_ACTIONS = (0, 1, 2, 3)  # GridWorld's actions 0..3 are up, right, down, left (DIRECTIONS' first four)
DEEPSEA_LEFT, DEEPSEA_RIGHT = 4, 5


class GridMap:
    """A ``GridWorld`` map with its reward scheme and slip: editable cell by cell."""

    kind = "gridworld"
    editable = True
    has_slip = True

    def __init__(self, layout: list[str], rewards: dict[str, Any], slip: float) -> None:
        self.env = GridWorld(list(layout), slip=slip, **rewards)  # ConfigError names a bad map
        self.layout = ["".join(r) for r in self.env.grid]
        self.rewards = dict(rewards)
        self.rows, self.cols = self.env.grid.shape
        self.model = self.env.model
        self.start_state = self.env.start_state

    def with_slip(self, slip: float) -> GridMap:
        return GridMap(self.layout, self.rewards, slip)

    def action_dirs(self) -> np.ndarray:
        """(cells, actions) indices into DIRECTIONS."""
        return np.tile(np.array(GRID_ACTIONS), (self.rows * self.cols, 1))

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "editable": True, "slip": True, "size": None}


class DeepSeaMap:
    """bsuite's DeepSea (deterministic, per-cell random action mapping) as an N x N grid.

    The mapping is fixed by ``mapping_seed`` so that every tab (and every test) sees the same
    sea; the learner's own seed still differs per tab."""

    kind = "deepsea"
    editable = False
    has_slip = False  # bsuite's deterministic DeepSea; the slip setting does not apply

    def __init__(self, size: int, mapping_seed: int = 0, move_cost: float = 0.01) -> None:
        self.env = DeepSea(size, mapping_seed=mapping_seed, obs_type="index", move_cost=move_cost)
        n = self.size = self.env.size
        self.rows = self.cols = n
        self.model = self.env.model  # N * N cells plus the end state N * N
        self.start_state = 0
        rows, cols = np.divmod(np.arange(n * n), n)
        chars = np.where(cols > rows, "x", ".").reshape(n, n)
        chars[0, 0] = "S"
        chars[-1, -1] = "T"
        self.layout = ["".join(r) for r in chars]
        self.rewards = {"goal_reward": 1.0, "move_cost": self.env.move_cost}

    def with_slip(self, slip: float) -> DeepSeaMap:
        return self

    def action_dirs(self) -> np.ndarray:
        """(cells, 2): which of the two actions is "right" differs per cell."""
        right = self.env.mapping.ravel()  # (N * N,) the action that moves right in each cell
        dirs = np.full((self.size * self.size, 2), DEEPSEA_LEFT)
        dirs[np.arange(len(right)), right] = DEEPSEA_RIGHT
        return dirs

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "editable": False, "slip": False, "size": self.size}
