"""What the offline algorithms (BC, TD3+BC, DT) share, called visibly from each algorithm's ``train()``: the
dataset as tensors on the device, seeded minibatches (of transitions, or of K-step segments of episodes with
returns-to-go for the Decision Transformer), the loop of gradient steps with logging, evaluation
hooks and checkpoints, exact resume, and the agent it returns.

Offline RL learns from a fixed dataset (``rlworks.offline.data.OfflineDataset``) and never from the env:
``total_steps`` and ``global_step`` count gradient steps, and the env (the dataset's ``env_id`` unless
another is given) is only played to evaluate the policy. An evaluation (``eval_every``, run by
``core.evaluation.PeriodicEvaluator``) is also logged as D4RL's normalised score, ``eval/normalized_score``
= 100 · (R − ref_min) / (ref_max − ref_min) (Fu et al. 2020, §5), where the dataset has reference scores.

This is plumbing, not a base class: networks, losses and updates stay in each algorithm's file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..config import ConfigError
from ..core.checkpoint import (
    CheckpointError,
    load_training_checkpoint,
    matching_configuration,
    save_checkpoint,
)
from ..core.envs import EnvSource, env_source
from ..core.evaluation import PeriodicEvaluator
from ..core.guards import check_losses, check_module
from ..core.run import Pace, RunContext, StopSignals
from ..core.seeding import spawn_seeds, torch_generator
from ..core.state import load_state_tensors, modules, state_tensors
from ..core.vec import space_spec
from ..offline.data import OfflineDataset
from .agent import OffPolicyAgent

#: added to the dataset's per-dimension std before dividing (Fujimoto & Gu 2021, §5: "a small constant ε = 10⁻³")
NORM_EPS = 1e-3


@dataclass(frozen=True)
class OfflineSource:
    """What an offline algorithm's ``train`` takes as its env when the dataset is already in memory: the
    env to evaluate on (anything ``core.envs.env_source`` takes; None: the dataset's ``env_id``) and the
    dataset. Given a plain env instead, ``train`` loads the config's ``dataset`` id."""

    env: Any
    dataset: OfflineDataset


def resolve_dataset(algo: str, dataset: Any) -> OfflineDataset:
    """``dataset`` as an ``OfflineDataset``: itself, or the one its id names (``rlworks.offline.datasets.load``)."""
    if isinstance(dataset, OfflineDataset):
        return dataset
    if not dataset:
        raise ConfigError(f"{algo} learns from a dataset and none was given: pass dataset=ID or an OfflineDataset "
                          f"(CLI: rlworks train {algo} --dataset ID)")
    if not isinstance(dataset, str):
        raise ConfigError(f"dataset={dataset!r} must be a dataset id or an rlworks.offline.data.OfflineDataset")
    from ..offline.datasets import load

    return load(dataset)


def env_of(algo: str, data: OfflineDataset) -> str:
    """The env a dataset was recorded on (its ``env_id``), where no other is given to evaluate on."""
    if not data.env_id:
        raise ConfigError(f"dataset {data.dataset_id} records no env id; pass the env to evaluate {algo} on (--env ID)")
    return data.env_id


def _kind(space: Any) -> str:
    import gymnasium as gym

    return "discrete" if isinstance(space, gym.spaces.Discrete) else "box" if isinstance(space, gym.spaces.Box) else "?"


def check_spaces(algo: str, data: OfflineDataset, source: EnvSource) -> dict[str, Any]:
    """The ``space_spec`` the dataset and the env share; ConfigError where they differ
    (``offline.datasets.check_spaces``) or ``algo`` cannot learn the dataset's action space."""
    from .registry import REGISTRY

    kind = _kind(data.action_space)
    if kind not in REGISTRY[algo].actions:
        fits = [a.name for a in REGISTRY.values() if a.family == "offline" and kind in a.actions]
        raise ConfigError(f"{algo} needs a {' or '.join(REGISTRY[algo].actions)} action space, but dataset "
                          f"{data.dataset_id} has {data.action_space}" + (f"; use {' or '.join(fits)}" if fits else ""))
    from ..offline.datasets import check_spaces as same_spaces

    env = source.first if source.first is not None else source.make()
    try:
        same_spaces(data, env)
    finally:
        if env is not source.first:
            env.close()
    return space_spec(data.observation_space, data.action_space)


# ---------------------------------------------------------------------------------------------
# the acting module an offline agent holds
# ---------------------------------------------------------------------------------------------


class NormalizedPolicy(nn.Module):
    """The learned policy behind the dataset's observation standardisation: ``act`` takes raw env
    observations, as ``OffPolicyAgent`` passes them. ``mean``/``std`` are buffers, saved with the agent
    (0 and 1 where the algorithm does not normalise)."""

    def __init__(self, policy: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.policy = policy
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone())

    def act(self, obs: torch.Tensor, deterministic: bool, generator: torch.Generator | None) -> torch.Tensor:
        return self.policy.act((obs - self.mean) / self.std, deterministic, generator)


# ---------------------------------------------------------------------------------------------
# session
# ---------------------------------------------------------------------------------------------


@dataclass
class Session:
    """A running offline training: the dataset's tensors and what the algorithm learns (``state``, its own
    dataclass of networks, optimizers and counters, checkpointed by core/state.py)."""

    algo: str
    config: Any
    seed: int
    total_steps: int
    device: torch.device
    spec: dict[str, Any]
    net: dict[str, Any]  # how to rebuild the acting network (saved with the agent)
    dataset: OfflineDataset
    data: dict[str, torch.Tensor]  # obs, actions, returns, next_obs, discounts: (T, ...) on the device
    obs_mean: torch.Tensor  # (obs_dim,)
    obs_std: torch.Tensor  # (obs_dim,)
    generator: torch.Generator  # minibatch indices, target-policy noise
    env: EnvSource
    state: Any = None
    actor: str = "actor"  # the field of ``state`` the agent acts with
    global_step: int = 0  # gradient steps
    make_agent: Callable[[Session], Any] | None = None  # an agent other than OffPolicyAgent (DT's, with context)

    @property
    def env_id(self) -> str | None:
        return self.env.env_id

    @property
    def n_updates(self) -> int:
        return self.global_step

    @property
    def modules(self) -> dict[str, nn.Module]:
        return modules(self.state)

    def agent(self) -> OffPolicyAgent:
        if self.make_agent is not None:
            return self.make_agent(self)
        model = NormalizedPolicy(getattr(self.state, self.actor), self.obs_mean, self.obs_std)
        meta = {"global_step": self.global_step, "seed": self.seed, "library_version": __version__,
                "dataset": self.dataset.dataset_id, "transitions": len(self.data["obs"])}
        return OffPolicyAgent(self.algo, self.env_id, self.config, model, self.spec, self.net, meta=meta, env=self.env)


def dataset_tensors(data: OfflineDataset, spec: dict[str, Any], rows: np.ndarray | None, gamma: float | None,
                    device: torch.device) -> dict[str, torch.Tensor]:
    """The transitions ``rows`` (all by default) as tensors in the networks' units: flat float32 observations,
    Box actions rescaled from the bounds to [-1, 1] (as TD3's actor acts), Discrete ones as indices from 0;
    with ``gamma``, ``discounts`` = γ (1 − terminated) for the TD target (truncated steps bootstrap)."""
    take = (lambda x: x) if rows is None else (lambda x: x[rows])
    T = len(data) if rows is None else len(rows)
    out = {"obs": take(data.observations).reshape(T, spec["obs_dim"]).astype(np.float32),
           "next_obs": take(data.next_observations).reshape(T, spec["obs_dim"]).astype(np.float32),
           "returns": take(data.rewards).astype(np.float32)}
    if spec["action"] == "discrete":
        out["actions"] = take(data.actions).reshape(T).astype(np.int64) - spec["act_start"]
    else:
        low, high = np.asarray(spec["low"], np.float32), np.asarray(spec["high"], np.float32)
        a = take(data.actions).reshape(T, spec["act_dim"]).astype(np.float32)
        out["actions"] = np.clip(2.0 * (a - low) / (high - low) - 1.0, -1.0, 1.0).astype(np.float32)
    if gamma is not None:
        out["discounts"] = (gamma * (1.0 - take(data.terminations).astype(np.float32))).astype(np.float32)
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in out.items()}


def build_session(algo: str, env: Any, cfg: Any, *, seed: int, total_steps: int, device: str,
                  select: Callable[[OfflineDataset], np.ndarray] | None = None) -> Session:
    """The dataset (``env`` an ``OfflineSource``, or else ``cfg.dataset`` loaded) checked against the env
    it is evaluated on, as device tensors: the rows ``select(dataset)`` picks (all by default), observations
    standardised with their mean and std (+ ``NORM_EPS``) where ``cfg.norm_obs``."""
    if total_steps < 1:
        raise ConfigError(f"total_steps={total_steps} is out of range: allowed [1, inf)")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but torch.cuda.is_available() is False; use --device cpu")
    if isinstance(env, OfflineSource):
        data, env = env.dataset, env.env
    else:
        data = resolve_dataset(algo, cfg.dataset)
    source = env_source(env if env is not None else env_of(algo, data),
                        None if env is not None else (data.env_kwargs or None))
    spec = check_spaces(algo, data, source)
    rows = select(data) if select is not None else None
    tensors = dataset_tensors(data, spec, rows, getattr(cfg, "gamma", None), dev)
    if len(tensors["obs"]) == 0:
        raise ConfigError(f"dataset {data.dataset_id} holds no transitions")
    mean = torch.zeros(spec["obs_dim"], device=dev)
    std = torch.ones(spec["obs_dim"], device=dev)
    if cfg.norm_obs:  # statistics in float64 (exact over a million rows), then float32
        obs = tensors["obs"].double()
        mean, std = obs.mean(0).float(), (obs.std(0, correction=0) + NORM_EPS).float()
        tensors["obs"] = (tensors["obs"] - mean) / std
        tensors["next_obs"] = (tensors["next_obs"] - mean) / std
    (sample_seed,) = spawn_seeds(np.random.SeedSequence(int(seed)), 1)
    return Session(algo, cfg, int(seed), int(total_steps), dev, spec, {}, data, tensors, mean, std,
                   torch_generator(sample_seed, dev), source)


def sample_batch(s: Session, n: int) -> dict[str, torch.Tensor]:
    """``n`` transitions drawn uniformly with replacement (the authors' ``ReplayBuffer.sample``)."""
    idx = torch.randint(len(s.data["obs"]), (n,), generator=s.generator, device=s.device)
    return {k: v[idx] for k, v in s.data.items()}


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------

#: one gradient step on a minibatch; returns its metrics as tensors (read only when a line is logged)
UpdateFn = Callable[[Session, dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def run(s: Session, update: UpdateFn, ctx: RunContext,
        sample: Callable[[Session, int], dict[str, torch.Tensor]] = sample_batch) -> OffPolicyAgent:
    """Resume if asked, then ``update(s, batch)`` on seeded minibatches until ``total_steps`` (or
    ``ctx.stop_at``) gradient steps. Losses are checked for NaN/inf when a line is logged (every
    ``ctx.log_every``, default 1000) and before every checkpoint. ``ctx.callback(s)`` runs after each step
    (excluded from ``perf/ups``) and may stop the run; when it is a ``PeriodicEvaluator``, each of its
    evaluations is also logged as ``eval/normalized_score``. ``sample(s, batch_size)`` draws each minibatch
    (default ``sample_batch``; DT: ``sample_segments``). SIGINT/SIGTERM end the current step, write a
    checkpoint and raise ``TrainingInterrupted``."""
    if ctx.resume_from is not None:
        restore_session(s, ctx.resume_from)
    if ctx.on_start is not None:
        ctx.on_start(s)
    logger, log_every = ctx.log, ctx.every(1000)
    end = s.total_steps if ctx.stop_at is None else min(ctx.stop_at, s.total_steps)
    evaluator = ctx.callback if isinstance(ctx.callback, PeriodicEvaluator) else None
    scored = s.dataset.ref_min_score is not None and s.dataset.ref_max_score not in (None, s.dataset.ref_min_score)
    pace = Pace(s.global_step)
    metrics: dict[str, torch.Tensor] = {}
    with StopSignals() as stop:
        while s.global_step < end:
            t0 = time.perf_counter()
            metrics = update(s, sample(s, s.config.batch_size))
            s.global_step += 1
            pace.add(time.perf_counter() - t0, updates=1)
            step = s.global_step
            if pace.due(step, log_every, end):
                out = {k: float(v) for k, v in metrics.items()}
                check_losses(out, step)
                logger.log(step, out | pace.window(step, sps=False))
            seen = len(evaluator.history) if evaluator is not None else 0
            done = ctx.after_step(s, stop, step, step - 1, end, lambda at: _save(s, ctx, at))
            if scored and evaluator is not None and len(evaluator.history) > seen:  # the callback evaluated
                mean_return = evaluator.history[-1][1]
                logger.log(step, {"eval/normalized_score": float(s.dataset.normalized_score(mean_return))})
            if done:
                break
    agent = s.agent()
    agent.meta.update(train_seconds=pace.train_seconds, n_updates=s.global_step)
    return agent


def _save(s: Session, ctx: RunContext, step: int) -> Path:
    for m in s.modules.values():
        check_module("parameter", m)
    tensors, state = session_state(s)
    return save_checkpoint(ctx.checkpoint_dir, step, tensors, state, keep=ctx.keep_checkpoints)


# ---------------------------------------------------------------------------------------------
# checkpoints and agents
# ---------------------------------------------------------------------------------------------


def session_state(s: Session) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The learned state (``actor/``, ``critic/``, ``optim/...``), the sampling RNG, and the acting module as
    the agent holds it (``agent/``: the policy with the observation statistics), so that the checkpoint also
    loads as an agent."""
    tensors, learned = state_tensors(s.state)
    tensors["rng/torch"] = s.generator.get_state()
    agent = s.agent()
    tensors.update({f"agent/{k}": v.clone() for k, v in agent.model.state_dict().items()})  # no shared storage
    state = {"agent": agent.state(),
             "train": {"algo": s.algo, "dataset": s.dataset.dataset_id, "transitions": len(s.data["obs"]),
                       "seed": s.seed, "total_steps": s.total_steps, "state": learned, "device": str(s.device)},
             "sampler": {"global_step": s.global_step},
             "library_version": __version__}
    return tensors, state


def restore_session(s: Session, path: str | Path) -> Path:
    """Load a training checkpoint written by ``run`` into ``s`` (built with the same config, seed and dataset)."""
    tensors, state, _, ckpt, tr = load_training_checkpoint(path, s.algo, "an offline")
    if (tr.get("dataset"), tr.get("transitions")) != (s.dataset.dataset_id, len(s.data["obs"])):
        raise CheckpointError(f"{ckpt / 'state.json'}: trained on dataset {tr.get('dataset')} "
                              f"({tr.get('transitions')} transitions), not {s.dataset.dataset_id} "
                              f"({len(s.data['obs'])})")
    with matching_configuration(ckpt, s.algo):
        load_state_tensors(s.state, tensors, tr["state"])
    s.generator.set_state(tensors["rng/torch"].to(torch.uint8))
    s.global_step = int(state["sampler"]["global_step"])
    return ckpt
