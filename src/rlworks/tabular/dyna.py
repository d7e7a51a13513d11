"""Dyna-Q (Sutton 1990; Sutton & Barto, section 8.2): Q-learning plus n planning backups per real
step, replayed from a learned model of the transitions seen so far (the last outcome of each
(s, a), exact on a deterministic world). The compiled kernel runs both in one loop."""

from __future__ import annotations

import gymnasium as gym

from rlworks.tabular.td import _DOC_ARGS, TabularResult, learn


def dyna_q(
    env: gym.Env | str, *, episodes: int, planning_steps: int = 5, alpha=0.1, gamma=0.95, epsilon=0.1, seed=0, **kw
) -> TabularResult:
    """Dyna-Q with ``planning_steps`` model backups after every real step (0 = Q-learning)."""
    return learn(
        "dyna-q", env, episodes=episodes, alpha=alpha, gamma=gamma, epsilon=epsilon, seed=seed,
        planning_steps=planning_steps, **kw,
    )  # fmt: skip


dyna_q.__doc__ = (dyna_q.__doc__ or "") + _DOC_ARGS + "        planning_steps: model backups per real step.\n"
