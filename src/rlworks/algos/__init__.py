"""Deep RL algorithms: a registry, ``train(algo, env_id, ...)`` and ``load(path)``.

    agent = train("ppo", "CartPole-v1", total_steps=50_000, seed=0)
    agent.evaluate(10).mean_return;  agent.save("agents/cartpole");  load("agents/cartpole")
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

from ..config import PRESET_DIR, ConfigError, check_choice, from_dict, load_toml, suggest

# name -> (module, config class name)
REGISTRY: dict[str, tuple[str, str]] = {
    "ppo": ("rlworks.algos.ppo", "PPOConfig"),
    "a2c": ("rlworks.algos.a2c", "A2CConfig"),
    "reinforce": ("rlworks.algos.reinforce", "ReinforceConfig"),
    "dqn": ("rlworks.algos.dqn", "DQNConfig"),
    "sac": ("rlworks.algos.sac", "SACConfig"),
    "td3": ("rlworks.algos.td3", "TD3Config"),
}
ALGOS = tuple(REGISTRY)
#: torch.set_float32_matmul_precision's values: exact float32, TF32 allowed (CUDA), bfloat16 allowed
MATMUL_PRECISIONS = ("highest", "high", "medium")
OFFPOLICY_ALGOS = ("dqn", "sac", "td3")  # replay-buffer learners (their agents' format, their bench script)


def check_algo(algo: str) -> None:
    if algo not in REGISTRY:
        raise ConfigError(f"unknown algorithm {algo!r}; allowed: {', '.join(ALGOS)}{suggest(algo, ALGOS)}")


def module(algo: str):
    check_algo(algo)
    return importlib.import_module(REGISTRY[algo][0])


def config_class(algo: str) -> type:
    return getattr(module(algo), REGISTRY[algo][1])


# ---------------------------------------------------------------------------------------------
# presets: rlworks/presets/<algo>.toml, one table per preset name (usually the env id)
# ---------------------------------------------------------------------------------------------


def presets(algo: str) -> dict[str, dict[str, Any]]:
    check_algo(algo)
    path = PRESET_DIR / f"{algo}.toml"
    return load_toml(path) if path.exists() else {}


def preset_config(algo: str, env_id: str | None, preset: str | None) -> tuple[Any, str | None]:
    """The config for ``preset`` (or the env's own preset, or the defaults) and the preset used.
    A preset table may set ``env`` (the env it is tuned for) and ``total_steps``; those are not config
    fields and are returned separately by ``preset_extras``."""
    table = presets(algo)
    name = preset if preset is not None else (env_id if env_id in table else None)
    if preset is not None and preset not in table:
        raise ConfigError(f"unknown preset {preset!r} for {algo}; allowed: {', '.join(sorted(table)) or 'none'}"
                          f"{suggest(preset, table)}")
    data = {k: v for k, v in (table.get(name, {}) if name else {}).items() if k not in ("env", "total_steps")}
    return from_dict(config_class(algo), data), name


def preset_extras(algo: str, name: str | None) -> dict[str, Any]:
    if not name:
        return {}
    t = presets(algo).get(name, {})
    return {k: t[k] for k in ("env", "total_steps") if k in t}


def field_owner(name: str) -> list[str]:
    """The algorithms whose config has a field called ``name``."""
    return [a for a in ALGOS if name in {f.name for f in dataclasses.fields(config_class(a))}]


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------


def train(algo: str, env_id: str, *, total_steps: int, seed: int = 0, preset: str | None = None,
          device: str = "cpu", num_threads: int | None = 1, matmul_precision: str | None = None, **overrides: Any):
    """Train ``algo`` on ``env_id`` and return the ``Agent``. Keyword overrides set config fields on
    top of the preset (the env's own preset by default); library-level hooks (``logger``,
    ``checkpoint_dir``, ``checkpoint_every``, ``callback``) pass through to the algorithm.

    ``num_threads`` sets torch's CPU threads for the duration of training (restored afterwards;
    ``None`` leaves them alone). One is fastest for these small MLPs, and on a loaded machine extra
    threads spin-wait: a 512-step run measured 0.16 s with 1 thread and 30 s with 2.

    ``matmul_precision`` sets torch's float32 matrix-product precision for the duration of training
    (``torch.set_float32_matmul_precision``; restored afterwards; ``None``, the default, leaves it
    alone: "highest", exact float32). With "medium" oneDNN computes float32 products in bfloat16 on
    CPUs that have it (AMX / AVX512-BF16): a 256×256×256 product measured 189 → 51 µs here, relative
    error ~2e-3; a SAC update on Pendulum (256-wide networks) went from 5.3 to 3.7 ms (docs/off-policy.md).
    On CUDA "high" allows TF32. Opt-in: the figures in the docs use "highest" unless they say otherwise.

    ``eval_every=N`` evaluates the policy every N env steps (``eval_episodes``, default 10,
    deterministic), logs ``eval/mean_return`` to ``logger`` and, with ``best_dir``, keeps the best
    policy there (``core.evaluation.PeriodicEvaluator``; its time is not counted as training)."""
    check_algo(algo)
    if matmul_precision is not None:
        check_choice("matmul_precision", matmul_precision, MATMUL_PRECISIONS)
    hooks = {k: overrides.pop(k) for k in ("logger", "checkpoint_dir", "checkpoint_every", "log_every", "callback",
                                            "resume_from", "stop_at", "on_start") if k in overrides}
    evaluation = {k: overrides.pop(k) for k in ("eval_every", "eval_episodes", "best_dir") if k in overrides}
    if evaluation.get("eval_every"):
        from ..core.evaluation import PeriodicEvaluator

        start = 0
        if hooks.get("resume_from") is not None:  # evaluate at the multiples of eval_every after the resume point
            from ..core.checkpoint import read_state

            start = int(read_state(hooks["resume_from"])["sampler"]["global_step"])
        hooks["callback"] = PeriodicEvaluator(evaluation["eval_every"], evaluation.get("eval_episodes", 10),
                                              logger=hooks.get("logger"), best_dir=evaluation.get("best_dir"),
                                              then=hooks.get("callback"), start=start)
    elif evaluation:
        raise ConfigError(f"{', '.join(sorted(evaluation))} given without eval_every")
    base, _ = preset_config(algo, env_id, preset)
    cls = config_class(algo)
    for k in overrides:
        if k not in {f.name for f in dataclasses.fields(cls)}:
            owners = field_owner(k)
            if owners:
                raise ConfigError(f"{k!r} is a field of {', '.join(owners)}, not of {algo}")
    cfg = from_dict(cls, {**dataclasses.asdict(base), **overrides})
    import torch

    previous, previous_precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    if num_threads is not None:
        if int(num_threads) < 1:
            raise ConfigError(f"num_threads={num_threads} is out of range: allowed [1, inf)")
        torch.set_num_threads(int(num_threads))
    if matmul_precision is not None:
        torch.set_float32_matmul_precision(matmul_precision)
    try:
        return module(algo).train(env_id, cfg, total_steps=total_steps, seed=seed, device=device, **hooks)
    finally:
        torch.set_num_threads(previous)
        torch.set_float32_matmul_precision(previous_precision)


def load(path: str | Path, device: str = "cpu"):
    """Load an ``Agent`` saved by ``Agent.save`` or written as a training checkpoint."""
    from .agent import load_agent

    return load_agent(path, device=device)


__all__ = ["ALGOS", "REGISTRY", "train", "load", "config_class", "presets", "preset_config"]
