"""Twin Delayed DDPG (Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic
Methods"): a deterministic actor with

* clipped double Q-learning — the minimum of twin critics in the target (§4.2), the critics being
  one batched ``core.nets.TwinQ``;
* target-policy smoothing — clipped Gaussian noise on the target action (§5.3, eq. 14);
* delayed policy updates — actor and target networks updated every ``policy_delay`` critic
  steps (§5.2), targets by Polyak averaging with rate τ;
* Gaussian exploration noise on the behaviour policy (§6.1).
Actions live in [-1, 1] (buffer, networks) and are rescaled to the Box bounds for the env.

Reads top to bottom: config → networks → pure loss functions → ``update`` (autograd) → ``train``.
With one critic, ``policy_delay`` 1 and no smoothing the same code is DDPG (``algos/ddpg.py``).
The ``fused`` backend (``algos/fused/td3.py``) computes the same update with hand-written gradients.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import BACKENDS, check_choice, check_range
from ..core import features
from ..core.nets import ACTIVATIONS, TwinQ, mlp
from ..core.optim import Adam
from ..core.run import RunContext
from ..core.seeding import seeded_init
from . import backends, offpolicy


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
    actor_hidden: tuple[int, ...] | None = None
    """hidden layer sizes of the actor alone (default: hidden)"""
    critic_hidden: tuple[int, ...] | None = None
    """hidden layer sizes of each critic alone (default: hidden)"""
    activation: str = "relu"
    """hidden activation: relu or tanh"""
    adam_eps: float = 1e-8
    """Adam epsilon"""
    backend: str = "auto"
    """how the update runs: auto, autograd, compile or fused (algos/backends.py)"""

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
        check_choice("backend", self.backend, BACKENDS)
        for name in ("hidden", "actor_hidden", "critic_hidden"):
            features.check_sizes(name, getattr(self, name), empty=False)

    @property
    def n_critics(self) -> int:
        """critics in the clipped double-Q target: two (§4.2); DDPG's config has one"""
        return 2


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

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))

    def act(self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        a = self(obs)
        if deterministic or self.noise == 0:
            return a
        eps = torch.randn(a.shape, generator=generator, device=a.device, dtype=a.dtype)
        return (a + self.noise * eps).clamp(-1.0, 1.0)


def build_actor(spec: dict[str, Any], net: dict[str, Any], cfg: TD3Config) -> DeterministicActor:
    return DeterministicActor(spec["obs_dim"], spec["act_dim"], tuple(net["hidden"]), net["activation"],
                              noise=cfg.exploration_noise)


@dataclass
class TD3State:
    """What TD3 learns and the counter its update reads; checkpointed field by field (core/state.py)."""

    actor: DeterministicActor
    critic: TwinQ
    actor_target: DeterministicActor
    critic_target: TwinQ
    actor_opt: Adam
    critic_opt: Adam
    n_updates: int = 0
    polyak: tuple[list, list] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.polyak = ([*self.critic_target.parameters(), *self.actor_target.parameters()],
                       [*self.critic.parameters(), *self.actor.parameters()])


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
# the update
# ---------------------------------------------------------------------------------------------


def critic_update(st: TD3State, cfg: Any, batch: dict[str, torch.Tensor], generator: torch.Generator | None
                  ) -> dict[str, torch.Tensor]:
    """One critic step toward the smoothed clipped double-Q target (Fujimoto et al. 2018, Algorithm 1);
    TD3+BC (``algos/td3_bc.py``) takes it as it is."""
    with torch.no_grad():
        next_mu = st.actor_target(batch["next_obs"])
        noise = torch.randn(next_mu.shape, generator=generator, device=next_mu.device) * cfg.target_policy_noise
        next_a = smoothed_target_actions(next_mu, noise, cfg.target_noise_clip)
        y = td3_targets(batch["returns"], batch["discounts"], st.critic_target(batch["next_obs"], next_a))
    q = st.critic(batch["obs"], batch["actions"])
    q_loss = critic_loss(q, y)
    st.critic_opt.zero_grad()
    q_loss.backward()
    st.critic_opt.step()
    return {"losses/q_loss": q_loss.detach(), "losses/q_values": q.detach().mean()}


def update(st: TD3State, cfg: TD3Config, batch: dict[str, torch.Tensor], generator: torch.Generator | None
           ) -> dict[str, torch.Tensor]:
    """One TD3 critic step (``critic_update``); every ``policy_delay`` steps the actor (through the first
    critic only, as the paper and SB3) and the Polyak averages of all targets (Fujimoto et al. 2018,
    Algorithm 1)."""
    metrics = critic_update(st, cfg, batch, generator)
    if offpolicy.count_update(st, cfg.policy_delay):  # delayed policy and target updates (§5.2)
        pi_loss = actor_loss(st.critic(batch["obs"], st.actor(batch["obs"]))[0])
        st.actor_opt.zero_grad()
        pi_loss.backward()  # also into the critics' .grad, cleared before their next step
        st.actor_opt.step()
        offpolicy.polyak_update(*st.polyak, cfg.tau)
        metrics["losses/actor_loss"] = pi_loss.detach()
    return metrics


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

CONFIG, ACTOR = TD3Config, "actor"


def build_state(spec: dict[str, Any], cfg: TD3Config, device: torch.device) -> TD3State:
    actor = build_actor(spec, {"hidden": cfg.actor_hidden or cfg.hidden, "activation": cfg.activation}, cfg).to(device)
    critic = TwinQ(spec["obs_dim"], spec["act_dim"], cfg.critic_hidden or cfg.hidden, cfg.activation,
                   n=cfg.n_critics).to(device)
    lr, eps = cfg.learning_rate, cfg.adam_eps
    return TD3State(actor, critic, copy.deepcopy(actor).requires_grad_(False),
                    copy.deepcopy(critic).requires_grad_(False),
                    Adam(actor.parameters(), lr=lr, eps=eps), Adam(critic.parameters(), lr=lr, eps=eps))


def train(env_id: str, config: TD3Config | None = None, *, total_steps: int, seed: int = 0, device: str = "cpu",
          run: RunContext | None = None) -> offpolicy.OffPolicyAgent:
    """Train TD3 on ``env_id`` (Box actions) for ``total_steps`` environment steps and return the agent.
    With ``run.resume_from`` (a training checkpoint) continue that run exactly where it stopped."""
    return train_deterministic("td3", env_id, config or TD3Config(), build_state, total_steps=total_steps, seed=seed,
                               device=device, run=run)


def train_deterministic(algo: str, env_id: str, cfg: Any, build: Callable[..., TD3State], *, total_steps: int,
                        seed: int, device: str, run: RunContext | None,
                        act: offpolicy.ActFn = offpolicy.act_with_module,
                        on_done: offpolicy.DoneFn | None = None,
                        update: Callable[..., Any] = update) -> offpolicy.OffPolicyAgent:
    """The training of a deterministic actor-critic (TD3, and DDPG: ``algos/ddpg.py``) with ``update``:
    ``build(spec, cfg, device)`` makes its state, ``act`` draws exploration actions, ``on_done(s, done)``
    runs after a step where episodes ended, ``update`` is the autograd update (the fused one is TD3's)."""
    from .fused import td3 as fused

    s = offpolicy.build_session(algo, env_id, cfg, seed=seed, total_steps=total_steps, device=device,
                                action="box", act_dtype=np.float32)
    with offpolicy.closing(s):
        s.net = {"hidden": list(cfg.actor_hidden or cfg.hidden), "activation": cfg.activation}  # the actor's
        with seeded_init(seed):
            s.state = build(s.spec, cfg, s.device)
        s.backend = backends.resolve(algo, cfg.backend, fused=True)
        step = backends.choose(s.backend, update, fused.update)

        def train_round(s: offpolicy.Session, gradient_steps: int) -> offpolicy.Metrics:
            for _ in range(gradient_steps):
                metrics = step(s.state, cfg, offpolicy.sample_batch(s, cfg.batch_size), s.generator)
            return metrics

        return offpolicy.run(s, act, train_round, run or RunContext(), compiled=step, on_done=on_done)
