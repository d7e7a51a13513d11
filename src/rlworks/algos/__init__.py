"""Deep RL algorithms: a registry, ``train(algo, env_id, ...)`` and ``load(path)``.

    agent = train("ppo", "CartPole-v1", total_steps=50_000, seed=0)
    agent.evaluate(10).mean_return;  agent.save("agents/cartpole");  load("agents/cartpole")
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..config import MATMUL_PRECISIONS, PRESET_DIR, ConfigError, from_dict, load_toml, suggest
from .registry import ALGOS, OFFPOLICY_ALGOS, REGISTRY, AlgoInfo


def check_algo(algo: str) -> None:
    if algo not in REGISTRY:
        raise ConfigError(f"unknown algorithm {algo!r}; allowed: {', '.join(ALGOS)}{suggest(algo, ALGOS)}")


def info(algo: str) -> AlgoInfo:
    check_algo(algo)
    return REGISTRY[algo]


def module(algo: str):
    return info(algo).load_module()


def config_class(algo: str) -> type:
    return info(algo).config_class


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
    top of the preset (the env's own preset by default); the ``RunContext`` fields (``logger``,
    ``checkpoint_dir``, ``checkpoint_every``, ``log_every``, ``callback``, ``on_start``,
    ``resume_from``, ``stop_at``) pass through to the algorithm.

    The call runs inside ``core.runtime.tuned``: ``num_threads`` torch CPU threads (one is fastest for
    these small MLPs; ``None`` leaves them alone), flush-to-zero for denormals, and ``matmul_precision``
    (``None``, the default, keeps exact float32; "medium" lets oneDNN compute float32 products in
    bfloat16 on CPUs that have it, "high" allows TF32 on CUDA). Each setting is restored on return, so
    the process is left as it was found.

    ``eval_every=N`` evaluates the policy every N env steps (``eval_episodes``, default 10,
    deterministic), logs ``eval/mean_return`` to ``logger`` and, with ``best_dir``, keeps the best
    policy there (``core.evaluation.PeriodicEvaluator``; its time is not counted as training)."""
    from ..core.run import RunContext
    from ..core.runtime import tuned

    check_algo(algo)
    hooks = {k: overrides.pop(k) for k in RunContext.HOOKS if k in overrides}
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
    with tuned(num_threads, matmul_precision=matmul_precision):
        return module(algo).train(env_id, cfg, total_steps=total_steps, seed=seed, device=device,
                                  run=RunContext(**hooks))


def load(path: str | Path, device: str = "cpu"):
    """Load an ``Agent`` saved by ``Agent.save`` or written as a training checkpoint."""
    from .agent import load_agent

    return load_agent(path, device=device)


__all__ = ["ALGOS", "MATMUL_PRECISIONS", "OFFPOLICY_ALGOS", "REGISTRY", "AlgoInfo", "config_class", "info", "load",
           "preset_config", "presets", "train"]
