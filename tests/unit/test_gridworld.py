"""GridWorld: Gymnasium contract, dynamics, rewards, rendering, model arrays and layout errors."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlworks  # noqa: F401  (registers rlworks/GridWorld-v0)
from rlworks.config import ConfigError
from rlworks.envs import DEFAULT_LAYOUT, GRIDWORLD_ID, GridWorld

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
OPEN = "S....\n.....\n.....\n.....\n....G"  # 5x5, no walls


def cell(env: GridWorld, r: int, c: int) -> int:
    return r * env.n_cols + c


def place(env: GridWorld, r: int, c: int) -> None:
    env.reset(seed=0)
    env.s = cell(env, r, c)


# ---------------------------------------------------------------------------------- contract


def test_check_env_unwrapped():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no spec, cannot test other render modes"
        check_env(GridWorld(), skip_render_check=False)
        check_env(GridWorld("S.W\n..G", slip=0.3, wall_terminal=True))


def test_check_env_via_make():
    env = gym.make(GRIDWORLD_ID)
    check_env(env.unwrapped)
    env = gym.make(GRIDWORLD_ID, render_mode="rgb_array")
    check_env(env.unwrapped)


def test_registered_on_import():
    assert GRIDWORLD_ID in gym.registry
    spec = gym.registry[GRIDWORLD_ID]
    assert spec.max_episode_steps == 100
    env = gym.make(GRIDWORLD_ID)
    assert isinstance(env.unwrapped, GridWorld)
    assert env.unwrapped.layout == DEFAULT_LAYOUT


def test_import_rlworks_is_what_registers():
    code = (
        "import gymnasium as gym; assert 'rlworks/GridWorld-v0' not in gym.registry; "
        "import rlworks; assert 'rlworks/GridWorld-v0' in gym.registry; gym.make('rlworks/GridWorld-v0')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_make_with_layout_and_kwargs():
    env = gym.make(GRIDWORLD_ID, layout="S..\n.W.\n..G", slip=0.0)
    base = env.unwrapped
    assert (base.n_rows, base.n_cols) == (3, 3)
    assert env.observation_space == gym.spaces.Discrete(9)
    assert env.action_space == gym.spaces.Discrete(4)
    obs, info = env.reset(seed=1)
    assert obs == 0 and info == {}
    # right, right, down, down reaches the goal at (2, 2)
    for a, expect in ((RIGHT, 1), (RIGHT, 2), (DOWN, 5)):
        obs, r, term, trunc, _ = env.step(a)
        assert (obs, r, term, trunc) == (expect, 0.0, False, False)
    obs, r, term, trunc, _ = env.step(DOWN)
    assert (obs, r, term, trunc) == (8, 1.0, True, False)


def test_default_world_is_the_labs_5x5():
    env = GridWorld()
    assert env.grid.shape == (5, 5)
    assert env.grid[0, 0] == "S" and env.start_state == 0
    assert (env.grid == "G").sum() == 1 and env.grid[4, 4] == "G"
    assert (env.grid == "W").sum() >= 3


# ---------------------------------------------------------------------------------- dynamics


def test_step_goal_and_wall_rewards():
    env = GridWorld("S.WG\n....", step_reward=-0.04, goal_reward=2.0, wall_reward=-3.0)
    env.reset(seed=0)
    assert env.step(RIGHT)[:4] == (1, -0.04, False, False)  # floor
    assert env.step(RIGHT)[:4] == (1, -3.0, False, False)  # wall bumps: stays put, pays
    assert env.step(UP)[:4] == (1, -0.04, False, False)  # border bumps at the step cost
    place(env, 1, 3)
    assert env.step(UP)[:4] == (3, 2.0, True, False)  # goal


def test_several_goals():
    env = GridWorld("G.S.G")
    place(env, 0, 1)
    assert env.step(LEFT)[:3] == (0, 1.0, True)
    place(env, 0, 3)
    assert env.step(RIGHT)[:3] == (4, 1.0, True)
    assert env.terminal.tolist() == [True, False, False, False, True]


def test_wall_bump_vs_wall_terminal():
    bump = GridWorld("SWG\n...")
    bump.reset(seed=0)
    s, r, term, _, _ = bump.step(RIGHT)
    assert (s, r, term) == (0, -1.0, False)
    pit = GridWorld("SWG\n...", wall_terminal=True)
    pit.reset(seed=0)
    s, r, term, _, _ = pit.step(RIGHT)
    assert (s, r, term) == (1, -1.0, True)
    assert pit.terminal[1] and not bump.terminal[1]


def test_invalid_action_rejected():
    env = GridWorld()
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(4)


@pytest.mark.parametrize("action", [RIGHT, DOWN])
def test_slip_frequencies_match_model(action):
    """Empirical next-cell frequencies from the centre of an open grid match (1 - slip, slip/2, slip/2)."""
    slip, n = 0.3, 6000
    env = GridWorld(OPEN, slip=slip)
    centre = cell(env, 2, 2)
    env.reset(seed=123)
    counts: dict[int, int] = {}
    for _ in range(n):
        env.s = centre
        s2 = env.step(action)[0]
        counts[s2] = counts.get(s2, 0) + 1
    expected = {int(s2): p for s2, p in enumerate(env.P[centre, action]) if p > 0}
    assert set(counts) == set(expected)
    # the intended move with 1 - slip, each perpendicular one with slip / 2
    by_hand = {
        RIGHT: {cell(env, 2, 3): 1 - slip, cell(env, 1, 2): slip / 2, cell(env, 3, 2): slip / 2},
        DOWN: {cell(env, 3, 2): 1 - slip, cell(env, 2, 3): slip / 2, cell(env, 2, 1): slip / 2},
    }[action]
    assert expected == pytest.approx(by_hand)
    for s2, p in expected.items():
        sd = np.sqrt(p * (1 - p) / n)
        assert abs(counts[s2] / n - p) < 4 * sd, (s2, counts[s2] / n, p)


def test_slip_is_seeded():
    def run(seed):
        env = GridWorld(OPEN, slip=0.5)
        env.reset(seed=seed)
        out = []
        for _ in range(50):
            env.s = 12
            out.append(env.step(RIGHT)[0])
        return out

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_max_episode_steps_truncates():
    env = gym.make(GRIDWORLD_ID, max_episode_steps=3)
    env.reset(seed=0)
    for i in range(3):
        _, _, term, trunc, _ = env.step(UP)  # bumps the border forever
        assert not term
        assert trunc == (i == 2)
    env = gym.make(GRIDWORLD_ID)  # the registered default: 100
    env.reset(seed=0)
    truncs = [env.step(UP)[3] for _ in range(100)]
    assert truncs[-1] and not any(truncs[:-1])


# ---------------------------------------------------------------------------------- rendering


def test_render_ansi():
    env = GridWorld("S..\n.W.\n..G", render_mode="ansi")
    env.reset(seed=0)
    assert env.render() == "A..\n.W.\n..G\n"
    env.step(RIGHT)
    assert env.render() == "SA.\n.W.\n..G\n"


def test_render_rgb_array():
    env = gym.make(GRIDWORLD_ID, layout="S..\n.W.\n..G", render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert img.shape == (3 * 32, 3 * 32, 3) and img.dtype == np.uint8
    indigo = (79, 70, 229)
    assert tuple(img[16, 16]) == indigo  # the agent's cell centre
    assert tuple(img[48, 48]) != indigo  # the wall's centre
    env.step(RIGHT)
    img = env.render()
    assert tuple(img[16, 48]) == indigo and tuple(img[16, 16]) != indigo
    assert tuple(img[80, 80]) == (249, 115, 22)  # orange goal


def test_render_none_and_bad_mode():
    assert GridWorld().render() is None
    with pytest.raises(ConfigError, match="render_mode"):
        GridWorld(render_mode="human")


# ---------------------------------------------------------------------------------- model


@pytest.mark.parametrize("slip", [0.0, 0.2])
@pytest.mark.parametrize("wall_terminal", [False, True])
def test_model_arrays(slip, wall_terminal):
    env = GridWorld(DEFAULT_LAYOUT, step_reward=-0.01, wall_terminal=wall_terminal, slip=slip)
    S = env.n_rows * env.n_cols
    assert env.P.shape == (S, 4, S) and env.R.shape == (S, 4) and env.terminal.shape == (S,)
    np.testing.assert_allclose(env.P.sum(axis=2), 1.0, atol=1e-12)
    assert (env.P >= 0).all()
    goals = env.grid.ravel() == "G"
    walls = env.grid.ravel() == "W"
    np.testing.assert_array_equal(env.terminal, goals | (walls if wall_terminal else False))
    # R[s, a] equals the expected reward of stepping the env from s with a
    for s in range(S):
        if env.terminal[s] or walls[s]:
            continue
        for a in range(4):
            if slip == 0.0:
                env.reset(seed=0)
                env.s = s
                s2, r, term, _, _ = env.step(a)
                assert env.P[s, a, s2] == 1.0
                assert r == pytest.approx(env.R[s, a])
                assert term == bool(env.terminal[s2])
    # with slip, the expected reward mixes the three outcomes
    if slip:
        s = env.start_state  # (0, 0): up and left bump the border
        exp_right = (1 - slip) * -0.01 + slip / 2 * -0.01 + slip / 2 * -0.01
        assert env.R[s, RIGHT] == pytest.approx(exp_right)


def test_model_r_with_walls():
    env = GridWorld("SW\n.G", step_reward=-0.1, wall_reward=-5.0)
    assert env.R[0, RIGHT] == -5.0 and env.P[0, RIGHT, 0] == 1.0
    assert env.R[0, DOWN] == -0.1
    assert env.R[2, RIGHT] == 1.0


# ---------------------------------------------------------------------------------- layout errors


@pytest.mark.parametrize(
    "layout, needles",
    [
        ("S..\n..\n..G", ["row 1", "2 cells", "row 0 has 3", "same length"]),
        ("S.X\n..G", ["row 0, column 2", "unknown character 'X'", "allowed"]),
        ("...\n..G", ["no start", "'S'"]),
        ("S.S\n..G", ["more than one start", "row 0, column 0", "row 0, column 2"]),
        ("S..\n...", ["no goal", "'G'"]),
        ("S.W\n.WG", ["row 1, column 2", "unreachable", "row 0, column 0"]),
        ("", ["empty"]),
    ],
    ids=["ragged", "unknown-char", "no-start", "two-starts", "no-goal", "unreachable", "empty"],
)
def test_malformed_layout(layout, needles):
    with pytest.raises(ConfigError) as info:
        GridWorld(layout)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_malformed_layout_through_make():
    with pytest.raises(ConfigError, match="unreachable"):
        gym.make(GRIDWORLD_ID, layout="SW.\nW..\n..G")


def test_goal_reached_through_other_goal_only_is_unreachable():
    # goals are terminal, so the inner goal cannot be passed through to reach the far one;
    # that is fine as long as one goal is reachable
    env = GridWorld("SGWG")
    assert env.terminal.tolist() == [False, True, False, True]


@pytest.mark.parametrize("kwargs", [{"slip": 1.5}, {"slip": -0.1}, {"step_reward": float("nan")}])
def test_bad_parameters(kwargs):
    with pytest.raises(ConfigError):
        GridWorld(**kwargs)
