"""Deep RL algorithms: a registry, ``train(algo, env, ...)`` and ``load(path)``.

    agent = train("ppo", "CartPole-v1", total_steps=50_000, seed=0)
    agent.evaluate(10).mean_return;  agent.save("agents/cartpole");  load("agents/cartpole")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import MATMUL_PRECISIONS, PRESET_DIR, ConfigError, from_dict, load_toml, overlay, suggest
from ..core.envs import env_source
from .registry import ALGOS, OFFLINE_ALGOS, OFFPOLICY_ALGOS, REGISTRY, SEARCH_ALGOS, AlgoInfo


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
    A preset table may set ``env`` (the env it is tuned for), ``total_steps``, ``eval_every``,
    ``eval_episodes`` and ``keep``; those are run defaults, not config fields, and are returned
    separately by ``preset_extras``."""
    table = presets(algo)
    name = preset if preset is not None else (env_id if env_id in table else None)
    if preset is not None and preset not in table:
        raise ConfigError(f"unknown preset {preset!r} for {algo}; allowed: {', '.join(sorted(table)) or 'none'}"
                          f"{suggest(preset, table)}")
    data = {k: v for k, v in (table.get(name, {}) if name else {}).items() if k not in RUN_KEYS}
    return from_dict(config_class(algo), data), name


def preset_extras(algo: str, name: str | None) -> dict[str, Any]:
    if not name:
        return {}
    t = presets(algo).get(name, {})
    return {k: t[k] for k in RUN_KEYS if k in t}


#: a preset's run defaults: not config fields (``preset_extras``)
RUN_KEYS = ("env", "total_steps", "eval_every", "eval_episodes", "keep")
#: which policy ``train`` returns: the final one, or the best periodically evaluated one
KEEP = ("last", "best")


def evaluation_settings(algo: str, preset: str | None, given: dict[str, Any], keep: str | None, *,
                        copyable: bool = True) -> tuple[dict[str, Any], str]:
    """The periodic evaluation (``eval_every``, ``eval_episodes``; ``{}`` when off) and ``keep`` a run
    uses: the caller's, else the preset's run defaults. The preset's come as a unit: its ``keep`` applies
    when its evaluation does, that is when the caller sets no ``eval_every`` and the env can be rebuilt to
    evaluate on (``copyable``); ``eval_every=0`` turns it off. Otherwise ``keep`` defaults to "last";
    "best" needs evaluations to pick from."""
    extras = preset_extras(algo, preset)
    ev = dict(given)
    preset_keep = "last"
    if "eval_every" not in ev and extras.get("eval_every") and copyable:
        ev["eval_every"] = extras["eval_every"]
        if "eval_episodes" in extras:
            ev.setdefault("eval_episodes", extras["eval_episodes"])
        preset_keep = extras.get("keep", "last")
    if keep is None:
        keep = preset_keep
    if keep not in KEEP:
        raise ConfigError(f"keep={keep!r} is not allowed: allowed {', '.join(map(repr, KEEP))}{suggest(keep, KEEP)}")
    if not ev.get("eval_every"):
        stray = sorted(k for k in ev if k != "eval_every")
        if stray:
            raise ConfigError(f"{', '.join(stray)} given without eval_every")
        if keep == "best":
            raise ConfigError("keep='best' needs eval_every=N (N > 0): the periodic evaluations it picks the best "
                              "policy from")
        ev = {}
    return ev, keep


def field_owner(name: str) -> list[str]:
    """The algorithms whose config has a field called ``name``."""
    return [a for a in ALGOS if name in {f.name for f in dataclasses.fields(config_class(a))}]


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------


def train(algo: str, env: Any, *, total_steps: int, seed: int = 0, preset: str | None = None,
          env_kwargs: dict[str, Any] | None = None, wrappers: Sequence[Any] | None = None, device: str = "cpu",
          num_threads: int | None = 1, matmul_precision: str | None = None, run_dir: str | Path | None = None,
          **overrides: Any):
    """Train ``algo`` on ``env`` and return the ``Agent``. ``env`` is a registered id (with
    ``env_kwargs`` for ``gymnasium.make``), a ``gymnasium.Env`` (the first env; more are made from its
    spec), a zero-argument factory returning one, or a ``VectorEnv`` (used as it is: its env count
    replaces ``n_envs``; see ``core/envs.py``). ``wrappers``: ``gymnasium.wrappers`` class names or
    callables ``env -> env``, applied to each env in order. Keyword overrides set config fields on
    top of the preset (the env's own preset by default); the ``RunContext`` fields (``logger``,
    ``checkpoint_dir``, ``checkpoint_every``, ``keep_checkpoints``, ``log_every``, ``callback``,
    ``on_start``, ``resume_from``, ``stop_at``) pass through to the algorithm. An offline algorithm (one of
    ``OFFLINE_ALGOS``) learns from ``dataset=`` (a dataset id or an ``rlworks.offline.data.OfflineDataset``;
    required) for ``total_steps`` gradient steps and only evaluates on ``env`` (``None``: the dataset's env); the other
    algorithms refuse ``dataset=``.

    The call runs inside ``core.runtime.tuned``: ``num_threads`` torch CPU threads (one is fastest for
    these small MLPs; ``None`` leaves them alone), flush-to-zero for denormals, and ``matmul_precision``
    (``None``, the default, keeps exact float32; "medium" lets oneDNN compute float32 products in
    bfloat16 on CPUs that have it, and CQL's sampled actions and the Decision Transformer's forward take
    bfloat16 inputs under it (``core.runtime.bf16_products``); "high" allows TF32 on CUDA). Each setting is
    restored on return, so the process is left as it was found.

    ``eval_every=N`` evaluates the policy every N env steps (``eval_episodes``, default 10,
    deterministic), logs ``eval/mean_return`` to ``logger`` and, with ``best_dir``, keeps the best
    policy there (``core.evaluation.PeriodicEvaluator``; its time is not counted as training).
    ``keep="best"`` returns the best evaluated policy (the final one is evaluated too and counts),
    ``keep="last"`` the final one. A preset may set ``eval_every``, ``eval_episodes`` and ``keep`` as
    run defaults (``evaluation_settings``); ``eval_every=0`` turns a preset's evaluation off. The best
    policy's own evaluation score is biased upward (it was picked for it): quote a fresh evaluation.

    ``run_dir=DIR`` writes the run folder ``rlworks train`` writes (``algos/rundir.py``: config.json,
    metrics.csv, TensorBoard events, learning_curve.png, checkpoints/ every ``checkpoint_every`` steps,
    by default a fifth of the run, and best/ with ``eval_every``), which ``rlworks eval DIR`` and
    ``rlworks train --resume DIR`` take; ``resume_from=DIR`` continues it."""
    from ..core.run import RunContext
    from ..core.runtime import tuned

    check_algo(algo)
    data = None
    if info(algo).family == "offline":  # learns from a dataset; the env (the dataset's by default) only evaluates
        from .offline import env_of, resolve_dataset

        data = resolve_dataset(algo, overrides.pop("dataset", None))
        overrides["dataset"] = data.dataset_id
        if env is None:
            env, env_kwargs = env_of(algo, data), {**data.env_kwargs, **(env_kwargs or {})} or None
    elif "dataset" in overrides:
        raise ConfigError(f"dataset= is for the offline algorithms ({', '.join(OFFLINE_ALGOS)}); {algo} learns by "
                          "acting in its env")
    source = env_source(env, env_kwargs, wrappers)
    env_id = source.env_id  # presets and run names go by the env's registered id, where it has one
    hooks = {k: overrides.pop(k) for k in RunContext.HOOKS if k in overrides}
    evaluation = {k: overrides.pop(k) for k in ("eval_every", "eval_episodes", "best_dir") if k in overrides}
    keep = overrides.pop("keep", None)
    base, preset_used = preset_config(algo, env_id, preset)
    evaluation, keep = evaluation_settings(algo, preset_used, evaluation, keep,
                                           copyable=source.copyable or "eval_every" in evaluation)
    cls = config_class(algo)
    for k in overrides:
        if k not in {f.name for f in dataclasses.fields(cls)}:
            owners = field_owner(k)
            if owners:
                raise ConfigError(f"{k!r} is a field of {', '.join(owners)}, not of {algo}")
    # a VectorEnv's own env count wins over the preset's and the caller's n_envs (documented above)
    cfg = overlay(cls, base, {**overrides, **({"n_envs": source.num_envs} if source.num_envs else {})})
    if evaluation and not source.copyable:
        raise ConfigError(f"eval_every needs a second env to evaluate on, and {source.what} has no spec to make "
                          "one from; pass a zero-argument factory that returns a new env")
    if run_dir is not None:
        from .rundir import RunFolder, default_checkpoint_every, run_meta

        clash = sorted({"checkpoint_dir", "on_episodes", "best_dir"} & (hooks.keys() | evaluation.keys()))
        if clash:
            raise ConfigError(f"{', '.join(clash)} cannot be combined with run_dir, which sets them for its folder")
        every = hooks.pop("checkpoint_every", None)
        meta = run_meta(algo, env_id, cfg, seed=seed, total_steps=total_steps, preset=preset_used, device=device,
                        num_threads=num_threads, matmul_precision=matmul_precision,
                        checkpoint_every=default_checkpoint_every(total_steps) if every is None else every,
                        eval_every=evaluation.get("eval_every", 0), eval_episodes=evaluation.get("eval_episodes", 10),
                        keep_checkpoints=hooks.pop("keep_checkpoints", None), keep=keep)
        meta["env"] = source.record()
        folder = RunFolder(run_dir, meta, resume_from=hooks.pop("resume_from", None))
        with tuned(num_threads, matmul_precision=matmul_precision):
            return folder.train(cfg, env=_fed(source, data), device=device, display=hooks.pop("logger", None),
                                **hooks)
    evaluator = None
    if evaluation:
        from ..core.evaluation import PeriodicEvaluator

        start = 0
        if hooks.get("resume_from") is not None:  # evaluate at the multiples of eval_every after the resume point
            from ..core.checkpoint import read_state

            start = int(read_state(hooks["resume_from"])["sampler"]["global_step"])
        evaluator = PeriodicEvaluator(evaluation["eval_every"], evaluation.get("eval_episodes", 10),
                                      logger=hooks.get("logger"), best_dir=evaluation.get("best_dir"),
                                      then=hooks.get("callback"), start=start, keep_best=keep == "best")
        hooks["callback"] = evaluator
    with tuned(num_threads, matmul_precision=matmul_precision):
        agent = module(algo).train(_fed(source, data), cfg, total_steps=total_steps, seed=seed, device=device,
                                   run=RunContext(**hooks))
        return kept_agent(agent, evaluator, keep)


def _fed(source: Any, data: Any) -> Any:
    """What an algorithm's ``train`` takes as its env: the env source, with the dataset for an offline one."""
    if data is None:
        return source
    from .offline import OfflineSource

    return OfflineSource(source, data)


def kept_agent(final: Any, evaluator: Any, keep: str) -> Any:
    """The agent a run returns: ``final``, or with ``keep="best"`` the best policy ``evaluator`` (a
    ``PeriodicEvaluator``) saw, the final one included (evaluated here if the schedule did not end on it).
    The best agent's meta gains the run's totals (``train_seconds``, ...), ``kept="best"`` and
    ``final_step``; its ``global_step`` and ``eval_step`` say where it came from."""
    if keep != "best" or evaluator is None:
        return final
    step = int(final.meta["global_step"])
    if not evaluator.history or evaluator.history[-1][0] != step:
        evaluator.evaluate(final, step)
    best = evaluator.best_agent
    if best is None and evaluator.best_dir is not None and (evaluator.best_dir / "latest").is_file():
        best = load(evaluator.best_dir, device=str(next(final.model.parameters()).device))  # from before a resume
        best.env = final.env  # the run's own env binding (a factory is not saved with the agent)
    if best is None:
        return final
    best.meta.update({k: v for k, v in final.meta.items() if k in ("train_seconds", "n_updates", "compile_seconds")},
                     kept="best", final_step=step)
    return best


def load(path: str | Path, device: str = "cpu"):
    """Load an ``Agent`` saved by ``Agent.save`` or written as a training checkpoint."""
    from .agent import load_agent

    return load_agent(path, device=device)


__all__ = ["ALGOS", "KEEP", "MATMUL_PRECISIONS", "OFFLINE_ALGOS", "OFFPOLICY_ALGOS", "REGISTRY", "SEARCH_ALGOS",
           "AlgoInfo", "config_class", "evaluation_settings", "info", "load", "preset_config", "presets", "train"]
