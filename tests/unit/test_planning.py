"""Exact planning: value iteration and policy iteration against each other and known values."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rlworks  # noqa: F401
from rlworks.config import ConfigError
from rlworks.envs import GridWorld
from rlworks.tabular import PlanResult, TabularModel, policy_iteration, value_iteration
from rlworks.tabular.planning import backup


def envs():
    return {
        "gridworld": lambda: GridWorld(),
        "gridworld-slip": lambda: GridWorld(slip=0.2, step_reward=-0.01),
        "gridworld-pits": lambda: GridWorld(wall_terminal=True, slip=0.1),
        "frozenlake": lambda: gym.make("FrozenLake-v1", is_slippery=False),
        "frozenlake-slippery": lambda: gym.make("FrozenLake-v1"),
        "frozenlake8x8-slippery": lambda: gym.make("FrozenLake8x8-v1"),
        "cliffwalking": lambda: gym.make("CliffWalking-v1"),
        "taxi": lambda: gym.make("Taxi-v4"),
    }


@pytest.mark.parametrize("name", list(envs()))
def test_value_and_policy_iteration_agree(name):
    env = envs()[name]()
    gamma = 0.95
    vi = value_iteration(env, gamma)
    pi = policy_iteration(env, gamma)
    assert isinstance(vi, PlanResult) and isinstance(pi, PlanResult)
    np.testing.assert_allclose(vi.v, pi.v, atol=1e-7)
    np.testing.assert_allclose(vi.q, pi.q, atol=1e-7)
    # every action either picks is optimal for the other
    idx = np.arange(len(vi.v))
    assert vi.optimal_actions()[idx, pi.policy].all()
    assert pi.optimal_actions()[idx, vi.policy].all()


@pytest.mark.parametrize("name", list(envs()))
def test_bellman_optimality_residual(name):
    env = envs()[name]()
    model = TabularModel.from_env(env)
    gamma = 0.9
    res = value_iteration(env, gamma)
    q = backup(model, res.v, gamma)
    live = ~model.terminal
    np.testing.assert_allclose(q[live], res.q[live], atol=1e-9)
    np.testing.assert_allclose(res.v[live], q[live].max(axis=1), atol=1e-9)
    np.testing.assert_array_equal(res.v[model.terminal], 0.0)
    assert res.policy.shape == res.v.shape
    idx = np.arange(len(res.v))
    np.testing.assert_allclose(res.q[idx, res.policy][live], res.v[live], atol=1e-9)


def test_corridor_closed_form():
    """In S....G with reward only at the goal, V(s) = gamma**(k-1) where k = steps to the goal."""
    gamma = 0.9
    env = GridWorld("S....G")
    res = value_iteration(env, gamma)
    for col in range(5):
        k = 5 - col
        assert res.v[col] == pytest.approx(gamma ** (k - 1), abs=1e-12)
    assert res.v[5] == 0.0
    assert (res.policy[:5] == 1).all()  # right
    # stepping left wastes two steps (there and back) unless the border bumps
    assert res.q[2, 3] == pytest.approx(gamma * gamma ** (4 - 1))
    assert res.q[0, 3] == pytest.approx(gamma * res.v[0])


def test_corridor_step_cost_gamma_one():
    env = GridWorld("S...G", step_reward=-1.0, goal_reward=0.0)
    res = value_iteration(env, 1.0)
    np.testing.assert_allclose(res.v[:4], [-3, -2, -1, 0])


def test_frozenlake_non_slippery_value():
    res = value_iteration(gym.make("FrozenLake-v1", is_slippery=False), 0.95)
    assert res.v[0] == pytest.approx(0.95**5)  # six moves to the goal


def test_frozenlake_slippery_known_value():
    # the optimal undiscounted success probability from the start of the 4x4 slippery lake is 0.8235...
    res = value_iteration(gym.make("FrozenLake-v1"), 1.0, tol=1e-12)
    assert res.v[0] == pytest.approx(0.8235, abs=1e-3)


def test_cliffwalking_optimal_return():
    res = value_iteration(gym.make("CliffWalking-v1"), 1.0)
    assert res.v[36] == pytest.approx(-13.0)  # up, 11 right, down; one step each


def test_taxi_values_finite_and_positive_from_start():
    env = gym.make("Taxi-v4")
    res = value_iteration(env, 0.99)
    model = TabularModel.from_env(env)
    starts = model.start > 0
    assert np.isfinite(res.v).all()
    assert (res.v[starts] > 0).all()  # every start can deliver for +20 in fewer than ~20 steps


def test_plan_on_model_directly():
    model = GridWorld().model
    a = value_iteration(model, 0.9)
    b = value_iteration(GridWorld(), 0.9)
    np.testing.assert_array_equal(a.v, b.v)


@pytest.mark.parametrize("gamma", [-0.1, 1.01, float("nan"), "x"])
@pytest.mark.parametrize("fn", [value_iteration, policy_iteration])
def test_gamma_out_of_range(fn, gamma):
    with pytest.raises(ConfigError, match="gamma"):
        fn(GridWorld(), gamma)


def test_env_without_model_is_rejected():
    with pytest.raises(ConfigError, match="does not expose its model"):
        value_iteration(gym.make("CartPole-v1"), 0.9)
