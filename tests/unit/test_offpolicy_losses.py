"""Pure pieces of the off-policy algorithms: DQN targets (double/dueling/ε), SAC's squashed Gaussian
and temperature, TD3's target smoothing — each against an independent computation. (The backends'
updates against the autograd updates: tests/unit/test_backends.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlworks.algos import ddpg, dqn, offpolicy, sac, td3
from rlworks.core.nets import TwinQ
from rlworks.core.run import RunContext

torch.set_num_threads(1)


# --------------------------------------------------------------------------------------------
# DQN
# --------------------------------------------------------------------------------------------


def test_double_dqn_target_uses_online_argmax_and_target_value():
    returns = torch.tensor([1.0, 0.5, 0.0])
    discounts = torch.tensor([0.9, 0.0, 0.81])  # second transition terminated
    q_online = torch.tensor([[1.0, 2.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    q_target = torch.tensor([[10.0, -1.0, 7.0], [1.0, 9.0, 9.0], [4.0, 8.0, 2.0]])
    y = dqn.td_targets(returns, discounts, q_target, q_online)
    # online argmax = (1, 0, 2) → target values (-1, 1, 2)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * -1.0, 0.5, 0.81 * 2.0]))
    # vanilla DQN: max of the target network (10, 9, 8)
    y0 = dqn.td_targets(returns, discounts, q_target, None)
    torch.testing.assert_close(y0, torch.tensor([1.0 + 0.9 * 10.0, 0.5, 0.81 * 8.0]))


def test_dueling_head_is_identifiable_and_greedy_layers_agree():
    torch.manual_seed(0)
    net = dqn.QNetwork(5, 4, (32, 16), "relu", dueling=True)
    x = torch.randn(64, 5)
    q = net(x)
    h = net.trunk(x)
    adv = net.advantage(h)
    torch.testing.assert_close(q.mean(-1), net.value(h).squeeze(-1))  # mean advantage is 0
    torch.testing.assert_close(q - q.mean(-1, keepdim=True), adv - adv.mean(-1, keepdim=True))
    stack = torch.nn.Sequential(*net.greedy_layers())
    assert torch.equal(stack(x).argmax(-1), q.argmax(-1))


def test_huber_loss_with_importance_weights():
    q = torch.tensor([0.0, 3.0, -0.5])
    y = torch.tensor([0.5, 0.0, 0.5])
    w = torch.tensor([1.0, 0.5, 0.25])
    per_item = torch.tensor([0.5 * 0.25, 3.0 - 0.5, 0.5 * 1.0])  # quadratic inside |δ|<1, linear outside
    torch.testing.assert_close(dqn.q_loss(q, y, None), per_item.mean())
    torch.testing.assert_close(dqn.q_loss(q, y, w), (w * per_item).mean())


def test_epsilon_schedule_is_linear_then_flat():
    cfg = dqn.DQNConfig(exploration_fraction=0.5, exploration_initial_eps=1.0, exploration_final_eps=0.1)
    assert dqn.epsilon(cfg, 0, 1000) == 1.0
    assert dqn.epsilon(cfg, 250, 1000) == pytest.approx(0.55)
    assert dqn.epsilon(cfg, 500, 1000) == pytest.approx(0.1)
    assert dqn.epsilon(cfg, 900, 1000) == pytest.approx(0.1)


# --------------------------------------------------------------------------------------------
# SAC
# --------------------------------------------------------------------------------------------


def test_squashed_gaussian_log_prob_matches_numerical_change_of_variables():
    torch.manual_seed(0)
    actor = sac.SquashedGaussianActor(3, 1, (16,), "relu")
    obs = torch.randn(200, 3)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        a, logp = actor.sample(obs, g)
        mu, log_std = actor(obs)
    # density of a = tanh(u), u ~ N(μ, σ): the derivative of the CDF Φ((atanh(a) − μ)/σ), numerically
    a64, mu64, std64 = a.double()[:, 0], mu.double()[:, 0], log_std.double().exp()[:, 0]
    cdf = lambda x: 0.5 * (1 + torch.erf((torch.atanh(x) - mu64) / (std64 * math.sqrt(2))))  # noqa: E731
    h = 1e-6 * (1 - a64.abs())
    ok = (a64.abs() < 1 - 1e-4)
    density = (cdf(a64 + h) - cdf(a64 - h)) / (2 * h)
    np.testing.assert_allclose(logp.double()[ok].numpy(), density[ok].log().numpy(), rtol=2e-3, atol=2e-3)
    # and against torch.distributions' TanhTransform in several dimensions
    actor3 = sac.SquashedGaussianActor(3, 3, (16,), "relu")
    with torch.no_grad():
        a3, lp3 = actor3.sample(obs, torch.Generator().manual_seed(2))
        m3, ls3 = actor3(obs)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Independent(torch.distributions.Normal(m3.double(), ls3.double().exp()), 1),
        [torch.distributions.transforms.TanhTransform()])
    keep = (a3.abs() < 1 - 1e-4).all(-1)
    ref = dist.log_prob(a3.double().clamp(-1 + 1e-7, 1 - 1e-7))[keep].numpy()
    np.testing.assert_allclose(lp3[keep].double().numpy(), ref, rtol=1e-3, atol=1e-3)


def test_deterministic_sac_action_is_tanh_of_mean_and_rescaled_to_bounds():
    torch.manual_seed(0)
    actor = sac.SquashedGaussianActor(3, 2, (16,), "relu")
    obs = torch.randn(10, 3)
    a = actor.act(obs, True, None)
    torch.testing.assert_close(a, torch.tanh(actor(obs)[0]))
    spec = {"low": [-2.0, 0.0], "high": [2.0, 10.0]}
    scaled = offpolicy.scale_actions(np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]], np.float32), spec)
    np.testing.assert_allclose(scaled, [[-2, 0], [2, 10], [0, 5]])


@pytest.mark.parametrize("entropy_gap", [+1.0, -1.0])
def test_temperature_moves_toward_target_entropy(entropy_gap):
    """Entropy (−log π) below the target → α grows; above → α shrinks; the gradient is −E[log π + H̄]."""
    target = -2.0
    logp = torch.full((64,), -(target - entropy_gap))  # entropy = target − gap
    log_alpha = torch.zeros((), requires_grad=True)
    sac.temperature_loss(log_alpha, logp, target).backward()
    torch.testing.assert_close(log_alpha.grad, -(logp + target).mean())
    opt = torch.optim.Adam([log_alpha], lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        sac.temperature_loss(log_alpha, logp, target).backward()
        opt.step()
    assert (log_alpha.item() > 0) == (entropy_gap > 0)


def test_sac_temperature_tracks_target_entropy_in_training():
    """End to end on Pendulum: starting from α = 1 and a near-uniform policy (entropy above the
    target −1), α must fall; the policy's entropy must approach the target."""
    torch.set_num_threads(1)
    seen = []

    class L:
        def log(self, step, m):
            seen.append((m.get("losses/alpha", float("nan")), m.get("losses/entropy", float("nan"))))

    cfg = sac.SACConfig(learning_starts=100, batch_size=64, hidden=(32, 32), learning_rate=3e-3, buffer_size=5000)
    sac.train("Pendulum-v1", cfg, total_steps=700, seed=0, run=RunContext(logger=L(), log_every=200))
    alphas = [a for a, _ in seen if a == a]
    ents = [e for _, e in seen if e == e]
    assert alphas[-1] < 0.6 < 1.0, alphas
    assert abs(ents[-1] - (-1.0)) < abs(ents[0] - (-1.0)), ents


def test_twin_q_is_two_independent_critics():
    torch.manual_seed(0)
    q = TwinQ(3, 2, (8, 8))
    obs, act = torch.randn(5, 3), torch.randn(5, 2)
    out = q(obs, act)
    assert out.shape == (2, 5)
    x = torch.cat([obs, act], -1)
    for i in range(2):
        h = torch.relu(x @ q.weights[0][i] + q.biases[0][i])
        h = torch.relu(h @ q.weights[1][i] + q.biases[1][i])
        torch.testing.assert_close(out[i], (h @ q.weights[2][i] + q.biases[2][i]).squeeze(-1))
    assert not torch.equal(out[0], out[1])


# --------------------------------------------------------------------------------------------
# TD3
# --------------------------------------------------------------------------------------------


def test_td3_target_smoothing_noise_is_clipped():
    mu = torch.tensor([[0.0, 0.9, -0.95]]).repeat(1000, 1)
    noise = torch.randn(1000, 3, generator=torch.Generator().manual_seed(0)) * 5.0  # mostly beyond the clip
    a = td3.smoothed_target_actions(mu, noise, 0.5)
    assert (a - mu).abs().max() <= 0.5 + 1e-6
    assert a.max() <= 1.0 and a.min() >= -1.0
    assert (a[:, 0] == 0.5).any() and (a[:, 0] == -0.5).any()  # the clip is reached, not exceeded
    small = torch.full((1000, 3), 0.01)
    torch.testing.assert_close(td3.smoothed_target_actions(mu, small, 0.5), (mu + 0.01).clamp(-1, 1))


def test_td3_targets_take_min_of_twin_critics():
    q_next = torch.tensor([[1.0, 5.0], [2.0, 3.0]])
    y = td3.td3_targets(torch.tensor([1.0, 1.0]), torch.tensor([0.5, 0.0]), q_next)
    torch.testing.assert_close(y, torch.tensor([1.5, 1.0]))


# --------------------------------------------------------------------------------------------
# presets
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo,envs", [("dqn", ["CartPole-v1", "Acrobot-v1", "LunarLander-v3"]),
                                       ("sac", ["Pendulum-v1", "LunarLanderContinuous-v3", "HalfCheetah-v5",
                                                "Hopper-v5"]),
                                       ("td3", ["Pendulum-v1", "LunarLanderContinuous-v3", "HalfCheetah-v5",
                                                "Hopper-v5"]),
                                       ("ddpg", ["Pendulum-v1"])])
def test_presets_cover_the_envs_and_build_valid_configs(algo, envs):
    from rlworks.algos import RUN_KEYS  # env, total_steps, eval_every, eval_episodes, keep: run defaults
    from rlworks.config import PRESET_DIR, from_dict, load_toml

    mod = {"dqn": dqn, "sac": sac, "td3": td3, "ddpg": ddpg}[algo]
    table = load_toml(PRESET_DIR / f"{algo}.toml")
    assert set(envs) <= set(table)
    for name, t in table.items():
        cfg = from_dict(mod.CONFIG, {k: v for k, v in t.items() if k not in RUN_KEYS})
        assert t["env"] == name or name == "rlzoo"
        assert t["total_steps"] > 0 and cfg is not None
    if algo in ("dqn", "sac", "ddpg"):
        assert "rlzoo" in table


@pytest.mark.parametrize("algo", ["sac", "td3", "ddpg"])
def test_trained_networks_can_be_fine_tuned_with_autograd(algo):
    """The fused updates run in inference mode; the networks a run returns must still take an autograd
    backward (no inference-tensor gradients left behind in ``.grad``)."""
    torch.set_num_threads(1)
    mod = {"sac": sac, "td3": td3, "ddpg": ddpg}[algo]
    agent = mod.train("Pendulum-v1", mod.CONFIG(learning_starts=50, batch_size=16, hidden=(8, 8)), total_steps=60,
                      seed=0)
    assert all(p.grad is None for p in agent.model.parameters())
    for _ in range(2):  # the second backward adds to the gradients of the first
        out = agent.model(torch.randn(4, 3))
        sum(o.sum() for o in (out if isinstance(out, tuple) else (out,))).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in agent.model.parameters() if p.requires_grad)


def test_dqn_anneal_lr_follows_the_step_count():
    seen = []

    def record(s) -> bool:
        seen.append((s.global_step, s.state.q_opt.param_groups[0]["lr"]))
        return False

    cfg = dqn.DQNConfig(learning_starts=100, train_freq=50, gradient_steps=1, learning_rate=1e-3, anneal_lr=True,
                        hidden=(16,))
    dqn.train("CartPole-v1", cfg, total_steps=1000, seed=0, run=RunContext(callback=record))
    rounds = {step: lr for step, lr in seen if step >= 150 and step % 50 == 0}
    for step, lr in rounds.items():
        assert lr == pytest.approx(1e-3 * (1 - step / 1000)), step
    assert rounds[1000] == 0.0
