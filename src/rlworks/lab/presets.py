"""Preset maps for the lab, each with the reward scheme it is known by.

``S`` start, ``G`` goal, ``W`` wall, ``.`` floor (see ``rlworks.envs.gridworld``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rlworks.envs.gridworld import DEFAULT_LAYOUT


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

    def env_kwargs(self) -> dict:
        """The reward keyword arguments of ``GridWorld`` for this preset."""
        return {
            "step_reward": self.step_reward,
            "goal_reward": self.goal_reward,
            "wall_reward": self.wall_reward,
            "wall_terminal": self.wall_terminal,
        }


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
}
