"""The offline algorithms (BC, filtered BC, TD3+BC) on datasets built in memory: imitation, the TD3+BC
actor loss by hand, a short learning run, exact resume, save/load, evaluation in normalised score, and
their refusals in the API and the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlworks
from rlworks.algos import bc, td3_bc
from rlworks.algos.registry import OFFLINE_ALGOS
from rlworks.config import ConfigError
from rlworks.core.checkpoint import load_checkpoint
from rlworks.offline.data import OfflineDataset

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
SMALL = dict(hidden=(64, 64), batch_size=128)


def collect(env_id: str, policy, episodes: int, seed: int, **info) -> OfflineDataset:
    """``episodes`` episodes of ``policy(obs, rng)`` on ``env_id``, as an OfflineDataset."""
    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    eps = []
    for e in range(episodes):
        o, _ = env.reset(seed=seed + e)
        obs, acts, rews, terms, truncs = [o], [], [], [], []
        done = False
        while not done:
            a = policy(o, rng)
            o, r, term, trunc, _ = env.step(a)
            obs.append(o), acts.append(a), rews.append(r), terms.append(term), truncs.append(trunc)
            done = term or trunc
        eps.append({"observations": np.array(obs), "actions": np.array(acts), "rewards": np.array(rews),
                    "terminations": np.array(terms), "truncations": np.array(truncs)})
    env.close()
    return OfflineDataset.from_episodes(f"test/{env_id}-v0", eps, env.observation_space, env.action_space,
                                        env_id=env_id, **info)


def cartpole_expert(o, rng):
    """Push toward the side the pole is falling to: balances for about 200 steps."""
    return int(o[3] > 0)


def pendulum_expert(o, rng, noise=1.0):
    """Energy pumping, then PD control near the top (about −130 per episode without noise); Gaussian noise."""
    th, thd = np.arctan2(o[1], o[0]), o[2]
    if o[0] > 0.8:
        u = -(10 * th + 2 * thd)
    else:
        energy = 0.5 * thd ** 2 + 15.0 * (o[0] - 1)  # 0 upright at rest (3g/2l = 15)
        u = 2.0 * np.sign(thd) if energy < 0 else -0.5 * np.sign(thd)
    return np.clip(np.array([u + noise * rng.standard_normal()], np.float32), -2, 2)


@pytest.fixture(scope="module")
def cartpole() -> OfflineDataset:
    return collect("CartPole-v1", cartpole_expert, 10, 0, ref_min_score=22.0, ref_max_score=500.0)


@pytest.fixture(scope="module")
def pendulum() -> OfflineDataset:
    return collect("Pendulum-v1", pendulum_expert, 20, 0, ref_min_score=-1200.0, ref_max_score=-130.0)


# ---------------------------------------------------------------------------------------------
# BC and filtered BC
# ---------------------------------------------------------------------------------------------


def test_bc_imitates_a_scripted_cartpole_policy(cartpole):
    agent = rlworks.train("bc", "CartPole-v1", dataset=cartpole, total_steps=1000, **SMALL)
    held_out = collect("CartPole-v1", cartpole_expert, 3, 100)
    agree = np.mean(agent.act(held_out.observations) == held_out.actions)
    assert agree >= 0.95, agree
    res = agent.evaluate(5, seed=100)
    random_return = np.mean(collect("CartPole-v1", lambda o, rng: int(rng.integers(2)), 10, 7).episode_returns)
    assert res.mean_return >= 120 and res.mean_return > 4 * random_return, (res, random_return)
    assert agent.meta["global_step"] == 1000 and agent.meta["dataset"] == cartpole.dataset_id


def test_bc_regresses_box_actions(pendulum):
    agent = rlworks.train("bc", "Pendulum-v1", dataset=pendulum, total_steps=1500, norm_obs=False, **SMALL)
    rows = np.arange(0, len(pendulum), 7)
    pred = agent.act(pendulum.observations[rows])
    assert pred.shape == (len(rows), 1) and np.all(np.abs(pred) <= 2.0)
    # the data is the controller plus N(0, 1) noise, so the best regression sits near the controller, whose
    # residual to the data is the noise: mean squared error near 1 (an untrained policy's is far above)
    mse = np.mean((pred - pendulum.actions[rows]) ** 2)
    untrained = rlworks.train("bc", "Pendulum-v1", dataset=pendulum, total_steps=1, **SMALL)
    assert mse < 1.3 < np.mean((untrained.act(pendulum.observations[rows]) - pendulum.actions[rows]) ** 2), mse


def test_filtered_bc_keeps_the_top_episodes():
    data = collect("CartPole-v1", lambda o, rng: int(rng.integers(2)), 20, 3)
    returns = data.episode_returns
    top = bc.top_episodes(data, 0.1)
    assert len(top) == 2 and set(returns[top]) == set(np.sort(returns)[-2:])
    assert len(bc.top_episodes(data, 0.25)) == 5 and len(bc.top_episodes(data, 1.0)) == 20
    agent = rlworks.train("bc", "CartPole-v1", dataset=data, total_steps=5, filter_top=0.1, **SMALL)
    assert agent.meta["transitions"] == data.episode_lengths[top].sum() < len(data)
    assert rlworks.train("bc", "CartPole-v1", dataset=data, total_steps=5, **SMALL).meta["transitions"] == len(data)
    with pytest.raises(ConfigError, match="filter_top"):
        bc.BCConfig(filter_top=0.0)


# ---------------------------------------------------------------------------------------------
# TD3+BC
# ---------------------------------------------------------------------------------------------


def test_td3_bc_actor_loss_is_minus_lambda_q_plus_mse_by_hand():
    q = torch.tensor([1.0, -3.0, 2.0], requires_grad=True)
    pi = torch.tensor([[0.5, -0.5], [0.0, 1.0], [0.2, 0.2]], requires_grad=True)
    a = torch.tensor([[0.0, 0.0], [0.5, 1.0], [0.2, -0.8]])
    loss, lam = td3_bc.actor_loss(q, pi, a, alpha=2.5)
    lam_by_hand = 2.5 / ((1 + 3 + 2) / 3)
    mse_by_hand = (0.25 + 0.25 + 0.25 + 0 + 0 + 1.0) / 6
    assert float(lam) == pytest.approx(lam_by_hand)
    assert float(loss.detach()) == pytest.approx(-lam_by_hand * (1 - 3 + 2) / 3 + mse_by_hand)
    loss.backward()  # λ is a constant: dL/dQ_i = −λ/N, not differentiated through |Q|
    torch.testing.assert_close(q.grad, torch.full((3,), -lam_by_hand / 3))
    torch.testing.assert_close(pi.grad, 2 * (pi - a).detach() / 6)


def test_td3_bc_update_is_td3s_critic_step_then_the_bc_actor_step():
    import copy

    spec = {"obs_dim": 3, "act_dim": 1}
    cfg = td3_bc.TD3BCConfig(hidden=(16,), policy_delay=1)
    torch.manual_seed(0)
    st = td3_bc.td3.build_state(spec, cfg, torch.device("cpu"))
    by_hand = copy.deepcopy(st)
    batch = {"obs": torch.randn(8, 3), "actions": torch.rand(8, 1) * 2 - 1, "returns": torch.randn(8),
             "discounts": torch.full((8,), 0.99), "next_obs": torch.randn(8, 3)}
    m = td3_bc.update(st, cfg, batch, torch.Generator().manual_seed(0))
    # by hand: TD3's critic step, then the actor on −λ Q_1(s, π(s)) + (π(s) − a)², then the Polyak averages
    td3_bc.td3.critic_update(by_hand, cfg, batch, torch.Generator().manual_seed(0))
    pi = by_hand.actor(batch["obs"])
    q = by_hand.critic(batch["obs"], pi)[0]
    lam = 2.5 / q.abs().mean().detach()
    loss = -lam * q.mean() + ((pi - batch["actions"]) ** 2).mean()
    by_hand.actor_opt.zero_grad()
    loss.backward()
    by_hand.actor_opt.step()
    for target, online in zip(*by_hand.polyak):
        target.data.mul_(1 - cfg.tau).add_(cfg.tau * online.data)
    assert float(m["losses/actor_loss"]) == pytest.approx(float(loss.detach()), rel=1e-6)
    assert float(m["losses/lambda"]) == pytest.approx(float(lam), rel=1e-6)
    for name in ("actor", "critic", "actor_target", "critic_target"):
        for p, r in zip(getattr(st, name).parameters(), getattr(by_hand, name).parameters()):
            torch.testing.assert_close(p, r, rtol=1e-6, atol=1e-7, msg=name)


def test_td3_bc_learns_pendulum_from_a_noisy_controller(pendulum):
    agent = rlworks.train("td3-bc", "Pendulum-v1", dataset=pendulum, total_steps=3000, seed=0, **SMALL)
    res = agent.evaluate(10, seed=100)
    score = pendulum.normalized_score(res.mean_return)
    assert res.mean_return > -500 and score > 60, (res.mean_return, score)  # random ≈ −1200 (score 0)


# ---------------------------------------------------------------------------------------------
# evaluation, resume, save/load
# ---------------------------------------------------------------------------------------------


class ListLogger:
    def __init__(self):
        self.rows = []

    def log(self, step, metrics):
        self.rows.append((step, dict(metrics)))


def test_periodic_evaluation_logs_the_normalised_score(cartpole):
    log = ListLogger()
    agent = rlworks.train("bc", "CartPole-v1", dataset=cartpole, total_steps=200, eval_every=100, eval_episodes=2,
                          logger=log, log_every=50, **SMALL)
    evals = [(s, m["eval/mean_return"]) for s, m in log.rows if "eval/mean_return" in m]
    scores = [(s, m["eval/normalized_score"]) for s, m in log.rows if "eval/normalized_score" in m]
    assert [s for s, _ in evals] == [s for s, _ in scores] == [100, 200]
    for (_, ret), (_, score) in zip(evals, scores):
        assert score == pytest.approx(100 * (ret - 22.0) / (500.0 - 22.0))
    assert [s for s, m in log.rows if "losses/bc_loss" in m] == [50, 100, 150, 200]
    assert agent.meta["global_step"] == 200


def same_offline_checkpoints(a, b) -> None:
    """``conftest.assert_same_checkpoints`` for checkpoints without a replay buffer: tensors and state."""
    ta, sa, _, _ = load_checkpoint(a)
    tb, sb, _, _ = load_checkpoint(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    assert json.dumps({k: sa[k] for k in ("train", "sampler")}, sort_keys=True) == \
        json.dumps({k: sb[k] for k in ("train", "sampler")}, sort_keys=True)


@pytest.mark.parametrize("algo", ["td3-bc", "bc"])
def test_resume_is_exact(algo, pendulum, tmp_path):
    kw = dict(dataset=pendulum, total_steps=60, seed=4, **SMALL)
    rlworks.train(algo, "Pendulum-v1", checkpoint_dir=tmp_path / "a", **kw)
    rlworks.train(algo, "Pendulum-v1", checkpoint_dir=tmp_path / "b", stop_at=31, **kw)  # odd: mid policy delay
    assert (tmp_path / "b" / "step-31").is_dir() and not (tmp_path / "b" / "step-60").exists()
    rlworks.train(algo, "Pendulum-v1", checkpoint_dir=tmp_path / "b", resume_from=tmp_path / "b" / "step-31", **kw)
    same_offline_checkpoints(tmp_path / "a" / "step-60", tmp_path / "b" / "step-60")
    with pytest.raises(Exception, match="trained on dataset"):  # another dataset cannot continue it
        other = collect("Pendulum-v1", pendulum_expert, 2, 50)
        rlworks.train(algo, "Pendulum-v1", **{**kw, "dataset": other}, resume_from=tmp_path / "b" / "step-31")


@pytest.mark.parametrize("algo, data", [("td3-bc", "pendulum"), ("bc", "cartpole")])
def test_save_load_round_trip_acts_the_same(algo, data, request, tmp_path):
    ds = request.getfixturevalue(data)
    agent = rlworks.train(algo, ds.env_id, dataset=ds, total_steps=50, checkpoint_dir=tmp_path / "ckpt", **SMALL)
    agent.save(tmp_path / "agent")
    obs = ds.observations[::5]
    for path in (tmp_path / "agent", tmp_path / "ckpt"):  # a saved agent, and a training checkpoint
        loaded = rlworks.load(path)
        assert type(loaded) is type(agent) and loaded.algo == algo
        np.testing.assert_array_equal(loaded.act(obs), agent.act(obs))
        torch.testing.assert_close(loaded.model.mean, agent.model.mean)
    assert float(agent.model.std.min()) > 0 and not torch.allclose(agent.model.mean, torch.zeros(1))
    assert loaded.evaluate(1, seed=0).mean_return == agent.evaluate(1, seed=0).mean_return


# ---------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------


def test_api_refusals(cartpole, pendulum):
    offline = re.escape(", ".join(OFFLINE_ALGOS))
    with pytest.raises(ConfigError, match=rf"dataset= is for the offline algorithms \({offline}\); ppo"):
        rlworks.train("ppo", "CartPole-v1", dataset=cartpole, total_steps=10)
    with pytest.raises(ConfigError, match="bc learns from a dataset and none was given"):
        rlworks.train("bc", "CartPole-v1", total_steps=10)
    with pytest.raises(ConfigError, match="does not fit env Acrobot-v1"):
        rlworks.train("bc", "Acrobot-v1", dataset=cartpole, total_steps=10)
    with pytest.raises(ConfigError, match="td3-bc needs a box action space.*use bc"):
        rlworks.train("td3-bc", "CartPole-v1", dataset=cartpole, total_steps=10)
    with pytest.raises(ConfigError, match="total_steps=0"):
        rlworks.train("td3-bc", "Pendulum-v1", dataset=pendulum, total_steps=0)
    # the env defaults to the dataset's
    assert rlworks.train("bc", None, dataset=cartpole, total_steps=2, **SMALL).env_id == "CartPole-v1"


def cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlworks", *args], capture_output=True, text=True,
                          env={**ENV, **env}, timeout=180, check=False)


def one_error_line(out: subprocess.CompletedProcess, needle: str) -> None:
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlworks: error: ") and needle in lines[0], out.stderr


def test_cli_refusals(tmp_path):
    one_error_line(cli("train", "ppo", "--env", "CartPole-v1", "--dataset", "x/y-v0"),
                   f"--dataset is an option of {', '.join(OFFLINE_ALGOS)}, not of ppo")
    one_error_line(cli("train", "bc", "--env", "CartPole-v1"), "bc learns from a dataset and none was given")
    one_error_line(cli("train", "td3-bc", "--dataset", "test/none-v0", "--run-dir", str(tmp_path / "r"),
                       MINARI_DATASETS_PATH=str(tmp_path / "minari")), "no dataset 'test/none-v0'")
    assert not (tmp_path / "r").exists()


def test_cli_trains_from_a_dataset_on_disk(cartpole, pendulum, tmp_path):
    from rlworks.offline import datasets

    root = tmp_path / "minari"
    last = cartpole.next_observations
    eps = [{"observations": np.concatenate([cartpole.observations[s:s + n], last[s + n - 1:s + n]]),
            "actions": cartpole.actions[s:s + n], "rewards": cartpole.rewards[s:s + n],
            "terminations": cartpole.terminations[s:s + n], "truncations": cartpole.truncations[s:s + n]}
           for s, n in zip(cartpole.episode_starts, cartpole.episode_lengths)]
    datasets.save("test/cartpole/scripted-v0", eps, "CartPole-v1", root=root, ref_min_score=22.0, ref_max_score=500.0)
    run = tmp_path / "run"
    out = cli("train", "bc", "--dataset", "test/cartpole/scripted-v0", "--total-steps", "300", "--hidden", "32",
              "--eval-every", "150", "--eval-episodes", "1", "--run-dir", str(run), "--quiet",
              MINARI_DATASETS_PATH=str(root))
    assert out.returncode == 0, out.stderr
    meta = json.loads((run / "config.json").read_text())
    assert meta["env_id"] == "CartPole-v1" and meta["config"]["dataset"] == "test/cartpole/scripted-v0"
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "eval/normalized_score" in header and "losses/bc_loss" in header
    assert rlworks.load(run).meta["global_step"] == 300
    out = cli("train", "--resume", str(run), "--total-steps", "400", "--quiet", MINARI_DATASETS_PATH=str(root))
    assert out.returncode == 0, out.stderr
    assert rlworks.load(run).meta["global_step"] == 400
    one_error_line(cli("train", "bc", "--dataset", "test/cartpole/scripted-v0", "--env", "Pendulum-v1",
                       "--run-dir", str(tmp_path / "r2"), MINARI_DATASETS_PATH=str(root)), "does not fit env")
