"""GridWorld: the lab's grid world as a Gymnasium env, with its exact model as arrays.

Maps are ASCII layouts, one row per line: ``S`` start, ``G`` goal (+1, terminal), ``W`` wall,
``.`` floor. Several goals are allowed. Walls either bump (the agent stays put and receives
``wall_reward``) or, with ``wall_terminal=True``, are entered and end the episode (a pit).
With ``slip > 0`` a move goes, with that probability, to one of the two perpendicular
directions instead (half each), as FrozenLake's slippery ice does with a fixed 2/3.

Observations are cell indices ``row * n_cols + col``; actions are 0 up, 1 right, 2 down, 3 left
(CliffWalking's order). The exact model (``P[s, a, s']``, ``R[s, a]``, terminal mask and the
per-outcome arrays the compiled learners use) is ``env.unwrapped.model``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlworks.config import ConfigError, check_range
from rlworks.tabular.mdp import TabularModel

#: The lab's default 5x5 world: start top-left, goal bottom-right, four walls to route around.
DEFAULT_LAYOUT = "\n".join(
    [
        "S....",
        ".WW..",
        "...W.",
        ".W...",
        ".W.WG",
    ]
)

ACTION_NAMES = ("up", "right", "down", "left")
ACTION_ARROWS = ("↑", "→", "↓", "←")
MOVES = np.array([(-1, 0), (0, 1), (1, 0), (0, -1)], dtype=np.int64)
CELL_CHARS = {".": "floor", "S": "start", "G": "goal", "W": "wall"}


def parse_layout(layout: str | list[str]) -> np.ndarray:
    """Parse and validate an ASCII layout into a (rows, cols) array of characters.

    Raises ConfigError naming the row/column and the rule broken.
    """
    if isinstance(layout, (list, tuple)):
        rows = [str(r) for r in layout]
    elif isinstance(layout, str):
        rows = [r.strip() for r in layout.strip("\n").split("\n")]
        rows = [r.replace(" ", "") for r in rows if r.strip() != ""]
    else:
        raise ConfigError(f"layout must be a string of rows, got {type(layout).__name__}")
    if not rows:
        raise ConfigError("layout is empty: give at least one row, e.g. 'S.G'")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ConfigError(
                f"layout row {i} has {len(row)} cells but row 0 has {width}: rows must all be the same length"
            )
        for j, ch in enumerate(row):
            if ch not in CELL_CHARS:
                raise ConfigError(
                    f"layout row {i}, column {j}: unknown character {ch!r}; allowed: "
                    "'S' start, 'G' goal, 'W' wall, '.' floor"
                )
    grid = np.array([list(r) for r in rows])
    starts = np.argwhere(grid == "S")
    if len(starts) == 0:
        raise ConfigError("layout has no start: put one 'S' in it")
    if len(starts) > 1:
        (r0, c0), (r1, c1) = starts[0], starts[1]
        raise ConfigError(f"layout has more than one start (row {r0}, column {c0} and row {r1}, column {c1}): "
                          "keep one 'S'")
    if not (grid == "G").any():
        raise ConfigError("layout has no goal: put at least one 'G' in it")
    # A goal must be reachable from the start through non-wall cells.
    n_rows, n_cols = grid.shape
    seen = np.zeros(grid.shape, dtype=bool)
    r, c = starts[0]
    seen[r, c] = True
    queue = deque([(r, c)])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES:
            nr, nc = r + dr, c + dc
            if 0 <= nr < n_rows and 0 <= nc < n_cols and not seen[nr, nc] and grid[nr, nc] != "W":
                seen[nr, nc] = True
                if grid[nr, nc] != "G":  # goals are terminal: nothing is reached through them
                    queue.append((nr, nc))
    if not (seen & (grid == "G")).any():
        gr, gc = np.argwhere(grid == "G")[0]
        raise ConfigError(
            f"layout goal at row {gr}, column {gc} is unreachable from the start at row {starts[0][0]}, "
            f"column {starts[0][1]}: open a path through the walls"
        )
    return grid


def build_model(
    grid: np.ndarray,
    *,
    step_reward: float,
    goal_reward: float,
    wall_reward: float,
    wall_terminal: bool,
    slip: float,
) -> TabularModel:
    """The exact model of a parsed layout, as per-outcome arrays (at most 3 outcomes per move)."""
    n_rows, n_cols = grid.shape
    n_states, n_actions = n_rows * n_cols, 4
    terminal = np.zeros(n_states, dtype=bool)
    for s in range(n_states):
        ch = grid.flat[s]
        terminal[s] = ch == "G" or (wall_terminal and ch == "W")

    def move(s: int, a: int) -> tuple[int, float, bool]:
        r, c = divmod(s, n_cols)
        nr, nc = r + MOVES[a][0], c + MOVES[a][1]
        if not (0 <= nr < n_rows and 0 <= nc < n_cols):
            return s, step_reward, False  # the border bumps at no extra cost
        ns = nr * n_cols + nc
        ch = grid[nr, nc]
        if ch == "W":
            if wall_terminal:
                return ns, wall_reward, True
            return s, wall_reward, False
        if ch == "G":
            return ns, goal_reward, True
        return ns, step_reward, False

    outcomes: list[list[list[tuple[float, int, float, bool]]]] = []
    for s in range(n_states):
        per_action = []
        for a in range(n_actions):
            if terminal[s] or (grid.flat[s] == "W" and not wall_terminal):
                # Terminal and unreachable cells absorb: never used for learning, kept for shape.
                per_action.append([(1.0, s, 0.0, True)])
                continue
            options = [(1.0 - slip, a)]
            if slip > 0:
                options += [(slip / 2, (a + 1) % 4), (slip / 2, (a + 3) % 4)]
            per_action.append([(p, *move(s, b)) for p, b in options if p > 0])
        outcomes.append(per_action)
    start = np.zeros(n_states)
    start[int(np.flatnonzero(grid.ravel() == "S")[0])] = 1.0
    return TabularModel.from_outcomes(outcomes, start, terminal=terminal)


class GridWorld(gym.Env):
    """A grid world with walls, goals, optional slip and an exact model for planning.

    Args:
        layout: ASCII map (``S`` start, ``G`` goal, ``W`` wall, ``.`` floor), rows separated by
            newlines, or a list of rows. Default: the lab's 5x5 world.
        step_reward: reward for an ordinary move (and for bumping the border).
        goal_reward: reward for entering a goal (terminal).
        wall_reward: reward for stepping onto a wall.
        wall_terminal: if True, stepping onto a wall ends the episode (a pit); otherwise the
            agent bumps and stays where it was.
        slip: probability that a move goes to one of the two perpendicular directions.
        render_mode: ``"ansi"`` or ``"rgb_array"``.

    The episode cap is Gymnasium's TimeLimit: ``gymnasium.make(..., max_episode_steps=N)``
    (100 by default for ``rlworks/GridWorld-v0``).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 8}

    def __init__(
        self,
        layout: str | list[str] | None = None,
        *,
        step_reward: float = 0.0,
        goal_reward: float = 1.0,
        wall_reward: float = -1.0,
        wall_terminal: bool = False,
        slip: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        check_range("slip", slip, 0.0, 1.0)
        for name, value in (("step_reward", step_reward), ("goal_reward", goal_reward), ("wall_reward", wall_reward)):
            check_range(name, value)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"render_mode={render_mode!r} is not one of 'ansi', 'rgb_array'")
        self.layout = DEFAULT_LAYOUT if layout is None else layout
        self.grid = parse_layout(self.layout)
        self.n_rows, self.n_cols = self.grid.shape
        self.slip = float(slip)
        self.wall_terminal = bool(wall_terminal)
        self.model = build_model(
            self.grid,
            step_reward=float(step_reward),
            goal_reward=float(goal_reward),
            wall_reward=float(wall_reward),
            wall_terminal=self.wall_terminal,
            slip=self.slip,
        )
        self.start_state = int(np.flatnonzero(self.grid.ravel() == "S")[0])
        self.observation_space = spaces.Discrete(self.n_rows * self.n_cols)
        self.action_space = spaces.Discrete(4)
        self.render_mode = render_mode
        self.s = self.start_state
        self.last_action: int | None = None

    # The model as the arrays the issue names: P[s, a, s'], R[s, a], terminal mask.
    @property
    def P(self) -> np.ndarray:  # noqa: N802 - the textbook name
        return self.model.P

    @property
    def R(self) -> np.ndarray:  # noqa: N802
        return self.model.R

    @property
    def terminal(self) -> np.ndarray:
        return self.model.terminal

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.s = self.start_state
        self.last_action = None
        return self.s, {}

    def step(self, action):
        a = int(action)
        if not self.action_space.contains(a):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        m = self.model
        k = int(m.n_outcomes[self.s, a])
        i = 0
        if k > 1:
            u = self.np_random.random()
            while i < k - 1 and u >= m.cum_probs[self.s, a, i]:
                i += 1
        reward = float(m.rewards[self.s, a, i])
        terminated = bool(m.dones[self.s, a, i])
        self.s = int(m.next_states[self.s, a, i])
        self.last_action = a
        return self.s, reward, terminated, False, {}

    def render(self):
        if self.render_mode == "ansi":
            return self._render_ansi()
        if self.render_mode == "rgb_array":
            return self._render_rgb()
        return None

    def _render_ansi(self) -> str:
        rows = []
        for r in range(self.n_rows):
            line = ""
            for c in range(self.n_cols):
                s = r * self.n_cols + c
                line += "A" if s == self.s else self.grid[r, c]
            rows.append(line)
        return "\n".join(rows) + "\n"

    def _render_rgb(self, cell: int = 32) -> np.ndarray:
        colours = {
            ".": (248, 248, 252),
            "S": (224, 231, 255),
            "G": (249, 115, 22),  # orange goal
            "W": (148, 148, 156),  # grey wall
        }
        img = np.zeros((self.n_rows * cell, self.n_cols * cell, 3), dtype=np.uint8)
        for r in range(self.n_rows):
            for c in range(self.n_cols):
                img[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = colours[self.grid[r, c]]
        img[::cell, :] = 200  # grid lines
        img[:, ::cell] = 200
        r, c = divmod(self.s, self.n_cols)
        yy, xx = np.mgrid[0:cell, 0:cell]
        dot = (yy - cell / 2 + 0.5) ** 2 + (xx - cell / 2 + 0.5) ** 2 <= (cell * 0.3) ** 2
        img[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell][dot] = (79, 70, 229)  # indigo agent
        return img
