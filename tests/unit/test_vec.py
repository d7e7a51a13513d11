"""Vector envs: SAME_STEP autoreset, truncation vs termination, bootstrapping, normalisation, snapshots."""

import gymnasium as gym
import numpy as np
import pytest

from rlworks.config import ConfigError
from rlworks.core.sampler import LocalSampler
from rlworks.core.vec import (
    GymVecEnv,
    LeanVecEnv,
    ObsNormalizer,
    RewardScaler,
    RunningMeanStd,
    check_action_space,
    env_restore,
    env_snapshot,
    make_env,
    make_vec_env,
    space_spec,
)


def _actions(rng, n):
    return rng.integers(0, 2, size=n)


@pytest.mark.parametrize("kind", ["lean", "sync"])
def test_same_step_autoreset_and_final_obs(kind):
    venv = make_vec_env("CartPole-v1", 3, [1, 2, 3], kind=kind, env_kwargs={"max_episode_steps": 15})
    ref = [make_env("CartPole-v1", {"max_episode_steps": 15}) for _ in range(3)]
    obs = venv.reset()
    ref_obs = [e.reset(seed=s)[0] for e, s in zip(ref, [1, 2, 3])]
    np.testing.assert_allclose(obs, np.array(ref_obs))
    rng = np.random.default_rng(0)
    saw_term = saw_trunc = False
    for _ in range(80):
        a = _actions(rng, 3)
        obs, rew, term, trunc, final, episodes = venv.step(a)
        for i, e in enumerate(ref):
            o, r, te, tr, _ = e.step(int(a[i]))
            assert rew[i] == r and term[i] == te and trunc[i] == (tr and not te)
            if te or tr:
                np.testing.assert_allclose(final[i], o)  # the last obs of the finished episode
                o, _ = e.reset()
            np.testing.assert_allclose(obs[i], o)  # the reset obs arrives on the same step
        saw_term |= term.any()
        saw_trunc |= trunc.any()
        assert len(episodes) == int((term | trunc).sum())
    assert saw_term and saw_trunc
    venv.close()


class _SumPolicy:
    """values(obs) = sum(obs): lets the test see which observation was bootstrapped."""

    def step(self, obs):
        n = obs.shape[0]
        return np.zeros(n, dtype=np.int64), np.zeros(n), obs.sum(1)

    def values(self, obs):
        return obs.sum(1)


def test_sampler_bootstraps_truncation_from_final_obs_not_reset_obs():
    venv = LeanVecEnv([lambda: make_env("CartPole-v1", {"max_episode_steps": 4})], [0])
    spec = space_spec(venv.single_observation_space, venv.single_action_space)
    sampler = LocalSampler(venv, spec)
    # action 0 always: CartPole does not fall within 4 steps, so every 4th step is a truncation
    ro = sampler.collect(_SumPolicy(), 8)
    assert ro.truncations[:, 0].tolist() == [False, False, False, True] * 2
    assert not ro.terminations.any()
    ref = make_env("CartPole-v1", {"max_episode_steps": 4})
    o, _ = ref.reset(seed=0)
    for _ in range(4):
        o, *_ = ref.step(0)
    assert ro.next_values[3, 0] == pytest.approx(float(np.float32(o.astype(np.float64).sum())), rel=1e-5)
    assert ro.next_values[3, 0] != pytest.approx(ro.values[4, 0])  # not the reset observation's value
    np.testing.assert_allclose(ro.next_values[:3, 0], ro.values[1:4, 0])


def test_running_mean_std_matches_numpy():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3, 2, size=(k, 5)) for k in (7, 1, 30, 12)]
    rms = RunningMeanStd((5,))
    for b in batches:
        rms.update(b)
    allx = np.concatenate(batches)
    np.testing.assert_allclose(rms.mean, allx.mean(0), rtol=1e-4)
    np.testing.assert_allclose(rms.var, allx.var(0), rtol=1e-4)


def test_normalisers_state_round_trip():
    on = ObsNormalizer(3)
    on(np.random.default_rng(1).normal(size=(10, 3)), update=True)
    other = ObsNormalizer(3)
    other.load_state_dict(on.state_dict())
    x = np.ones((2, 3))
    np.testing.assert_array_equal(on(x), other(x))
    rs = RewardScaler(2, 0.99)
    rs(np.array([1.0, 2.0]), np.array([False, True]))
    rs2 = RewardScaler(2, 0.5)
    rs2.load_state_dict(rs.state_dict())
    np.testing.assert_array_equal(rs(np.ones(2), np.zeros(2, bool)), rs2(np.ones(2), np.zeros(2, bool)))


def test_reward_scaler_resets_return_on_done():
    rs = RewardScaler(1, 0.9)
    rs(np.array([5.0]), np.array([True]))
    assert rs.ret.tolist() == [0.0]


def test_env_snapshot_restores_exactly():
    env = make_env("CartPole-v1")
    env.reset(seed=3)
    for _ in range(5):
        env.step(1)
    layers, exact = env_snapshot(env)
    assert exact
    cont = [env.step(a) for a in (0, 1, 0, 1, 0, 1, 0, 1)]
    fresh = make_env("CartPole-v1")
    fresh.reset(seed=99)
    env_restore(fresh, layers)
    again = [fresh.step(a) for a in (0, 1, 0, 1, 0, 1, 0, 1)]
    for x, y in zip(cont, again):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:4] == y[1:4]


def test_dict_observations_are_flattened(dict_obs_env):
    env = make_env("CartPole-v1")
    assert isinstance(env.observation_space, gym.spaces.Box)
    gym.register("rlworks-test/DictObs-v0", entry_point=dict_obs_env, kwargs={"terminates": True})
    env = make_env("rlworks-test/DictObs-v0")
    assert env.observation_space.shape == (5,)


def test_unknown_env_and_unsupported_action_space():
    with pytest.raises(ConfigError, match="did you mean 'CartPole-v1'"):
        make_env("CartPole-v9")
    with pytest.raises(ConfigError, match="MultiDiscrete"):
        check_action_space("X-v0", gym.spaces.MultiDiscrete([2, 3]), "ppo")


def test_async_vec_env_runs():
    venv = GymVecEnv([lambda: make_env("CartPole-v1")] * 2, [0, 1], kind="async")
    obs = venv.reset()
    assert obs.shape == (2, 4)
    obs, *_ = venv.step(np.array([0, 1]))
    assert obs.shape == (2, 4)
    venv.close()
