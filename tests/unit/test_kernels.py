"""The compiled tabular kernel: its RNG, action selection, targets, and parity between the
compiled, uncompiled (``py_func``) and generic (``env.step``) paths."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rlworks  # noqa: F401
from rlworks.config import ConfigError
from rlworks.envs import GridWorld
from rlworks.tabular import TabularModel, dyna_q, expected_sarsa, has_model, q_learning, sarsa
from rlworks.tabular import kernels as K
from rlworks.tabular.learner import TabularLearner
from rlworks.tabular.schedules import Schedule, as_schedule

ALGOS = {"q-learning": q_learning, "sarsa": sarsa, "expected-sarsa": expected_sarsa, "dyna-q": dyna_q}
M32 = 0xFFFFFFFF


# ---------------------------------------------------------------------------------- RNG


def ref_xoshiro128ss(state: list[int], n: int) -> list[int]:
    """xoshiro128** 1.1 transcribed from Blackman & Vigna's reference C code, on Python ints."""

    def rotl(x, k):
        return ((x << k) | (x >> (32 - k))) & M32

    s = list(state)
    out = []
    for _ in range(n):
        result = (rotl((s[1] * 5) & M32, 7) * 9) & M32
        t = (s[1] << 9) & M32
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 11)
        out.append(result)
    return out


def test_seed_rng_is_splitmix64():
    # SplitMix64 from seed 0 gives 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4 (Vigna's reference)
    assert K.seed_rng(0).tolist() == [0x7B1DCDAF, 0xE220A839, 0xA1B965F4, 0x6E789E6A]
    assert K.seed_rng(1).tolist() != K.seed_rng(0).tolist()


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**40 + 7])
def test_next_u32_matches_reference(seed):
    state = K.seed_rng(seed)
    expect = ref_xoshiro128ss(state.tolist(), 200)
    rng_c, rng_p = state.copy(), state.copy()
    assert [int(K.next_u32(rng_c)) for _ in range(200)] == expect
    assert [int(K.next_u32.py_func(rng_p)) for _ in range(200)] == expect
    assert rng_c.tolist() == rng_p.tolist()


def test_rng_reproducible_and_seed_dependent():
    a, b, c = K.seed_rng(5), K.seed_rng(5), K.seed_rng(6)
    xa = [K.uniform(a) for _ in range(100)]
    xb = [K.uniform(b) for _ in range(100)]
    xc = [K.uniform(c) for _ in range(100)]
    assert xa == xb and xa != xc


def test_uniform_range_and_uniformity():
    rng = K.seed_rng(3)
    x = np.array([K.uniform(rng) for _ in range(20000)])
    assert x.min() >= 0.0 and x.max() < 1.0
    counts = np.histogram(x, bins=10, range=(0, 1))[0]
    chi2 = ((counts - 2000) ** 2 / 2000).sum()
    assert chi2 < 30  # 9 degrees of freedom: P(chi2 > 30) ~ 4e-4
    assert abs(x.mean() - 0.5) < 4 * np.sqrt(1 / 12 / len(x))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_randint_range_and_uniformity(n):
    rng = K.seed_rng(n)
    x = np.array([K.randint(rng, n) for _ in range(7000)])
    assert x.min() >= 0 and x.max() < n
    counts = np.bincount(x, minlength=n)
    assert len(counts) == n
    expected = len(x) / n
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 3 * n + 10


# ---------------------------------------------------------------------------------- action selection


def action_freqs(q_row, epsilon=0.0, tie_first=False, n=12000, seed=0):
    q = np.array([q_row], dtype=np.float64)
    rng = K.seed_rng(seed)
    acts = np.array([K.select_action(q, 0, epsilon, rng, tie_first) for _ in range(n)])
    return np.bincount(acts, minlength=len(q_row)) / n


def test_ties_broken_uniformly():
    f = action_freqs([0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(f, 0.25, atol=4 * np.sqrt(0.25 * 0.75 / 12000))
    f = action_freqs([1.0, 0.5, 1.0, 1.0])
    assert f[1] == 0.0
    np.testing.assert_allclose(f[[0, 2, 3]], 1 / 3, atol=4 * np.sqrt(2 / 9 / 12000))


def test_tie_first_is_argmax():
    assert action_freqs([0.0, 0.0, 0.0, 0.0], tie_first=True)[0] == 1.0
    assert action_freqs([0.2, 0.7, 0.7, 0.1], tie_first=True)[1] == 1.0


def test_unique_greedy_and_epsilon():
    assert action_freqs([0.1, 0.9, 0.3, 0.2])[1] == 1.0
    f = action_freqs([0.1, 0.9, 0.3, 0.2], epsilon=0.2)
    expect = np.array([0.05, 0.85, 0.05, 0.05])
    np.testing.assert_allclose(f, expect, atol=4 * np.sqrt(0.85 * 0.15 / 12000))
    f = action_freqs([0.1, 0.9, 0.3, 0.2], epsilon=1.0)
    np.testing.assert_allclose(f, 0.25, atol=4 * np.sqrt(0.25 * 0.75 / 12000))


# ---------------------------------------------------------------------------------- targets


def test_state_value():
    q = np.array([[1.0, -2.0, 3.0, 0.5]])
    assert K.state_value(q, 0, K.Q_LEARNING, 0.3) == 3.0
    eps = 0.3
    assert K.state_value(q, 0, K.EXPECTED_SARSA, eps) == pytest.approx(eps * 2.5 / 4 + (1 - eps) * 3.0)
    q = np.array([[2.0, 2.0, 0.0, 0.0]])  # ties: the greedy mass is on value 2 either way
    assert K.state_value(q, 0, K.EXPECTED_SARSA, eps) == pytest.approx(eps * 1.0 + (1 - eps) * 2.0)


def one_step_update(algo, epsilon, max_episode_steps=100, seed=4):
    """Run one real step from a random Q-table; return (s, a, s2, r, q_before, q_after)."""
    env = GridWorld("S...\n....\n...G", step_reward=-0.1)
    learner = TabularLearner(env.model, algo, alpha=0.5, gamma=0.9, epsilon=epsilon,
                             max_episode_steps=max_episode_steps, seed=seed)  # fmt: skip
    learner.q[:] = np.random.default_rng(seed).normal(size=learner.q.shape)
    learner.q[env.terminal] = 0.0
    before = learner.q.copy()
    learner.run(steps=1)
    changed = np.argwhere(learner.q != before)
    assert len(changed) == 1
    s, a = changed[0]
    r_expected = env.model.rewards[s, a, 0]
    s2 = int(env.model.next_states[s, a, 0])
    return int(s), int(a), s2, r_expected, before, learner.q.copy(), learner


@pytest.mark.parametrize("seed", range(4))
def test_expected_sarsa_target_by_hand(seed):
    eps = 0.4
    s, a, s2, r, before, after, _ = one_step_update("expected-sarsa", eps, seed=seed)
    row = before[s2]
    expectation = eps * row.mean() + (1 - eps) * row.max()
    target = r + 0.9 * expectation
    assert after[s, a] == pytest.approx(before[s, a] + 0.5 * (target - before[s, a]), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_q_learning_target_by_hand(seed):
    s, a, s2, r, before, after, _ = one_step_update("q-learning", 0.4, seed=seed)
    target = r + 0.9 * before[s2].max()
    assert after[s, a] == pytest.approx(before[s, a] + 0.5 * (target - before[s, a]), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_sarsa_target_uses_the_next_action_taken(seed):
    s, a, s2, r, before, after, learner = one_step_update("sarsa", 0.4, seed=seed)
    a2 = int(learner.carry[K.C_ACTION])  # the pending action SARSA bootstrapped from
    assert learner.state == s2 and 0 <= a2 < 4
    target = r + 0.9 * before[s2, a2]
    assert after[s, a] == pytest.approx(before[s, a] + 0.5 * (target - before[s, a]), abs=1e-12)


def test_truncation_bootstraps():
    """A one-step time limit truncates; the target still bootstraps from the next state."""
    s, a, s2, r, before, after, learner = one_step_update("q-learning", 0.0, max_episode_steps=1)
    assert learner.state == -1 and learner.episodes == 1  # the episode ended by truncation
    target = r + 0.9 * before[s2].max()
    assert after[s, a] == pytest.approx(before[s, a] + 0.5 * (target - before[s, a]), abs=1e-12)


def test_termination_does_not_bootstrap():
    env = GridWorld("SG")
    learner = TabularLearner(env.model, "q-learning", alpha=0.5, gamma=0.9, epsilon=0.0, seed=0)
    learner.q[0] = [0.0, 5.0, 0.0, 0.0]  # right (into the goal) is greedy
    learner.q[1] = 7.0  # were the goal bootstrapped from, the target would be 1 + 0.9 * 7
    learner.run(steps=1)
    assert learner.episodes == 1
    assert learner.q[0, 1] == 5.0 + 0.5 * (1.0 - 5.0)


# ---------------------------------------------------------------------------------- path parity


def run(algo, env, path, seed, episodes=150, **kw):
    if algo == "dyna-q":
        kw.setdefault("planning_steps", 5)
    return ALGOS[algo](env, episodes=episodes, alpha=0.3, gamma=0.9, epsilon=0.3, seed=seed, path=path, **kw)


@pytest.mark.parametrize("algo", list(ALGOS))
@pytest.mark.parametrize("slip", [0.0, 0.25])
def test_compiled_equals_py_func(algo, slip):
    env = GridWorld(slip=slip, step_reward=-0.01)
    a = run(algo, env, "compiled", seed=11, episodes=60)
    b = run(algo, env, "python", seed=11, episodes=60)
    assert a.path == "compiled" and b.path == "python"
    np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(a.episode_returns, b.episode_returns)
    np.testing.assert_array_equal(a.episode_lengths, b.episode_lengths)
    assert a.steps == b.steps > 0


class HiddenModelGridWorld(gym.Env):
    """A GridWorld seen only through reset/step: no ``model``, no ``P``, no wrapper to unwrap."""

    metadata = {"render_modes": []}

    def __init__(self, **kwargs):
        self._inner = GridWorld(**kwargs)
        self.observation_space = self._inner.observation_space
        self.action_space = self._inner.action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._inner.reset(seed=seed, options=options)

    def step(self, action):
        return self._inner.step(action)


@pytest.mark.parametrize("algo", list(ALGOS))
def test_compiled_equals_generic_on_deterministic_gridworld(algo):
    a = run(algo, gym.make("rlworks/GridWorld-v0"), "compiled", seed=3)
    b = run(algo, gym.make("rlworks/GridWorld-v0"), "generic", seed=3)
    assert b.path == "generic"
    np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(a.episode_returns, b.episode_returns)
    np.testing.assert_array_equal(a.episode_lengths, b.episode_lengths)
    assert a.steps == b.steps


@pytest.mark.parametrize("algo", list(ALGOS))
def test_compiled_equals_truly_generic_env(algo):
    layout = "S...W.\n.WW.W.\n...W..\n.W...G"
    hidden = HiddenModelGridWorld(layout=layout, step_reward=-0.01)
    assert not has_model(hidden) and not hasattr(hidden.unwrapped, "P")
    b = run(algo, hidden, "auto", seed=8, max_episode_steps=60)
    assert b.path == "generic"
    a = run(algo, GridWorld(layout, step_reward=-0.01), "auto", seed=8, max_episode_steps=60)
    assert a.path == "compiled"
    np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(a.episode_lengths, b.episode_lengths)


@pytest.mark.parametrize("algo", ["q-learning", "sarsa"])
def test_compiled_equals_generic_on_frozenlake(algo):
    env = gym.make("FrozenLake-v1", is_slippery=False)
    a = run(algo, env, "compiled", seed=21, episodes=300)
    b = run(algo, env, "generic", seed=21, episodes=300)
    np.testing.assert_array_equal(a.q, b.q)


def test_compiled_and_generic_agree_statistically_when_slippery():
    """Different random streams for the slips, same learning behaviour: mean return and length
    over seeds agree within sampling error."""
    make = lambda: GridWorld(slip=0.3, step_reward=-0.02)  # noqa: E731
    per_path = {}
    for path in ("compiled", "generic"):
        rets, lens, gain = [], [], []
        for seed in range(16):
            r = q_learning(make(), episodes=120, alpha=0.2, gamma=0.95, epsilon=0.2, seed=seed, path=path,
                           max_episode_steps=100)  # fmt: skip
            rets.append(r.episode_returns.mean())
            lens.append(r.episode_lengths.mean())
            gain.append(r.episode_returns[-30:].mean() - r.episode_returns[:30].mean())
        per_path[path] = (np.array(rets), np.array(lens))
        assert np.mean(gain) > 1.0, (path, np.mean(gain))  # both learn: late episodes pay better
    (rc, lc), (rg, lg) = per_path["compiled"], per_path["generic"]
    se = lambda x, y: np.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))  # noqa: E731
    assert abs(rc.mean() - rg.mean()) < 4 * se(rc, rg) + 1e-3
    assert abs(lc.mean() - lg.mean()) < 4 * se(lc, lg) + 0.5


def test_slippery_paths_differ_in_detail():
    # the env's own RNG drives the slips on the generic path, so exact equality is not expected
    env = GridWorld(slip=0.3)
    a = q_learning(env, episodes=50, seed=1, path="compiled")
    b = q_learning(env, episodes=50, seed=1, path="generic")
    assert not np.array_equal(a.q, b.q)


def test_compiled_path_needs_a_model():
    with pytest.raises(ConfigError, match="does not expose its model"):
        q_learning(HiddenModelGridWorld(), episodes=5, path="compiled")


# ---------------------------------------------------------------------------------- learner slices


def test_run_in_slices_equals_one_run():
    model = GridWorld(slip=0.2).model
    one = TabularLearner(model, "sarsa", alpha=0.2, gamma=0.9, epsilon=0.2, seed=9)
    one.run(steps=5000)
    sliced = TabularLearner(model, "sarsa", alpha=0.2, gamma=0.9, epsilon=0.2, seed=9)
    for _ in range(50):
        sliced.run(steps=100)
    np.testing.assert_array_equal(one.q, sliced.q)
    assert one.steps == sliced.steps == 5000
    assert one.state == sliced.state and one.episode_step == sliced.episode_step


def test_model_from_toy_text_env():
    m = TabularModel.from_env(gym.make("FrozenLake-v1"))
    assert m.n_states == 16 and m.n_actions == 4 and not m.deterministic
    assert m.terminal.tolist() == [c in "HG" for c in "SFFFFHFHFFFHHFFG"]
    assert TabularModel.from_env(gym.make("FrozenLake-v1", is_slippery=False)).deterministic


# ---------------------------------------------------------------------------------- schedules


def test_schedules():
    np.testing.assert_array_equal(Schedule.constant(0.3).values(4), [0.3] * 4)
    np.testing.assert_allclose(Schedule.linear(1.0, 0.0, fraction=0.5).values(8), [1, 0.75, 0.5, 0.25, 0, 0, 0, 0])
    np.testing.assert_allclose(Schedule.exponential(1.0, 0.3, decay=0.5).values(4), [1.0, 0.5, 0.3, 0.3])
    assert as_schedule(0.2, "alpha") == Schedule.constant(0.2)
    with pytest.raises(ConfigError, match="schedule"):
        Schedule("cosine")
    with pytest.raises(ConfigError, match="decay"):
        Schedule.exponential(1.0, 0.1, decay=1.5)
    with pytest.raises(ConfigError, match="alpha"):
        as_schedule("fast", "alpha")


def test_schedule_drives_the_kernel():
    """A linear epsilon schedule ending at 0 makes the last episodes greedy: on a deterministic
    world with a learned path, they are all the same length."""
    env = gym.make("rlworks/GridWorld-v0")
    res = q_learning(env, episodes=400, alpha=0.5, gamma=0.9, epsilon=Schedule.linear(0.5, 0.0, fraction=0.5), seed=2)
    tail = res.episode_lengths[-100:]
    assert (tail == tail[0]).all() and tail[0] == 8  # the shortest path on the default map
    with pytest.raises(ConfigError, match="alpha end"):
        q_learning(env, episodes=10, alpha=Schedule.linear(0.5, 0.0), seed=0)


# ---------------------------------------------------------------------------------- starts, caps, buffers


def test_sample_start_follows_the_start_distribution():
    start = np.array([0.0, 0.1, 0.0, 0.3, 0.2, 0.0, 0.4])
    cum = np.cumsum(start)
    cum[-1] = 1.0
    rng = K.seed_rng(0)
    draws = np.array([K.sample_start(cum, rng) for _ in range(20000)])
    freqs = np.bincount(draws, minlength=len(start)) / len(draws)
    assert (freqs[start == 0] == 0).all()
    np.testing.assert_allclose(freqs, start, atol=4 * np.sqrt(0.25 / len(draws)))
    one = np.array([0.0, 0.0, 1.0, 1.0])  # a single start: no draw at all
    rng = K.seed_rng(0)
    before = rng.copy()
    assert K.sample_start(one, rng) == 2 and (rng == before).all()


def test_several_start_states_are_all_used():
    # Taxi starts anywhere: the compiled path draws the start from the model's distribution
    res = q_learning(gym.make("Taxi-v4"), episodes=3000, alpha=0.5, gamma=0.95, epsilon=0.1, seed=0)
    assert res.steps > 0 and np.isfinite(res.q).all()
    model = TabularModel.from_env(gym.make("Taxi-v4"))
    visited = (res.q != 0).any(axis=1)
    assert visited[model.start > 0].mean() > 0.9


def test_max_episode_steps_cannot_lift_the_env_time_limit():
    env = gym.make("rlworks/GridWorld-v0", max_episode_steps=5)
    for path in ("compiled", "generic"):
        res = q_learning(env, episodes=50, epsilon=1.0, seed=0, max_episode_steps=50, path=path)
        assert res.episode_lengths.max() == 5 and res.config["max_episode_steps"] == 5
    res = q_learning(env, episodes=50, epsilon=1.0, seed=0, max_episode_steps=3)
    assert res.episode_lengths.max() == 3
    res = q_learning(GridWorld(), episodes=20, epsilon=1.0, seed=0, max_episode_steps=7)
    assert res.episode_lengths.max() == 7


def test_discrete_spaces_must_start_at_zero():
    class Shifted(HiddenModelGridWorld):
        def __init__(self):
            super().__init__()
            self.observation_space = gym.spaces.Discrete(25, start=1)

    with pytest.raises(ConfigError, match="from 0"):
        q_learning(Shifted(), episodes=5)


def test_learner_results_are_not_overwritten_by_the_next_run():
    learner = TabularLearner(GridWorld().model, "q-learning", epsilon=0.5, seed=1)
    r1, l1 = learner.run(episodes=20)
    kept = (r1.copy(), l1.copy())
    learner.run(episodes=20)
    np.testing.assert_array_equal(r1, kept[0])
    np.testing.assert_array_equal(l1, kept[1])
