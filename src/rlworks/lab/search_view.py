"""The lab's search view: rlworks' pUCT search run from one cell of a grid world.

The search is the one MuZero and AlphaZero use (``rlworks.search.puct_search``), with the tabular
learner standing in for their network and the world's true model for their dynamics:

* the model: the intended move's outcome (next cell, reward, whether the episode ends). With slip
  the search plans on intended moves only, and the result's ``note`` says so;
* the embedding is the cell index; a transition's discount is γ, and 0 when it ends the episode;
* a node's value is the learner's max_a Q(s, a) (0 at a terminal cell);
* a node's prior is the learner's own ε-greedy policy there: ε spread evenly over the actions and
  1 − ε split evenly between the tied greedy ones.

One root, no root noise: the same Q, settings and cell always give the same search.
``rlworks eval RUN --show-search OUT.png`` draws the same picture for MuZero and AlphaZero agents.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlworks.envs.gridworld import ACTION_ARROWS
from rlworks.lab.protocol import ProtocolError
from rlworks.search import PUCTConfig, RootOutput, StepOutput, puct_search

#: no Dirichlet noise at the root: the view shows what the search makes of the learner, repeatably
CONFIG = PUCTConfig(exploration_fraction=0.0)
DEFAULT_SIMULATIONS = 32


def epsilon_greedy(q: np.ndarray, epsilon: float) -> np.ndarray:
    """(S, A) the ε-greedy policy of each row of Q: ties between the best actions split evenly
    (exact ties, as the learner's own tie-breaking counts them)."""
    best = q == q.max(axis=1, keepdims=True)
    return epsilon / q.shape[1] + (1.0 - epsilon) * best / best.sum(axis=1, keepdims=True)


def search_from(
    world, q: np.ndarray, row: int, col: int, *, gamma: float, epsilon: float, simulations: int = DEFAULT_SIMULATIONS
) -> dict[str, Any]:
    """Search from the cell (row, col) of a grid-world map (``worlds.GridMap``) with the learner's
    ``q`` (S, 4); return the root's children as JSON-able lists. ProtocolError (one line) for a
    DeepSea world, a cell outside the map, a wall or a goal."""
    if world.kind != "gridworld":
        raise ProtocolError("the search view draws grid-world maps only: pick a grid-world preset")
    if not (0 <= row < world.rows and 0 <= col < world.cols):
        raise ProtocolError(f"search: row {row}, column {col} is outside the {world.rows}x{world.cols} map")
    ch = world.layout[row][col]
    if ch == "W":
        raise ProtocolError(f"search: row {row}, column {col} is a wall: click a floor cell")
    if ch == "G":
        raise ProtocolError(f"search: row {row}, column {col} is a goal, where the episode ends: click a floor cell")

    slip = float(world.env.slip)
    # intended moves only: rebuilt without slip (at slip 1 the world's model never makes the intended move)
    model = world.model if slip == 0 else world.with_slip(0.0).model
    q = np.asarray(q, dtype=np.float64)  # (S, 4): the learner is built on this world's model
    next_cell = torch.as_tensor(model.next_states[:, :, 0])
    reward = torch.as_tensor(model.rewards[:, :, 0])
    discount = torch.as_tensor(np.where(model.dones[:, :, 0], 0.0, gamma))
    value = torch.as_tensor(np.where(model.terminal, 0.0, q.max(axis=1)))
    prior = epsilon_greedy(q, epsilon)
    logits = torch.log(torch.as_tensor(prior))  # -inf where ε = 0 leaves an action no mass

    def recurrent_fn(cell: torch.Tensor, action: torch.Tensor) -> StepOutput:
        nxt = next_cell[cell, action]
        return StepOutput(reward=reward[cell, action], discount=discount[cell, action], prior_logits=logits[nxt],
                          value=value[nxt], embedding=nxt)  # fmt: skip

    s = row * world.cols + col
    root = RootOutput(prior_logits=logits[[s]], value=value[[s]], embedding=torch.tensor([s]))
    result = puct_search(root, recurrent_fn, simulations, config=CONFIG)

    visits = result.visit_counts[0].round().long().tolist()
    q_root = result.q_values[0].tolist()
    return {
        "type": "search",
        "row": row,
        "col": col,
        "simulations": simulations,
        "actions": list(ACTION_ARROWS),
        "prior": [round(float(p), 4) for p in prior[s]],
        "visits": visits,
        "q": [round(v, 4) if n > 0 else None for v, n in zip(q_root, visits)],
        "root_value": round(float(result.root_value[0]), 4),
        "action": int(result.action[0]),
        "gamma": gamma,
        "epsilon": epsilon,
        "note": f"slip is {slip:g}: the search plans on intended moves only (no slips)" if slip > 0 else None,
    }
