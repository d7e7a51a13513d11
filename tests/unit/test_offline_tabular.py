"""Offline RL shown exactly (rlworks.offline.tabular): naive offline Q-learning overestimates the actions the
data never took; tabular CQL keeps them below the exact values of the data's MDP."""

from __future__ import annotations

import numpy as np
import pytest

from rlworks.envs.gridworld import GridWorld
from rlworks.offline.tabular import (
    behaviour_policy,
    collect,
    empirical_model,
    offline_cql,
    offline_q_learning,
    policy_return,
    q_star_of_data,
)

GAMMA = 0.9


@pytest.fixture(scope="module")
def setup():
    # Cost-to-go grid: -1 per step, 0 on entering the goal, so every exact value is negative and an
    # untouched q_init = 0 is an overestimate. The data only ever goes right or down.
    model = GridWorld(step_reward=-1.0, goal_reward=0.0).model
    S, A = model.n_states, model.n_actions
    data = collect(model, behaviour_policy(S, A, (1, 2)), episodes=50, seed=0, max_steps=15)
    emp = empirical_model(data, S, A)
    exact = q_star_of_data(emp, model, GAMMA)
    unseen = ~emp.seen & emp.seen.any(axis=1, keepdims=True)  # actions never taken at states the data visits
    return model, data, emp, exact, unseen


def test_empirical_model_equals_the_true_model_on_the_data_support(setup):
    model, data, emp, _, _ = setup
    visited = emp.seen.any(axis=1)
    assert visited.sum() == 18  # every floor cell but the goal
    assert (emp.seen[visited] == np.array([False, True, True, False])).all()  # exactly the behaviour's actions
    np.testing.assert_allclose(emp.model.P[emp.seen], model.P[emp.seen])
    np.testing.assert_allclose(emp.model.R[emp.seen], model.R[emp.seen])
    assert emp.counts.sum() == len(data)


def test_q_star_of_data_is_the_restricted_optimum(setup):
    model, _, emp, exact, unseen = setup
    # The data-optimal policy uses data actions only; here right/down is also truly optimal from the start.
    visited = emp.seen.any(axis=1)
    assert emp.seen[np.arange(model.n_states), exact.policy][visited].all()
    assert policy_return(model, exact.policy, GAMMA) == pytest.approx(-(1 - GAMMA**7) / (1 - GAMMA), abs=1e-8)
    assert (exact.q[unseen] <= -1.0).all()  # a step costs 1 and no value is positive


def test_naive_offline_q_learning_overestimates_every_unseen_action(setup):
    model, data, emp, exact, unseen = setup
    q = offline_q_learning(data, model.n_states, model.n_actions, gamma=GAMMA)
    assert (q[unseen] - exact.q[unseen] >= 1.0).all()
    # Bootstrapping off those values carries the error into the data's own actions: 32 of the 36 seen pairs
    # (all but the moves into the goal and the bump beside it) end above their exact value.
    assert ((q - exact.q)[emp.seen] > 0.5).sum() >= 30
    greedy = q.argmax(axis=1)
    visited = emp.seen.any(axis=1)
    assert not emp.seen[np.arange(model.n_states), greedy][visited].any()  # it picks an unseen action everywhere
    assert policy_return(model, greedy, GAMMA) == pytest.approx(-1 / (1 - GAMMA), abs=1e-6)  # bumps forever
    assert policy_return(model, exact.policy, GAMMA) > policy_return(model, greedy, GAMMA) + 4.0


def test_cql_stays_below_the_exact_values_of_unseen_actions(setup):
    model, data, emp, exact, unseen = setup
    q = offline_cql(data, model.n_states, model.n_actions, gamma=GAMMA, alpha_cql=1.0)
    assert (q[unseen] < exact.q[unseen] - 1.0).all()
    greedy = q.argmax(axis=1)
    visited = emp.seen.any(axis=1)
    assert emp.seen[np.arange(model.n_states), greedy][visited].all()  # only actions the data contains
    assert policy_return(model, greedy, GAMMA) == pytest.approx(policy_return(model, exact.policy, GAMMA), abs=1e-8)


def test_cql_with_alpha_zero_is_naive_and_breaks_the_bound(setup):
    model, data, _, exact, unseen = setup
    q0 = offline_cql(data, model.n_states, model.n_actions, gamma=GAMMA, alpha_cql=0.0)
    np.testing.assert_array_equal(q0, offline_q_learning(data, model.n_states, model.n_actions, gamma=GAMMA))
    assert (q0[unseen] > exact.q[unseen]).all()


def test_cql_is_not_a_pointwise_bound_on_seen_actions(setup):
    # CQL(H)'s push-up on data actions lifts a data action that is worse than the best one above its exact
    # value (the fixed point is y - alpha_cql * (softmax/pi_beta - 1), positive where softmax < pi_beta):
    # documented in docs/offline.md. Kumar et al.'s Thm 3.2 bounds the softmax policy's value, not each Q(s, a).
    model, data, emp, exact, _ = setup
    q = offline_cql(data, model.n_states, model.n_actions, gamma=GAMMA, alpha_cql=1.0)
    s_next_to_goal = 3 * 5 + 4  # row 3, column 4: down enters the goal (0), right bumps the border (-1)
    assert exact.q[s_next_to_goal, 1] == pytest.approx(-1.0)
    assert q[s_next_to_goal, 1] > exact.q[s_next_to_goal, 1]
    assert q[s_next_to_goal, 2] <= exact.q[s_next_to_goal, 2]


def test_same_seed_same_data_and_tables():
    model = GridWorld(step_reward=-1.0, goal_reward=0.0).model
    pi = behaviour_policy(model.n_states, model.n_actions, (1, 2))
    a, b = (collect(model, pi, episodes=5, seed=3, max_steps=15) for _ in range(2))
    c = collect(model, pi, episodes=5, seed=4, max_steps=15)
    for name in ("obs", "actions", "rewards", "next_obs", "terminations", "truncations"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert len(a) != len(c) or not np.array_equal(a.actions, c.actions)
    q1 = offline_cql(a, model.n_states, model.n_actions, sweeps=50)
    q2 = offline_cql(b, model.n_states, model.n_actions, sweeps=50)
    assert q1.tobytes() == q2.tobytes()
