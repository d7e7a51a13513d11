"""Bootstrapped DQN: masks, heads, priors, the per-episode head, the vote, exact resume, save/load,
and its refusals."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import rlworks
from rlworks.algos import bootstrapped_dqn as bdqn
from rlworks.algos.agent import load_agent
from rlworks.config import ConfigError
from rlworks.core.checkpoint import load_checkpoint
from rlworks.core.replay import ReplayBuffer
from rlworks.core.run import RunContext

SMALL = dict(learning_starts=64, batch_size=32, buffer_size=2000, hidden=(32,), head_hidden=(16,), n_heads=4,
             target_update_interval=50, train_freq=2)


def _train(env="CartPole-v1", steps=400, seed=3, env_kwargs=None, **kw):
    over = {k: kw.pop(k) for k in list(kw) if k not in RunContext.HOOKS}
    cfg = bdqn.BootstrappedDQNConfig(**{**SMALL, **over})
    if env_kwargs:
        import gymnasium as gym

        def env():
            return gym.make("rlworks/DeepSea-v0", **env_kwargs)
    return bdqn.train(env, cfg, total_steps=steps, seed=seed, run=RunContext(**kw))


def test_masks_follow_their_bernoulli_probability_and_are_stored_per_head():
    torch.set_num_threads(1)
    seen = {}

    def grab(s):
        seen["buffer"] = s.buffer
        return False

    _train(steps=1500, mask_prob=0.3, n_heads=8, callback=grab)
    masks = seen["buffer"].extras["masks"][:1500].reshape(-1, 8)
    assert masks.dtype == np.bool_ and masks.shape == (1500, 8)
    # 12,000 Bernoulli(0.3) draws: the standard error of the mean is 0.0042
    assert abs(masks.mean() - 0.3) < 0.02
    assert np.all(np.abs(masks.mean(0) - 0.3) < 0.06)  # every head gets its own share
    assert (masks[:, 0] != masks[:, 1]).any()  # drawn independently per head


def test_replay_extras_are_sampled_with_their_transition_and_saved():
    buf = ReplayBuffer(40, 2, (1,), extras={"tag": ((), np.int64)})
    for t in range(30):
        obs = np.array([[t], [100 + t]], np.float32)
        buf.add(obs, np.zeros(2, np.int64), np.zeros(2, np.float32), obs + 1, np.zeros(2, bool),
                np.zeros(2, bool), {"tag": np.array([t, 100 + t])})
    b = buf.sample(64, np.random.default_rng(0))
    np.testing.assert_array_equal(b.extras["tag"], b.obs[:, 0].astype(np.int64))
    other = ReplayBuffer(40, 2, (1,), extras={"tag": ((), np.int64)})
    other.load_state_dict(buf.state_dict())
    np.testing.assert_array_equal(other.extras["tag"], buf.extras["tag"])
    with pytest.raises(ValueError, match="needs the extras"):
        buf.add(obs, np.zeros(2, np.int64), np.zeros(2, np.float32), obs, np.zeros(2, bool), np.zeros(2, bool))


def test_a_head_learns_only_from_the_transitions_its_mask_keeps():
    torch.manual_seed(0)
    spec = {"obs_dim": 4, "act_dim": 2}
    cfg = bdqn.BootstrappedDQNConfig(n_heads=3, hidden=(8,), head_hidden=())
    net = {"n_heads": 3, "hidden": [8], "head_hidden": [], "activation": "relu", "prior_scale": 3.0}
    st = bdqn.build_state(spec, net, cfg, torch.device("cpu"))
    head = st.q.net.heads[-1]
    before_w, before_b = head.weight.detach().clone(), head.bias.detach().clone()
    prior_before = [p.detach().clone() for p in st.q.prior.parameters()]
    obs, actions = torch.randn(16, 4), torch.randint(0, 2, (16,))
    targets = torch.randn(3, 16)
    masks = torch.ones(3, 16)
    masks[1] = 0.0  # head 1 sees none of this batch
    bdqn.update(st, cfg, obs, actions, targets, masks)
    assert torch.equal(head.weight[1], before_w[1]) and torch.equal(head.bias[1], before_b[1])
    assert not torch.equal(head.weight[0], before_w[0]) and not torch.equal(head.weight[2], before_w[2])
    # the prior network gets no gradient and does not move
    assert all(not p.requires_grad and p.grad is None for p in st.q.prior.parameters())
    assert all(torch.equal(a, b) for a, b in zip(prior_before, st.q.prior.parameters()))
    assert {id(p) for p in st.q_opt.params}.isdisjoint(id(p) for p in st.q.prior.parameters())


def test_the_prior_is_added_with_its_scale_and_differs_per_head():
    torch.manual_seed(1)
    spec = {"obs_dim": 3, "act_dim": 2}
    net = {"n_heads": 5, "hidden": [16], "head_hidden": [8], "activation": "relu", "prior_scale": 2.0}
    q = bdqn.build_actor(spec, net, bdqn.BootstrappedDQNConfig(n_heads=5))
    x = torch.randn(7, 3)
    torch.testing.assert_close(q(x), q.net(x) + 2.0 * q.prior(x))
    p = q.prior(x)
    assert p.shape == (5, 7, 2) and not torch.allclose(p[0], p[1])
    assert bdqn.build_actor(spec, {**net, "prior_scale": 0.0}, bdqn.BootstrappedDQNConfig()).prior is None


def test_vote_picks_the_action_most_heads_pick():
    greedy = torch.tensor([[0, 1, 2], [1, 1, 2], [1, 0, 0], [2, 0, 1]])  # (K=4, B=3)
    assert bdqn.vote(greedy, 3).tolist() == [1, 0, 2]  # column 1 (1, 1, 0, 0) is a tie: the lowest action


def test_one_head_is_followed_for_a_whole_episode():
    torch.set_num_threads(1)
    heads = []

    def grab(s):
        heads.append(int(s.state.active_head[0]))
        return False

    _train(steps=200, env_kwargs={"size": 5}, n_heads=6, callback=grab)
    per_episode = [heads[i:i + 5] for i in range(0, 200, 5)]  # DeepSea episodes last exactly `size` steps
    # the head drawn at an episode's end is followed through the whole next episode
    assert all(len(set(ep[:-1])) == 1 and ep[-1] == nxt[0] for ep, nxt in zip(per_episode, per_episode[1:]))
    assert len(set(heads)) > 3  # and it is redrawn: several heads were followed


def test_bootstrapped_dqn_learns_a_small_deepsea():
    """DeepSea 8: a uniformly random policy finds the treasure once in 256 episodes; the sampled heads with
    priors learn to reach it in 90 of 100 consecutive episodes well within 1,000 episodes."""
    torch.set_num_threads(1)
    hits: list[bool] = []
    learned = []

    def on_eps(step, eps):
        hits.extend(ret > 0 for ret, _ in eps)
        if not learned and len(hits) >= 100 and sum(hits[-100:]) >= 90:
            learned.append(len(hits))

    agent = _train(steps=8 * 1000, seed=0, env_kwargs={"size": 8, "mapping_seed": 0}, on_episodes=on_eps,
                   callback=lambda s: bool(learned), n_heads=10, hidden=(64,), head_hidden=(32,), batch_size=128,
                   learning_rate=1e-3, buffer_size=10_000, learning_starts=128, train_freq=1, target_update_interval=4,
                   mask_prob=0.5, prior_scale=3.0)
    assert learned and learned[0] <= 1000, (len(hits), sum(hits))
    assert agent.evaluate(3).mean_return > 0.9  # the vote of the heads goes to the treasure


def test_train_2n_equals_train_n_checkpoint_resume_n(tmp_path, same_checkpoints):
    torch.set_num_threads(1)
    n = 300
    _train(steps=2 * n, checkpoint_dir=tmp_path / "full", checkpoint_every=n)
    half = tmp_path / "half"
    half.mkdir()
    shutil.copytree(tmp_path / "full" / f"step-{n}", half / f"step-{n}")
    (half / "latest").write_text(f"step-{n}\n")
    _train(steps=2 * n, checkpoint_dir=half, checkpoint_every=n, resume_from=half / f"step-{n}")
    same_checkpoints(tmp_path / "full" / f"step-{2 * n}", half / f"step-{2 * n}")
    tensors, _, buffer, _ = load_checkpoint(half / f"step-{2 * n}", with_buffer=True)
    # the heads, the priors, the head each env follows and the masks are all in the checkpoint
    assert "tensor/active_head" in tensors and "replay/extra/masks" in buffer
    assert any(k.startswith("q/prior.") for k in tensors) and any(k.startswith("q/net.heads.") for k in tensors)


def test_save_load_round_trip_votes_the_same(tmp_path):
    torch.set_num_threads(1)
    agent = _train(steps=400)
    agent.save(tmp_path / "agent")
    loaded = load_agent(tmp_path / "agent")
    assert loaded.algo == "bootstrapped-dqn" and loaded.config == agent.config
    obs = np.random.default_rng(0).uniform(-1, 1, size=(30, 4)).astype(np.float32)
    np.testing.assert_array_equal(agent.act(obs), loaded.act(obs))
    assert loaded.evaluate(2, seed=1) == agent.evaluate(2, seed=1)
    np.testing.assert_array_equal(rlworks.load(tmp_path / "agent").act(obs), agent.act(obs))


def test_refusals_are_one_clear_error():
    with pytest.raises(ConfigError, match="Discrete action space.*use sac or td3 or ddpg"):
        bdqn.train("Pendulum-v1", bdqn.BootstrappedDQNConfig(), total_steps=10)
    with pytest.raises(ConfigError, match="prioritized"):
        bdqn.BootstrappedDQNConfig(prioritized=True)
    with pytest.raises(ConfigError, match="dueling"):
        bdqn.BootstrappedDQNConfig(dueling=True)
    with pytest.raises(ConfigError, match="fused"):
        _train(steps=10, backend="fused")


def test_cli_on_a_continuous_action_space_exits_2_with_one_line():
    out = subprocess.run([sys.executable, "-m", "rlworks", "train", "bootstrapped-dqn", "--env", "Pendulum-v1",
                          "--total-steps", "100"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and "Discrete" in err[0] and "Traceback" not in out.stderr
    assert out.stdout.strip() == ""  # no progress bar for a run that never started


def test_one_hot_rows_take_the_weights_rows_with_the_same_values_and_gradients():
    torch.manual_seed(0)
    k, n, out, b = 4, 300, 5, 6
    x = torch.zeros(b, n)
    x[torch.arange(b - 1), torch.randint(n, (b - 1,))] = torch.tensor([1.0, 1.0, 2.0, -0.5, 1.0])
    # the last row stays all zero: DeepSea's observation after its final step
    w1 = torch.randn(k, n, out, requires_grad=True)
    w2 = w1.detach().clone().requires_grad_(True)
    fast = bdqn.heads_product(x, w1)
    dense = torch.matmul(x, w2)
    torch.testing.assert_close(fast, dense)
    g = torch.randn(k, b, out)
    (fast * g).sum().backward()
    (dense * g).sum().backward()
    torch.testing.assert_close(w1.grad, w2.grad)
    # a batch that is not one-hot (two non-zero entries in a row) takes the product
    x[0, 0] = x[0, 1] = 1.0
    torch.testing.assert_close(bdqn.heads_product(x, w1), torch.matmul(x, w1))


def test_the_prior_heads_prefer_different_actions_in_different_states():
    """On one-hot observations every input weight is small (±1/√N²), so a bias drawn like the weights would
    outweigh the state and give each prior head one preferred action everywhere, which explores nothing
    with DeepSea's per-cell action mapping. The biases start at zero: each head's preference varies by state."""
    torch.manual_seed(0)
    size = 30
    spec = {"obs_dim": size * size, "act_dim": 2}
    net = {"n_heads": 10, "hidden": [64], "head_hidden": [32], "activation": "relu", "prior_scale": 3.0}
    q = bdqn.build_actor(spec, net, bdqn.BootstrappedDQNConfig())
    with torch.no_grad():
        p = q.prior(torch.eye(size * size))  # (K, N², 2), every cell's one-hot observation
    prefer_1 = (p[..., 1] > p[..., 0]).float().mean(1)  # per head: the share of cells where action 1 wins
    assert int(((prefer_1 > 0.05) & (prefer_1 < 0.95)).sum()) >= 8, prefer_1
