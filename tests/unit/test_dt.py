"""The Decision Transformer: the causal mask, sequence sampling against a hand-computed dataset, conditioning on
the target return on a small deterministic task, exact resume, save/load, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlworks
from rlworks.algos import dt, offline, segments
from rlworks.config import ConfigError
from rlworks.core.checkpoint import load_checkpoint
from rlworks.offline.data import OfflineDataset

# helpers as in test_offline_algos.py (test modules cannot import each other under --import-mode=importlib)


def collect(env_id: str, policy, episodes: int, seed: int) -> OfflineDataset:
    env, rng, eps = gym.make(env_id), np.random.default_rng(seed), []
    for e in range(episodes):
        o, _ = env.reset(seed=seed + e)
        ep = {"observations": [o], "actions": [], "rewards": [], "terminations": [], "truncations": []}
        done = False
        while not done:
            a = policy(o, rng)
            o, r, term, trunc, _ = env.step(a)
            for k, v in zip(ep, (o, a, r, term, trunc)):
                ep[k].append(v)
            done = term or trunc
        eps.append({k: np.array(v) for k, v in ep.items()})
    env.close()
    return OfflineDataset.from_episodes(f"test/{env_id}-v0", eps, env.observation_space, env.action_space,
                                        env_id=env_id)


def cartpole_expert(o, rng):
    return int(o[3] > 0)


def pendulum_expert(o, rng):
    return np.clip(np.array([-(10 * np.arctan2(o[1], o[0]) + 2 * o[2]) + rng.standard_normal()], np.float32), -2, 2)


def same_offline_checkpoints(a, b) -> None:
    ta, sa, _, _ = load_checkpoint(a)
    tb, sb, _, _ = load_checkpoint(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    assert json.dumps({k: sa[k] for k in ("train", "sampler")}, sort_keys=True) == \
        json.dumps({k: sb[k] for k in ("train", "sampler")}, sort_keys=True)


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlworks", *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env}, timeout=180, check=False)


def one_error_line(out: subprocess.CompletedProcess, needle: str) -> None:
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlworks: error: ") and needle in lines[0], out.stderr


@pytest.fixture(autouse=True)
def one_thread():
    """Acting is one small forward per step: several threads only contend (the CLI and benchmarks set this)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = dict(embed_dim=32, n_layer=1, context_length=5, dropout=0.0, warmup_steps=10, learning_rate=1e-3,
            batch_size=32)

# ---------------------------------------------------------------------------------------------
# the causal mask
# ---------------------------------------------------------------------------------------------


def net(discrete: bool) -> dt.DecisionTransformer:
    spec = {"action": "discrete" if discrete else "box", "obs_dim": 3, "act_dim": 2}
    netcfg = {"embed_dim": 16, "n_layer": 2, "n_head": 2, "dropout": 0.0, "activation": "relu", "max_ep_len": 50}
    torch.manual_seed(0)
    return dt.DecisionTransformer(spec, netcfg)


def inputs(discrete: bool, B: int = 2, K: int = 6) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    actions = torch.randint(2, (B, K), generator=g) if discrete else torch.rand(B, K, 2, generator=g)
    return [torch.randn(B, K, generator=g), torch.randn(B, K, 3, generator=g), actions,
            torch.arange(K).repeat(B, 1), torch.ones(B, K, dtype=torch.bool)]


@pytest.mark.parametrize("discrete", [True, False])
def test_causal_mask_blocks_the_future(discrete):
    model, t = net(discrete), 2
    x = inputs(discrete)
    base = model(*x)
    for which in range(3):  # R̂, s, a after step t; and a_t itself, whose token comes after s_t's
        y = [v.clone() for v in x]
        y[which][:, t + 1:] = y[which][:, t + 1:] + 1 if which != 2 or not discrete else 1 - y[which][:, t + 1:]
        if which == 2:
            y[2][:, t] = 1 - y[2][:, t] if discrete else y[2][:, t] + 1
        out = model(*y)
        torch.testing.assert_close(out[:, :t + 1], base[:, :t + 1], rtol=0, atol=0)
        assert (out[:, t + 1:] - base[:, t + 1:]).abs().max() > 1e-4, which  # later steps do see it
    for which in range(2):  # R̂_t, s_t, or an earlier a, change the prediction at t
        y = [v.clone() for v in x]
        y[which][:, t] += 1
        assert (model(*y)[:, t] - base[:, t]).abs().max() > 1e-4, which
    y = [v.clone() for v in x]
    y[2][:, t - 1] = 1 - y[2][:, t - 1] if discrete else y[2][:, t - 1] + 1
    assert (model(*y)[:, t] - base[:, t]).abs().max() > 1e-4


def test_a_block_at_some_tokens_equals_the_whole_block_there():
    from rlworks.core.transformer import Block

    torch.manual_seed(3)
    block = Block(16, 2, 0.0, "relu")
    x = torch.randn(3, 12, 16, requires_grad=True)
    allowed = dt.attention_mask(torch.tensor([[False] + [True] * 3, [True] * 4, [True] * 4]))
    at = torch.arange(1, 12, 3)  # the state tokens, as the Decision Transformer's last block reads them
    full, part = block(x, allowed, None)[:, at], block(x, allowed, None, at=at)
    torch.testing.assert_close(part, full, rtol=0, atol=1e-6)
    grads = [torch.autograd.grad(y.square().sum(), [x, *block.parameters()]) for y in (part, full)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_update_takes_bfloat16_products_only_under_medium_precision():
    from rlworks.core.optim import Adam
    from rlworks.core.runtime import tuned

    rtg, obs, actions, timesteps, mask = inputs(False, B=4, K=6)
    batch = {"rtg": rtg, "obs": obs, "actions": actions, "timesteps": timesteps, "mask": mask}
    losses = {}
    for precision in ("highest", "medium", "highest"):
        model = net(False)
        st = dt.DTState(model, Adam(list(model.parameters()), lr=1e-3))
        with tuned(None, matmul_precision=precision):
            out = dt.update(st, dt.DTConfig(warmup_steps=1), batch, torch.Generator().manual_seed(0))
        losses.setdefault(precision, []).append(float(out["losses/action_loss"]))
    exact, low = losses["highest"], losses["medium"][0]
    assert exact[0] == exact[1] and low != exact[0]  # float32 repeats itself; bfloat16 products differ a little
    assert abs(low - exact[0]) < 0.02 * exact[0]


def test_padding_is_invisible():
    model = net(True)
    x = inputs(True)
    x[4][:, :2] = False  # two steps of left padding
    base = model(*x)
    y = [v.clone() for v in x]
    y[0][:, :2] += 5.0
    y[1][:, :2] -= 3.0
    y[2][:, :2] = 1 - y[2][:, :2]
    torch.testing.assert_close(model(*y)[:, 2:], base[:, 2:], rtol=0, atol=0)
    mask = dt.attention_mask(x[4])[0, 0]
    assert mask.shape == (18, 18) and not mask[6:, :6].any() and mask[6:, 6:].equal(torch.ones(12, 12).tril().bool())


# ---------------------------------------------------------------------------------------------
# sequences
# ---------------------------------------------------------------------------------------------


class Staircase(gym.Env):
    """``H`` steps; the observation is the fraction of the episode done; action a ∈ {0, 1, 2} earns reward a.
    The return is the sum of the actions: it is decided by which action is chosen."""

    H = 5

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.full(1, self.t / self.H, np.float32), float(action), self.t >= self.H, False, {}


def staircase_data(episodes: int, seed: int) -> OfflineDataset:
    rng, H, eps = np.random.default_rng(seed), Staircase.H, []
    for _ in range(episodes):
        a = rng.integers(3, size=H)
        eps.append({"observations": (np.arange(H + 1) / H).astype(np.float32)[:, None], "actions": a,
                    "rewards": a.astype(np.float32), "terminations": np.arange(H) == H - 1,
                    "truncations": np.zeros(H, bool)})
    env = Staircase()
    return OfflineDataset.from_episodes("test/staircase-v0", eps, env.observation_space, env.action_space)


def hand_dataset() -> OfflineDataset:
    """Two episodes, rewards (1, 2, 3) and (4, 5): returns-to-go (6, 5, 3) and (9, 5)."""
    eps = [{"observations": np.arange(4, dtype=np.float32)[:, None], "actions": np.array([0, 1, 2]),
            "rewards": np.array([1.0, 2.0, 3.0]), "terminations": np.array([0, 0, 1], bool),
            "truncations": np.zeros(3, bool)},
           {"observations": np.arange(10, 13, dtype=np.float32)[:, None], "actions": np.array([2, 1]),
            "rewards": np.array([4.0, 5.0]), "terminations": np.zeros(2, bool), "truncations": np.array([0, 1], bool)}]
    env = Staircase()
    return OfflineDataset.from_episodes("test/hand-v0", eps, env.observation_space, env.action_space)


def test_sequences_returns_to_go_timesteps_and_padding():
    cfg = dt.DTConfig(norm_obs=False, return_scale=2.0)
    s = offline.build_session("dt", offline.OfflineSource(Staircase(), hand_dataset()), cfg, seed=0, total_steps=1,
                              device="cpu")
    segments.add_sequence_tensors(s, cfg.return_scale)
    assert s.data["rtg"].tolist() == [3.0, 2.5, 1.5, 4.5, 2.5]  # (6, 5, 3, 9, 5) / 2
    assert s.data["timesteps"].tolist() == [0, 1, 2, 0, 1] and s.data["episode_end"].tolist() == [3, 3, 3, 5, 5]
    rows, mask = segments.segment_rows(torch.tensor([0, 1, 3, 4]), s.data["episode_end"], 3)
    assert mask.tolist() == [[1, 1, 1], [0, 1, 1], [0, 1, 1], [0, 0, 1]]
    assert rows[mask].tolist() == [0, 1, 2, 1, 2, 3, 4, 4]
    b = segments.sample_segments(s, 200, 3)
    assert b["obs"].shape == (200, 3, 1) and b["actions"].shape == b["rtg"].shape == b["mask"].shape == (200, 3)
    assert b["mask"][:, -1].all() and (b["obs"][~b["mask"]] == 0).all() and (b["rtg"][~b["mask"]] == 0).all()
    by_obs = {0.0: (3.0, 0), 1.0: (2.5, 1), 2.0: (1.5, 2), 10.0: (4.5, 0), 11.0: (2.5, 1)}
    for o, r, t in zip(b["obs"][..., 0][b["mask"]], b["rtg"][b["mask"]], b["timesteps"][b["mask"]]):
        assert (float(r), int(t)) == by_obs[float(o)]
    firsts = {float(b["obs"][i, int((~b["mask"][i]).sum()), 0]) for i in range(200)}
    assert firsts == {0.0, 1.0, 2.0, 10.0, 11.0}  # every transition starts a segment


# ---------------------------------------------------------------------------------------------
# conditioning, resume, save/load
# ---------------------------------------------------------------------------------------------


def test_a_higher_target_return_gives_a_higher_return():
    data = staircase_data(300, 0)
    agent = rlworks.train("dt", Staircase, dataset=data, total_steps=400, seed=0, return_scale=10.0, **TINY)
    achieved = [agent.evaluate(1, seed=0, env=Staircase, target_return=g).mean_return for g in (0, 3, 5, 7, 10)]
    assert all(b >= a for a, b in zip(achieved, achieved[1:])), achieved
    assert achieved[0] <= 2 and achieved[-1] >= 8, achieved
    assert agent.target_return == max(data.episode_returns)  # the default: the dataset's best


@pytest.fixture(scope="module")
def pendulum() -> OfflineDataset:
    return collect("Pendulum-v1", pendulum_expert, 3, 0)


def test_resume_is_exact(pendulum, tmp_path):
    kw = dict(dataset=pendulum, total_steps=30, seed=3, embed_dim=16, context_length=4, batch_size=8)
    rlworks.train("dt", "Pendulum-v1", checkpoint_dir=tmp_path / "a", **kw)
    rlworks.train("dt", "Pendulum-v1", checkpoint_dir=tmp_path / "b", stop_at=13, **kw)
    rlworks.train("dt", "Pendulum-v1", checkpoint_dir=tmp_path / "b", resume_from=tmp_path / "b" / "step-13", **kw)
    same_offline_checkpoints(tmp_path / "a" / "step-30", tmp_path / "b" / "step-30")


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
def test_save_load_acts_the_same(env_id, pendulum, tmp_path):
    data = pendulum if env_id == "Pendulum-v1" else collect("CartPole-v1", cartpole_expert, 3, 0)
    agent = rlworks.train("dt", env_id, dataset=data, total_steps=20, checkpoint_dir=tmp_path / "ckpt",
                          target_return=123.0, embed_dim=16, context_length=4, batch_size=8)
    agent.save(tmp_path / "agent")
    obs = data.observations[::7]
    for path in (tmp_path / "agent", tmp_path / "ckpt"):
        loaded = rlworks.load(path)
        assert type(loaded) is dt.DTAgent and loaded.target_return == 123.0
        np.testing.assert_array_equal(loaded.act(obs), agent.act(obs))
        a, b = agent.episode(50.0), loaded.episode(50.0)
        for o, r in zip(data.observations[:10], data.rewards[:10]):  # a context of several steps
            np.testing.assert_array_equal(a.act(o), b.act(o))
            a.reward(r), b.reward(r)
    assert loaded.evaluate(1, seed=0).returns == agent.evaluate(1, seed=0).returns
    if env_id == "Pendulum-v1":
        assert np.all(np.abs(agent.act(obs)) <= 2.0)


def test_config_refusals():
    with pytest.raises(ConfigError, match="embed_dim=30 must be a multiple of n_head=4"):
        dt.DTConfig(embed_dim=30, n_head=4)
    with pytest.raises(ConfigError, match="context_length"):
        dt.DTConfig(context_length=0)


def test_cli_trains_dt_from_a_dataset_on_disk(tmp_path):
    from rlworks.offline import datasets

    data = collect("CartPole-v1", cartpole_expert, 3, 0)
    root = tmp_path / "minari"
    eps = [{"observations": np.concatenate([data.observations[s:s + n], data.next_observations[s + n - 1:s + n]]),
            "actions": data.actions[s:s + n], "rewards": data.rewards[s:s + n],
            "terminations": data.terminations[s:s + n], "truncations": data.truncations[s:s + n]}
           for s, n in zip(data.episode_starts, data.episode_lengths)]
    datasets.save("test/cartpole/dt-v0", eps, "CartPole-v1", root=root)
    run = tmp_path / "run"
    out = cli("train", "dt", "--dataset", "test/cartpole/dt-v0", "--total-steps", "20", "--embed-dim", "16",
              "--context-length", "4", "--target-return", "300", "--run-dir", str(run), "--quiet",
              MINARI_DATASETS_PATH=str(root))
    assert out.returncode == 0, out.stderr
    assert json.loads((run / "config.json").read_text())["config"]["target_return"] == 300
    assert "losses/action_loss" in (run / "metrics.csv").read_text().splitlines()[0].split(",")
    agent = rlworks.load(run)
    assert agent.meta["global_step"] == 20 and agent.target_return == 300
    one_error_line(cli("train", "dt", "--env", "CartPole-v1"), "dt learns from a dataset and none was given")
    one_error_line(cli("train", "dt", "--dataset", "test/cartpole/dt-v0", "--embed-dim", "30", "--n-head", "4",
                       "--run-dir", str(tmp_path / "r2"), MINARI_DATASETS_PATH=str(root)), "embed_dim=30")
