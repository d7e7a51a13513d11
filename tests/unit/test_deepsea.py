"""DeepSea (bsuite's deep-exploration chain): env contract, rules, the batched version."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlworks  # noqa: F401  (registers the envs)
from rlworks.config import ConfigError
from rlworks.envs import DEEPSEA_ID, DEEPSEA_INDEX_ID, DeepSea, DeepSeaBatch


def play(env: DeepSea, choose) -> tuple[float, int, list[float]]:
    """Run one episode with ``choose(row, col) -> action``; (return, length, rewards)."""
    env.reset()
    rewards, done = [], False
    while not done:
        _, r, done, truncated, _ = env.step(choose(env.row, env.col))
        assert not truncated
        rewards.append(r)
    return sum(rewards), len(rewards), rewards


@pytest.mark.parametrize("kwargs", [{}, {"obs_type": "index"}, {"size": 1}, {"size": 4, "render_mode": "rgb_array"},
                                    {"size": 4, "render_mode": "ansi"}])
def test_check_env(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # check_env reports some problems only as warnings
        check_env(gym.make(DEEPSEA_ID, **kwargs).unwrapped, skip_render_check=False)


def test_registered_ids_and_spaces():
    env = gym.make(DEEPSEA_ID, size=7)
    assert env.observation_space == gym.spaces.Box(0.0, 1.0, (7, 7), np.float32)
    assert env.action_space == gym.spaces.Discrete(2)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.sum() == 1.0 and obs[0, 0] == 1.0
    index_env = gym.make(DEEPSEA_INDEX_ID, size=7)
    assert index_env.observation_space == gym.spaces.Discrete(50)
    assert index_env.reset()[0] == 0


@pytest.mark.parametrize("size", [1, 5, 10, 30])
def test_optimal_return_by_always_right(size):
    env = DeepSea(size, mapping_seed=3)
    ret, length, rewards = play(env, env.right_action)
    assert env.optimal_return == pytest.approx(0.99)
    assert ret == pytest.approx(0.99, abs=1e-12) and length == size
    # each "right" costs 0.01 / N; the last one also finds the treasure
    np.testing.assert_allclose(rewards[:-1], -0.01 / size)
    assert rewards[-1] == pytest.approx(1.0 - 0.01 / size)
    assert env.col == size - 1


def test_right_costs_and_left_is_free():
    env = DeepSea(10, mapping_seed=0)
    env.reset()
    _, r, *_ = env.step(env.right_action(0, 0))
    assert r == pytest.approx(-0.001) and (env.row, env.col) == (1, 1)
    _, r, *_ = env.step(1 - env.right_action(1, 1))
    assert r == 0.0 and (env.row, env.col) == (2, 0)
    _, r, *_ = env.step(1 - env.right_action(2, 0))  # left at the wall stays in column 0
    assert r == 0.0 and (env.row, env.col) == (3, 0)


def test_always_left_gets_zero_and_missing_the_last_right_gets_no_treasure():
    env = DeepSea(8, mapping_seed=1)
    assert play(env, lambda r, c: 1 - env.right_action(r, c))[0] == 0.0
    ret, _, rewards = play(env, lambda r, c: env.right_action(r, c) if r < 7 else 1 - env.right_action(r, c))
    assert ret == pytest.approx(-7 * 0.01 / 8) and max(rewards) <= 0.0


@pytest.mark.parametrize("size", [1, 4, 10])
def test_episode_is_exactly_n_steps_and_ends_on_zeros(size):
    env = gym.make(DEEPSEA_ID, size=size)
    rng = np.random.default_rng(0)
    for _ in range(5):
        env.reset()
        for t in range(size):
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
            assert terminated == (t == size - 1) and not truncated
        assert not obs.any()  # bsuite's null observation after the last step
    index_env = gym.make(DEEPSEA_INDEX_ID, size=size)
    index_env.reset()
    for _ in range(size):
        s, *_ = index_env.step(0)
    assert s == size * size
    with pytest.raises(RuntimeError, match="reset"):
        env.unwrapped.step(0)


def test_mapping_is_random_per_cell_and_reproducible():
    a = DeepSea(20, mapping_seed=5).mapping
    assert a.shape == (20, 20) and set(np.unique(a)) == {0, 1}
    assert 0.4 < a.mean() < 0.6  # 400 fair coins
    # not a per-row or per-column rule: both actions mean "right" within a row and a column
    assert all(len(set(row)) == 2 for row in a[:5]) and all(len(set(col)) == 2 for col in a.T[:5])
    np.testing.assert_array_equal(a, DeepSea(20, mapping_seed=5).mapping)
    np.testing.assert_array_equal(a, gym.make(DEEPSEA_ID, size=20, mapping_seed=5).unwrapped.mapping)
    assert (a != DeepSea(20, mapping_seed=6).mapping).any()
    # reset's seed does not touch the mapping
    env = DeepSea(20, mapping_seed=5)
    env.reset(seed=123)
    np.testing.assert_array_equal(env.mapping, a)
    assert (DeepSea(20, randomize_actions=False).mapping == 1).all()


def test_random_policy_rarely_finds_the_treasure():
    env = DeepSea(10, mapping_seed=0)
    rng = np.random.default_rng(0)
    found = sum(play(env, lambda r, c: int(rng.integers(2)))[2][-1] > 0 for _ in range(2000))
    assert found < 20  # expected 2000 / 2**10 ≈ 2


def test_model_matches_the_env_and_plans_to_the_optimum():
    from rlworks.tabular import value_iteration

    env = DeepSea(6, mapping_seed=2, obs_type="index")
    m = env.model
    assert m.n_states == 37 and m.deterministic and m.terminal[36] and not m.terminal[:36].any()
    rng = np.random.default_rng(1)
    for _ in range(50):  # the model's transition = the env's step, on random walks
        s, _ = env.reset()
        done = False
        while not done:
            a = int(rng.integers(2))
            s2, r, done, _, _ = env.step(a)
            assert (m.next_states[s, a, 0], m.rewards[s, a, 0], m.dones[s, a, 0]) == (s2, pytest.approx(r), done)
            s = s2
    plan = value_iteration(env, gamma=1.0)
    assert plan.v[0] == pytest.approx(0.99)
    # the greedy plan is "right" on the diagonal
    assert all(plan.policy[k * 6 + k] == env.right_action(k, k) for k in range(6))


@pytest.mark.parametrize("obs_type", ["grid", "index"])
def test_batch_matches_single_envs_step_by_step(obs_type):
    seeds, size = [0, 1, 2, 7, 11], 6
    batch = DeepSeaBatch(seeds, size, obs_type=obs_type)
    singles = [DeepSea(size, mapping_seed=s, obs_type=obs_type) for s in seeds]
    rng = np.random.default_rng(0)
    treasures = 0
    for _ in range(30):
        obs = batch.reset()
        expected = [e.reset()[0] for e in singles]
        np.testing.assert_array_equal(obs, np.stack(expected))
        for _ in range(size):
            # mostly "right" so that some envs find the treasure
            right = np.array([e.right_action(e.row, e.col) for e in singles])
            actions = np.where(rng.random(len(seeds)) < 0.9, right, 1 - right)
            obs, rewards, terminated = batch.step(actions)
            outs = [e.step(int(a)) for e, a in zip(singles, actions)]
            np.testing.assert_array_equal(obs, np.stack([o[0] for o in outs]))
            np.testing.assert_array_equal(rewards, [o[1] for o in outs])  # bit for bit
            np.testing.assert_array_equal(terminated, [o[2] for o in outs])
            treasures += int((rewards > 0).sum())
    assert treasures > 10  # the treasure branch was exercised
    assert obs.shape == ((5, size, size) if obs_type == "grid" else (5,))


def test_batch_optimal_and_many_seeds():
    batch = DeepSeaBatch(range(64), 10)
    batch.reset()
    total = np.zeros(64)
    for t in range(10):
        _, r, done = batch.step(batch.mapping[np.arange(64), t, batch.cols])
        total += r
    np.testing.assert_allclose(total, 0.99)
    assert done.all()
    with pytest.raises(RuntimeError, match="reset"):
        batch.step(np.zeros(64, dtype=np.int64))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"size": 0}, "size"), ({"size": 2.5}, "size"), ({"obs_type": "pixels"}, "obs_type"),
     ({"move_cost": -1.0}, "move_cost"), ({"render_mode": "human"}, "render_mode")],
)
def test_bad_arguments_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DeepSea(**kwargs)


def test_bad_batch_actions():
    batch = DeepSeaBatch([0, 1], 3)
    batch.reset()
    with pytest.raises(ValueError, match="shape"):
        batch.step([0])
    with pytest.raises(ValueError, match="0 or 1"):
        batch.step([0, 2])
    with pytest.raises(ConfigError, match="mapping_seeds"):
        DeepSeaBatch([], 3)


# ------------------------------------------------------------------------------------------------
# the tabular count bonus (bonus="ucb") on a small DeepSea
# ------------------------------------------------------------------------------------------------

N_SMALL = 6
REACHABLE = np.tril(np.ones((N_SMALL, N_SMALL), dtype=bool))  # column <= row: the cells a path can visit


@pytest.mark.parametrize("seed", range(5))
def test_count_bonus_sweeps_a_small_deepsea_where_epsilon_greedy_fails(seed):
    from rlworks.tabular import q_learning

    env = gym.make(DEEPSEA_INDEX_ID, size=N_SMALL, mapping_seed=seed)
    common = dict(episodes=300, alpha=0.5, gamma=1.0, seed=seed)
    # optimism about the unknown (q_init) plus the count bonus, greedy otherwise
    ucb = q_learning(env, epsilon=0.0, q_init=1.0, bonus="ucb", bonus_c=0.1, **common)
    visited = ucb.counts[: N_SMALL * N_SMALL].sum(axis=1).reshape(N_SMALL, N_SMALL) > 0
    assert visited[REACHABLE].all()
    assert (ucb.episode_returns[-100:] > 0.5).mean() >= 0.9  # and it then goes for the treasure
    greedy = q_learning(env, epsilon=0.1, **common)
    assert greedy.counts is None  # counted only with a bonus
    assert (greedy.episode_returns < 0.5).all()  # epsilon-greedy never found the treasure


def test_count_bonus_same_on_every_path_and_validated():
    from rlworks.tabular import q_learning, sarsa

    env = DeepSea(N_SMALL, mapping_seed=1, obs_type="index")
    for fn in (q_learning, sarsa):
        kw = dict(episodes=120, alpha=0.3, gamma=1.0, epsilon=0.05, seed=4, q_init=1.0, bonus="ucb", bonus_c=0.2)
        ref = fn(env, path="compiled", **kw)
        for path in ("python", "generic"):
            other = fn(env, path=path, **kw)
            # (the generic path does not know the end state is terminal, so its q_init row stays)
            np.testing.assert_array_equal(other.q[:-1], ref.q[:-1])
            np.testing.assert_array_equal(other.counts, ref.counts)
        assert ref.counts.sum() == ref.steps and ref.config["bonus"] == "ucb"
        # the bonus changes what is learned
        assert not np.array_equal(fn(env, path="compiled", **{**kw, "bonus": "none"}).q, ref.q)
    with pytest.raises(ConfigError, match="bonus_c"):
        q_learning(env, episodes=1, bonus="ucb", bonus_c=-1.0)
    with pytest.raises(ConfigError, match="bonus"):
        q_learning(env, episodes=1, bonus="rnd")


def test_count_bonus_from_the_cli(tmp_path):
    from rlworks.cli import main

    run = tmp_path / "run"
    assert main(["train", "q-learning", "--env", DEEPSEA_INDEX_ID, "--episodes", "300", "--epsilon", "0",
                 "--q-init", "1", "--alpha", "0.5", "--gamma", "1", "--bonus", "ucb", "--bonus-c", "0.1",
                 "--quiet", "--run-dir", str(run)]) == 0  # fmt: skip
    import json

    config = json.loads((run / "config.json").read_text())
    assert config["bonus"] == "ucb" and config["bonus_c"] == 0.1
    assert main(["eval", str(run)]) == 0
