"""Fixed-seed learning checks for DQN, SAC, TD3 and DDPG: small budgets, thresholds passed with margin
(they are not timing tests). The full-budget figures are produced by the benchmarks."""

from __future__ import annotations

import pytest
import torch

import rlworks
from rlworks.algos import dqn, sac, td3
from rlworks.core.run import RunContext


class Recorder:
    def __init__(self) -> None:
        self.returns: list[float] = []

    def log(self, step: int, metrics: dict[str, float]) -> None:
        r = metrics.get("charts/episodic_return", float("nan"))
        if r == r:
            self.returns.append(r)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_dqn_cartpole_learns_within_20k_steps():
    # random play scores ~22; seed 0 reaches a 20-episode mean of ~210 and an evaluation of ~150
    cfg = dqn.DQNConfig(hidden=(64, 64), learning_rate=1e-3, batch_size=64, buffer_size=20_000, learning_starts=1000,
                        train_freq=4, gradient_steps=2, target_update_interval=500, exploration_fraction=0.2,
                        exploration_final_eps=0.02, double_q=True)
    rec = Recorder()
    agent = dqn.train("CartPole-v1", cfg, total_steps=20_000, seed=0, run=RunContext(logger=rec, log_every=4000))
    assert max(rec.returns) >= 150, rec.returns
    assert agent.evaluate(10, seed=100).mean_return >= 100


def test_sac_pendulum_improves_within_4k_steps():
    # random play scores about -1200 .. -1500 per episode
    cfg = sac.SACConfig(hidden=(64, 64), learning_rate=1e-3, batch_size=128, buffer_size=20_000)
    rec = Recorder()
    agent = sac.train("Pendulum-v1", cfg, total_steps=4000, seed=0, run=RunContext(logger=rec, log_every=1000))
    assert agent.evaluate(5, seed=100).mean_return >= -600, rec.returns


def test_sac_pendulum_improves_within_4k_steps_with_bfloat16_products():
    # the same check with matmul_precision="medium" (bfloat16 products where the CPU has them)
    agent = rlworks.train("sac", "Pendulum-v1", total_steps=4000, seed=0, matmul_precision="medium", hidden=(64, 64),
                          learning_rate=1e-3, batch_size=128, buffer_size=20_000)
    assert agent.evaluate(5, seed=100).mean_return >= -600


@pytest.mark.slow
def test_dqn_cartpole_rlzoo_settings_reach_475():
    cfg = dqn.DQNConfig(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
                        target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                        exploration_final_eps=0.04, hidden=(256, 256))
    agent = dqn.train("CartPole-v1", cfg, total_steps=50_000, seed=0)
    assert agent.evaluate(10, seed=100).mean_return >= 475


@pytest.mark.slow
def test_sac_pendulum_rlzoo_settings_reach_minus_200():
    agent = sac.train("Pendulum-v1", sac.SACConfig(learning_rate=1e-3), total_steps=10_000, seed=0)
    assert agent.evaluate(10, seed=100).mean_return >= -200


@pytest.mark.slow
def test_td3_pendulum_reaches_minus_200():
    cfg = td3.TD3Config(learning_rate=1e-3, gamma=0.98, buffer_size=200_000, learning_starts=1000, hidden=(400, 300))
    agent = td3.train("Pendulum-v1", cfg, total_steps=15_000, seed=0)
    assert agent.evaluate(10, seed=100).mean_return >= -200


@pytest.mark.slow
@pytest.mark.parametrize("noise", ["gaussian", "ou"])
def test_ddpg_pendulum_preset_reaches_minus_200(noise):
    """The preset at 20k steps, seed 0: measured −173.5 (Gaussian) and −169.0 (OU) on these episodes."""
    agent = rlworks.train("ddpg", "Pendulum-v1", total_steps=20_000, seed=0, action_noise=noise)
    assert agent.evaluate(10, seed=1000).mean_return >= -200
