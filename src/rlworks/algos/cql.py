"""Conservative Q-Learning (Kumar et al. 2020, "Conservative Q-Learning for Offline Reinforcement Learning"):
a Q-function learned on a fixed dataset with a regulariser that pushes Q down on the actions the policy and a
broad proposal would take and up on the dataset's actions, so that it lower-bounds the policy's value (§3.2).
CQL(H) adds to the TD loss of each critic (eq. 4):

    α_cql · E_s~D [ log Σ_a exp Q(s, a)  −  E_a~D Q(s, a) ]

* Box actions, on SAC: log Σ_a exp Q(s, a) is estimated by importance sampling (App. F, and the authors'
  code, aviralkumar2907/CQL, as CORL's): N actions uniform on [-1, 1]^d (density 0.5^d) and N policy actions
  at s and N at s' (densities π(a|s), π(a|s'), not differentiated), all valued at s,

      log Σ_a exp Q(s, a) ≈ logsumexp_j [ Q(s, a_j) − log μ(a_j) ]   over the 3N samples,

  the critics' TD loss is Σ_i MSE(Q_i, y) with SAC's target y (without the entropy bonus, ``backup_entropy``,
  as the authors' ``deterministic_backup`` and CORL), and the actor and temperature are SAC's.
  With ``lagrange_threshold`` τ, the weight is α'·α_cql with α' = exp(log α') ≥ 0 trained on
  max_α' α' (gap − τ) (§3.2 "CQL(H) with a Lagrangian", eq. 30 in App. F): α' rises while the gap
  E[logsumexp − Q(s, a_data)] exceeds τ and falls below it.
* Discrete actions, on DQN: the logsumexp over all actions is exact, and the term is added to DQN's Huber TD
  loss (the paper's discrete experiments, §6.3, add it to QR-DQN).

SAC's actor, critics, state, targets and losses are imported from ``algos/sac.py`` and DQN's Q-network, state,
targets and Huber loss from ``algos/dqn.py``; nothing is copied. Actions live in [-1, 1], rescaled to the bounds.

Reads top to bottom: config → networks → the conservative term (pure) → ``update`` (autograd) → ``train``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from ..config import ConfigError, check_choice, check_range
from ..core import features
from ..core.nets import ACTIVATIONS
from ..core.optim import Adam
from ..core.run import RunContext
from ..core.runtime import bf16_products
from ..core.seeding import seeded_init
from . import dqn, offline, offpolicy, sac
from .agent import OffPolicyAgent


@dataclass(frozen=True)
class CQLConfig:
    dataset: str | None = None
    """the dataset to learn from: a Minari dataset id (rlworks.train also takes an OfflineDataset)"""
    cql_alpha: float = 5.0
    """α_cql: weight of the conservative term (Kumar et al. 2020 App. F: 5.0 on the Gym MuJoCo tasks)"""
    cql_n_actions: int = 10
    """N: uniform and policy actions per state in the importance-sampled logsumexp (Box actions; authors: 10)"""
    lagrange_threshold: float | None = None
    """τ: train α' ≥ 0 to keep the conservative gap at τ (CQL-Lagrange, §3.2); None: fixed weight α_cql"""
    backup_entropy: bool = False
    """subtract α log π(a'|s') in the TD target, as SAC (the authors' code and CORL do not)"""
    batch_size: int = 256
    """transitions per gradient step"""
    learning_rate: float = 3e-4
    """Adam step size of the critics, the temperature and α' (authors: qf_lr 3e-4)"""
    actor_learning_rate: float = 1e-4
    """Adam step size of the actor (authors: policy_lr 1e-4)"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """Polyak rate of the target critics"""
    target_update_interval: int = 1
    """gradient steps between target updates"""
    ent_coef: float = 1.0
    """SAC's entropy temperature α: the initial value with autotune, else fixed (Box actions)"""
    autotune: bool = True
    """learn α toward the target entropy, as SAC (Box actions)"""
    target_entropy_scale: float = 1.0
    """target entropy = −scale · |A|"""
    n_critics: int = 2
    """Q-networks whose minimum enters the target and the actor loss (Box actions)"""
    hidden: tuple[int, ...] = (256, 256, 256)
    """hidden layer sizes of the actor and of each critic (authors: three layers of 256)"""
    actor_hidden: tuple[int, ...] | None = None
    """hidden layer sizes of the actor alone (default: hidden)"""
    critic_hidden: tuple[int, ...] | None = None
    """hidden layer sizes of each critic (the Q-network for Discrete actions) alone (default: hidden)"""
    activation: str = "relu"
    """hidden activation: relu or tanh"""
    norm_obs: bool = True
    """standardise observations by the dataset's mean and std (+1e-3), as CORL"""
    adam_eps: float = 1e-8
    """Adam epsilon"""

    def __post_init__(self) -> None:
        check_range("cql_alpha", self.cql_alpha, 0)
        for name in ("cql_n_actions", "batch_size", "target_update_interval", "n_critics"):
            check_range(name, getattr(self, name), 1)
        for name in ("learning_rate", "actor_learning_rate"):
            check_range(name, getattr(self, name), 0, 1, low_open=True)
        check_range("gamma", self.gamma, 0, 1)
        check_range("tau", self.tau, 0, 1, low_open=True)
        check_range("ent_coef", self.ent_coef, 0, low_open=True)
        check_range("target_entropy_scale", self.target_entropy_scale, 0)
        check_range("adam_eps", self.adam_eps, 0, low_open=True)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        for name in ("hidden", "actor_hidden", "critic_hidden"):
            features.check_sizes(name, getattr(self, name), empty=False)

    @property
    def exploration_final_eps(self) -> float:
        """read by DQN's network builder: offline, the Q-network acts greedily"""
        return 0.0


# ---------------------------------------------------------------------------------------------
# networks: SAC's (Box) and DQN's (Discrete)
# ---------------------------------------------------------------------------------------------


def build_actor(spec: dict[str, Any], net: dict[str, Any], cfg: CQLConfig) -> offline.NormalizedPolicy:
    """The acting module of a saved agent: SAC's actor, or DQN's Q-network, behind the state statistics."""
    n = spec["obs_dim"]
    policy = dqn.build_actor(spec, net, cfg) if spec["action"] == "discrete" else sac.build_actor(spec, net)
    return offline.NormalizedPolicy(policy, torch.zeros(n), torch.ones(n))


@dataclass
class CQLState(sac.SACState):
    """SAC's state and the Lagrange multiplier log α' (None without ``lagrange_threshold``)."""

    log_alpha_prime: sac.Scalar | None = None
    alpha_prime_opt: Adam | None = None


# ---------------------------------------------------------------------------------------------
# the conservative term (pure functions)
# ---------------------------------------------------------------------------------------------


def importance_sampled_logsumexp(q_rand: torch.Tensor, q_pi: torch.Tensor, logp_pi: torch.Tensor,
                                 q_next_pi: torch.Tensor, logp_next_pi: torch.Tensor, act_dim: int) -> torch.Tensor:
    """log Σ_a exp Q(s, a) estimated from N uniform actions on [-1, 1]^d (log μ = d log 0.5) and N policy actions
    drawn at s and at s' (log μ = log π, not differentiated), all valued at s (App. F; the authors' code):
    logsumexp over the 3N values Q(s, a_j) − log μ(a_j). Q's are (n_critics, B, N), log π's (B, N); → (n, B)."""
    log_uniform = act_dim * math.log(0.5)
    weighted = torch.cat([q_rand - log_uniform, q_next_pi - logp_next_pi.detach(), q_pi - logp_pi.detach()], -1)
    return torch.logsumexp(weighted, -1)  # (n, B)


def discrete_gap(q_all: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """logsumexp_a Q(s, a) − Q(s, a_data), exact over the (B, n_actions) Q-values; → (B,)."""
    return torch.logsumexp(q_all, -1) - q_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def conservative_penalty(gap: torch.Tensor, cql_alpha: float, alpha_prime: torch.Tensor | None,
                         threshold: float | None) -> torch.Tensor:
    """Σ_i α_cql · mean_B gap_i, or with the Lagrangian Σ_i α' α_cql (mean_B gap_i − τ) (α' a constant here;
    CORL's form, the authors' code writes α' (α_cql gap − τ)); ``gap`` is (n_critics, B)."""
    if threshold is None:
        return cql_alpha * gap.mean(-1).sum()
    return (alpha_prime * cql_alpha * (gap.mean(-1) - threshold)).sum()


def alpha_prime_loss(log_alpha_prime: torch.Tensor, gap: torch.Tensor, cql_alpha: float,
                     threshold: float) -> torch.Tensor:
    """−α' α_cql (gap − τ) averaged over the critics, the gap not differentiated (the authors' code): its
    gradient step raises α' while the mean gap exceeds τ and lowers it otherwise. α' = exp(log α') in [0, 1e6]."""
    alpha_prime = log_alpha_prime.exp().clamp(0.0, 1e6)
    return -(alpha_prime * cql_alpha * (gap.detach().mean(-1) - threshold)).mean()


# ---------------------------------------------------------------------------------------------
# the updates
# ---------------------------------------------------------------------------------------------


def conservative_gap(st: CQLState, cfg: CQLConfig, obs: torch.Tensor, next_obs: torch.Tensor,
                     q_data: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """The gap logsumexp_a Q_i(s, a) − Q_i(s, a_data) per critic (n_critics, B), with fresh samples."""
    B, d, N = obs.shape[0], st.actor.mu.out_features, cfg.cql_n_actions
    rand = torch.rand((B * N, d), generator=generator, device=obs.device) * 2.0 - 1.0  # (B·N, d)
    with torch.no_grad():  # the policy's samples are proposals here, not trained through this term
        a_pol, logp_pol = st.actor.sample_n(torch.cat([obs, next_obs]), N, generator)  # (2·B·N, d): N per state
    obs_rep = obs.repeat_interleave(N, 0)  # (B·N, obs_dim): sample j of state b at row b·N + j
    with bf16_products(obs.device):  # bfloat16 products only under matmul_precision="medium" (core/runtime.py)
        q = st.critic(obs_rep.repeat(3, 1), torch.cat([rand, a_pol])).float().view(-1, 3, B, N)  # (n, 3, B, N), at s
    logp = logp_pol.view(2, B, N)
    lse = importance_sampled_logsumexp(q[:, 0], q[:, 1], logp[0], q[:, 2], logp[1], d)
    return lse - q_data


def update(st: CQLState, cfg: CQLConfig, batch: dict[str, torch.Tensor], generator: torch.Generator | None
           ) -> dict[str, torch.Tensor]:
    """One CQL(H) step in SAC's order: temperature, critics on Σ_i MSE(Q_i, y) + the conservative term (and
    α' on the gap), actor (SAC's loss through the new critics), Polyak averaging."""
    obs, B = batch["obs"], batch["obs"].shape[0]
    a_both, logp_both = st.actor.sample(torch.cat([obs, batch["next_obs"]]), generator)
    a_pi, logp_pi = a_both[:B], logp_both[:B]
    alpha = st.log_alpha.value.detach().exp()
    if st.alpha_opt is not None:
        st.alpha_opt.zero_grad()
        sac.temperature_loss(st.log_alpha.value, logp_pi, st.target_entropy).backward()
        st.alpha_opt.step()

    with torch.no_grad():
        q_next = st.critic_target(batch["next_obs"], a_both[B:])
        y = sac.soft_targets(batch["returns"], batch["discounts"], q_next, logp_both[B:],
                             alpha if cfg.backup_entropy else torch.zeros_like(alpha))
    q = st.critic(obs, batch["actions"])  # (n, B)
    gap = conservative_gap(st, cfg, obs, batch["next_obs"], q, generator)  # (n, B)
    metrics = {}
    alpha_prime = None
    if st.log_alpha_prime is not None:
        alpha_prime = st.log_alpha_prime.value.detach().exp().clamp(0.0, 1e6)
        st.alpha_prime_opt.zero_grad()
        alpha_prime_loss(st.log_alpha_prime.value, gap, cfg.cql_alpha, cfg.lagrange_threshold).backward()
        st.alpha_prime_opt.step()
        metrics["losses/alpha_prime"] = alpha_prime
    td_loss = 2.0 * sac.critic_loss(q, y)  # Σ_i MSE(Q_i, y), the authors' scale (SAC's is ½ Σ_i)
    penalty = conservative_penalty(gap, cfg.cql_alpha, alpha_prime, cfg.lagrange_threshold)
    st.critic_opt.zero_grad()
    (td_loss + penalty).backward()
    st.critic_opt.step()

    pi_loss = sac.actor_loss(st.critic(obs, a_pi), logp_pi, alpha)
    st.actor_opt.zero_grad()
    pi_loss.backward()  # also into the critics' .grad, cleared before their next step
    st.actor_opt.step()

    if offpolicy.count_update(st, cfg.target_update_interval):
        offpolicy.polyak_update(*st.polyak, cfg.tau)
    metrics.update({"losses/q_loss": td_loss.detach(), "losses/cql_gap": gap.detach().mean(),
                    "losses/q_values": q.detach().mean(), "losses/actor_loss": pi_loss.detach(),
                    "losses/alpha": alpha, "losses/entropy": -logp_pi.detach().mean()})
    return metrics


def discrete_update(st: dqn.DQNState, cfg: CQLConfig, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One step of DQN's Huber TD loss plus α_cql · mean(logsumexp_a Q(s, a) − Q(s, a_data)), then the
    Polyak average of the target network."""
    with torch.no_grad():
        y = dqn.td_targets(batch["returns"], batch["discounts"], st.q_target(batch["next_obs"]), None)
    q_all = st.q(batch["obs"])  # (B, n_actions)
    q_taken = q_all.gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1)
    td_loss = dqn.q_loss(q_taken, y, None)
    gap = discrete_gap(q_all, batch["actions"])
    st.q_opt.zero_grad()
    (td_loss + cfg.cql_alpha * gap.mean()).backward()
    st.q_opt.step()
    if offpolicy.count_update(st, cfg.target_update_interval):
        offpolicy.polyak_update(list(st.q_target.parameters()), list(st.q.parameters()), cfg.tau)
    return {"losses/q_loss": td_loss.detach(), "losses/cql_gap": gap.detach().mean(),
            "losses/q_values": q_taken.detach().mean()}


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

CONFIG, ACTOR = CQLConfig, "actor"


def build_state(spec: dict[str, Any], cfg: CQLConfig, device: torch.device) -> CQLState:
    """SAC's state (the actor's step size set to ``actor_learning_rate``) and, with a threshold, log α' = 0."""
    base = sac.build_state(spec, cfg, device)
    base.actor_opt.param_groups[0]["lr"] = cfg.actor_learning_rate
    st = CQLState(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base) if f.init})
    if cfg.lagrange_threshold is not None:
        st.log_alpha_prime = sac.Scalar(0.0).to(device)
        st.alpha_prime_opt = Adam(st.log_alpha_prime.parameters(), lr=cfg.learning_rate, eps=cfg.adam_eps)
    return st


def train(env: Any, config: CQLConfig | None = None, *, total_steps: int, seed: int = 0, device: str = "cpu",
          run: RunContext | None = None) -> OffPolicyAgent:
    """Train CQL for ``total_steps`` gradient steps on the dataset and return the agent: on SAC for Box actions,
    on DQN for Discrete ones. ``env``: the env to evaluate on, or an ``offline.OfflineSource`` holding it and the
    dataset (else ``config.dataset`` is loaded). With ``run.resume_from`` continue that run exactly."""
    cfg = config or CQLConfig()
    s = offline.build_session("cql", env, cfg, seed=seed, total_steps=total_steps, device=device)
    if s.spec["action"] == "discrete":
        if cfg.lagrange_threshold is not None:
            raise ConfigError("lagrange_threshold is for Box actions; with Discrete ones set cql_alpha")
        s.net = {"hidden": list(cfg.critic_hidden or cfg.hidden), "activation": cfg.activation, "dueling": False,
                 "features": "mlp"}
        with seeded_init(seed):
            s.state = dqn.build_state(s.spec, s.net, cfg, s.device)  # DQN's Q-network, target and optimizer
        s.actor = "q"
        return offline.run(s, lambda s, batch: discrete_update(s.state, cfg, batch), run or RunContext())
    s.net = {"hidden": list(cfg.actor_hidden or cfg.hidden), "activation": cfg.activation}  # the actor's
    with seeded_init(seed):
        s.state = build_state(s.spec, cfg, s.device)
    return offline.run(s, lambda s, batch: update(s.state, cfg, batch, s.generator), run or RunContext())
