"""TD3+BC (Fujimoto & Gu 2021, "A Minimalist Approach to Offline Reinforcement Learning"): TD3 on a fixed
dataset with two changes (Algorithm 1):

* a behaviour-cloning term in the actor's objective, weighted against the Q-value (eq. 3–4):

      π = argmax_π  E_(s,a)~D [ λ Q(s, π(s)) − (π(s) − a)² ],     λ = α / ( (1/N) Σ_(s_i,a_i) |Q(s_i, π(s_i))| )

  with α = 2.5 and λ computed on the minibatch and not differentiated (it rescales the Q term so that its
  size does not depend on the reward scale; the paper's eq. 4 writes Q(s_i, a_i), the authors' code, followed
  here, the batch's Q(s_i, π(s_i))); as a loss to minimise, L_π = −λ · mean Q(s, π(s)) + mean (π(s) − a)²;
* states standardised by the dataset's mean and std (+ ε = 10⁻³, §5).

Everything else is TD3's and imported from ``algos/td3.py``, not copied: the networks (``DeterministicActor``,
``core.nets.TwinQ``), the state, and the critic update — clipped double-Q target with target-policy
smoothing, y = r + γ (1 − d) min_i Q'_i(s', clip(μ'(s') + clip(ε, −c, c), −1, 1)) — with the actor and the
targets updated every ``policy_delay`` critic steps. Actions live in [-1, 1], rescaled to the bounds.

Reads top to bottom: config → networks → the actor loss → ``update`` (autograd) → ``train``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..config import check_choice, check_range
from ..core import features
from ..core.nets import ACTIVATIONS
from ..core.run import RunContext
from ..core.seeding import seeded_init
from . import offline, offpolicy, td3
from .agent import OffPolicyAgent
from .td3 import TD3State


@dataclass(frozen=True)
class TD3BCConfig:
    dataset: str | None = None
    """the dataset to learn from: a Minari dataset id (rlworks.train also takes an OfflineDataset)"""
    alpha: float = 2.5
    """α: the weight of the Q term against behaviour cloning, λ = α / mean|Q| (Fujimoto & Gu 2021, §5)"""
    batch_size: int = 256
    """transitions per gradient step"""
    learning_rate: float = 3e-4
    """Adam step size of actor and critics"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """Polyak rate of the target networks"""
    policy_delay: int = 2
    """critic steps per actor (and target) update (TD3 §5.2)"""
    target_policy_noise: float = 0.2
    """std of the target-policy smoothing noise, in [-1, 1] action units (TD3 §5.3)"""
    target_noise_clip: float = 0.5
    """clip of the target-policy smoothing noise (TD3 §5.3)"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden layer sizes of the actor and of each critic"""
    actor_hidden: tuple[int, ...] | None = None
    """hidden layer sizes of the actor alone (default: hidden)"""
    critic_hidden: tuple[int, ...] | None = None
    """hidden layer sizes of each critic alone (default: hidden)"""
    activation: str = "relu"
    """hidden activation: relu or tanh"""
    norm_obs: bool = True
    """standardise observations by the dataset's mean and std (+1e-3), as the paper (§5)"""
    adam_eps: float = 1e-8
    """Adam epsilon"""

    def __post_init__(self) -> None:
        check_range("alpha", self.alpha, 0)
        for name in ("batch_size", "policy_delay"):
            check_range(name, getattr(self, name), 1)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("gamma", self.gamma, 0, 1)
        check_range("tau", self.tau, 0, 1, low_open=True)
        for name in ("target_policy_noise", "target_noise_clip"):
            check_range(name, getattr(self, name), 0)
        check_range("adam_eps", self.adam_eps, 0, low_open=True)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        for name in ("hidden", "actor_hidden", "critic_hidden"):
            features.check_sizes(name, getattr(self, name), empty=False)

    @property
    def exploration_noise(self) -> float:
        """read by TD3's network builders: offline, the actor never explores"""
        return 0.0

    @property
    def n_critics(self) -> int:
        """critics in the clipped double-Q target: two, as TD3"""
        return 2


# ---------------------------------------------------------------------------------------------
# networks: TD3's
# ---------------------------------------------------------------------------------------------


def build_actor(spec: dict[str, Any], net: dict[str, Any], cfg: TD3BCConfig) -> offline.NormalizedPolicy:
    """The acting module of a saved agent: TD3's deterministic actor behind the dataset's state statistics."""
    n = spec["obs_dim"]
    return offline.NormalizedPolicy(td3.build_actor(spec, net, cfg), torch.zeros(n), torch.ones(n))


# ---------------------------------------------------------------------------------------------
# the actor loss (pure) and the update
# ---------------------------------------------------------------------------------------------


def actor_loss(q_pi: torch.Tensor, pi: torch.Tensor, actions: torch.Tensor, alpha: float
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_π, λ): L_π = −λ · mean Q_1(s, π(s)) + mean (π(s) − a)², λ = α / mean |Q_1(s, π(s))| (detached)
    (Fujimoto & Gu 2021, eq. 3–4 and the authors' code: the mean over the batch and the action dimensions)."""
    lam = alpha / q_pi.abs().mean().detach()
    return -lam * q_pi.mean() + (pi - actions).pow(2).mean(), lam


def update(st: TD3State, cfg: TD3BCConfig, batch: dict[str, torch.Tensor], generator: torch.Generator | None
           ) -> dict[str, torch.Tensor]:
    """TD3's critic step on a dataset batch; every ``policy_delay`` steps the actor on −λQ + BC and the
    Polyak averages of all targets (Fujimoto & Gu 2021, Algorithm 1)."""
    metrics = td3.critic_update(st, cfg, batch, generator)
    if offpolicy.count_update(st, cfg.policy_delay):
        pi = st.actor(batch["obs"])  # (B, act_dim) in [-1, 1]
        q_pi = st.critic(batch["obs"], pi)[0]  # (B,) the first critic, as TD3
        pi_loss, lam = actor_loss(q_pi, pi, batch["actions"], cfg.alpha)
        st.actor_opt.zero_grad()
        pi_loss.backward()  # also into the critics' .grad, cleared before their next step
        st.actor_opt.step()
        offpolicy.polyak_update(*st.polyak, cfg.tau)
        metrics.update({"losses/actor_loss": pi_loss.detach(), "losses/lambda": lam,
                        "losses/bc_mse": (pi.detach() - batch["actions"]).pow(2).mean()})
    return metrics


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

CONFIG, ACTOR = TD3BCConfig, "actor"


def train(env: Any, config: TD3BCConfig | None = None, *, total_steps: int, seed: int = 0, device: str = "cpu",
          run: RunContext | None = None) -> OffPolicyAgent:
    """Train TD3+BC for ``total_steps`` gradient steps on the dataset and return the agent. ``env``: the env
    to evaluate on, or an ``offline.OfflineSource`` holding it and the dataset (else ``config.dataset`` is
    loaded). With ``run.resume_from`` (a training checkpoint) continue that run exactly where it stopped."""
    cfg = config or TD3BCConfig()
    s = offline.build_session("td3-bc", env, cfg, seed=seed, total_steps=total_steps, device=device)
    s.net = {"hidden": list(cfg.actor_hidden or cfg.hidden), "activation": cfg.activation}  # the actor's
    with seeded_init(seed):
        s.state = td3.build_state(s.spec, cfg, s.device)  # TD3's actor, twin critics, targets, optimizers
    return offline.run(s, lambda s, batch: update(s.state, cfg, batch, s.generator), run or RunContext())
