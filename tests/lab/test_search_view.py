"""The lab's search view: pUCT over the grid world's true model, the learner's ε-greedy policy as the
prior and its max-Q as leaf values."""

from __future__ import annotations

import numpy as np
import pytest

from rlworks.lab.presets import PRESETS
from rlworks.lab.protocol import ProtocolError, parse
from rlworks.lab.search_view import search_from
from rlworks.lab.session import LabSession
from rlworks.tabular.planning import value_iteration

GAMMA = 0.95


def default_world(slip: float = 0.0):
    return PRESETS["default"].make_world(slip)


def floor_cells(world):
    return [(r, c) for r in range(world.rows) for c in range(world.cols) if world.layout[r][c] in ".S"]


def test_with_the_exact_q_the_search_chooses_an_optimal_action_everywhere():
    world = default_world()
    plan = value_iteration(world.model, GAMMA)  # what the "show optimal" overlay draws
    optimal = plan.optimal_actions()
    cells = floor_cells(world)
    assert len(cells) == 18
    for r, c in cells:
        out = search_from(world, plan.q, r, c, gamma=GAMMA, epsilon=0.2, simulations=64)
        s = r * world.cols + c
        assert optimal[s, out["action"]], (r, c, out)
        assert sum(out["visits"]) == 64
        assert out["root_value"] == pytest.approx(plan.v[s], abs=1e-3)
        # a visited child's Q is r + γ max Q(s') on the intended move: Q* itself here
        for a, q in enumerate(out["q"]):
            assert (q is None) == (out["visits"][a] == 0)
            if q is not None:
                assert q == pytest.approx(plan.q[s, a], abs=1e-3)


def test_with_q_all_zero_the_search_finds_the_goal_one_step_away():
    world = default_world()
    assert world.layout[4][4] == "G" and world.layout[3][4] == "."
    out = search_from(world, np.zeros((25, 4)), 3, 4, gamma=GAMMA, epsilon=0.2, simulations=32)
    assert out["action"] == 2  # down, into the goal
    assert out["q"][2] == pytest.approx(1.0)
    assert sum(out["visits"]) == 32 and out["visits"][2] == max(out["visits"])
    assert out["prior"] == [0.25] * 4  # every action ties on a zero Q
    assert out["note"] is None and (out["row"], out["col"]) == (3, 4)


@pytest.mark.parametrize("epsilon", [0.0, 0.2, 1.0])
def test_the_prior_is_the_learners_epsilon_greedy_policy(epsilon):
    world = default_world()
    q = np.zeros((25, 4))
    q[11] = [0.3, 0.9, 0.9, 0.1]  # row 2, col 1: two tied greedy actions, 1 - ε split between them
    out = search_from(world, q, 2, 1, gamma=GAMMA, epsilon=epsilon, simulations=16)
    expected = [epsilon / 4, epsilon / 4 + (1 - epsilon) / 2, epsilon / 4 + (1 - epsilon) / 2, epsilon / 4]
    assert out["prior"] == pytest.approx(expected)
    assert sum(out["visits"]) == 16
    if epsilon == 0.0:  # no prior mass, no value: ↑ and ← are never tried
        assert out["visits"][0] == out["visits"][3] == 0 and out["q"][0] is None


def test_visits_sum_to_the_simulations_asked_for():
    world = default_world()
    q = np.random.default_rng(0).normal(size=(25, 4))
    for sims in (1, 8, 100, 512):
        assert sum(search_from(world, q, 0, 0, gamma=GAMMA, epsilon=0.2, simulations=sims)["visits"]) == sims


@pytest.mark.parametrize(
    "row, col, words",
    [(1, 1, "row 1, column 1 is a wall"), (4, 4, "row 4, column 4 is a goal"), (5, 0, "outside the 5x5 map")],
)
def test_walls_goals_and_cells_off_the_map_are_refused(row, col, words):
    with pytest.raises(ProtocolError, match=words) as err:
        search_from(default_world(), np.zeros((25, 4)), row, col, gamma=GAMMA, epsilon=0.2)
    assert "\n" not in str(err.value)


def test_deepsea_is_refused():
    world = PRESETS["deepsea"].make_world(0.0, 6)
    with pytest.raises(ProtocolError, match="grid-world maps only") as err:
        search_from(world, np.zeros((37, 2)), 1, 0, gamma=1.0, epsilon=0.2)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("slip", [0.4, 1.0])
def test_slip_gives_the_note_and_plans_on_intended_moves(slip):
    plain = search_from(default_world(), np.zeros((25, 4)), 3, 4, gamma=GAMMA, epsilon=0.2)
    slippery = search_from(default_world(slip), np.zeros((25, 4)), 3, 4, gamma=GAMMA, epsilon=0.2)
    assert "intended moves only" in slippery["note"] and f"slip is {slip:g}" in slippery["note"]
    # the intended move into the goal pays 1, as without slip (at slip 1 the model never makes the intended move)
    assert slippery["q"][2] == pytest.approx(1.0) and slippery["visits"] == plain["visits"]


def test_the_session_searches_its_own_q_and_settings():
    s = LabSession(seed=0)
    s.handle(parse('{"type": "set", "epsilon": 0.5, "gamma": 0.8}'))
    s.learner.q[:] = 0.0
    s.learner.q[0] = [0.0, 0.4, 0.0, 0.0]  # greedy → at the start
    (out,) = s.handle(parse('{"type": "search", "row": 0, "col": 0, "simulations": 8}'))
    assert out["type"] == "search" and out["epsilon"] == 0.5 and out["gamma"] == 0.8
    assert out["prior"] == pytest.approx([0.125, 0.625, 0.125, 0.125]) and sum(out["visits"]) == 8
    (out,) = s.handle(parse('{"type": "search", "row": 0, "col": 0}'))
    assert out["simulations"] == sum(out["visits"]) == 32  # the default
    s.handle(parse('{"type": "preset", "name": "deepsea"}'))
    with pytest.raises(ProtocolError, match="grid-world maps only"):
        s.handle(parse('{"type": "search", "row": 1, "col": 0}'))
