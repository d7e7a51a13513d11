"""Deep Deterministic Policy Gradient (Lillicrap et al. 2015, "Continuous control with deep reinforcement
learning", §3 and Algorithm 1): a deterministic actor μ(s) and one critic Q(s, a), trained off-policy from a
replay buffer,

* critic: minimise (Q(s, a) − y)² with y = r + γ (1 − terminated) Q'(s', μ'(s'));
* actor: ascend the deterministic policy gradient ∇_a Q(s, a)|_{a=μ(s)} ∇_θ μ(s), every step;
* targets: Polyak averages θ' ← τθ + (1 − τ)θ' of both networks, every step;
* exploration: μ(s) + 𝒩, 𝒩 Gaussian or an Ornstein–Uhlenbeck process (§3; ``core/noise.py``).

TD3 (Fujimoto et al. 2018) is this algorithm plus three tricks — twin critics, delayed policy updates,
target-policy smoothing. So DDPG here *is* TD3's code with the three switched off: ``DDPGConfig`` answers
``n_critics = 1``, ``policy_delay = 1``, ``target_policy_noise = 0`` where TD3's update reads them, and the
networks, the losses, the fused backend and the loop are ``algos/td3.py``'s. This file writes Algorithm 1's
update out with autograd (the reference the fused TD3 update is tested against for this configuration) and
adds what DDPG has and TD3 has not: the choice of action noise. Actions live in [-1, 1].

The defaults are TD3's (Fujimoto et al.'s re-tuned "our DDPG" and SB3's DDPG: one learning rate, batch 256,
τ = 0.005, no weight decay), not the 2015 paper's (actor 1e-4 / critic 1e-3, batch 64, τ = 0.001, L2 1e-2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import BACKENDS, ConfigError, check_choice, check_range
from ..core import features
from ..core.nets import ACTIVATIONS
from ..core.noise import OrnsteinUhlenbeckNoise
from ..core.run import RunContext
from . import offpolicy, td3
from .agent import to_tensor

#: the exploration noise processes: i.i.d. Gaussian, or Ornstein–Uhlenbeck (Lillicrap et al. 2015, §3)
ACTION_NOISES = ("gaussian", "ou")


@dataclass(frozen=True)
class DDPGConfig:
    n_envs: int = 1
    """number of parallel environments"""
    buffer_size: int = 1_000_000
    """replay buffer capacity in transitions"""
    learning_starts: int = 10_000
    """environment steps of uniformly random actions before learning starts"""
    batch_size: int = 256
    """transitions per gradient step"""
    learning_rate: float = 1e-3
    """Adam step size of actor and critic"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """Polyak rate of the target networks"""
    train_freq: int = 1
    """vector-env steps between training rounds"""
    gradient_steps: int = 1
    """gradient steps per training round"""
    action_noise: str = "gaussian"
    """exploration noise: gaussian (i.i.d.) or ou (Ornstein-Uhlenbeck, restarted at episode ends)"""
    exploration_noise: float = 0.1
    """sigma of the exploration noise, in [-1, 1] action units (the Gaussian std, or the OU process's sigma)"""
    ou_theta: float = 0.15
    """mean-reversion rate theta of the OU process (Lillicrap et al. 2015, §7: 0.15)"""
    ou_dt: float = 1e-2
    """time step dt of the OU process (as SB3's OrnsteinUhlenbeckActionNoise)"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden layer sizes of the actor and of the critic"""
    actor_hidden: tuple[int, ...] | None = None
    """hidden layer sizes of the actor alone (default: hidden)"""
    critic_hidden: tuple[int, ...] | None = None
    """hidden layer sizes of the critic alone (default: hidden)"""
    activation: str = "relu"
    """hidden activation: relu or tanh"""
    adam_eps: float = 1e-8
    """Adam epsilon"""
    backend: str = "auto"
    """how the update runs: auto, autograd, compile or fused (algos/backends.py)"""

    def __post_init__(self) -> None:
        for name in ("n_envs", "batch_size", "train_freq", "gradient_steps"):
            check_range(name, getattr(self, name), 1)
        check_range("buffer_size", self.buffer_size, 2 * self.n_envs)
        check_range("learning_starts", self.learning_starts, 0)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("gamma", self.gamma, 0, 1)
        check_range("tau", self.tau, 0, 1, low_open=True)
        check_choice("action_noise", self.action_noise, ACTION_NOISES)
        check_range("exploration_noise", self.exploration_noise, 0)
        check_range("ou_theta", self.ou_theta, 0, low_open=True)
        check_range("ou_dt", self.ou_dt, 0, low_open=True)
        if self.ou_theta * self.ou_dt >= 2:
            raise ConfigError(f"ou_theta * ou_dt = {self.ou_theta * self.ou_dt:g} makes the OU process diverge: "
                              "allowed (0, 2), usually well below 1")
        check_range("adam_eps", self.adam_eps, 0, low_open=True)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_choice("backend", self.backend, BACKENDS)
        for name in ("hidden", "actor_hidden", "critic_hidden"):
            features.check_sizes(name, getattr(self, name), empty=False)

    # TD3's three tricks, switched off where td3.update reads them (Fujimoto et al. 2018 §4.2, §5.2, §5.3)
    @property
    def n_critics(self) -> int:
        """one critic: the target is r + γ Q'(s', μ'(s')), no minimum over twins"""
        return 1

    @property
    def policy_delay(self) -> int:
        """actor and targets updated after every critic step"""
        return 1

    @property
    def target_policy_noise(self) -> float:
        """no target-policy smoothing: the target action is μ'(s') itself"""
        return 0.0

    @property
    def target_noise_clip(self) -> float:
        return 0.0


# ---------------------------------------------------------------------------------------------
# networks and state: TD3's; the update: Algorithm 1
# ---------------------------------------------------------------------------------------------

DeterministicActor, build_actor = td3.DeterministicActor, td3.build_actor
#: the critic loss, actor loss and target of Algorithm 1, as TD3 writes them with n_critics = 1
critic_loss, actor_loss, targets = td3.critic_loss, td3.actor_loss, td3.td3_targets


def update(st: td3.TD3State, cfg: DDPGConfig, batch: dict[str, torch.Tensor], generator: torch.Generator | None
           ) -> dict[str, torch.Tensor]:
    """Algorithm 1's update: one critic step toward y = r + γ Q'(s', μ'(s')), one actor step along
    ∇_a Q(s, a)|_{a=μ(s)} ∇_θ μ(s), then the Polyak averages of both targets. (``td3.update`` with
    ``n_critics`` 1, ``policy_delay`` 1 and no smoothing computes the same; the fused backend is TD3's.)"""
    with torch.no_grad():
        y = targets(batch["returns"], batch["discounts"], st.critic_target(batch["next_obs"],
                                                                           st.actor_target(batch["next_obs"])))
    q = st.critic(batch["obs"], batch["actions"])
    q_loss = critic_loss(q, y)
    st.critic_opt.zero_grad()
    q_loss.backward()
    st.critic_opt.step()
    pi_loss = actor_loss(st.critic(batch["obs"], st.actor(batch["obs"]))[0])
    st.actor_opt.zero_grad()
    pi_loss.backward()  # also into the critic's .grad, cleared before its next step
    st.actor_opt.step()
    offpolicy.count_update(st, 1)
    offpolicy.polyak_update(*st.polyak, cfg.tau)
    return {"losses/q_loss": q_loss.detach(), "losses/q_values": q.detach().mean(),
            "losses/actor_loss": pi_loss.detach()}


@dataclass
class DDPGState(td3.TD3State):
    """TD3's state (one critic) and, with ``action_noise="ou"``, the OU process, checkpointed with it."""

    noise: OrnsteinUhlenbeckNoise | None = None


def build_state(spec: dict[str, Any], cfg: DDPGConfig, device: torch.device) -> DDPGState:
    st = td3.build_state(spec, cfg, device)
    noise = (OrnsteinUhlenbeckNoise(cfg.n_envs, spec["act_dim"], cfg.exploration_noise, cfg.ou_theta, cfg.ou_dt)
             .to(device) if cfg.action_noise == "ou" else None)
    return DDPGState(st.actor, st.critic, st.actor_target, st.critic_target, st.actor_opt, st.critic_opt, noise=noise)


# ---------------------------------------------------------------------------------------------
# exploration and train
# ---------------------------------------------------------------------------------------------


def act_with_ou(s: offpolicy.Session, obs: np.ndarray) -> np.ndarray:
    """a = clip(μ(s) + 𝒩_t, −1, 1), 𝒩 the OU process of each env (Algorithm 1, "select action")."""
    with torch.no_grad():
        mu = s.state.actor(to_tensor(obs, s.device))
        return (mu + s.state.noise.sample(s.generator)).clamp_(-1.0, 1.0).cpu().numpy()


def restart_noise(s: offpolicy.Session, done: np.ndarray) -> None:
    """"Initialize a random process 𝒩 for action exploration" at the start of each episode (Algorithm 1)."""
    s.state.noise.reset(torch.from_numpy(done))


CONFIG, ACTOR = DDPGConfig, "actor"


def train(env_id: str, config: DDPGConfig | None = None, *, total_steps: int, seed: int = 0, device: str = "cpu",
          run: RunContext | None = None) -> offpolicy.OffPolicyAgent:
    """Train DDPG on ``env_id`` (Box actions) for ``total_steps`` environment steps and return the agent.
    With ``run.resume_from`` (a training checkpoint) continue that run exactly where it stopped."""
    cfg = config or DDPGConfig()
    ou = cfg.action_noise == "ou"  # Gaussian noise is the actor's own (DeterministicActor.act)
    return td3.train_deterministic("ddpg", env_id, cfg, build_state, total_steps=total_steps, seed=seed,
                                   device=device, run=run, act=act_with_ou if ou else offpolicy.act_with_module,
                                   on_done=restart_noise if ou else None, update=update)
