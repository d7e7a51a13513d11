"""Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic: Off-Policy Maximum Entropy Deep RL
with a Stochastic Actor", and "Soft Actor-Critic Algorithms and Applications", arXiv:1812.05905):

* twin Q-networks, the minimum of the two in every target (clipped double Q, Fujimoto et al. 2018);
* target critics updated by Polyak averaging with rate τ;
* a squashed Gaussian policy a = tanh(u), u ~ N(μ(s), σ(s)), with the change-of-variables
  correction log π(a|s) = log N(u) − Σ log(1 − tanh²(u)) (Haarnoja et al. 2018, App. C);
* automatic entropy temperature: α minimises −α (log π + H̄) with target entropy H̄ = −|A|
  (arXiv:1812.05905 §5); ``autotune = false`` keeps α fixed at ``ent_coef``;
* actions live in [-1, 1] (buffer, networks) and are rescaled to the Box bounds for the env.

Reads top to bottom: config → networks → pure loss functions → ``update`` (autograd) → ``train``.
The ``fused`` backend (``algos/fused/sac.py``) computes the same update with hand-written gradients.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import BACKENDS, check_choice, check_range
from ..core import features
from ..core.nets import ACTIVATIONS, TwinQ, mlp
from ..core.optim import Adam
from ..core.run import RunContext
from ..core.seeding import seeded_init
from . import backends, offpolicy

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # as SB3 and the authors' code (softlearning)


@dataclass(frozen=True)
class SACConfig:
    n_envs: int = 1
    """number of parallel environments"""
    buffer_size: int = 1_000_000
    """replay buffer capacity in transitions"""
    learning_starts: int = 100
    """environment steps of uniformly random actions before learning starts"""
    batch_size: int = 256
    """transitions per gradient step"""
    learning_rate: float = 3e-4
    """Adam step size of actor, critics and temperature"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """Polyak rate of the target critics"""
    train_freq: int = 1
    """vector-env steps between training rounds"""
    gradient_steps: int = 1
    """gradient steps per training round"""
    target_update_interval: int = 1
    """gradient steps between target-critic updates"""
    ent_coef: float = 1.0
    """entropy temperature α: the initial value with autotune, else fixed"""
    autotune: bool = True
    """learn α toward the target entropy (Haarnoja et al. 2018b §5)"""
    target_entropy_scale: float = 1.0
    """target entropy = −scale · |A| (the paper's heuristic is scale 1)"""
    n_critics: int = 2
    """Q-networks whose minimum enters the targets and the actor loss (2: clipped double Q)"""
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
        for name in ("n_envs", "batch_size", "train_freq", "gradient_steps", "target_update_interval", "n_critics"):
            check_range(name, getattr(self, name), 1)
        check_range("buffer_size", self.buffer_size, 2 * self.n_envs)
        check_range("learning_starts", self.learning_starts, 0)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("gamma", self.gamma, 0, 1)
        check_range("tau", self.tau, 0, 1, low_open=True)
        check_range("ent_coef", self.ent_coef, 0, low_open=True)
        check_range("target_entropy_scale", self.target_entropy_scale, 0)
        check_range("adam_eps", self.adam_eps, 0, low_open=True)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_choice("backend", self.backend, BACKENDS)
        for name in ("hidden", "actor_hidden", "critic_hidden"):
            features.check_sizes(name, getattr(self, name), empty=False)


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------


class SquashedGaussianActor(nn.Module):
    """π(·|s) = tanh(N(μ(s), σ(s))) with a state-dependent log σ clamped to [−20, 2]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], activation: str = "relu") -> None:
        super().__init__()
        self.trunk = nn.Sequential(mlp(obs_dim, hidden[:-1], hidden[-1], activation=activation, ortho_init=False),
                                   ACTIVATIONS[activation]())
        self.mu = nn.Linear(hidden[-1], act_dim)
        self.log_std = nn.Linear(hidden[-1], act_dim)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(obs)
        return self.mu(h), self.log_std(h).clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised action in (−1, 1) and its log-probability (B,) (Haarnoja et al. 2018 eq. 11)."""
        return self.sample_n(obs, 1, generator)

    def sample_n(self, obs: torch.Tensor, n: int, generator: torch.Generator | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` actions per state from one pass of the network: (B·n, act_dim) and (B·n,), sample j of state b
        at row b·n + j (the same draws as ``sample`` on each state repeated n times, at 1/n of the products)."""
        mu, log_std = self(obs)
        if n > 1:
            mu, log_std = mu.repeat_interleave(n, 0), log_std.repeat_interleave(n, 0)
        noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        u = mu + noise * log_std.exp()
        return torch.tanh(u), squashed_log_prob(u, noise, log_std)

    def act(self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        if deterministic:
            return torch.tanh(self(obs)[0])
        return self.sample(obs, generator)[0]


def build_actor(spec: dict[str, Any], net: dict[str, Any], cfg: Any = None) -> SquashedGaussianActor:
    return SquashedGaussianActor(spec["obs_dim"], spec["act_dim"], tuple(net["hidden"]), net["activation"])


class Scalar(nn.Module):
    """A learnable scalar (log α) as a module, so it is checkpointed like the networks."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(value)))


@dataclass
class SACState:
    """What SAC learns and the counters its update reads; checkpointed field by field (core/state.py)."""

    actor: SquashedGaussianActor
    critic: TwinQ
    critic_target: TwinQ
    log_alpha: Scalar
    actor_opt: Adam
    critic_opt: Adam
    alpha_opt: Adam | None
    target_entropy: float
    n_updates: int = 0
    polyak: tuple[list, list] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.polyak = (list(self.critic_target.parameters()), list(self.critic.parameters()))


# ---------------------------------------------------------------------------------------------
# losses (pure functions)
# ---------------------------------------------------------------------------------------------


def squashed_log_prob(u: torch.Tensor, noise: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log π(tanh u) = Σ_i [log N(u_i; μ_i, σ_i) − log(1 − tanh² u_i)] (Haarnoja et al. 2018 eq. 21), with
    (u−μ)/σ = noise and the stable identity −log(1 − tanh² u) = 2 (u + softplus(−2u) − log 2): per
    dimension −½ε² − log σ + 2 (u + softplus(−2u)), less the constants ½ log 2π + 2 log 2."""
    per_dim = 2.0 * (u + F.softplus(-2.0 * u)) - log_std - 0.5 * noise * noise
    return per_dim.sum(-1) - u.shape[-1] * (0.5 * math.log(2.0 * math.pi) + 2.0 * math.log(2.0))


def soft_targets(returns: torch.Tensor, discounts: torch.Tensor, q_next: torch.Tensor, next_logp: torch.Tensor,
                 alpha: torch.Tensor) -> torch.Tensor:
    """y = r + γ (1 − terminated) (min_i Q'_i(s', a') − α log π(a'|s')), a' ~ π(·|s') (eq. 3 and 5)."""
    return returns + discounts * (q_next.amin(0) - alpha * next_logp)


def critic_loss(q: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """½ Σ_critics MSE(Q_i, y) (as SB3); ``q`` is (n_critics, B)."""
    return 0.5 * (q - targets.unsqueeze(0)).pow(2).mean(-1).sum()


def actor_loss(q_pi: torch.Tensor, logp: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """E[α log π(a|s) − min_i Q_i(s, a)], a ~ π(·|s) reparameterised (Haarnoja et al. 2018 eq. 7)."""
    return (alpha * logp - q_pi.amin(0)).mean()


def temperature_loss(log_alpha: torch.Tensor, logp: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """J(α) = E[−α (log π + H̄)] (arXiv:1812.05905 eq. 18), optimised in log α as SB3 and CleanRL do:
    α grows while the entropy −log π is below the target H̄ and shrinks above it."""
    return -(log_alpha * (logp.detach() + target_entropy)).mean()


# ---------------------------------------------------------------------------------------------
# the update
# ---------------------------------------------------------------------------------------------


def update(st: SACState, cfg: SACConfig, batch: dict[str, torch.Tensor], generator: torch.Generator | None
           ) -> dict[str, torch.Tensor]:
    """One SAC gradient step in SB3's order: temperature (with this step's policy samples), critics
    (target from the next-state policy), actor (through the just-updated critics), Polyak averaging."""
    obs, B = batch["obs"], batch["obs"].shape[0]
    # a ~ π(·|s) for the actor and temperature losses and a' ~ π(·|s') for the target, in one pass over
    # [s; s'] (the actor is unchanged until its own step)
    a_both, logp_both = st.actor.sample(torch.cat([obs, batch["next_obs"]]), generator)
    a_pi, logp_pi = a_both[:B], logp_both[:B]
    alpha = st.log_alpha.value.detach().exp()
    if st.alpha_opt is not None:  # the temperature step uses this step's samples; α for the losses is the old one
        st.alpha_opt.zero_grad()
        temperature_loss(st.log_alpha.value, logp_pi, st.target_entropy).backward()
        st.alpha_opt.step()

    with torch.no_grad():
        q_next = st.critic_target(batch["next_obs"], a_both[B:])
        y = soft_targets(batch["returns"], batch["discounts"], q_next, logp_both[B:], alpha)
    q = st.critic(obs, batch["actions"])
    q_loss = critic_loss(q, y)
    st.critic_opt.zero_grad()
    q_loss.backward()
    st.critic_opt.step()

    q_pi = st.critic(obs, a_pi)
    pi_loss = actor_loss(q_pi, logp_pi, alpha)
    st.actor_opt.zero_grad()
    pi_loss.backward()  # also into the critics' .grad, cleared before their next step
    st.actor_opt.step()

    if offpolicy.count_update(st, cfg.target_update_interval):
        offpolicy.polyak_update(*st.polyak, cfg.tau)
    return {"losses/q_loss": q_loss.detach(), "losses/q_values": q.detach().mean(),
            "losses/actor_loss": pi_loss.detach(), "losses/alpha": alpha, "losses/entropy": -logp_pi.detach().mean()}


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

CONFIG, ACTOR = SACConfig, "actor"


def build_state(spec: dict[str, Any], cfg: SACConfig, device: torch.device) -> SACState:
    actor = build_actor(spec, {"hidden": cfg.actor_hidden or cfg.hidden, "activation": cfg.activation}).to(device)
    critic = TwinQ(spec["obs_dim"], spec["act_dim"], cfg.critic_hidden or cfg.hidden, cfg.activation,
                   n=cfg.n_critics).to(device)
    log_alpha = Scalar(math.log(cfg.ent_coef)).to(device)
    lr, eps = cfg.learning_rate, cfg.adam_eps
    return SACState(actor, critic, copy.deepcopy(critic).requires_grad_(False), log_alpha,
                    Adam(actor.parameters(), lr=lr, eps=eps), Adam(critic.parameters(), lr=lr, eps=eps),
                    Adam(log_alpha.parameters(), lr=lr, eps=eps) if cfg.autotune else None,
                    target_entropy=-cfg.target_entropy_scale * spec["act_dim"])


def train(env_id: str, config: SACConfig | None = None, *, total_steps: int, seed: int = 0, device: str = "cpu",
          run: RunContext | None = None) -> offpolicy.OffPolicyAgent:
    """Train SAC on ``env_id`` (Box actions) for ``total_steps`` environment steps and return the agent.
    With ``run.resume_from`` (a training checkpoint) continue that run exactly where it stopped."""
    from .fused import sac as fused

    cfg = config or SACConfig()
    s = offpolicy.build_session("sac", env_id, cfg, seed=seed, total_steps=total_steps, device=device,
                                action="box", act_dtype=np.float32)
    with offpolicy.closing(s):
        s.net = {"hidden": list(cfg.actor_hidden or cfg.hidden), "activation": cfg.activation}  # the actor's
        with seeded_init(seed):
            s.state = build_state(s.spec, cfg, s.device)
        s.backend = backends.resolve("sac", cfg.backend, fused=True)
        step = backends.choose(s.backend, update, fused.update)
        act = fused.act if s.backend == "fused" else offpolicy.act_with_module

        def train_round(s: offpolicy.Session, gradient_steps: int) -> offpolicy.Metrics:
            for _ in range(gradient_steps):
                metrics = step(s.state, cfg, offpolicy.sample_batch(s, cfg.batch_size), s.generator)
            return metrics

        return offpolicy.run(s, act, train_round, run or RunContext(), compiled=step)
