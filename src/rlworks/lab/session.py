"""One lab session (one browser tab): a TabularLearner on a world (an editable grid-world map or
DeepSea, see ``worlds.py``), run a slice per frame, and the frames that tell the page what to draw.

Nothing here knows about sockets: the server feeds parsed messages to ``handle`` and calls
``advance`` then ``frame`` about 30 times a second. That keeps the engine logic testable
without a browser or a network.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np

from rlworks.config import ConfigError
from rlworks.lab.presets import PRESETS, Preset
from rlworks.lab.protocol import MAX_SIDE, SPEEDS, ProtocolError
from rlworks.lab.search_view import DEFAULT_SIMULATIONS, search_from
from rlworks.lab.worlds import DIRECTIONS, DeepSeaMap, GridMap
from rlworks.tabular.kernels import seed_rng
from rlworks.tabular.learner import ALGORITHMS, BONUSES, TIE_BREAKS, TabularLearner
from rlworks.tabular.planning import value_iteration

FPS = 30
#: At "max" speed, engine time per frame; the rest of the frame is left for encoding, the
#: socket and other tabs (the machine may have two cores shared by several sessions).
MAX_SPEED_BUDGET_S = 0.015
#: Episodes per frame sent for the chart; at "max" speed thousands can end in one frame.
RECENT_EPISODES = 100
#: Random tie-breaking is rlworks' default and learns at the default epsilon of 0.2. Breaking
#: ties toward the first action ("first", like ``Q[s].argmax()`` in the seed) is the cause of the
#: seed's "stuck at epsilon = 0": measured on the default map with epsilon = 0.2, a fresh agent
#: with "first" needs a median of ~250k steps (20 seeds) before it first reaches the goal, so it
#: is offered as a control to show that failure rather than used by default.
DEFAULT_SETTINGS: dict[str, Any] = {
    "epsilon": 0.2,
    "alpha": 0.1,
    "gamma": 0.95,
    "slip": 0.0,
    "speed": "30",
    "algorithm": "q-learning",
    "planning_steps": 5,
    "tie_break": "random",
    "max_episode_steps": 100,
    # exploration: no count bonus and Q starting at 0 unless chosen (the DeepSea presets set them)
    "bonus": "none",
    "bonus_c": 0.1,
    "q_init": 0.0,
}
CYCLE = {".": "W", "W": "G", "G": "S"}  # a click on a cell: floor -> wall -> goal -> start


def reachable(model) -> np.ndarray:
    """(S,) bool: the states some episode can visit (from a start state, by any actions)."""
    seen = model.start > 0
    frontier = seen.copy()
    while frontier.any():
        valid = np.arange(model.next_states.shape[2]) < model.n_outcomes[frontier][:, :, None]  # (F, A, K)
        nxt = np.zeros_like(seen)
        nxt[model.next_states[frontier][valid]] = True
        frontier = nxt & ~seen
        seen |= nxt
    return seen


class LabSession:
    """The learner, the map and the settings of one tab."""

    def __init__(self, seed: int = 0, settings: dict[str, Any] | None = None) -> None:
        self.settings = dict(DEFAULT_SETTINGS, **(settings or {}))
        self.seed = seed
        self.preset: Preset = PRESETS["default"]
        self.world = self._make_world(lambda: self.preset.make_world(self.settings["slip"]))
        s = self.settings
        # visits are always counted (one add per step), so the view shows them from the start
        self.learner = TabularLearner(
            self.world.model, s["algorithm"], alpha=s["alpha"], gamma=s["gamma"], epsilon=s["epsilon"],
            planning_steps=s["planning_steps"], max_episode_steps=s["max_episode_steps"], seed=seed,
            tie_break=s["tie_break"], bonus=s["bonus"], bonus_c=s["bonus_c"], q_init=s["q_init"],
            count_visits=True,
        )  # fmt: skip
        self.running = True
        self.show_optimal = False
        self.show_visits = False
        self.epoch = 0  # bumped when the history shown by the page no longer applies
        self._optimal: dict | None = None
        self._credit = 0.0  # fractional steps owed at slow speeds
        self._chunk = 4096  # adaptive slice size at "max" speed
        self._returns: list[np.ndarray] = []
        self._lengths: list[np.ndarray] = []
        self._sps_window: deque[tuple[float, int]] = deque(maxlen=2 * FPS)

    # ---------------------------------------------------------------- world
    @property
    def env(self):
        """The world's Gymnasium env (``GridWorld`` or ``DeepSea``)."""
        return self.world.env

    @property
    def layout(self) -> list[str]:
        return self.world.layout

    @property
    def rewards(self) -> dict:
        return self.world.rewards

    @staticmethod
    def _make_world(build) -> GridMap | DeepSeaMap:
        try:
            return build()
        except (ConfigError, ValueError) as exc:
            raise ProtocolError(str(exc)) from None

    def _set_world(self, world: GridMap | DeepSeaMap) -> None:
        """Swap in a new world (built, so validated, first: a refused map leaves the old one running)."""
        resized = world.model.next_states.shape[:2] != self.world.model.next_states.shape[:2]
        self.world = world
        self.learner.set_model(world.model)  # keeps Q when the shape allows: the agent must unlearn
        if resized:
            self._reset_counters()
        self._optimal = None

    def _grid_map(self, layout: list[str], rewards: dict | None = None) -> GridMap:
        """A grid-world map; a map sent while on DeepSea takes the default preset's rewards."""
        if rewards is None:
            rewards = self.rewards if self.world.kind == "gridworld" else PRESETS["default"].env_kwargs()
        return self._make_world(lambda: GridMap(layout, rewards, self.settings["slip"]))

    def _reset_counters(self) -> None:
        self.learner.episodes = 0
        self.learner.steps = 0
        self.epoch += 1
        self._returns, self._lengths = [], []  # episodes of the old epoch must not reach the new chart
        self._sps_window.clear()

    # ---------------------------------------------------------------- messages
    def handle(self, msg: dict[str, Any]) -> list[dict[str, Any]]:
        """Apply one validated message; return the frames to send back (usually a new state).

        Raises ProtocolError for a message that is well-formed but cannot apply (an edit
        outside the map, a map with no goal); the session is unchanged then."""
        kind = msg["type"]
        if kind == "run":
            self.running = True
        elif kind == "pause":
            self.running = False
        elif kind == "step":
            self.running = False
            self._run_steps(msg.get("n", 1))
        elif kind == "reset":
            self.learner.reset_q()
            self._reset_counters()
        elif kind == "set":
            self._apply_settings({k: v for k, v in msg.items() if k != "type"})
        elif kind == "map":
            self._set_world(self._grid_map(msg["layout"]))
        elif kind == "size":
            rows, cols = msg["rows"], msg["cols"]
            grid = [["."] * cols for _ in range(rows)]
            grid[0][0], grid[-1][-1] = "S", "G"
            world = self._grid_map(["".join(r) for r in grid], PRESETS["default"].env_kwargs())
            self.preset = PRESETS["default"]
            self._set_world(world)
            self.learner.reset_q()  # a new world: start from scratch, even at the same size
            self._reset_counters()
        elif kind == "preset":
            preset = PRESETS[msg["name"]]
            world = self._make_world(lambda: preset.make_world(self.settings["slip"], msg.get("size")))
            self.preset = preset
            self._set_world(world)
            if preset.settings:
                self._apply_settings(dict(preset.settings))
            self.learner.reset_q()
            # a preset is a fresh start: the tab's random stream starts over too, so what a preset
            # shows depends on the tab's seed only, not on how long the page ran before
            self.learner.rng[:] = seed_rng(self.seed)
            self._reset_counters()
        elif kind == "edit":
            self._edit(msg["row"], msg["col"])
        elif kind == "optimal":
            self.show_optimal = msg["show"]
        elif kind == "visits":
            self.show_visits = msg["show"]
        elif kind == "search":  # answered with the search alone: nothing the page draws changed
            s = self.settings
            sims = msg.get("simulations", DEFAULT_SIMULATIONS)
            return [search_from(self.world, self.learner.q, msg["row"], msg["col"], gamma=s["gamma"],
                                epsilon=s["epsilon"], simulations=sims)]  # fmt: skip
        else:  # "export" is served by the server (it runs in a worker thread)
            raise ProtocolError(f"message type {kind!r} is not handled by the session")
        return [self.state()]

    def _apply_settings(self, changes: dict[str, Any]) -> None:
        if "slip" in changes and changes["slip"] != self.settings["slip"] and self.world.has_slip:
            world = self._make_world(lambda: self.world.with_slip(changes["slip"]))
            self.world = world
            self.learner.set_model(world.model)
            self._optimal = None
        if "gamma" in changes:
            self._optimal = None
        new_q_init = "q_init" in changes and changes["q_init"] != self.settings["q_init"]
        self.settings.update(changes)
        s, lr = self.settings, self.learner
        lr.alpha, lr.gamma, lr.epsilon = s["alpha"], s["gamma"], s["epsilon"]
        lr.tie_break, lr.max_episode_steps = s["tie_break"], s["max_episode_steps"]
        # the bonus applies from the next step, with the visit counts gathered so far
        lr.bonus, lr.bonus_c, lr.q_init = s["bonus"], s["bonus_c"], s["q_init"]
        # switching algorithm keeps Q, as switching the update rule on a live table would
        lr.set_algorithm(s["algorithm"], s["planning_steps"])
        if new_q_init:  # an initial value means something only at the start: start again
            lr.reset_q()
            self._reset_counters()
        self._credit = 0.0

    def _edit(self, row: int, col: int) -> None:
        if not self.world.editable:
            raise ProtocolError(
                f"the {self.preset.title} map is fixed: pick a grid-world preset or a map size to edit cells"
            )
        grid = [list(r) for r in self.layout]
        if row >= len(grid) or col >= len(grid[0]):
            raise ProtocolError(f"edit: row {row}, column {col} is outside the {len(grid)}x{len(grid[0])} map")
        ch = grid[row][col]
        if ch == "S":
            raise ProtocolError(
                "the start stays: to move it, click another cell until it becomes the start "
                "(floor → wall → goal → start)"
            )
        if CYCLE[ch] == "S":
            for r in grid:  # one start: the old one becomes floor
                for j, c in enumerate(r):
                    if c == "S":
                        r[j] = "."
        grid[row][col] = CYCLE[ch]
        try:
            self._set_world(self._grid_map(["".join(r) for r in grid]))
        except ProtocolError as exc:
            raise ProtocolError(f"edit refused: {exc}") from None

    # ---------------------------------------------------------------- running
    def _run_steps(self, n: int) -> None:
        returns, lengths = self.learner.run(steps=int(n))
        if len(returns):
            self._returns.append(returns[-RECENT_EPISODES:].copy())
            self._lengths.append(lengths[-RECENT_EPISODES:].copy())

    def advance(self, dt: float, budget: float = MAX_SPEED_BUDGET_S) -> None:
        """Run the learner for one frame that lasted ``dt`` seconds at the current speed; at
        "max", for about ``budget`` seconds of engine time."""
        if not self.running:
            return
        rate = SPEEDS[self.settings["speed"]]
        if rate is not None:
            self._credit = min(self._credit + rate * min(dt, 0.25), rate + 1.0)
            n = int(self._credit + 1e-9)  # 0.1 * 30 must make 3 steps, not 2.9999...
            if n:
                self._credit -= n
                self._run_steps(n)
            return
        # "max": slices sized to take about 2 ms each until the frame's budget is spent
        t0 = time.perf_counter()
        while True:
            t = time.perf_counter()
            self._run_steps(self._chunk)
            took = time.perf_counter() - t
            self._chunk = int(np.clip(self._chunk * (0.002 / max(took, 1e-6)) ** 0.5, 64, 1 << 20))
            if time.perf_counter() - t0 + took > budget:
                break

    def steps_per_second(self) -> float:
        w = self._sps_window
        if len(w) < 2 or w[-1][0] <= w[0][0]:
            return 0.0
        return (w[-1][1] - w[0][1]) / (w[-1][0] - w[0][0])

    # ---------------------------------------------------------------- frames
    def frame(self, now: float | None = None) -> dict[str, Any]:
        """The per-tick frame: Q, the agent, counters and the episodes finished since the last."""
        lr = self.learner
        self._sps_window.append((time.perf_counter() if now is None else now, lr.steps))
        returns = np.concatenate(self._returns)[-RECENT_EPISODES:] if self._returns else np.zeros(0)
        lengths = np.concatenate(self._lengths)[-RECENT_EPISODES:] if self._lengths else np.zeros(0, int)
        self._returns, self._lengths = [], []
        state = lr.state
        cells = self.world.rows * self.world.cols  # DeepSea's end state (after them) is not drawn
        visits = lr.counts[:cells].sum(axis=1).tolist() if self.show_visits else None
        return {
            "type": "frame",
            "epoch": self.epoch,
            "q": np.round(lr.q[:cells], 4).ravel().tolist(),
            "visits": visits,
            "agent": state if 0 <= state < cells else self.world.start_state,
            "episode": lr.episodes,
            "steps": lr.steps,
            "ep_step": lr.episode_step,
            "ep_return": round(lr.episode_return, 4),
            "returns": np.round(returns, 4).tolist(),
            "lengths": lengths.astype(int).tolist(),
            "sps": round(self.steps_per_second()),
            "running": self.running,
        }

    def optimal(self) -> dict[str, Any]:
        """Value iteration's V* and its optimal actions (bit a set if action a is optimal), and
        the colour scale (the largest |V*|), cached until the map, slip or gamma change."""
        if self._optimal is None:
            try:
                # capped: with gamma = 1 a walled-off region with a step cost never converges
                plan = value_iteration(self.world.model, self.settings["gamma"], max_iterations=20_000)
            except ConfigError as exc:
                self._optimal = {"error": str(exc), "scale": 1.0}
                return self._optimal
            cells = self.world.rows * self.world.cols
            optimal = plan.optimal_actions()[:cells]
            bits = (optimal * (1 << np.arange(optimal.shape[1]))).sum(axis=1)
            # the scale over the states an episode can reach: DeepSea's out-of-reach cells (column >
            # row) follow the same rules and value iteration gives them values no agent sees
            v_seen = plan.v[reachable(self.world.model)]
            self._optimal = {
                "v": np.round(plan.v[:cells], 4).tolist(),
                "actions": bits.astype(int).tolist(),
                "scale": float(max(np.abs(v_seen).max(), 1e-6)),
            }
        return self._optimal

    def preset_name(self) -> str:
        """The preset the world is, or "custom" once the map has been edited."""
        for key, p in PRESETS.items():
            if p is self.preset and (p.world != "gridworld" or list(p.layout) == self.layout):
                return key
        return "custom"

    def state(self) -> dict[str, Any]:
        """Everything that changes only on a message: settings, map, choices, the optimal overlay."""
        w = self.world
        return {
            "type": "state",
            "epoch": self.epoch,
            "settings": dict(self.settings),
            "layout": list(w.layout),
            "rows": w.rows,
            "cols": w.cols,
            "start": w.start_state,
            "rewards": dict(w.rewards),
            "world": w.describe(),
            "actions": self.learner.n_actions,
            "action_dirs": w.action_dirs().ravel().tolist(),
            "preset": self.preset_name(),
            "preset_note": self.preset.note,
            "running": self.running,
            "show_optimal": self.show_optimal,
            "show_visits": self.show_visits,
            "optimal": self.optimal() if self.show_optimal else None,
            "scale": self.optimal()["scale"],
            "choices": {
                "speeds": list(SPEEDS),
                "algorithms": list(ALGORITHMS),
                "tie_breaks": list(TIE_BREAKS),
                "bonuses": list(BONUSES),
                "presets": {k: p.title for k, p in PRESETS.items()},
                "preset_sizes": {k: [*p.sizes, p.default_size] for k, p in PRESETS.items() if p.sizes},
                "directions": [[dx, dy, name] for dx, dy, name in DIRECTIONS],
                "max_side": MAX_SIDE,
            },
        }
