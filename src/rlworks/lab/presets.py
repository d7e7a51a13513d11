"""Preset worlds for the lab, each with the reward scheme it is known by.

Grid-world presets are maps: ``S`` start, ``G`` goal, ``W`` wall, ``.`` floor (see
``rlworks.envs.gridworld``). A DeepSea preset has a size the user picks instead of a map. A
preset may also set learner settings (the DeepSea pair differ only in how they explore).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlworks.envs.gridworld import DEFAULT_LAYOUT
from rlworks.lab.worlds import DeepSeaMap, GridMap

#: DeepSea sizes the lab offers: the count-bonus preset sweeps N = 30 in about 1,800 episodes.
DEEPSEA_SIZES = (4, 30)


@dataclass(frozen=True)
class Preset:
    title: str
    layout: tuple[str, ...]
    note: str
    step_reward: float = 0.0
    goal_reward: float = 1.0
    wall_reward: float = -1.0
    #: walls are pits that end the episode (the cliff) rather than bumpers
    wall_terminal: bool = False
    #: "gridworld" (the map above) or "deepsea" (an N x N DeepSea; ``layout`` is unused)
    world: str = "gridworld"
    #: (smallest, largest) size the user may pick, for worlds built from a size; None: fixed map
    sizes: tuple[int, int] | None = None
    default_size: int = 0
    #: learner settings chosen with the preset (as the "set" message's fields)
    settings: dict[str, Any] = field(default_factory=dict)

    def env_kwargs(self) -> dict:
        """The reward keyword arguments of ``GridWorld`` for this preset."""
        return {
            "step_reward": self.step_reward,
            "goal_reward": self.goal_reward,
            "wall_reward": self.wall_reward,
            "wall_terminal": self.wall_terminal,
        }

    def make_world(self, slip: float, size: int | None = None) -> GridMap | DeepSeaMap:
        """The preset's world; ``size`` only for presets with ``sizes`` (ValueError otherwise)."""
        if self.sizes is None:
            if size is not None:
                raise ValueError(f"the preset {self.title!r} is a fixed map: it takes no size")
            return GridMap(list(self.layout), self.env_kwargs(), slip)
        size = self.default_size if size is None else size
        lo, hi = self.sizes
        if not lo <= size <= hi:
            raise ValueError(f"size={size} is out of range for {self.title!r}: allowed {lo}..{hi}")
        return DeepSeaMap(size)


PRESETS: dict[str, Preset] = {
    "default": Preset(
        "5×5 (the seed's world)",
        tuple(DEFAULT_LAYOUT.split("\n")),
        "+1 at the goal, −1 for stepping on a wall, 0 otherwise.",
    ),
    # Sutton & Barto (2018), Example 6.6: -1 per step, -100 for the cliff. The book sends the agent
    # back to the start; here the cliff ends the episode, which teaches the same lesson (Q-learning
    # walks the edge, SARSA with epsilon > 0 keeps away from it).
    "cliff": Preset(
        "Cliff walking (S&B Ex. 6.6)",
        ("............", "............", "............", "SWWWWWWWWWWG"),
        "−1 per step, −100 for falling off the cliff (grey), which ends the episode.",
        step_reward=-1.0,
        goal_reward=0.0,
        wall_reward=-100.0,
        wall_terminal=True,
    ),
    # Sutton & Barto (2018), Figure 8.2: the Dyna maze, +1 at G, 0 otherwise, gamma 0.95.
    "dyna-maze": Preset(
        "Dyna maze (S&B Fig. 8.2)",
        (".......WG", "..W....W.", "S.W....W.", "..W......", ".....W...", "........."),
        "+1 at the goal, 0 otherwise: try Dyna-Q with 5 or 50 planning steps.",
        wall_reward=0.0,
    ),
    # Sutton, Precup & Singh (1999), the four-rooms domain without its outer wall (the border
    # already bumps).
    "four-rooms": Preset(
        "Four rooms (Sutton, Precup & Singh 1999)",
        (
            "S....W.....",
            ".....W.....",
            "...........",
            ".....W.....",
            ".....W.....",
            "W.WWWW.....",
            ".....WWW.WW",
            ".....W.....",
            ".....W.....",
            "...........",
            ".....W....G",
        ),
        "+1 at the goal, −1 for bumping a wall: the doorways are the bottlenecks.",
    ),
    # bsuite's deep_sea (Osband et al. 2020): N rows, one down per step, "right" costs 0.01 / N
    # and only N rights in a row find the +1. The pair below differ only in how they explore:
    # with ties broken at random a fresh epsilon-greedy agent finds the treasure with probability
    # 2^-N per episode, and once Q has learnt that "left" is free, with (epsilon / 2)^N; the count
    # bonus (MBIE-EB / UCB-Hoeffding style, rlworks.tabular.learner) with optimistic Q = 1 visits
    # every reachable cell within 83-88 episodes at N = 8, 141-148 at N = 10 (learner seeds 0-9),
    # ~720 at N = 20 and ~1,785 at N = 30 (seeds 0-1); the treasure cell is the last one found.
    # Optimistic Q alone sweeps a deterministic sea faster still (82-93 episodes at N = 10); the
    # bonus with Q starting at 0 never does (docs/lab.md has the measurements).
    "deepsea": Preset(
        "DeepSea (bsuite): ε-greedy",
        (),
        "One row down per step; “right” costs 0.01/N, +1 for N rights in a row. ε-greedy "
        "keeps close to the left edge: switch on “colour by visit count”.",
        world="deepsea",
        sizes=DEEPSEA_SIZES,
        default_size=10,
        settings={"epsilon": 0.2, "alpha": 0.5, "gamma": 1.0, "bonus": "none", "q_init": 0.0},
    ),
    "deepsea-ucb": Preset(
        "DeepSea: count bonus + optimistic Q",
        (),
        "The same sea, explored with a UCB count bonus c/√N(s,a) and Q starting at 1 (ε = 0): "
        "the visit counts sweep the whole triangle and then the agent goes for the treasure.",
        world="deepsea",
        sizes=DEEPSEA_SIZES,
        default_size=10,
        settings={"epsilon": 0.0, "alpha": 0.5, "gamma": 1.0, "bonus": "ucb", "bonus_c": 0.1, "q_init": 1.0},
    ),
}
