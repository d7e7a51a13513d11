"""Advantage Actor-Critic, the synchronous variant of A3C (Mnih et al. 2016, arXiv:1602.01783),
as OpenAI Baselines/SB3 run it: short n-step rollouts from parallel envs, one gradient step per
rollout, RMSprop. Defaults are SB3's (which the RL Zoo uses for CartPole).

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
from ..core import fastgrad, optim
from ..core.guards import check_tensor
from ..core.intrinsic import IntrinsicOptions
from ..core.nets import ActorCriticOptions
from ..core.returns import gae
from ..core.run import RunContext
from . import onpolicy
from .agent import Agent
from .fused import policy_gradient as fused


@dataclass(frozen=True)
class A2CConfig(IntrinsicOptions, ActorCriticOptions):
    n_envs: int = 8
    """number of parallel environments"""
    n_steps: int = 5
    """steps per environment per update (the n of n-step returns)"""
    learning_rate: float = 7e-4
    """optimizer step size"""
    anneal_lr: bool = False
    """decay the learning rate linearly to 0 over the run (Mnih et al. 2016 §8)"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 1.0
    """GAE λ; 1.0 gives the classic n-step advantage of Mnih et al. 2016"""
    ent_coef: float = 0.0
    """entropy bonus coefficient (Mnih et al. 2016 §4)"""
    anneal_ent: bool = False
    """decay ent_coef linearly to 0 over the run, like the learning rate: explore early, sharpen late"""
    vf_coef: float = 0.5
    """value loss coefficient (mean squared error)"""
    max_grad_norm: float = 0.5
    """global gradient-norm clip; 0 disables"""
    norm_adv: bool = False
    """normalise advantages over the batch (off in A2C's reference implementations)"""
    norm_obs: bool = False
    """running observation normalisation, statistics saved with the model"""
    norm_reward: bool = False
    """scale rewards by the running std of the discounted return (Engstrom et al. 2020)"""
    optimizer: str = "rmsprop"
    """rmsprop (Mnih et al. 2016; α=0.99, ε=1e-5 as in baselines/SB3) or adam"""
    rms_alpha: float = 0.99
    """RMSprop smoothing constant"""
    optim_eps: float = 1e-5
    """optimizer epsilon"""
    vec_env: str = "lean"
    """vector env: lean (plain loop), sync or async (gymnasium.vector)"""
    backend: str = "auto"
    """how the update runs: auto, autograd, compile or fused (algos/backends.py)"""

    def __post_init__(self) -> None:
        check_range("n_envs", self.n_envs, 1)
        check_range("n_steps", self.n_steps, 1)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("gamma", self.gamma, 0, 1)
        check_range("gae_lambda", self.gae_lambda, 0, 1)
        for name in ("ent_coef", "vf_coef", "max_grad_norm"):
            check_range(name, getattr(self, name), 0)
        check_range("rms_alpha", self.rms_alpha, 0, 1, low_open=True, high_open=True)
        check_range("optim_eps", self.optim_eps, 0, low_open=True)
        check_choice("optimizer", self.optimizer, ("rmsprop", "adam"))
        check_choice("vec_env", self.vec_env, ("lean", "sync", "async"))
        check_choice("backend", self.backend, BACKENDS)
        self.check_network()  # the network fields (core/nets.py ActorCriticOptions)
        self.check_intrinsic()  # the intrinsic-reward fields (core/intrinsic.py IntrinsicOptions)


# ---------------------------------------------------------------------------------------------
# loss (a pure function of tensors)
# ---------------------------------------------------------------------------------------------


def a2c_loss(cfg: A2CConfig, ent_coef, logprobs, entropy, values, b_advantages, b_returns, intrinsic=None):
    """Policy gradient weighted by the advantage, value regression, entropy bonus (Mnih et al. 2016,
    Algorithm S3); ``ent_coef`` is the (annealed) coefficient, a float or a 0-d tensor. ``intrinsic``:
    (V_int, intrinsic returns) when the run has an intrinsic reward, regressed like the extrinsic value."""
    pg_loss = -(b_advantages * logprobs).mean()
    err = values - b_returns
    v_loss = (err * err).mean()
    ent = entropy.mean()
    loss = pg_loss + cfg.vf_coef * v_loss - ent_coef * ent
    info = {"losses/policy_loss": pg_loss.detach(), "losses/value_loss": v_loss.detach(),
            "losses/entropy": ent.detach()}
    if intrinsic is not None:  # Burda et al. 2018 §2.3: two value heads, each fitted to its own return
        err_int = intrinsic[0] - intrinsic[1]
        v_int_loss = (err_int * err_int).mean()
        loss = loss + cfg.vf_coef * v_int_loss
        info["losses/intrinsic_value_loss"] = v_int_loss.detach()
    return loss, info


def batch_loss(model, cfg: A2CConfig, ent_coef, b_obs, b_actions, b_advantages, b_returns, value_int=None,
               b_returns_int=None):
    """Forward pass and loss of the rollout (what backend "compile" compiles); ``value_int``: the intrinsic
    value head, with the rollout's intrinsic returns."""
    if value_int is None:
        logprobs, entropy, values = model.evaluate_actions(b_obs, b_actions)
        return a2c_loss(cfg, ent_coef, logprobs, entropy, values, b_advantages, b_returns)
    logprobs, entropy, values, values_int = model.evaluate_actions(b_obs, b_actions, value_int)
    return a2c_loss(cfg, ent_coef, logprobs, entropy, values, b_advantages, b_returns,
                    intrinsic=(values_int, b_returns_int))


# ---------------------------------------------------------------------------------------------
# update: one gradient step per rollout
# ---------------------------------------------------------------------------------------------


def update(s: onpolicy.Session, rollout, remaining: float) -> dict[str, float]:
    cfg: A2CConfig = s.config
    lr = cfg.learning_rate * (remaining if cfg.anneal_lr else 1.0)
    s.optimizer.param_groups[0]["lr"] = lr
    ent_coef = cfg.ent_coef * (remaining if cfg.anneal_ent else 1.0)
    advantages, returns = gae(rollout.rewards, rollout.values, rollout.next_values, rollout.terminations,
                              rollout.dones, cfg.gamma, cfg.gae_lambda)  # (T, N)
    dev = s.device
    intrinsic: tuple[Any, ...] = ()
    if s.intrinsic is not None:  # RND / ICM: A = ext_coef A_ext + int_coef A_int, V_int fitted below
        advantages, returns_int, _, int_metrics = onpolicy.intrinsic_advantages(s, rollout, advantages,
                                                                                rollout.n_steps)
        intrinsic = (s.value_int, torch.from_numpy(returns_int.reshape(-1)).to(dev))
    b_obs, b_actions = rollout.flat("obs", dev), rollout.flat("actions", dev)
    b_advantages = torch.from_numpy(advantages.reshape(-1)).to(dev)
    b_returns = torch.from_numpy(returns.reshape(-1)).to(dev)
    if cfg.norm_adv and b_advantages.shape[0] > 1:
        b_advantages = (b_advantages - b_advantages.mean()) / (b_advantages.std() + 1e-8)
    s.optimizer.zero_grad(set_to_none=True)
    if s.backend == "fused":  # the same gradients, derived by hand (algos/fused/policy_gradient.py)
        loss, info = fused.a2c_gradients(s.model, cfg, ent_coef, b_obs, b_actions, b_advantages, b_returns)
        check_tensor("loss", loss, f"A2C loss at step {s.global_step}")
    else:  # autograd; backend "compile" runs a torch.compile'd batch_loss (ent_coef a tensor: no recompiles)
        loss, info = s.loss_fn(s.model, cfg, torch.tensor(ent_coef, device=dev), b_obs, b_actions, b_advantages,
                               b_returns, *intrinsic)
        check_tensor("loss", loss, f"A2C loss at step {s.global_step}")
        loss.backward()
    if cfg.max_grad_norm > 0:
        norm = torch.nn.utils.clip_grad_norm_(s.parameters(), cfg.max_grad_norm)
        check_tensor("gradient", norm, f"gradient norm at step {s.global_step}")
    s.optimizer.step()
    metrics = {k: float(v) for k, v in info.items()}
    var_y = float(np.var(returns))
    explained = 1 - float(np.var(returns - rollout.values)) / var_y if var_y else float("nan")
    metrics["losses/explained_variance"] = explained
    metrics["charts/learning_rate"] = lr
    if intrinsic:
        metrics.update(int_metrics)
    return metrics


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------


def make_optimizer(cfg: A2CConfig) -> Callable[[Any], Any]:
    if cfg.optimizer == "adam":
        return lambda m: optim.Adam(m.parameters(), lr=cfg.learning_rate, eps=cfg.optim_eps)
    return lambda m: optim.RMSprop(m.parameters(), lr=cfg.learning_rate, alpha=cfg.rms_alpha, eps=cfg.optim_eps)


def train(env_id: str, config: A2CConfig | None = None, *, total_steps: int, seed: int = 0, device: str = "cpu",
          run: RunContext | None = None) -> Agent:
    """Train A2C on ``env_id`` for ``total_steps`` environment steps and return the agent.
    ``run`` carries the logger, checkpoints, hooks and the checkpoint to resume from (core/run.py)."""
    cfg = config or A2CConfig()
    s = onpolicy.build_session("a2c", env_id, cfg, seed=seed, total_steps=total_steps, device=device, critic=True,
                               make_optimizer=make_optimizer(cfg))
    try:
        onpolicy.set_backend(s, cfg.backend, fused=fastgrad.supported(s.model), loss_fn=batch_loss)
        return onpolicy.run(s, update, run)
    finally:
        s.sampler.venv.close()


CONFIG = A2CConfig
