"""REINFORCE (Williams 1992), with an optional learned state-value baseline (Sutton & Barto 2018,
§13.4). Monte-Carlo returns of complete episodes only: steps whose episode has not finished by the
end of a rollout are masked out of the loss (their return is unknown), so no bootstrapping enters
the policy gradient except at time-limit truncations when a baseline exists (Pardo et al. 2018).

Reads top to bottom: config → networks (core.nets.ActorCritic) → loss → autograd update → train().
Faster forms of the same update are backends beside it (config field ``backend``, algos/backends.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import BACKENDS, check_choice, check_range
from ..core import optim
from ..core.guards import check_tensor
from ..core.nets import ActorCriticOptions
from ..core.returns import discounted_returns
from ..core.run import RunContext
from . import onpolicy
from .agent import Agent


@dataclass(frozen=True)
class ReinforceConfig(ActorCriticOptions):
    n_envs: int = 4
    """number of parallel environments"""
    n_steps: int = 512
    """steps per environment per update; make it longer than a typical episode"""
    learning_rate: float = 2e-3
    """Adam step size"""
    anneal_lr: bool = False
    """decay the learning rate linearly to 0 over the run"""
    gamma: float = 0.99
    """discount factor"""
    baseline: bool = True
    """learn V(s) and use G_t − V(s_t) as the weight (variance reduction, Sutton & Barto §13.4)"""
    norm_adv: bool = True
    """normalise the weights (returns or advantages) over the batch"""
    ent_coef: float = 0.0
    """entropy bonus coefficient"""
    vf_coef: float = 0.5
    """baseline (value) loss coefficient"""
    max_grad_norm: float = 0.5
    """global gradient-norm clip; 0 disables"""
    norm_obs: bool = False
    """running observation normalisation, statistics saved with the model"""
    norm_reward: bool = False
    """scale rewards by the running std of the discounted return (Engstrom et al. 2020)"""
    adam_eps: float = 1e-5
    """Adam epsilon"""
    vec_env: str = "lean"
    """vector env: lean (plain loop), sync or async (gymnasium.vector)"""
    backend: str = "auto"
    """how the update runs: auto (= autograd), autograd or compile (algos/backends.py); REINFORCE has no fused path"""

    def __post_init__(self) -> None:
        check_range("n_envs", self.n_envs, 1)
        check_range("n_steps", self.n_steps, 1)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("gamma", self.gamma, 0, 1)
        for name in ("ent_coef", "vf_coef", "max_grad_norm"):
            check_range(name, getattr(self, name), 0)
        check_range("adam_eps", self.adam_eps, 0, low_open=True)
        check_choice("vec_env", self.vec_env, ("lean", "sync", "async"))
        check_choice("backend", self.backend, BACKENDS)
        self.check_network()  # the network fields (core/nets.py ActorCriticOptions)


# ---------------------------------------------------------------------------------------------
# loss (pure functions of tensors)
# ---------------------------------------------------------------------------------------------


def complete_mask(dones: np.ndarray) -> np.ndarray:
    """(T, N) True where the step's episode ends within the rollout (its Monte-Carlo return is known)."""
    T = dones.shape[0]
    any_after = np.logical_or.accumulate(dones[::-1], axis=0)[::-1]  # a done at t or later
    return any_after if T else dones


def policy_weights(cfg: ReinforceConfig, values, b_returns, b_mask):
    """The constant weight of each log π(a_t|s_t): G_t, or G_t − V(s_t) with a baseline, normalised over
    the complete steps when ``norm_adv``; and their count ``n`` (at least 1)."""
    n = b_mask.sum().clamp(min=1.0)
    weights = b_returns - values.detach() if cfg.baseline else b_returns
    if cfg.norm_adv:  # over the complete steps only, and only when there are two or more
        mean = (weights * b_mask).sum() / n
        std = (((weights - mean) ** 2 * b_mask).sum() / (n - 1).clamp(min=1.0)).sqrt()
        weights = torch.where(n > 1, (weights - mean) / (std + 1e-8), weights)
    return weights, n


def reinforce_loss(cfg: ReinforceConfig, logprobs, entropy, values, b_returns, b_mask):
    """−Σ weight·log π over the complete steps (Williams 1992), + baseline regression − entropy bonus."""
    weights, n = policy_weights(cfg, values, b_returns, b_mask)
    pg_loss = -(weights * logprobs * b_mask).sum() / n
    v_loss = (((values - b_returns) ** 2) * b_mask).sum() / n if cfg.baseline else torch.zeros((), device=n.device)
    ent = (entropy * b_mask).sum() / n
    loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * ent
    return loss, {"losses/policy_loss": pg_loss.detach(), "losses/value_loss": v_loss.detach(),
                  "losses/entropy": ent.detach()}


def batch_loss(model, cfg: ReinforceConfig, b_obs, b_actions, b_returns, b_mask):
    """Forward pass and loss of the rollout (what backend "compile" compiles)."""
    logprobs, entropy, values = model.evaluate_actions(b_obs, b_actions)
    return reinforce_loss(cfg, logprobs, entropy, values, b_returns, b_mask)


# ---------------------------------------------------------------------------------------------
# update: one gradient step per rollout
# ---------------------------------------------------------------------------------------------


def update(s: onpolicy.Session, rollout, remaining: float) -> dict[str, float]:
    cfg: ReinforceConfig = s.config
    lr = cfg.learning_rate * (remaining if cfg.anneal_lr else 1.0)
    s.optimizer.param_groups[0]["lr"] = lr
    # Monte-Carlo returns; with a baseline a time-limit truncation is bootstrapped from V(final obs)
    next_values = rollout.next_values if cfg.baseline else np.zeros_like(rollout.next_values)
    returns = discounted_returns(rollout.rewards, next_values, rollout.terminations, rollout.dones, cfg.gamma)
    mask = complete_mask(rollout.dones)  # (T, N)
    dev = s.device
    batch = (rollout.flat("obs", dev), rollout.flat("actions", dev), torch.from_numpy(returns.reshape(-1)).to(dev),
             torch.from_numpy(mask.reshape(-1).astype(np.float32)).to(dev))
    s.optimizer.zero_grad(set_to_none=True)
    loss, info = s.loss_fn(s.model, cfg, *batch)  # backend "compile": a torch.compile'd batch_loss
    check_tensor("loss", loss, f"REINFORCE loss at step {s.global_step}")
    loss.backward()
    if cfg.max_grad_norm > 0:
        norm = torch.nn.utils.clip_grad_norm_(s.model.parameters(), cfg.max_grad_norm)
        check_tensor("gradient", norm, f"gradient norm at step {s.global_step}")
    s.optimizer.step()
    metrics = {k: float(v) for k, v in info.items()}
    metrics["charts/learning_rate"] = lr
    metrics["charts/complete_fraction"] = float(mask.mean())
    return metrics


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------


def make_optimizer(cfg: ReinforceConfig) -> Callable[[Any], optim.Adam]:
    return lambda m: optim.Adam(m.parameters(), lr=cfg.learning_rate, eps=cfg.adam_eps)


def train(env_id: str, config: ReinforceConfig | None = None, *, total_steps: int, seed: int = 0,
          device: str = "cpu", run: RunContext | None = None) -> Agent:
    """Train REINFORCE (with a learned baseline unless ``baseline=False``) and return the agent.
    ``run`` carries the logger, checkpoints, hooks and the checkpoint to resume from (core/run.py)."""
    cfg = config or ReinforceConfig()
    s = onpolicy.build_session("reinforce", env_id, cfg, seed=seed, total_steps=total_steps, device=device,
                               critic=cfg.baseline, make_optimizer=make_optimizer(cfg))
    try:
        # no fused path: one update per long rollout, where hand-written gradients gained 3 % of a run
        onpolicy.set_backend(s, cfg.backend, fused=False, loss_fn=batch_loss)
        return onpolicy.run(s, update, run)
    finally:
        s.sampler.venv.close()


CONFIG = ReinforceConfig
