"""CQL and IQL on small datasets built in memory: the conservative terms against slow references and by hand,
the conservative push on out-of-data actions, the Lagrange multiplier, IQL's expectile loss and advantage
weights, short learning runs, exact resume, save/load, and the registry and CLI."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import rlworks
from rlworks.algos import cql, iql
from rlworks.config import ConfigError


def _offline_helpers():
    """test_offline_algos.py's dataset builders and CLI helpers (test modules are not importable by name under
    --import-mode=importlib)."""
    spec = importlib.util.spec_from_file_location("_offline_algos_helpers", Path(__file__).with_name(
        "test_offline_algos.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_h = _offline_helpers()
SMALL, cartpole_expert, cli, collect = _h.SMALL, _h.cartpole_expert, _h.cli, _h.collect
one_error_line, pendulum_expert, same_offline_checkpoints = _h.one_error_line, _h.pendulum_expert, \
    _h.same_offline_checkpoints


@pytest.fixture(scope="module")
def cartpole():
    return collect("CartPole-v1", cartpole_expert, 10, 0, ref_min_score=22.0, ref_max_score=500.0)


@pytest.fixture(scope="module")
def pendulum():
    return collect("Pendulum-v1", pendulum_expert, 20, 0, ref_min_score=-1200.0, ref_max_score=-130.0)


def small_cql_state(cfg: cql.CQLConfig, obs_dim: int = 3, act_dim: int = 2, seed: int = 0) -> cql.CQLState:
    torch.manual_seed(seed)
    spec = {"obs_dim": obs_dim, "act_dim": act_dim, "action": "box"}
    return cql.build_state(spec, cfg, torch.device("cpu"))


# ---------------------------------------------------------------------------------------------
# CQL: the conservative term
# ---------------------------------------------------------------------------------------------


def test_importance_sampled_logsumexp_matches_a_slow_loop():
    g = torch.Generator().manual_seed(0)
    n, B, N, d = 2, 3, 4, 2
    q_rand, q_pi, q_next = (torch.randn(n, B, N, generator=g) for _ in range(3))
    logp_pi, logp_next = (torch.randn(B, N, generator=g) for _ in range(2))
    fast = cql.importance_sampled_logsumexp(q_rand, q_pi, logp_pi, q_next, logp_next, d)
    for i in range(n):
        for b in range(B):
            terms = [float(q_rand[i, b, j]) - d * math.log(0.5) for j in range(N)]
            terms += [float(q_next[i, b, j] - logp_next[b, j]) for j in range(N)]
            terms += [float(q_pi[i, b, j] - logp_pi[b, j]) for j in range(N)]
            assert float(fast[i, b]) == pytest.approx(math.log(sum(math.exp(t) for t in terms)), rel=1e-5)


def test_conservative_gap_matches_a_slow_loop_over_states_and_samples():
    cfg = cql.CQLConfig(hidden=(16,), cql_n_actions=3)
    st = small_cql_state(cfg)
    B, N, d = 4, cfg.cql_n_actions, 2
    obs, next_obs, actions = torch.randn(B, 3), torch.randn(B, 3), torch.rand(B, d) * 2 - 1
    q_data = st.critic(obs, actions)
    gap = cql.conservative_gap(st, cfg, obs, next_obs, q_data, torch.Generator().manual_seed(5))
    # the same draws (the uniform actions, then the policy's at [s; s'] repeated N times), valued one at a time
    g = torch.Generator().manual_seed(5)
    rand = torch.rand((B * N, d), generator=g) * 2 - 1
    with torch.no_grad():
        a_pol, logp_pol = st.actor.sample(torch.cat([obs, next_obs]).repeat_interleave(N, 0), g)
        for i in range(cfg.n_critics):
            for b in range(B):
                terms = []
                for j in range(N):
                    s, k = obs[b:b + 1], b * N + j
                    terms.append(float(st.critic(s, rand[k:k + 1])[i, 0]) - d * math.log(0.5))
                    terms.append(float(st.critic(s, a_pol[B * N + k:B * N + k + 1])[i, 0] - logp_pol[B * N + k]))
                    terms.append(float(st.critic(s, a_pol[k:k + 1])[i, 0] - logp_pol[k]))
                ref = math.log(sum(math.exp(t) for t in terms)) - float(st.critic(obs[b:b + 1], actions[b:b + 1])[i, 0])
                assert float(gap[i, b]) == pytest.approx(ref, rel=1e-4, abs=1e-5)


def test_twinq_wide_rows_take_one_product_per_critic_with_the_same_values_and_gradients(monkeypatch):
    from rlworks.core.nets import TwinQ

    torch.manual_seed(0)
    net = TwinQ(5, 2, (32, 32))
    obs, act = torch.randn(40, 5), torch.randn(40, 2)
    stacked = net(obs, act)
    stacked.square().sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    monkeypatch.setattr(TwinQ, "WIDE_ROWS", 40)  # these 40 rows now go through the per-critic path
    wide = net(obs, act)
    wide.square().sum().backward()
    assert wide.shape == stacked.shape == (2, 40)
    torch.testing.assert_close(wide, stacked, rtol=1e-5, atol=1e-6)
    for p, g in zip(net.parameters(), grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-6)


def test_bfloat16_products_only_under_medium_precision_and_close_to_float32():
    from rlworks.core.runtime import bf16_products, tuned

    cfg = cql.CQLConfig(hidden=(64, 64), cql_n_actions=10)
    st = small_cql_state(cfg)
    obs, next_obs, actions = torch.randn(128, 3), torch.randn(128, 3), torch.rand(128, 2) * 2 - 1
    q_data = st.critic(obs, actions)
    exact = cql.conservative_gap(st, cfg, obs, next_obs, q_data, torch.Generator().manual_seed(1))
    with tuned(None, matmul_precision="highest"):
        assert not bf16_products(torch.device("cpu"))._enabled
        again = cql.conservative_gap(st, cfg, obs, next_obs, q_data, torch.Generator().manual_seed(1))
    torch.testing.assert_close(again, exact, rtol=0, atol=0)
    with tuned(None, matmul_precision="medium"):
        assert bf16_products(torch.device("cpu"))._enabled
        low = cql.conservative_gap(st, cfg, obs, next_obs, q_data, torch.Generator().manual_seed(1))
    assert low.dtype == torch.float32 and not torch.equal(low, exact)  # the products really were bfloat16
    torch.testing.assert_close(low, exact, rtol=0, atol=0.05)  # bfloat16 inputs, float32 sums: small error


def test_discrete_gap_by_hand():
    q = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [5.0, -1.0, 0.5]])
    a = torch.tensor([0, 2, 0])
    expected = [math.log(math.e + math.e ** 2 + math.e ** 3) - 1.0, math.log(3.0),
                math.log(math.exp(5) + math.exp(-1) + math.exp(0.5)) - 5.0]
    torch.testing.assert_close(cql.discrete_gap(q, a), torch.tensor(expected))


def far_minus_data(st: cql.CQLState, obs: torch.Tensor, actions: torch.Tensor) -> float:
    """mean over states of Q(s, ±1) − Q(s, a_data), for the first critic."""
    with torch.no_grad():
        far = torch.stack([st.critic(obs, torch.full_like(actions, v))[0] for v in (-1.0, 1.0)]).mean(0)
        return float((far - st.critic(obs, actions)[0]).mean())


def test_cql_pushes_q_down_on_actions_far_from_the_data():
    g = torch.Generator().manual_seed(0)
    B = 64
    batch = {"obs": torch.randn(B, 3, generator=g), "next_obs": torch.randn(B, 3, generator=g),
             "actions": 0.05 * torch.randn(B, 1, generator=g), "returns": torch.randn(B, generator=g),
             "discounts": torch.full((B,), 0.9)}
    gaps = {}
    for alpha in (0.0, 5.0):  # cql_alpha = 0: SAC on the dataset, nothing conservative
        cfg = cql.CQLConfig(hidden=(32, 32), cql_alpha=alpha, learning_rate=1e-3)
        st = small_cql_state(cfg, act_dim=1)
        gen = torch.Generator().manual_seed(1)
        for _ in range(200):
            cql.update(st, cfg, batch, gen)
        gaps[alpha] = far_minus_data(st, batch["obs"], batch["actions"])
    assert gaps[5.0] < gaps[0.0] - 1.0 and gaps[5.0] < -1.0, gaps


def test_lagrange_multiplier_rises_above_the_threshold_and_falls_below():
    gap = torch.full((2, 8), 3.0)
    for threshold, rises in ((1.0, True), (5.0, False)):
        log_ap = torch.zeros((), requires_grad=True)
        cql.alpha_prime_loss(log_ap, gap, 5.0, threshold).backward()
        assert (float(log_ap.grad) < 0) == rises  # a gradient step moves log α' against its gradient
    # and through the update: α' after a few steps, with a threshold far below or far above the gap
    g = torch.Generator().manual_seed(0)
    batch = {"obs": torch.randn(32, 3, generator=g), "next_obs": torch.randn(32, 3, generator=g),
             "actions": torch.rand(32, 2, generator=g) * 2 - 1, "returns": torch.randn(32, generator=g),
             "discounts": torch.full((32,), 0.9)}
    for threshold, rises in ((-100.0, True), (100.0, False)):
        cfg = cql.CQLConfig(hidden=(16,), lagrange_threshold=threshold)
        st = small_cql_state(cfg)
        for _ in range(5):
            m = cql.update(st, cfg, batch, g)
        alpha_prime = float(st.log_alpha_prime.value.detach().exp())
        assert (alpha_prime > 1.0) == rises and float(m["losses/alpha_prime"]) != 1.0, alpha_prime
    with pytest.raises(ConfigError, match="lagrange_threshold is for Box actions"):
        rlworks.train("cql", "CartPole-v1", dataset=collect("CartPole-v1", cartpole_expert, 1, 0), total_steps=2,
                      lagrange_threshold=1.0)


# ---------------------------------------------------------------------------------------------
# IQL: the expectile loss and the advantage weights
# ---------------------------------------------------------------------------------------------


def test_expectile_loss_is_half_the_mse_at_one_half_and_asymmetric_otherwise():
    u = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0])
    assert float(iql.expectile_loss(u, 0.5)) == pytest.approx(0.5 * float((u ** 2).mean()))
    slow = sum((abs(0.9 - (x < 0)) * x * x) for x in u.tolist()) / len(u)
    assert float(iql.expectile_loss(u, 0.9)) == pytest.approx(slow)
    pos, neg = torch.tensor([1.0]), torch.tensor([-1.0])
    assert float(iql.expectile_loss(pos, 0.7)) == pytest.approx(0.7)  # under-estimates of Q cost more
    assert float(iql.expectile_loss(neg, 0.7)) == pytest.approx(0.3)
    # τ = 0.9: V minimising the loss over a spread of Q's is their upper expectile, above the mean
    q = torch.tensor([0.0, 1.0, 2.0, 10.0])
    v = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([v], lr=0.05)
    for _ in range(2000):
        opt.zero_grad()
        iql.expectile_loss(q - v, 0.9).backward()
        opt.step()
    assert float(q.mean()) + 1 < float(v.detach()) < 10


def test_awr_weights_are_exp_beta_advantage_clipped_at_100():
    adv = torch.tensor([-1.0, 0.0, 0.5, 2.0], requires_grad=True)
    w = iql.awr_weights(adv, 3.0, 100.0)
    torch.testing.assert_close(w, torch.tensor([math.exp(-3.0), 1.0, math.exp(1.5), 100.0]))
    assert not w.requires_grad  # the weights are constants of the policy's loss
    assert iql.actor_lr(iql.IQLConfig(), 0, 100) == pytest.approx(3e-4)
    assert iql.actor_lr(iql.IQLConfig(), 50, 100) == pytest.approx(1.5e-4)
    assert iql.actor_lr(iql.IQLConfig(actor_cosine_lr=False), 50, 100) == pytest.approx(3e-4)


# ---------------------------------------------------------------------------------------------
# learning, resume, save/load
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo, kw", [("cql", {"cql_alpha": 1.0}), ("iql", {})])
def test_discrete_learns_a_scripted_cartpole_policy(algo, kw, cartpole):
    agent = rlworks.train(algo, "CartPole-v1", dataset=cartpole, total_steps=1500, seed=0, **SMALL, **kw)
    res = agent.evaluate(5, seed=100)
    assert res.mean_return >= 150, res  # random ≈ 22; the scripted policy ≈ 200


def test_iql_learns_pendulum_from_a_noisy_controller(pendulum):
    agent = rlworks.train("iql", "Pendulum-v1", dataset=pendulum, total_steps=2000, seed=0, **SMALL)
    res = agent.evaluate(10, seed=100)
    assert res.mean_return > -700, res  # random ≈ −1200, the data ≈ −150


@pytest.mark.parametrize("algo, data, kw", [("cql", "pendulum", {"lagrange_threshold": 5.0}),
                                            ("cql", "cartpole", {}), ("iql", "pendulum", {}),
                                            ("iql", "cartpole", {})])
def test_resume_is_exact(algo, data, kw, request, tmp_path):
    ds = request.getfixturevalue(data)
    kw = dict(dataset=ds, total_steps=40, seed=4, **SMALL, **kw)
    rlworks.train(algo, ds.env_id, checkpoint_dir=tmp_path / "a", **kw)
    rlworks.train(algo, ds.env_id, checkpoint_dir=tmp_path / "b", stop_at=17, **kw)
    rlworks.train(algo, ds.env_id, checkpoint_dir=tmp_path / "b", resume_from=tmp_path / "b" / "step-17", **kw)
    same_offline_checkpoints(tmp_path / "a" / "step-40", tmp_path / "b" / "step-40")


@pytest.mark.parametrize("algo, data", [("cql", "pendulum"), ("cql", "cartpole"), ("iql", "pendulum"),
                                        ("iql", "cartpole")])
def test_save_load_round_trip_acts_the_same(algo, data, request, tmp_path):
    ds = request.getfixturevalue(data)
    agent = rlworks.train(algo, ds.env_id, dataset=ds, total_steps=20, **SMALL)
    agent.save(tmp_path / "agent")
    loaded = rlworks.load(tmp_path / "agent")
    assert loaded.algo == algo
    np.testing.assert_array_equal(loaded.act(ds.observations[::5]), agent.act(ds.observations[::5]))


# ---------------------------------------------------------------------------------------------
# registry and CLI
# ---------------------------------------------------------------------------------------------


def test_registry_and_cli(cartpole, tmp_path):
    from rlworks.algos import OFFLINE_ALGOS, REGISTRY
    from rlworks.offline import datasets

    assert {"cql", "iql"} <= set(OFFLINE_ALGOS) and REGISTRY["cql"].actions == ("discrete", "box")
    out = cli("train", "ppo", "--env", "CartPole-v1", "--dataset", "x/y-v0")
    one_error_line(out, "not of ppo")
    assert "cql" in out.stderr and "iql" in out.stderr
    root = tmp_path / "minari"
    last = cartpole.next_observations
    eps = [{"observations": np.concatenate([cartpole.observations[s:s + n], last[s + n - 1:s + n]]),
            "actions": cartpole.actions[s:s + n], "rewards": cartpole.rewards[s:s + n],
            "terminations": cartpole.terminations[s:s + n], "truncations": cartpole.truncations[s:s + n]}
           for s, n in zip(cartpole.episode_starts, cartpole.episode_lengths)]
    datasets.save("test/cartpole/scripted-v0", eps, "CartPole-v1", root=root)
    for algo, loss in (("cql", "losses/cql_gap"), ("iql", "losses/value_loss")):
        run = tmp_path / algo
        out = cli("train", algo, "--dataset", "test/cartpole/scripted-v0", "--total-steps", "50", "--hidden", "32",
                  "--batch-size", "32", "--eval-every", "0", "--run-dir", str(run), "--quiet",
                  MINARI_DATASETS_PATH=str(root))
        assert out.returncode == 0, out.stderr
        assert loss in (run / "metrics.csv").read_text().splitlines()[0].split(",")
        assert rlworks.load(run).meta["global_step"] == 50
