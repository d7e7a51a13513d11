"""Twin Delayed DDPG (Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic
Methods"): a deterministic actor with

* clipped double Q-learning — the minimum of twin critics in the target (§4.2), the critics being
  SAC's batched ``TwinQ``;
* target-policy smoothing — clipped Gaussian noise on the target action (§5.3, eq. 14);
* delayed policy updates — actor and target networks updated every ``policy_delay`` critic
  steps (§5.2), targets by Polyak averaging with rate τ;
* Gaussian exploration noise on the behaviour policy (§6.1).
Actions live in [-1, 1] (buffer, networks) and are rescaled to the Box bounds for the env.

Reads top to bottom: config → networks → pure loss functions → update round → train().
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..config import ConfigError, check_choice, check_range
from ..core import fastgrad
from ..core.logging import Logger
from ..core.nets import ACTIVATIONS, mlp
from . import offpolicy
from .sac import TwinQ


@dataclass(frozen=True)
class TD3Config:
    n_envs: int = 1
    """number of parallel environments"""
    buffer_size: int = 1_000_000
    """replay buffer capacity in transitions"""
    learning_starts: int = 10_000
    """environment steps of uniformly random actions before learning starts"""
    batch_size: int = 256
    """transitions per gradient step"""
    learning_rate: float = 1e-3
    """Adam step size of actor and critics"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """Polyak rate of the target networks"""
    train_freq: int = 1
    """vector-env steps between training rounds"""
    gradient_steps: int = 1
    """gradient steps per training round"""
    policy_delay: int = 2
    """critic steps per actor (and target) update (Fujimoto et al. 2018 §5.2, d = 2)"""
    target_policy_noise: float = 0.2
    """std of the target-policy smoothing noise, in [-1, 1] action units (§5.3)"""
    target_noise_clip: float = 0.5
    """clip of the target-policy smoothing noise (§5.3, c = 0.5)"""
    exploration_noise: float = 0.1
    """std of the Gaussian exploration noise, in [-1, 1] action units (§6.1)"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden layer sizes of the actor and of each critic"""
    activation: str = "relu"
    """hidden activation: relu or tanh"""
    adam_eps: float = 1e-8
    """Adam epsilon"""

    def __post_init__(self) -> None:
        for name in ("n_envs", "batch_size", "train_freq", "gradient_steps", "policy_delay"):
            check_range(name, getattr(self, name), 1)
        check_range("buffer_size", self.buffer_size, 2 * self.n_envs)
        check_range("learning_starts", self.learning_starts, 0)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("gamma", self.gamma, 0, 1)
        check_range("tau", self.tau, 0, 1, low_open=True)
        for name in ("target_policy_noise", "target_noise_clip", "exploration_noise"):
            check_range(name, getattr(self, name), 0)
        check_range("adam_eps", self.adam_eps, 0, low_open=True)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ConfigError(f"hidden={self.hidden!r} must be a non-empty list of positive layer sizes")


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------


class DeterministicActor(nn.Module):
    """μ(s) = tanh(MLP(s)) in [-1, 1]; ``act(deterministic=False)`` adds clipped Gaussian noise."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], activation: str = "relu",
                 noise: float = 0.1) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, act_dim, activation=activation, ortho_init=False)
        self.noise = noise
        self._layers = list(self.net)  # flat, for fastgrad (no Sequential lookups)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))

    def forward_cached(self, obs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """μ(s) and every layer's output, for ``backward`` (call without autograd)."""
        acts = fastgrad.mlp_forward(self._layers, obs)
        return torch.tanh(acts[-1]), acts

    def backward(self, acts: list[torch.Tensor], a: torch.Tensor, g_a: torch.Tensor) -> None:
        """Parameter gradients from ∂L/∂μ(s) (B, d), through the tanh (∂a/∂pre = 1 − a²)."""
        fastgrad.mlp_backward(self._layers, acts, torch.ops.aten.tanh_backward(g_a, a))

    def act(self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        a = self(obs)
        if deterministic or self.noise == 0:
            return a
        eps = torch.randn(a.shape, generator=generator, device=a.device, dtype=a.dtype)
        return (a + self.noise * eps).clamp(-1.0, 1.0)


def build_actor(spec: dict[str, Any], net: dict[str, Any], cfg: TD3Config) -> DeterministicActor:
    return DeterministicActor(spec["obs_dim"], spec["act_dim"], tuple(net["hidden"]), net["activation"],
                              noise=cfg.exploration_noise)


# ---------------------------------------------------------------------------------------------
# losses (pure functions)
# ---------------------------------------------------------------------------------------------


def smoothed_target_actions(target_actions: torch.Tensor, noise: torch.Tensor, noise_clip: float) -> torch.Tensor:
    """ã = clip(μ'(s') + clip(ε, −c, c), −1, 1) (Fujimoto et al. 2018, eq. 14)."""
    return (target_actions + noise.clamp(-noise_clip, noise_clip)).clamp(-1.0, 1.0)


def td3_targets(returns: torch.Tensor, discounts: torch.Tensor, q_next: torch.Tensor) -> torch.Tensor:
    """y = r + γ (1 − terminated) min_i Q'_i(s', ã)."""
    return returns + discounts * q_next.min(0).values


def critic_loss(q: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Σ_critics MSE(Q_i, y) (as the authors' code and SB3); ``q`` is (n_critics, B)."""
    return (q - targets.unsqueeze(0)).pow(2).mean(-1).sum()


def actor_loss(q1_pi: torch.Tensor) -> torch.Tensor:
    """−E[Q_1(s, μ(s))]: the deterministic policy gradient through the first critic (§4.2)."""
    return -q1_pi.mean()


# ---------------------------------------------------------------------------------------------
# acting and the update round
# ---------------------------------------------------------------------------------------------


def act(s: offpolicy.Session, obs: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        a = s.modules["actor"].act(offpolicy.to_tensor(obs, s.device), False, s.generator)
    return a.cpu().numpy()


def train_round(s: offpolicy.Session, gradient_steps: int) -> offpolicy.Metrics:
    """``gradient_steps`` TD3 updates: the twin critics toward the smoothed clipped double-Q target
    every step; the actor (through the first critic only, as the paper and SB3), then the Polyak
    averages of all targets, every ``policy_delay`` steps. The gradients are written out by hand as in
    SAC (``TwinQ.backward``, ``TwinQ.input_grad``, ``fastgrad``); tests/unit/test_offpolicy_losses.py
    checks the whole update against the same update through autograd."""
    cfg: TD3Config = s.config
    actor, actor_target = s.modules["actor"], s.modules["actor_target"]
    critic, critic_target = s.modules["critic"], s.modules["critic_target"]
    if "polyak" not in s.cache:  # listing a module's parameters walks it in Python: once per session
        s.cache["polyak"] = (list(critic_target.parameters()) + list(actor_target.parameters()),
                             list(critic.parameters()) + list(actor.parameters()))
    targets, online = s.cache["polyak"]
    B, obs_dim = cfg.batch_size, s.spec["obs_dim"]
    q_pi = None
    with torch.inference_mode():  # no autograd anywhere in the round: see sac.train_round
        for _ in range(gradient_steps):
            mb = offpolicy.tensor_batch(s.buffer.sample(B, s.rng), s.device)
            next_mu = actor_target.forward_cached(mb["next_obs"])[0]
            noise = torch.randn(next_mu.shape, generator=s.generator, device=s.device) * cfg.target_policy_noise
            next_a = smoothed_target_actions(next_mu, noise, cfg.target_noise_clip)
            y = td3_targets(mb["returns"], mb["discounts"], critic_target.forward_cached(mb["next_obs"], next_a)[0])
            q, acts = critic.forward_cached(mb["obs"], mb["actions"])
            critic.backward(acts, (q - y.unsqueeze(0)).mul_(2.0 / B))  # ∂/∂Q_i of Σ_i mean (Q_i − y)²
            s.optimizers["critic"].step()
            s.n_updates += 1
            if s.n_updates % cfg.policy_delay == 0:  # delayed policy and target updates (§5.2)
                a_pi, actor_acts = actor.forward_cached(mb["obs"])
                q_pi, g_a = critic.input_grad(0, mb["obs"], a_pi, -1.0 / B)  # ∂/∂a of −mean Q_1(s, a)
                actor.backward(actor_acts, a_pi, g_a)
                s.optimizers["actor"].step()
                offpolicy.polyak_update(targets, online, cfg.tau)

    def metrics() -> dict[str, torch.Tensor]:  # only when the loop writes a log line
        with torch.no_grad():
            out = {"losses/q_loss": critic_loss(q, y), "losses/q_values": q.mean()}
            if q_pi is not None:
                out["losses/actor_loss"] = actor_loss(q_pi)
            return out

    return metrics


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

CONFIG, ACTOR = TD3Config, "actor"


def train(env_id: str, config: TD3Config | None = None, *, total_steps: int, seed: int = 0, device: str = "cpu",
          logger: Logger | None = None, checkpoint_dir: str | Path | None = None, checkpoint_every: int = 0,
          log_every: int = 1000, callback: Callable[[offpolicy.Session], bool] | None = None,
          resume_from: str | Path | None = None, stop_at: int | None = None,
          on_start: Callable[[offpolicy.Session], None] | None = None) -> offpolicy.OffPolicyAgent:
    """Train TD3 on ``env_id`` (Box actions) for ``total_steps`` environment steps and return the agent.
    With ``resume_from`` (a training checkpoint) continue that run exactly where it stopped."""
    cfg = config or TD3Config()
    s = offpolicy.build_session("td3", env_id, cfg, seed=seed, total_steps=total_steps, device=device,
                                action="box", act_dtype=np.float32)
    try:
        s.net = {"hidden": list(cfg.hidden), "activation": cfg.activation}
        actor = build_actor(s.spec, s.net, cfg).to(s.device)
        critic = TwinQ(s.spec["obs_dim"], s.spec["act_dim"], cfg.hidden, cfg.activation).to(s.device)
        s.modules = {"actor": actor, "critic": critic, "actor_target": copy.deepcopy(actor).requires_grad_(False),
                     "critic_target": copy.deepcopy(critic).requires_grad_(False)}
        s.optimizers = {"actor": offpolicy.adam(actor.parameters(), cfg.learning_rate, cfg.adam_eps),
                        "critic": offpolicy.adam(critic.parameters(), cfg.learning_rate, cfg.adam_eps)}
        if resume_from is not None:
            offpolicy.restore_session(s, resume_from)
        if on_start is not None:
            on_start(s)
        return offpolicy.run(s, act, train_round, logger=logger, checkpoint_dir=checkpoint_dir,
                             checkpoint_every=checkpoint_every, log_every=log_every, callback=callback,
                             stop_at=stop_at)
    finally:
        s.venv.close()
