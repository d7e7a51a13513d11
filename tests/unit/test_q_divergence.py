"""The Q-divergence warning of the off-policy loop: once, when a logged Q-value leaves the range the
rewards allow (|Q| <= max|r| / (1 - gamma), times ``Q_MARGIN``), and never on a healthy run."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import rlworks
from rlworks.core.guards import Q_MARGIN, QDivergenceWarning, QGuard


def _runs_quietly(algo: str, env: str, **kw) -> None:
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", QDivergenceWarning)  # a warning fails the run
        agent = rlworks.train(algo, env, seed=0, log_every=250, **kw)
    assert "q_diverged_at" not in agent.meta


def test_bound_follows_the_rewards_seen_and_warns_once():
    g = QGuard("dqn", gamma=0.99)
    g.check(100, {"losses/q_values": 1e6})  # no reward seen yet: no bound to check against
    g.rewards(np.array([1.0, -0.5]))
    g.check(200, {"losses/q_values": Q_MARGIN * 99.0})  # within the bound (1 / (1 - 0.99) = 100, x margin)
    assert g.warned_at is None
    with pytest.warns(QDivergenceWarning, match=r"dqn: the mean Q-value is -250 at step 300.*= 100"):
        g.check(300, {"losses/q_values": -250.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g.check(400, {"losses/q_values": 1e9})  # once per run
    assert g.warned_at == 300
    # SAC's soft values add the entropy bonus alpha * |H| to each step's reward
    s = QGuard("sac", gamma=0.9)
    s.rewards(np.array([2.0]))
    s.check(10, {"losses/q_values": 50.0, "losses/alpha": 0.5, "losses/entropy": 4.0})  # bound (2 + 2) / 0.1 = 40
    assert s.warned_at is None
    # Bootstrapped DQN's Q carries its fixed priors beta * |p(s, a)| on top of what the rewards allow
    b = QGuard("bootstrapped-dqn", gamma=0.9)
    b.rewards(np.array([0.1]))
    b.check(10, {"losses/q_values": 21.5, "losses/prior_values": 1.0})  # 21.5 <= 2 * (0.1 + 1) / 0.1 = 22
    assert b.warned_at is None
    b.check(15, {"losses/q_values": 1.0, "losses/prior_values": 0.1})  # the largest prior value so far counts
    with pytest.warns(QDivergenceWarning):
        b.check(20, {"losses/q_values": 22.5, "losses/prior_values": 0.5})
    assert QGuard("x", gamma=1.0).warned_at is None  # gamma = 1: no bound; check() never warns
    u = QGuard("x", gamma=1.0)
    u.rewards(np.array([1.0]))
    u.check(1, {"losses/q_values": 1e12})
    assert u.warned_at is None


def test_a_diverging_critic_is_reported_once_with_its_step():
    torch.set_num_threads(1)

    def blow_up(session) -> bool:  # a synthetic divergence: the Q-network's output jumps to ~1e5
        if session.global_step == 2000:
            with torch.no_grad():
                session.state.q.q[-1].bias.fill_(1e5)
        return False

    with pytest.warns(QDivergenceWarning) as caught:
        agent = rlworks.train("dqn", "CartPole-v1", total_steps=3000, seed=0, log_every=250, callback=blow_up)
    assert len([w for w in caught if issubclass(w.category, QDivergenceWarning)]) == 1
    assert 2000 < agent.meta["q_diverged_at"] <= 2250


def test_healthy_short_runs_stay_quiet():
    _runs_quietly("dqn", "CartPole-v1", total_steps=8000)
    _runs_quietly("sac", "Pendulum-v1", total_steps=1500, learning_starts=500)
    _runs_quietly("td3", "Pendulum-v1", total_steps=1500, learning_starts=500)
