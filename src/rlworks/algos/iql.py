"""Implicit Q-Learning (Kostrikov, Nair & Levine 2021, "Offline Reinforcement Learning with Implicit
Q-Learning"): in-sample learning that never queries Q on an action outside the dataset.

* V(s) fits an upper expectile of the target Q over the dataset's actions (eq. 5):

      L_V = E_(s,a)~D [ L_τ( min_i Q'_i(s, a) − V(s) ) ],     L_τ(u) = |τ − 1(u < 0)| u²,

  so for τ → 1 it approaches max over the in-support actions (τ = 0.5 is half the squared error);
* Q fits the one-step target through V, with twin Q's and a Polyak-averaged target (eq. 6):

      L_Q = E_(s,a,s')~D Σ_i [ (r + γ (1 − d) V(s') − Q_i(s, a))² ];

* the policy is extracted by advantage-weighted regression (eq. 7) on the dataset's actions,

      L_π = −E_(s,a)~D [ min(exp(β (min_i Q'_i(s, a) − V(s))), 100) · log π(a|s) ],

  with the weights clipped at 100 (the authors' code, ikostrikov/implicit_q_learning). Box actions: a Gaussian
  with tanh-squashed mean and a state-independent log σ ≥ −5 (the authors' locomotion policy), acting with its
  mean; Discrete actions: BC's categorical policy (``algos/bc.py``), acting with its most likely action, and
  Q(s, ·) of the one-hot action (IQL only values the dataset's actions).

Updates in the authors' order: V, then π (both with the target Q and the new V), then Q, then the target.
Defaults are the paper's MuJoCo locomotion settings (App. B): τ 0.7, β 3.0, Adam 3e-4, batch 256, γ 0.99,
Polyak 0.005, [256, 256], a cosine decay of the actor's step size; the rewards scaled by
1000 / (max − min episode return) (``normalize_rewards``, the authors' locomotion preprocessing) are set by
the MuJoCo presets. Reads top to bottom: config → networks → losses (pure) → ``update`` (autograd) → ``train``.
The ``fused`` backend (``algos/fused/iql.py``) computes the same update with hand-written gradients.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import BACKENDS, check_choice, check_range
from ..core import features
from ..core.nets import ACTIVATIONS, TwinQ, mlp
from ..core.optim import Adam
from ..core.run import RunContext
from ..core.seeding import seeded_init
from . import backends, offline, offpolicy
from .agent import OffPolicyAgent
from .bc import CategoricalPolicy

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # the authors' locomotion policy (log_std_min=-5.0)


@dataclass(frozen=True)
class IQLConfig:
    dataset: str | None = None
    """the dataset to learn from: a Minari dataset id (rlworks.train also takes an OfflineDataset)"""
    expectile: float = 0.7
    """τ of the expectile loss of V (paper: 0.7 on locomotion, 0.9 on AntMaze)"""
    beta: float = 3.0
    """β: inverse temperature of the advantage weights exp(β A) (paper: 3.0 on locomotion, 10.0 on AntMaze)"""
    max_weight: float = 100.0
    """clip of the advantage weights (authors' code: 100)"""
    batch_size: int = 256
    """transitions per gradient step"""
    learning_rate: float = 3e-4
    """Adam step size of the actor, the critics and V"""
    actor_cosine_lr: bool = True
    """decay the actor's step size as lr · ½ (1 + cos(π t / total_steps)) (authors' code, locomotion)"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """Polyak rate of the target critics"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden layer sizes of the actor, the critics and V"""
    activation: str = "relu"
    """hidden activation: relu or tanh"""
    norm_obs: bool = True
    """standardise observations by the dataset's mean and std (+1e-3), as CORL"""
    normalize_rewards: bool = False
    """scale rewards by 1000 / (max − min episode return), as the authors on locomotion"""
    adam_eps: float = 1e-8
    """Adam epsilon"""
    backend: str = "auto"
    """how the update runs: auto, autograd, compile or fused (algos/backends.py)"""

    def __post_init__(self) -> None:
        check_range("expectile", self.expectile, 0, 1, low_open=True, high_open=True)
        check_range("beta", self.beta, 0)
        check_range("max_weight", self.max_weight, 0, low_open=True)
        check_range("batch_size", self.batch_size, 1)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("gamma", self.gamma, 0, 1)
        check_range("tau", self.tau, 0, 1, low_open=True)
        check_range("adam_eps", self.adam_eps, 0, low_open=True)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_choice("backend", self.backend, BACKENDS)
        features.check_sizes("hidden", self.hidden, empty=False)


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------


class GaussianPolicy(nn.Module):
    """π(·|s) = N(tanh(MLP(s)), σ) with a learned state-independent log σ in [−5, 2] (the authors'
    ``NormalTanhPolicy(state_dependent_std=False, tanh_squash_distribution=False)``); acts with its mean."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], activation: str = "relu") -> None:
        super().__init__()
        self.mu = mlp(obs_dim, hidden, act_dim, activation=activation, ortho_init=False)
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:  # -> (B,)
        mean = torch.tanh(self.mu(obs))
        return torch.distributions.Normal(mean, self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
                                          ).log_prob(actions).sum(-1)

    def act(self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        mean = torch.tanh(self.mu(obs))
        if deterministic:
            return mean
        std = self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return (mean + std * noise).clamp(-1.0, 1.0)


def build_policy(spec: dict[str, Any], net: dict[str, Any]) -> nn.Module:
    hidden, activation = tuple(net["hidden"]), net["activation"]
    if spec["action"] == "discrete":
        return CategoricalPolicy(spec["obs_dim"], spec["act_dim"], hidden, activation)
    return GaussianPolicy(spec["obs_dim"], spec["act_dim"], hidden, activation)


def build_actor(spec: dict[str, Any], net: dict[str, Any], cfg: IQLConfig) -> offline.NormalizedPolicy:
    """The acting module of a saved agent (its observation statistics come with the weights)."""
    n = spec["obs_dim"]
    return offline.NormalizedPolicy(build_policy(spec, net), torch.zeros(n), torch.ones(n))


@dataclass
class IQLState:
    actor: nn.Module
    critic: TwinQ
    critic_target: TwinQ
    value: nn.Module
    actor_opt: Adam
    critic_opt: Adam
    value_opt: Adam
    act_dim: int = 0  # the critics' action input: the Box dimension, or the number of Discrete actions (one-hot)
    n_updates: int = 0
    polyak: tuple[list, list] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.polyak = (list(self.critic_target.parameters()), list(self.critic.parameters()))


# ---------------------------------------------------------------------------------------------
# losses (pure functions)
# ---------------------------------------------------------------------------------------------


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """E[L_τ(u)], L_τ(u) = |τ − 1(u < 0)| u², u = Q − V (eq. 5)."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.pow(2)).mean()


def awr_weights(advantages: torch.Tensor, beta: float, max_weight: float) -> torch.Tensor:
    """min(exp(β A), max_weight), not differentiated (eq. 7; the clip is the authors' code)."""
    return torch.exp(beta * advantages.detach()).clamp(max=max_weight)


def log_likelihood(policy: nn.Module, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log π(a|s) of the dataset's actions (B,): Gaussian density (Box) or log-softmax (Discrete)."""
    if actions.dtype == torch.int64:
        return F.log_softmax(policy(obs), -1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return policy.log_prob(obs, actions)


def q_input(actions: torch.Tensor, n_actions: int) -> torch.Tensor:
    """The critics' action input: Box actions as they are, Discrete ones one-hot."""
    return F.one_hot(actions, n_actions).float() if actions.dtype == torch.int64 else actions


# ---------------------------------------------------------------------------------------------
# the update
# ---------------------------------------------------------------------------------------------


def update(st: IQLState, cfg: IQLConfig, batch: dict[str, torch.Tensor], actor_lr: float
           ) -> dict[str, torch.Tensor]:
    """One IQL step (the authors' ``_update_jit``): V on the expectile loss, π by AWR, Q on r + γ V(s'), then
    the Polyak average of the target critics. ``actor_lr``: this step's actor step size (the schedule)."""
    obs = batch["obs"]
    act = q_input(batch["actions"], st.act_dim)
    with torch.no_grad():
        q_target = st.critic_target(obs, act).amin(0)  # (B,)
    v = st.value(obs).squeeze(-1)  # (B,)
    v_loss = expectile_loss(q_target - v, cfg.expectile)
    st.value_opt.zero_grad()
    v_loss.backward()
    st.value_opt.step()

    with torch.no_grad():
        v = st.value(obs).squeeze(-1)  # the new V, for the advantages (authors: new_value)
        weights = awr_weights(q_target - v, cfg.beta, cfg.max_weight)
        y = batch["returns"] + batch["discounts"] * st.value(batch["next_obs"]).squeeze(-1)
    pi_loss = -(weights * log_likelihood(st.actor, obs, batch["actions"])).mean()
    st.actor_opt.param_groups[0]["lr"] = actor_lr
    st.actor_opt.zero_grad()
    pi_loss.backward()
    st.actor_opt.step()

    q = st.critic(obs, act)  # (2, B)
    q_loss = (q - y.unsqueeze(0)).pow(2).mean(-1).sum()
    st.critic_opt.zero_grad()
    q_loss.backward()
    st.critic_opt.step()
    st.n_updates += 1
    offpolicy.polyak_update(*st.polyak, cfg.tau)
    return {"losses/value_loss": v_loss.detach(), "losses/actor_loss": pi_loss.detach(),
            "losses/q_loss": q_loss.detach(), "losses/q_values": q.detach().mean(), "losses/v_values": v.mean(),
            "losses/mean_weight": weights.mean()}


def actor_lr(cfg: IQLConfig, step: int, total_steps: int) -> float:
    """lr · ½ (1 + cos(π t / T)) with ``actor_cosine_lr`` (optax.cosine_decay_schedule), else lr."""
    if not cfg.actor_cosine_lr:
        return cfg.learning_rate
    return cfg.learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(step / total_steps, 1.0)))


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

CONFIG, ACTOR = IQLConfig, "actor"


def build_state(spec: dict[str, Any], net: dict[str, Any], cfg: IQLConfig, device: torch.device) -> IQLState:
    actor = build_policy(spec, net).to(device)
    critic = TwinQ(spec["obs_dim"], spec["act_dim"], cfg.hidden, cfg.activation, n=2).to(device)
    value = mlp(spec["obs_dim"], cfg.hidden, 1, activation=cfg.activation, ortho_init=False).to(device)
    lr, eps = cfg.learning_rate, cfg.adam_eps
    return IQLState(actor, critic, copy.deepcopy(critic).requires_grad_(False), value,
                    Adam(actor.parameters(), lr=lr, eps=eps), Adam(critic.parameters(), lr=lr, eps=eps),
                    Adam(value.parameters(), lr=lr, eps=eps), act_dim=spec["act_dim"])


def train(env: Any, config: IQLConfig | None = None, *, total_steps: int, seed: int = 0, device: str = "cpu",
          run: RunContext | None = None) -> OffPolicyAgent:
    """Train IQL for ``total_steps`` gradient steps on the dataset and return the agent. ``env``: the env to
    evaluate on, or an ``offline.OfflineSource`` holding it and the dataset (else ``config.dataset`` is loaded).
    With ``run.resume_from`` (a training checkpoint) continue that run exactly where it stopped."""
    from .fused import iql as fused

    cfg = config or IQLConfig()
    s = offline.build_session("iql", env, cfg, seed=seed, total_steps=total_steps, device=device)
    if cfg.normalize_rewards:  # the authors' locomotion preprocessing: r · 1000 / (max − min episode return)
        returns = s.dataset.episode_returns
        span = float(returns.max() - returns.min()) if len(returns) else 0.0
        if span > 0:
            s.data["returns"] = s.data["returns"] * (1000.0 / span)
    s.net = {"hidden": list(cfg.hidden), "activation": cfg.activation}
    with seeded_init(seed):
        s.state = build_state(s.spec, s.net, cfg, s.device)
    backend = backends.resolve("iql", cfg.backend, fused=True)
    step = backends.choose(backend, update, fused.update)
    agent = offline.run(s, lambda s, batch: step(s.state, cfg, batch, actor_lr(cfg, s.global_step, s.total_steps)),
                        run or RunContext())
    agent.meta["backend"] = backend
    return agent
