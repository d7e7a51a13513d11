"""Proximal Policy Optimization (Schulman et al. 2017, arXiv:1707.06347) with the implementation
details that make it work, each switchable: see Huang et al. 2022, "The 37 Implementation Details
of Proximal Policy Optimization" (ICLR blog track) and Andrychowicz et al. 2021, "What Matters in
On-Policy Reinforcement Learning? A Large-Scale Empirical Study".

Reads top to bottom: config → networks (core.nets.ActorCritic) → loss → autograd update → train().
Faster forms of the same update are backends beside it (config field ``backend``, algos/backends.py):
torch.compile of ``minibatch_loss``, or the hand-derived gradients of algos/fused/policy_gradient.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import BACKENDS, ConfigError, check_choice, check_range
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
class PPOConfig(IntrinsicOptions, ActorCriticOptions):
    n_envs: int = 8
    """number of parallel environments"""
    n_steps: int = 128
    """steps per environment per rollout (a rollout has n_envs * n_steps transitions)"""
    learning_rate: float = 3e-4
    """Adam step size"""
    anneal_lr: bool = True
    """decay the learning rate linearly to 0 over the run (Huang et al. 2022, detail #4)"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """GAE λ (Schulman et al. 2016); 1.0 gives Monte-Carlo advantages"""
    n_epochs: int = 10
    """passes over each rollout"""
    batch_size: int = 64
    """minibatch size (transitions per gradient step)"""
    clip_coef: float = 0.2
    """PPO ratio clip ε (Schulman et al. 2017, eq. 7)"""
    anneal_clip: bool = False
    """decay clip_coef linearly to 0 like the learning rate (RL Zoo's lin_0.2 schedules)"""
    clip_vloss: bool = False
    """clip the value update to ±clip_coef around the old value (Huang et al. 2022 #9; Andrychowicz et al. 2021
    found it rarely helps)"""
    ent_coef: float = 0.0
    """entropy bonus coefficient (Mnih et al. 2016; Huang et al. 2022 #10)"""
    vf_coef: float = 0.5
    """value loss coefficient (value loss is the mean squared error, as in SB3)"""
    max_grad_norm: float = 0.5
    """global gradient-norm clip; 0 disables (Huang et al. 2022 #11)"""
    norm_adv: bool = True
    """normalise advantages per minibatch (Huang et al. 2022 #7)"""
    norm_obs: bool = False
    """running observation normalisation, statistics saved with the model (Huang et al. 2022 cont. #4)"""
    norm_reward: bool = False
    """scale rewards by the running std of the discounted return (Engstrom et al. 2020)"""
    target_kl: float = 0.0
    """stop the epoch loop early when the approximate KL exceeds this; 0 disables (SB3/Spinning Up)"""
    use_sde: bool = False
    """generalized State-Dependent Exploration for Box actions: noise z(s)·θ_ε, z = last actor hidden
    features, θ_ε ~ N(0, σ²) learned per (feature, action) (Raffin, Kober & Stulp 2021, "Smooth
    Exploration for Robotic Reinforcement Learning", CoRL; SB3 use_sde; core/sde.py)"""
    sde_sample_freq: int = 4
    """with use_sde: resample θ_ε every this many steps (and at each rollout start); 0 = only at
    rollout start (SB3's -1). The RL Zoo uses 4 (Raffin et al. 2021 §4)"""
    adam_eps: float = 1e-5
    """Adam epsilon (Huang et al. 2022 #3: 1e-5, as in the original baselines)"""
    vec_env: str = "lean"
    """vector env: lean (plain loop), sync or async (gymnasium.vector; async = one process per env)"""
    backend: str = "auto"
    """how the update runs: auto, autograd, compile or fused (algos/backends.py)"""

    def __post_init__(self) -> None:
        for name in ("n_envs", "n_steps", "n_epochs", "batch_size"):
            check_range(name, getattr(self, name), 1)
        check_range("sde_sample_freq", self.sde_sample_freq, 0)
        check_range("learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_range("gamma", self.gamma, 0, 1)
        check_range("gae_lambda", self.gae_lambda, 0, 1)
        check_range("clip_coef", self.clip_coef, 0, low_open=True)
        for name in ("ent_coef", "vf_coef", "max_grad_norm", "target_kl"):
            check_range(name, getattr(self, name), 0)
        check_range("adam_eps", self.adam_eps, 0, low_open=True)
        check_choice("vec_env", self.vec_env, ("lean", "sync", "async"))
        check_choice("backend", self.backend, BACKENDS)
        self.check_network()  # the network fields (core/nets.py ActorCriticOptions)
        self.check_intrinsic()  # the intrinsic-reward fields (core/intrinsic.py IntrinsicOptions)
        if self.batch_size > self.n_envs * self.n_steps:
            raise ConfigError(f"batch_size={self.batch_size} is out of range: allowed [1, n_envs*n_steps="
                              f"{self.n_envs * self.n_steps}]")


# ---------------------------------------------------------------------------------------------
# loss (a pure function of tensors)
# ---------------------------------------------------------------------------------------------


def normalize(advantages: torch.Tensor) -> torch.Tensor:
    """Per-minibatch advantage normalisation (Huang et al. 2022 #7)."""
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


def value_loss(cfg: PPOConfig, clip, new_values, mb_returns, mb_values) -> torch.Tensor:
    """Mean squared error of the value head, optionally clipped around the old values."""
    err = new_values - mb_returns
    if cfg.clip_vloss:  # Huang et al. 2022 #9 (from openai/baselines ppo2)
        err_c = mb_values + (new_values - mb_values).clamp(-clip, clip) - mb_returns
        return torch.max(err * err, err_c * err_c).mean()
    return (err * err).mean()


def ppo_loss(cfg: PPOConfig, clip, new_logprobs, entropy, new_values, mb_logprobs, mb_advantages, mb_returns,
             mb_values, intrinsic=None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate + value loss − entropy bonus of one minibatch, and its metrics.
    ``clip`` is the (annealed) ε, a float or a 0-d tensor. ``intrinsic``: (new V_int, intrinsic returns,
    old V_int) when the run has an intrinsic reward, whose value loss is added like the extrinsic one."""
    log_ratio = new_logprobs - mb_logprobs
    ratio = log_ratio.exp()
    # clipped surrogate objective, Schulman et al. 2017 eq. 7 (as a loss: maximise → minimise −)
    pg_loss = torch.max(-mb_advantages * ratio, -mb_advantages * ratio.clamp(1.0 - clip, 1.0 + clip)).mean()
    v_loss = value_loss(cfg, clip, new_values, mb_returns, mb_values)
    ent = entropy.mean()
    loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * ent
    info = {"losses/policy_loss": pg_loss.detach(), "losses/value_loss": v_loss.detach(),
            "losses/entropy": ent.detach()}
    if intrinsic is not None:  # Burda et al. 2018 §2.3: two value heads, each fitted to its own return
        v_int_loss = value_loss(cfg, clip, *intrinsic)
        loss = loss + cfg.vf_coef * v_int_loss
        info["losses/intrinsic_value_loss"] = v_int_loss.detach()
    with torch.no_grad():  # Schulman's "k3" KL estimator (http://joschu.net/blog/kl-approx.html)
        info["losses/approx_kl"] = ((ratio - 1) - log_ratio).mean()
        info["losses/clipfrac"] = ((ratio - 1.0).abs() > clip).float().mean()
    return loss, info


def minibatch_loss(model, cfg: PPOConfig, clip, mb_obs, mb_actions, mb_logprobs, mb_advantages, mb_returns,
                   mb_values, value_int=None, mb_returns_int=None, mb_values_int=None):
    """Forward pass and loss of one minibatch (what backend "compile" compiles); ``value_int``: the
    intrinsic value head, with the minibatch's intrinsic returns and old intrinsic values."""
    if value_int is None:
        new_logprobs, entropy, new_values = model.evaluate_actions(mb_obs, mb_actions)
        return ppo_loss(cfg, clip, new_logprobs, entropy, new_values, mb_logprobs, mb_advantages, mb_returns,
                        mb_values)
    new_logprobs, entropy, new_values, new_values_int = model.evaluate_actions(mb_obs, mb_actions, value_int)
    return ppo_loss(cfg, clip, new_logprobs, entropy, new_values, mb_logprobs, mb_advantages, mb_returns, mb_values,
                    intrinsic=(new_values_int, mb_returns_int, mb_values_int))


# ---------------------------------------------------------------------------------------------
# update: n_epochs passes of minibatch gradient steps over one rollout
# ---------------------------------------------------------------------------------------------


def update(s: onpolicy.Session, rollout, remaining: float) -> dict[str, float]:
    cfg: PPOConfig = s.config
    lr = cfg.learning_rate * (remaining if cfg.anneal_lr else 1.0)
    clip = cfg.clip_coef * (remaining if cfg.anneal_clip else 1.0)
    s.optimizer.param_groups[0]["lr"] = lr
    advantages, returns = gae(rollout.rewards, rollout.values, rollout.next_values, rollout.terminations,
                              rollout.dones, cfg.gamma, cfg.gae_lambda)  # (T, N)
    dev = s.device
    intrinsic: tuple[torch.Tensor, ...] = ()
    if s.intrinsic is not None:  # RND / ICM: A = ext_coef A_ext + int_coef A_int, V_int fitted below
        advantages, returns_int, values_int, int_metrics = onpolicy.intrinsic_advantages(s, rollout, advantages,
                                                                                         cfg.batch_size)
        intrinsic = tuple(torch.from_numpy(x.reshape(-1)).to(dev) for x in (returns_int, values_int))
    b_obs = rollout.flat("obs", dev)  # (T*N, obs_dim)
    b_actions = rollout.flat("actions", dev)
    b_logprobs = rollout.flat("logprobs", dev)
    b_values = rollout.flat("values", dev)
    b_advantages = torch.from_numpy(advantages.reshape(-1)).to(dev)
    b_returns = torch.from_numpy(returns.reshape(-1)).to(dev)
    clip_t = torch.tensor(clip, device=dev)  # a tensor, so that an annealed clip does not recompile ("compile")
    n = b_obs.shape[0]
    params = s.parameters()  # the model's, and the intrinsic value head's
    sums: dict[str, torch.Tensor] = {}
    count = 0
    for epoch in range(cfg.n_epochs):
        # losses/* are averaged over the last epoch's minibatches (over every epoch when target_kl reads them)
        track = epoch == cfg.n_epochs - 1 or bool(cfg.target_kl)
        perm = torch.randperm(n, generator=s.generator, device=dev)
        for start in range(0, n, cfg.batch_size):
            mb = perm[start:start + cfg.batch_size]
            mb_advantages = b_advantages[mb]
            if cfg.norm_adv and mb.shape[0] > 1:  # Huang et al. 2022 #7
                mb_advantages = normalize(mb_advantages)
            batch = (b_obs[mb], b_actions[mb], b_logprobs[mb], mb_advantages, b_returns[mb], b_values[mb])
            if intrinsic:
                batch = (*batch, s.value_int, intrinsic[0][mb], intrinsic[1][mb])
            s.optimizer.zero_grad(set_to_none=True)
            if s.backend == "fused":  # the same gradients, derived by hand (algos/fused/policy_gradient.py)
                info = fused.ppo_gradients(s.model, cfg, clip, *batch, metrics=track)
            else:  # autograd; backend "compile" runs a torch.compile'd minibatch_loss
                loss, info = s.loss_fn(s.model, cfg, clip_t, *batch)
                check_tensor("loss", loss, f"PPO loss at step {s.global_step}")
                loss.backward()
            if cfg.max_grad_norm > 0:  # Huang et al. 2022 #11
                norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            else:
                norm = torch.stack([p.grad.norm() for p in params if p.grad is not None]).norm()
            if not bool(torch.isfinite(norm)):  # name the first non-finite thing on the path to it
                # (the fused backend skips the loss outside tracked epochs: a NaN surfaces here)
                with torch.no_grad():
                    loss, _ = minibatch_loss(s.model, cfg, clip, *batch)
                check_tensor("loss", loss, f"PPO loss at step {s.global_step}")
                check_tensor("gradient", norm, f"gradient norm at step {s.global_step}")
            s.optimizer.step()
            if track:
                for k, v in info.items():
                    sums[k] = sums[k] + v if k in sums else v
                count += 1
        if cfg.target_kl and float(info["losses/approx_kl"]) > cfg.target_kl:  # SB3 / Spinning Up
            break
    metrics = {k: float(v) / count for k, v in sums.items()}  # one sync per update, not per minibatch
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


def make_optimizer(cfg: PPOConfig) -> Callable[[Any], optim.Adam]:
    return lambda model: optim.Adam(model.parameters(), lr=cfg.learning_rate, eps=cfg.adam_eps)


def train(env_id: str, config: PPOConfig | None = None, *, total_steps: int, seed: int = 0, device: str = "cpu",
          run: RunContext | None = None) -> Agent:
    """Train PPO on ``env_id`` for ``total_steps`` environment steps and return the agent.
    ``run`` carries the logger, checkpoints, hooks and the checkpoint to resume from (core/run.py)."""
    cfg = config or PPOConfig()
    s = onpolicy.build_session("ppo", env_id, cfg, seed=seed, total_steps=total_steps, device=device, critic=True,
                               make_optimizer=make_optimizer(cfg))
    try:
        onpolicy.set_backend(s, cfg.backend, fused=fastgrad.supported(s.model), loss_fn=minibatch_loss)
        return onpolicy.run(s, update, run)
    finally:
        s.sampler.venv.close()


CONFIG = PPOConfig
