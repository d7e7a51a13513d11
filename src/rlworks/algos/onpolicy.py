"""What the on-policy algorithms share, called visibly from each algorithm's ``train()``:
building envs/model/sampler from a config, choosing the update's backend, the iterate-collect-update
loop driven by a ``RunContext`` (logging, checkpoints, hooks, resume), and the checkpoint state
(the learned ``OnPolicyState`` via core/state.py, RNG, env snapshots, statistics).

This is plumbing, not an algorithm base class: the update rule stays in each algorithm's file.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..config import ConfigError
from ..core import features
from ..core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..core.envs import EnvSource, env_source
from ..core.guards import check_module
from ..core.intrinsic import Intrinsic, non_episodic_values
from ..core.nets import ActorCritic
from ..core.optim import Adam
from ..core.returns import gae
from ..core.run import Pace, RunContext, StopSignals
from ..core.sampler import LocalSampler
from ..core.seeding import seeded_init, spawn_seeds, torch_generator
from ..core.state import load_state_tensors, state_tensors
from ..core.vec import ObsNormalizer, RewardScaler, check_action_space, make_vec_env, space_spec
from . import backends
from .agent import Agent, build_model
from .policies import NumpyPolicy, TorchPolicy


@dataclass
class OnPolicyState:
    """What an on-policy algorithm learns: checkpointed field by field by core/state.py. The intrinsic
    fields are set only with an intrinsic reward (config field ``intrinsic``, core/intrinsic.py)."""

    model: ActorCritic
    optimizer: Any  # core.optim.Adam / RMSprop, of the model's parameters and value_int's
    value_int: nn.Module | None = None  # V_int, a second output on the critic's body (ActorCritic.value_head)
    intrinsic: Intrinsic | None = None  # RND or ICM, with its own optimizer
    intrinsic_optimizer: Any = None


@dataclass
class Session:
    """Everything a running on-policy training holds."""

    algo: str
    env_id: str | None
    config: Any
    seed: int
    total_steps: int
    device: torch.device
    spec: dict[str, Any]
    net: dict[str, Any]
    learned: OnPolicyState
    generator: torch.Generator
    sampler: LocalSampler
    rng: np.random.Generator
    iteration: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=20))
    exact_resume: bool = True
    backend: str = "autograd"
    """the update's backend, resolved from the config's (``set_backend``)"""
    loss_fn: Callable[..., Any] | None = None
    """the algorithm's forward + loss of a (mini)batch (compiled for backend "compile")"""
    env: EnvSource | None = None
    """where the envs came from (the agent evaluates on it and records it)"""

    @property
    def model(self) -> ActorCritic:
        return self.learned.model

    @property
    def optimizer(self) -> Any:
        return self.learned.optimizer

    @property
    def intrinsic(self) -> Intrinsic | None:
        return self.learned.intrinsic

    @property
    def value_int(self) -> nn.Module | None:
        return self.learned.value_int

    def parameters(self) -> list[nn.Parameter]:
        """What ``optimizer`` steps: the model's parameters, then the intrinsic value head's."""
        head = list(self.value_int.parameters()) if self.value_int is not None else []
        return list(self.model.parameters()) + head

    @property
    def global_step(self) -> int:
        return self.sampler.global_step

    def agent(self) -> Agent:
        obs_norm = self.sampler.obs_norm.state_dict() if self.sampler.obs_norm is not None else None
        meta = {"global_step": self.global_step, "seed": self.seed, "library_version": __version__,
                "backend": self.backend}
        if isinstance(self.loss_fn, backends.CompiledUpdate):
            meta["compile_seconds"] = self.loss_fn.compile_seconds
        return Agent(self.algo, self.env_id, self.config, self.model, self.spec, self.net, obs_norm, meta=meta,
                     env=self.env)


def build_session(algo: str, env: Any, cfg: Any, *, seed: int, total_steps: int, device: str,
                  critic: bool, make_optimizer: Callable[[ActorCritic], Any]) -> Session:
    """``env``: any form ``core.envs.env_source`` takes (an id, an instance, a factory, a VectorEnv)."""
    if total_steps < 1:
        raise ConfigError(f"total_steps={total_steps} is out of range: allowed [1, inf)")
    if not 0 <= int(seed) < 2**63:
        raise ConfigError(f"seed={seed} is out of range: allowed [0, 2**63)")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but torch.cuda.is_available() is False; use --device cpu")
    source = env_source(env)
    # every stream is a child of the seed (core/seeding.py); no global RNG is touched
    env_seed, torch_seed, np_seed = spawn_seeds(np.random.SeedSequence(int(seed)), 3)
    env_seeds = [env_seed + i for i in range(cfg.n_envs)]
    venv = make_vec_env(source, cfg.n_envs, env_seeds, kind=cfg.vec_env)
    try:
        check_action_space(source.name, venv.single_action_space, algo)
    except ConfigError:
        venv.close()
        raise
    spec = space_spec(venv.single_observation_space, venv.single_action_space)
    try:
        net = network(cfg, spec, source.name, critic)
        if cfg.norm_obs and net["features"] != "mlp":
            raise ConfigError(f"norm_obs=True normalises flat vector observations; with features={net['features']!r} "
                              "(images are scaled to [0, 1] instead) set norm_obs=false")
    except ConfigError:
        venv.close()
        raise
    if net["features"] != "mlp" and spec["obs_dtype"] == "uint8":
        venv.obs_dtype = np.dtype(np.uint8)  # frames stay bytes until the extractor scales them on the device
    if getattr(cfg, "use_sde", False):
        if spec["action"] != "box":
            venv.close()
            raise ConfigError(f"use_sde=True needs a continuous (Box) action space; {source.name} has discrete actions")
        net["sde"] = True
    intrinsic = getattr(cfg, "intrinsic", "none")
    if intrinsic != "none" and net["features"] != "mlp":
        venv.close()
        raise ConfigError(f"intrinsic={intrinsic!r} works on flat vector observations (MLPs); with "
                          f"features={net['features']!r} set intrinsic='none'")
    with seeded_init(seed):  # the initial weights from the seed; the caller's RNG restored after
        model = build_model(spec, net).to(dev)
        if intrinsic != "none":  # built after the model: a run without them draws the same weights
            value_int = model.value_head().to(dev)
            bonus = Intrinsic(cfg, spec["obs_dim"], spec["act_dim"], spec["action"] == "box", venv.num_envs).to(dev)
    if intrinsic != "none":
        learned = OnPolicyState(model, make_optimizer(nn.ModuleList([model, value_int])), value_int, bonus,
                                Adam(bonus.trainable(), lr=cfg.intrinsic_lr, eps=1e-8))
    else:
        learned = OnPolicyState(model, make_optimizer(model))
    obs_norm = ObsNormalizer(spec["obs_dim"]) if cfg.norm_obs else None
    reward_scaler = RewardScaler(cfg.n_envs, cfg.gamma) if cfg.norm_reward else None
    sampler = LocalSampler(venv, spec, obs_norm=obs_norm, reward_scaler=reward_scaler,
                           record_raw=intrinsic != "none")
    return Session(algo, source.env_id, cfg, int(seed), int(total_steps), dev, spec, net, learned,
                   torch_generator(torch_seed, dev), sampler, np.random.default_rng(np_seed), env=source)


def network(cfg: Any, spec: dict[str, Any], where: str, critic: bool) -> dict[str, Any]:
    """How to build the actor-critic (saved with the agent; ``agent.build_model`` reads it): the config's
    network fields, ``features`` resolved for this observation (``core.features``)."""
    return {"hidden": list(cfg.hidden), "activation": cfg.activation, "layer_norm": cfg.layer_norm,
            "ortho_init": cfg.ortho_init, "log_std_init": cfg.log_std_init, "critic": critic,
            "actor_hidden": None if cfg.actor_hidden is None else list(cfg.actor_hidden),
            "critic_hidden": None if cfg.critic_hidden is None else list(cfg.critic_hidden),
            "shared_trunk": cfg.shared_trunk, "features": features.resolve(cfg.features, spec, where)}


def set_backend(s: Session, requested: str, *, fused: bool, loss_fn: Callable[..., Any]) -> None:
    """Resolve the config's ``backend`` (``fused``: the algorithm has a fused update for this network) and
    set the (mini)batch loss the autograd update calls: ``loss_fn`` itself, or compiled for "compile".
    Shapes are static (``dynamic=False``): one graph per batch size, so at most two per run (full
    minibatches and a last, partial one)."""
    network = f"features={s.net['features']!r}, shared_trunk={s.net['shared_trunk']}"
    if s.intrinsic is not None:  # the fused updates know one value head; the config refuses backend "fused"
        fused = False
    s.backend = backends.resolve(s.algo, requested, fused=fused and s.model.plain,
                                 network=None if s.model.plain else network)
    s.loss_fn = backends.CompiledUpdate(loss_fn, dynamic=False) if s.backend == "compile" else loss_fn


def intrinsic_stream(s: Session, rollout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The intrinsic reward stream of ``rollout``: (rewards, V_int(s_t), V_int(s_{t+1})), each (T, N),
    non-episodic (``core.intrinsic.non_episodic_values``)."""
    raw = s.sampler.raw
    rewards = s.intrinsic.rewards(raw.obs, raw.next_obs, rollout.actions)
    values, next_values = non_episodic_values(lambda x: s.value_int(s.model.critic_features(x)).squeeze(-1),
                                              rollout.obs, s.sampler.last_obs, s.device)
    return rewards, values, next_values


def intrinsic_advantages(s: Session, rollout, advantages: np.ndarray,
                         batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, float]]:
    """The intrinsic reward stream of a rollout made into advantages (Burda et al. 2018 §2.3), then one pass
    of the module's own training (``fit_intrinsic``, minibatches of ``batch_size``). The intrinsic return is
    non-episodic (episode ends cut nothing) with its own γ_int, GAE over it gives A_int, and the algorithm's
    advantages become ext_coef·A_ext + int_coef·A_int. Returns (those advantages, the intrinsic returns,
    V_int(s_t), the module's metrics), arrays (T, N)."""
    cfg = s.config
    rewards, values, next_values = intrinsic_stream(s, rollout)
    never = np.zeros_like(rollout.terminations)
    adv_int, returns_int = gae(rewards, values, next_values, never, never, cfg.gamma_int, cfg.gae_lambda)
    metrics = fit_intrinsic(s, rollout, batch_size)
    metrics["charts/intrinsic_reward"] = float(rewards.mean())
    return cfg.ext_coef * advantages + cfg.int_coef * adv_int, returns_int, values, metrics


def fit_intrinsic(s: Session, rollout, batch_size: int) -> dict[str, float]:
    """One pass of the intrinsic module's own training (RND predictor, ICM models) over ``rollout``, in
    minibatches of ``intrinsic_batch_size`` (0: the algorithm's ``batch_size``)."""
    raw = s.sampler.raw
    return s.intrinsic.fit(s.learned.intrinsic_optimizer, raw.obs, raw.next_obs, rollout.actions,
                           s.config.intrinsic_batch_size or batch_size, s.generator)


# ---------------------------------------------------------------------------------------------
# checkpoint state
# ---------------------------------------------------------------------------------------------


def session_state(s: Session) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, learned = state_tensors(s.learned)  # model/<param>, optim/optimizer/<buffer>
    tensors["rng/torch"] = s.generator.get_state()
    agent = s.agent()
    if s.intrinsic is not None:
        learned["intrinsic"] = s.intrinsic.stats_state()  # running statistics; the networks are tensors
    state = {
        "agent": agent.state(),
        "train": {"algo": s.algo, "env_id": s.env_id, "seed": s.seed, "total_steps": s.total_steps,
                  "iteration": s.iteration, "recent": list(s.recent), "np_rng": s.rng.bit_generator.state,
                  "learned": learned, "device": str(s.device)},
        "sampler": s.sampler.state_dict(),
        "library_version": __version__,
    }
    return tensors, state


def restore_session(s: Session, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    train = state["train"]
    if "learned" not in train:  # a checkpoint written before the typed state: optim/<buffer>, train.lr
        tensors = {f"optim/optimizer/{k[6:]}" if k.startswith("optim/") else k: v for k, v in tensors.items()}
        train = {**train, "learned": {"lr": {"optimizer": train["lr"]}, "counters": {}}}
    if (s.intrinsic is not None) != ("intrinsic" in train["learned"]):
        raise CheckpointError(f"the checkpoint was written {'with' if 'intrinsic' in train['learned'] else 'without'}"
                              " an intrinsic reward and this run's config says otherwise (field intrinsic)")
    load_state_tensors(s.learned, tensors, train["learned"])
    if s.intrinsic is not None:
        s.intrinsic.load_stats_state(train["learned"]["intrinsic"])
    s.generator.set_state(tensors["rng/torch"].to(torch.uint8))
    s.rng.bit_generator.state = state["train"]["np_rng"]
    s.iteration = int(state["train"]["iteration"])
    s.recent = deque(state["train"]["recent"], maxlen=20)
    s.exact_resume = s.sampler.load_state_dict(state["sampler"], reseed=s.seed + s.iteration * 7919)


def load_session_state(path: str | Path, device: str = "cpu"):
    """``(tensors, state, checkpoint_dir)`` of a training checkpoint."""
    tensors, state, _, ckpt = load_checkpoint(path, device="cpu")
    if "train" not in state:
        raise CheckpointError(f"{ckpt / 'state.json'}: an agent checkpoint, not a training checkpoint; cannot resume")
    return tensors, state, ckpt


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------

UpdateFn = Callable[[Session, Any, float], dict[str, float]]


def run(s: Session, update: UpdateFn, ctx: RunContext | None = None) -> Agent:
    """Collect → update until ``total_steps`` (or ``ctx.stop_at``) environment steps.

    ``update(session, rollout, progress_remaining)`` performs the algorithm's learning step and
    returns metrics. With ``ctx.resume_from`` the session first continues from that checkpoint;
    ``ctx.on_start(session)`` is called before the first step; ``ctx.callback(session)`` after each
    iteration (its time is excluded from ``perf/sps``) and may return True to stop. Checkpoints are
    written when the step count crosses a multiple of ``ctx.checkpoint_every`` and at the end.
    SIGINT/SIGTERM end the current iteration, write a checkpoint and raise ``TrainingInterrupted``."""
    ctx = ctx or RunContext()
    if ctx.resume_from is not None:
        tensors, state, _ = load_session_state(ctx.resume_from)
        restore_session(s, tensors, state)
    if ctx.on_start is not None:
        ctx.on_start(s)
    logger, log_every = ctx.log, ctx.every(2048)
    cfg = s.config
    # NumPy acting on CPU (fast for small MLPs); torch for other devices and for feature extractors (a CNN)
    freq = getattr(cfg, "sde_sample_freq", 0)
    policy = (NumpyPolicy(s.model, s.rng, freq) if s.device.type == "cpu" and s.model.plain
              else TorchPolicy(s.model, s.generator, s.device, freq))
    end = s.total_steps if ctx.stop_at is None else min(ctx.stop_at, s.total_steps)
    pace = Pace(s.global_step, s.recent)
    with StopSignals() as stop:
        while s.global_step < end:
            t0 = time.perf_counter()
            prev = s.global_step
            remaining = 1.0 - prev / s.total_steps  # for linear annealing (Mnih et al. 2016; Huang et al. 2022 #4)
            policy.reset_noise(s.sampler.venv.num_envs)  # gSDE: fresh θ_ε each rollout (SB3 collect_rollouts)
            rollout = s.sampler.collect(policy, cfg.n_steps)
            metrics = update(s, rollout, remaining)
            s.iteration += 1
            pace.episodes(rollout.episodes)
            pace.add(time.perf_counter() - t0, s.global_step - prev)
            step = s.global_step
            if ctx.on_episodes is not None:  # each episode at the step it ended, not at the rollout's end
                for ended in sorted(set(rollout.episode_ends)):
                    ctx.on_episodes(ended, [e for e, at in zip(rollout.episodes, rollout.episode_ends) if at == ended])
            if pace.due(step, log_every, end):
                check_module("parameter", s.model)
                logger.log(step, metrics | pace.window(step, ups=False))
            if ctx.after_step(s, stop, step, prev, end, lambda at: _save(s, ctx, at)):
                break
    agent = s.agent()
    agent.meta["train_seconds"] = pace.train_seconds
    return agent


def _save(s: Session, ctx: RunContext, step: int) -> Path:
    check_module("parameter", s.model)
    return save_checkpoint(ctx.checkpoint_dir, step, *session_state(s), keep=ctx.keep_checkpoints)
