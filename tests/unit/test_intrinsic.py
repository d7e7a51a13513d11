"""Intrinsic rewards (core/intrinsic.py): RND's frozen target and falling bonus, ICM's inverse model,
the raw transitions the sampler records, the non-episodic intrinsic stream, config and CLI errors."""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlworks import algos
from rlworks.algos.ppo import PPOConfig
from rlworks.config import ConfigError
from rlworks.core.intrinsic import Intrinsic
from rlworks.core.optim import Adam
from rlworks.core.sampler import LocalSampler
from rlworks.core.vec import make_vec_env, space_spec


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _module(kind: str, obs_dim: int = 2, act_dim: int = 3, continuous: bool = False, **kw) -> tuple[Intrinsic, Adam]:
    torch.manual_seed(0)
    cfg = PPOConfig(intrinsic=kind, **kw)
    m = Intrinsic(cfg, obs_dim, act_dim, continuous, n_envs=4)
    return m, Adam(m.trainable(), lr=cfg.intrinsic_lr)


def test_rnd_target_gets_no_gradient_and_predictor_learns():
    m, opt = _module("rnd", intrinsic_lr=1e-3)
    target = {k: v.clone() for k, v in m.net.target.state_dict().items()}
    predictor = {k: v.clone() for k, v in m.net.predictor.state_dict().items()}
    assert {id(p) for p in m.trainable()} == {id(p) for p in m.net.predictor.parameters()}
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(16, 4, 2)).astype(np.float32)
    nxt = rng.normal(size=(16, 4, 2)).astype(np.float32)
    actions = rng.integers(0, 3, size=(16, 4))
    m.rewards(obs, nxt, actions)
    for _ in range(3):
        m.fit(opt, obs, nxt, actions, 16, torch.Generator().manual_seed(0))
    assert all(p.grad is None for p in m.net.target.parameters())
    for k, v in m.net.target.state_dict().items():
        assert torch.equal(v, target[k]), k
    assert any(not torch.equal(v, predictor[k]) for k, v in m.net.predictor.state_dict().items())


def test_rnd_bonus_falls_on_states_seen_often_and_stays_high_on_new_ones():
    m, opt = _module("rnd", intrinsic_lr=1e-3, norm_int_reward=False)
    rng = np.random.default_rng(1)
    seen = (rng.normal(size=(32, 4, 2)) * 0.3 + np.array([2.0, 0.0])).astype(np.float32)  # one region
    new = (rng.normal(size=(32, 4, 2)) * 0.3 + np.array([-2.0, 0.0])).astype(np.float32)  # another, never trained
    acts = np.zeros((32, 4), dtype=np.int64)
    m.obs_norm.rms.update(np.concatenate([seen, new]).reshape(-1, 2))  # fixed statistics over both regions
    m.obs_norm.rms.count = 1e12  # so that computing rewards below does not move them
    before_seen, before_new = m.rewards(seen, seen, acts).mean(), m.rewards(new, new, acts).mean()
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        m.fit(opt, seen, seen, acts, 64, g)
    after_seen, after_new = m.rewards(seen, seen, acts).mean(), m.rewards(new, new, acts).mean()
    assert after_seen < 0.2 * before_seen, (before_seen, after_seen)
    assert after_new > 3 * after_seen, (after_new, after_seen, before_new)


def test_rnd_reward_normalised_by_running_std_of_intrinsic_return():
    m, _ = _module("rnd")
    rng = np.random.default_rng(2)
    obs = rng.normal(size=(8, 4, 2)).astype(np.float32)
    acts = np.zeros((8, 4), dtype=np.int64)
    r = m.rewards(obs, obs, acts)
    with torch.no_grad():
        raw = m.net.bonus(None, m._tensor(obs.reshape(32, 2)), None).numpy().reshape(8, 4).astype(np.float64)
    ret, rets = np.zeros(4), []
    for t in range(8):  # never reset: the intrinsic return runs over episode ends
        ret = 0.99 * ret + raw[t]
        rets.append(ret)
    np.testing.assert_allclose(r, raw / np.sqrt(np.var(np.array(rets)) + 1e-8), rtol=2e-3)
    np.testing.assert_allclose(m.ret, ret)


class Grid(gym.Env):
    """A deterministic 2-D walk: action k moves the agent one step along k (right, up, left, down)."""

    observation_space = gym.spaces.Box(-10, 10, (2,), np.float32)
    action_space = gym.spaces.Discrete(4)
    MOVES = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.integers(-4, 5, size=2).astype(np.float32)
        return self.pos.copy(), {}

    def step(self, action):
        self.pos = np.clip(self.pos + self.MOVES[int(action)], -10, 10)
        return self.pos.copy(), 0.0, False, False, {}


def test_icm_inverse_model_learns_the_action_on_a_deterministic_env():
    m, opt = _module("icm", act_dim=4, intrinsic_lr=3e-3)
    rng = np.random.default_rng(3)
    env = Grid()
    env.reset(seed=0)
    obs, nxt, acts = [], [], []
    for _ in range(2048):
        a = int(rng.integers(4))
        o = env.pos.copy()
        n, *_ = env.step(a)
        if np.array_equal(o, n):  # pushed into a wall: the action is not identifiable
            env.reset()
            continue
        obs.append(o), nxt.append(n), acts.append(a)
    obs = np.array(obs[:2000]).reshape(500, 4, 2)
    nxt = np.array(nxt[:2000]).reshape(500, 4, 2)
    acts = np.array(acts[:2000]).reshape(500, 4)
    m.rewards(obs, nxt, acts)  # sets the observation statistics

    def accuracy() -> float:
        with torch.no_grad():
            guess = m.net.predict_action(m._tensor(obs.reshape(-1, 2)), m._tensor(nxt.reshape(-1, 2)))
        return float((guess.numpy() == acts.reshape(-1)).mean())

    assert accuracy() < 0.6
    g = torch.Generator().manual_seed(0)
    for _ in range(15):
        info = m.fit(opt, obs, nxt, acts, 128, g)
    assert accuracy() > 0.95
    assert info["losses/icm_inverse"] < 0.3


def test_icm_box_actions_regress_the_action():
    m, opt = _module("icm", act_dim=2, continuous=True, intrinsic_lr=3e-3)
    rng = np.random.default_rng(4)
    obs = rng.uniform(-1, 1, size=(256, 4, 2)).astype(np.float32)
    acts = rng.uniform(-1, 1, size=(256, 4, 2)).astype(np.float32)
    nxt = obs + acts
    m.rewards(obs, nxt, acts)
    g = torch.Generator().manual_seed(0)
    first = m.fit(opt, obs, nxt, acts, 128, g)["losses/icm_inverse"]
    for _ in range(15):
        last = m.fit(opt, obs, nxt, acts, 128, g)["losses/icm_inverse"]
    assert last < 0.1 * first, (first, last)


class Counter(gym.Env):
    """obs = [episode, step]; every episode lasts 3 steps and terminates."""

    observation_space = gym.spaces.Box(-100, 100, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.ep = getattr(self, "ep", -1) + 1
        self.t = 0
        return np.array([self.ep, 0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.ep, self.t], np.float32), 1.0, self.t == 3, False, {}


class ZeroPolicy:
    def step(self, obs):
        n = obs.shape[0]
        return np.zeros(n, np.int64), np.zeros(n, np.float32), np.zeros(n, np.float32)

    def values(self, obs):
        return np.zeros(obs.shape[0], np.float32)


def test_sampler_records_raw_next_obs_with_the_true_final_observation():
    from rlworks.core.envs import env_source

    venv = make_vec_env(env_source(lambda: Counter()), 2, [0, 1], kind="lean")
    spec = space_spec(venv.single_observation_space, venv.single_action_space)
    from rlworks.core.vec import ObsNormalizer

    sampler = LocalSampler(venv, spec, obs_norm=ObsNormalizer(2), record_raw=True)
    rollout = sampler.collect(ZeroPolicy(), 7)
    raw = sampler.raw
    assert raw.obs.shape == raw.next_obs.shape == (7, 2, 2)
    np.testing.assert_array_equal(raw.obs[:, 0, 1], [0, 1, 2, 0, 1, 2, 0])  # raw, not normalised
    np.testing.assert_array_equal(raw.next_obs[:, 0, 1], [1, 2, 3, 1, 2, 3, 1])  # step 3 is the final obs
    np.testing.assert_array_equal(raw.next_obs[2, 0], [0, 3])  # the final obs of episode 0, not the reset obs
    assert not np.array_equal(rollout.obs[:, 0], raw.obs[:, 0])  # the policy saw normalised observations
    assert LocalSampler(venv, spec).raw is None  # recorded only when asked


def test_intrinsic_stream_is_non_episodic_and_fused_is_not_chosen():
    from rlworks.algos import onpolicy, ppo

    cfg = PPOConfig(intrinsic="rnd", n_envs=2, n_steps=250, batch_size=100)
    s = onpolicy.build_session("ppo", "MountainCar-v0", cfg, seed=0, total_steps=500, device="cpu", critic=True,
                               make_optimizer=ppo.make_optimizer(cfg))
    try:
        onpolicy.set_backend(s, "auto", fused=True, loss_fn=ppo.minibatch_loss)
        assert s.backend == "autograd"
        policy = onpolicy.NumpyPolicy(s.model, s.rng)
        rollout = s.sampler.collect(policy, cfg.n_steps)
        assert rollout.dones[:, 0].any()  # MountainCar's 200-step limit ended an episode
        rewards, values, next_values = onpolicy.intrinsic_stream(s, rollout)
        assert rewards.shape == values.shape == next_values.shape == (250, 2)
        assert (rewards > 0).all()
        np.testing.assert_array_equal(next_values[:-1], values[1:])  # across the episode end too
        with torch.no_grad():
            x = torch.from_numpy(s.sampler.last_obs.astype(np.float32))
            last = s.value_int(s.model.critic_features(x)).squeeze(-1).numpy()
        np.testing.assert_allclose(next_values[-1], last, rtol=1e-6)
        assert len(s.optimizer.params) == len(list(s.model.parameters())) + len(list(s.value_int.parameters()))
    finally:
        s.sampler.venv.close()


def test_default_model_and_checkpoint_are_unchanged(tmp_path):
    agent = algos.train("a2c", "CartPole-v1", total_steps=64, seed=0, n_envs=2, checkpoint_dir=tmp_path)
    from rlworks.core.checkpoint import load_checkpoint

    tensors, state, *_ = load_checkpoint(tmp_path)
    assert not any(k.startswith(("value_int/", "intrinsic/", "optim/intrinsic")) for k in tensors)
    assert "intrinsic" not in state["train"]["learned"]
    assert not hasattr(agent.model, "value_int")


@pytest.mark.parametrize("kw,field", [
    ({"intrinsic": "rdn"}, "did you mean 'rnd'"),
    ({"intrinsic": "rnd", "backend": "fused"}, "backend='fused'"),
    ({"intrinsic": "icm", "icm_beta": 1.5}, "icm_beta"),
    ({"intrinsic": "rnd", "gamma_int": 1.2}, "gamma_int"),
    ({"intrinsic": "rnd", "intrinsic_lr": 0.0}, "intrinsic_lr"),
])
def test_bad_intrinsic_config_names_the_field(kw, field):
    with pytest.raises(ConfigError, match=field.replace("(", r"\(")):
        PPOConfig(**kw)


class Frames(gym.Env):
    """uint8 images, which features="auto" gives a CNN."""

    observation_space = gym.spaces.Box(0, 255, (3, 36, 36), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def test_intrinsic_for_image_observations_is_refused_clearly():
    with pytest.raises(ConfigError, match="intrinsic='rnd' works on flat vector observations"):
        algos.train("ppo", lambda: Frames(), total_steps=64, intrinsic="rnd", n_envs=1, batch_size=32)


@pytest.mark.parametrize("algo", ["dqn", "reinforce", "sac"])
def test_cli_intrinsic_for_an_algorithm_without_an_intrinsic_value_head(algo):
    args = ["train", algo, "--env", "CartPole-v1", "--intrinsic", "rnd"]
    out = subprocess.run([sys.executable, "-m", "rlworks.cli", *args], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "--intrinsic" in lines[0] and "ppo" in lines[0] and "a2c" in lines[0] and algo in lines[0], lines[0]


def test_api_intrinsic_for_an_algorithm_without_an_intrinsic_value_head():
    with pytest.raises(ConfigError, match="ppo, a2c, not of dqn"):
        algos.train("dqn", "CartPole-v1", total_steps=64, intrinsic="rnd")


@pytest.mark.parametrize("shared", [False, True])
def test_value_head_is_a_second_output_on_the_critic_body(shared):
    from rlworks.core.nets import ActorCritic

    torch.manual_seed(0)
    model = ActorCritic(3, 2, continuous=False, shared_trunk=shared, critic_hidden=(16,) if shared else None)
    head = model.value_head()
    assert isinstance(head, torch.nn.Linear) and head.in_features == (16 if shared else 64)
    obs, actions = torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])
    lp, ent, v = model.evaluate_actions(obs, actions)
    lp2, ent2, v2, v_int = model.evaluate_actions(obs, actions, head)
    assert torch.equal(lp, lp2) and torch.equal(ent, ent2) and torch.equal(v, v2)
    assert v_int.shape == (5,) and not torch.equal(v_int, v)
    v_int.sum().backward()  # the intrinsic value trains the critic's body, not the actor or the extrinsic output
    assert model.critic[0].weight.grad is not None and model.critic[0].weight.grad.abs().sum() > 0
    assert model.critic[-1].weight.grad is None
    assert all(p.grad is None for p in model.actor.parameters())
