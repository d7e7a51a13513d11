"""Exploration noise: the Ornstein-Uhlenbeck process (core/noise.py) and TD3/DDPG's Gaussian action noise."""

from __future__ import annotations

import pytest
import torch

from rlworks.algos.td3 import DeterministicActor
from rlworks.core.noise import OrnsteinUhlenbeckNoise

SIGMA = 0.3


@pytest.mark.parametrize("theta,dt", [(0.15, 1.0), (0.5, 1.0), (0.15, 1e-2)])
def test_ou_stationary_variance_is_the_discrete_time_formula(theta, dt):
    n_envs = 4000 if dt == 1.0 else 20_000  # dt ≪ 1: consecutive draws are nearly one; many envs instead
    noise = OrnsteinUhlenbeckNoise(n_envs, 2, SIGMA, theta, dt)
    g = torch.Generator().manual_seed(0)
    a, t = 1 - theta * dt, int(4 / (theta * dt))
    for _ in range(t):
        noise.sample(g)
    x = torch.stack([noise.sample(g) for _ in range(40)])  # (40, N, act_dim), draws t+1 … t+40
    stationary = SIGMA**2 * dt / (1 - a**2)  # Var of x' = (1 - θdt) x + σ√dt ε at its fixed point
    assert noise.stationary_variance() == pytest.approx(stationary)
    # from x_0 = 0, Var x_k = stationary (1 − a^{2k}); here a^{2k} ≈ e^{-8}
    expected = stationary * (1 - a ** (2 * (t + 20)))
    assert float(x.var()) == pytest.approx(expected, rel=0.03)
    assert float(x.mean()) == pytest.approx(0.0, abs=0.03 * expected**0.5)
    if dt == 1.0:  # the continuous-time σ²/(2θ) is a different number here, and the sample tells them apart
        assert abs(float(x.var()) - SIGMA**2 / (2 * theta)) > 0.04 * expected
    else:  # dt → 0: σ²/(2θ)
        assert stationary == pytest.approx(SIGMA**2 / (2 * theta), rel=1e-3)
    # correlated in time: lag-1 correlation 1 − θ dt (i.i.d. noise would give 0)
    corr = float((x[1:] * x[:-1]).mean() / x.var())
    assert corr == pytest.approx(a, abs=0.03)


def test_ou_reset_restarts_the_finished_envs_only_and_state_is_checkpointable():
    noise = OrnsteinUhlenbeckNoise(3, 2, SIGMA, 0.15, 1.0)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        noise.sample(g)
    before = noise.x.clone()
    assert (before != 0).all()
    noise.reset(torch.tensor([False, True, False]))
    assert torch.equal(noise.x[1], torch.zeros(2))
    assert torch.equal(noise.x[[0, 2]], before[[0, 2]])
    assert "x" in noise.state_dict()  # a buffer: checkpointed with the algorithm's state (core/state.py)
    copy = OrnsteinUhlenbeckNoise(3, 2, SIGMA, 0.15, 1.0)
    copy.load_state_dict(noise.state_dict())
    g2 = torch.Generator().manual_seed(9)
    g.manual_seed(9)
    assert torch.equal(noise.sample(g), copy.sample(g2))
    noise.reset()
    assert torch.equal(noise.x, torch.zeros(3, 2))


def test_gaussian_action_noise_has_the_configured_std():
    torch.manual_seed(0)
    actor = DeterministicActor(3, 2, (16,), noise=0.1)
    obs = torch.randn(20_000, 3) * 0.1
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        eps = actor.act(obs, False, g) - actor.act(obs, True, g)
    assert float(eps.std()) == pytest.approx(0.1, rel=0.03)
    assert float(eps.mean()) == pytest.approx(0.0, abs=0.003)
    assert float((eps[1:] * eps[:-1]).mean() / eps.var()) == pytest.approx(0.0, abs=0.03)  # i.i.d.
