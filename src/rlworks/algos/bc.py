"""Behavioural cloning: supervised learning of the dataset's actions (Pomerleau 1991; the baseline of every
offline-RL paper), and filtered BC, the same on the best episodes only ("%BC": Chen et al. 2021, "Decision
Transformer", §5.3; Emmons et al. 2022, "RvS").

* Box actions: a deterministic policy μ(s) = tanh(MLP(s)) in [-1, 1] (the bounds rescaled, as TD3's actor),
  fitted by mean squared error, L = E_(s,a)~D ‖μ(s) − a‖²;
* Discrete actions: a categorical policy π(a|s) = softmax(MLP(s)), fitted by cross-entropy,
  L = −E_(s,a)~D log π(a|s); the agent acts with the most likely action.
* ``filter_top`` = x keeps the ⌈x·E⌉ episodes of highest return (x = 1: plain BC).

Reads top to bottom: config → networks → pure loss functions → ``update`` (autograd) → ``train``.
Observations are standardised with the dataset's statistics (``norm_obs``, as TD3+BC's BC baseline).
The loop, checkpoints and agent are the offline plumbing's (``algos/offline.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_choice, check_range
from ..core import features
from ..core.nets import ACTIVATIONS, mlp
from ..core.optim import Adam
from ..core.run import RunContext
from ..core.seeding import seeded_init
from ..offline.data import OfflineDataset
from . import offline
from .agent import OffPolicyAgent
from .td3 import DeterministicActor


@dataclass(frozen=True)
class BCConfig:
    dataset: str | None = None
    """the dataset to learn from: a Minari dataset id (rlworks.train also takes an OfflineDataset)"""
    filter_top: float = 1.0
    """fraction of episodes kept, highest return first (filtered BC); 1.0: plain BC on every episode"""
    batch_size: int = 256
    """transitions per gradient step"""
    learning_rate: float = 1e-3
    """Adam step size"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden layer sizes of the policy"""
    activation: str = "relu"
    """hidden activation: relu or tanh"""
    norm_obs: bool = True
    """standardise observations by the dataset's mean and std (+1e-3)"""
    adam_eps: float = 1e-8
    """Adam epsilon"""

    def __post_init__(self) -> None:
        check_range("filter_top", self.filter_top, 0, 1, low_open=True)
        check_range("batch_size", self.batch_size, 1)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("adam_eps", self.adam_eps, 0, low_open=True)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        features.check_sizes("hidden", self.hidden, empty=False)


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------


class CategoricalPolicy(nn.Module):
    """π(·|s) = softmax(MLP(s)); ``act`` takes the most likely action, or samples one."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...], activation: str = "relu") -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, n_actions, activation=activation, ortho_init=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:  # -> logits (B, n_actions)
        return self.net(obs)

    def act(self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        logits = self(obs)
        if deterministic:
            return logits.argmax(-1)
        return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1)


def build_policy(spec: dict[str, Any], net: dict[str, Any]) -> nn.Module:
    hidden, activation = tuple(net["hidden"]), net["activation"]
    if spec["action"] == "discrete":
        return CategoricalPolicy(spec["obs_dim"], spec["act_dim"], hidden, activation)
    return DeterministicActor(spec["obs_dim"], spec["act_dim"], hidden, activation, noise=0.0)


def build_actor(spec: dict[str, Any], net: dict[str, Any], cfg: BCConfig) -> offline.NormalizedPolicy:
    """The acting module of a saved agent (its observation statistics come with the weights)."""
    n = spec["obs_dim"]
    return offline.NormalizedPolicy(build_policy(spec, net), torch.zeros(n), torch.ones(n))


@dataclass
class BCState:
    actor: nn.Module
    actor_opt: Adam
    n_updates: int = 0


# ---------------------------------------------------------------------------------------------
# losses (pure functions) and the update
# ---------------------------------------------------------------------------------------------


def mse_loss(pi_actions: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """E ‖μ(s) − a‖² over the batch (mean over action dimensions too, as ``F.mse_loss``)."""
    return (pi_actions - actions).pow(2).mean()


def cross_entropy_loss(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """−E log π(a|s)."""
    return F.cross_entropy(logits, actions)


def update(st: BCState, cfg: BCConfig, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One gradient step of the imitation loss on a minibatch."""
    out = st.actor(batch["obs"])
    discrete = batch["actions"].dtype == torch.int64
    loss = cross_entropy_loss(out, batch["actions"]) if discrete else mse_loss(out, batch["actions"])
    st.actor_opt.zero_grad()
    loss.backward()
    st.actor_opt.step()
    st.n_updates += 1
    metrics = {"losses/bc_loss": loss.detach()}
    if discrete:
        metrics["charts/accuracy"] = (out.detach().argmax(-1) == batch["actions"]).float().mean()
    return metrics


# ---------------------------------------------------------------------------------------------
# filtered BC: which episodes
# ---------------------------------------------------------------------------------------------


def top_episodes(data: OfflineDataset, fraction: float) -> np.ndarray:
    """The indices of the ⌈fraction · E⌉ episodes with the highest return (ties: the earlier), ascending."""
    k = max(1, math.ceil(fraction * data.n_episodes - 1e-9))
    return np.sort(np.argsort(-data.episode_returns, kind="stable")[:k])


def top_episode_rows(data: OfflineDataset, fraction: float) -> np.ndarray:
    """The transitions of ``top_episodes(data, fraction)``, in dataset order."""
    starts, lengths = data.episode_starts, data.episode_lengths
    return np.concatenate([np.arange(starts[e], starts[e] + lengths[e]) for e in top_episodes(data, fraction)])


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

CONFIG, ACTOR = BCConfig, "actor"


def train(env: Any, config: BCConfig | None = None, *, total_steps: int, seed: int = 0, device: str = "cpu",
          run: RunContext | None = None) -> OffPolicyAgent:
    """Clone the dataset's policy for ``total_steps`` gradient steps and return the agent. ``env``: the env to
    evaluate on, or an ``offline.OfflineSource`` holding it and the dataset (else ``config.dataset`` is loaded)."""
    cfg = config or BCConfig()
    select = None if cfg.filter_top >= 1.0 else (lambda d: top_episode_rows(d, cfg.filter_top))
    s = offline.build_session("bc", env, cfg, seed=seed, total_steps=total_steps, device=device, select=select)
    s.net = {"hidden": list(cfg.hidden), "activation": cfg.activation}
    with seeded_init(seed):
        policy = build_policy(s.spec, s.net).to(s.device)
    s.state = BCState(policy, Adam(policy.parameters(), lr=cfg.learning_rate, eps=cfg.adam_eps))
    return offline.run(s, lambda s, batch: update(s.state, cfg, batch), run or RunContext())
