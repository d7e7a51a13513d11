"""CLI handlers for the deep algorithms (``rlworks train ppo|a2c|reinforce``, ``train --resume``,
``eval``). The dispatcher in ``rlworks.cli`` calls these; bad input raises ``ConfigError``."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..config import ConfigError, field_docs, suggest
from .parsing import check_device

ALGOS: tuple[str, ...] = ("ppo", "a2c", "reinforce", "dqn", "sac", "td3")
#: flags of the tabular learners, so that a deep algorithm can say whose they are
TABULAR_FLAGS = {
    "planning-steps": "dyna-q",
    **{f: "the tabular learners (q-learning, sarsa, expected-sarsa, dyna-q)"
       for f in ("episodes", "alpha", "epsilon", "tie-break", "q-init", "layout", "slip", "wall-terminal")},
}
DESCRIPTIONS = {
    "ppo": "Proximal Policy Optimization, clipped (Schulman et al. 2017); Discrete or Box actions",
    "a2c": "synchronous advantage actor-critic (Mnih et al. 2016); Discrete or Box actions",
    "reinforce": "Monte-Carlo policy gradient (Williams 1992), optional learned baseline",
    "dqn": "Deep Q-Network (Mnih et al. 2015); Double, Dueling, n-step, prioritized replay; Discrete actions",
    "sac": "Soft Actor-Critic (Haarnoja et al. 2018), twin Q, automatic temperature; Box actions",
    "td3": "Twin Delayed DDPG (Fujimoto et al. 2018); Box actions",
}
RUN_FLAGS = {"total-steps": int, "seed": int, "run-dir": str, "preset": str, "device": str, "num-threads": int,
             "matmul-precision": str,
             "checkpoint-every": int, "env": str, "eval-every": int, "eval-episodes": int}
BOOL_FLAGS = {"quiet", "help"}


# ---------------------------------------------------------------------------------------------
# argv parsing (typed by the config dataclass)
# ---------------------------------------------------------------------------------------------


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def _convert(flag: str, typ: str, raw: str) -> Any:
    try:
        if typ in ("int", int):
            return int(raw)
        if typ in ("float", float):
            return float(raw)
        if typ in ("bool", bool):
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(typ, str) and typ.startswith("tuple"):
            return tuple(int(x) for x in raw.replace(",", " ").split())
        return raw
    except ValueError:
        raise ConfigError(f"--{flag} {raw!r}: expected {typ if isinstance(typ, str) else typ.__name__}") from None


def parse_args(argv: list[str], fields: dict[str, str], run_flags: dict[str, Any] = RUN_FLAGS,
               algo: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split argv into (run options, config overrides). ``fields`` maps kebab names to type strings."""
    from ..algos import field_owner

    run: dict[str, Any] = {}
    over: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--"):
            raise ConfigError(f"unexpected argument {tok!r}; options are --name value")
        name, eq, val = tok[2:].partition("=")
        if name in BOOL_FLAGS:
            run[name] = True
            i += 1
            continue
        negated = name.startswith("no-") and name[3:] in fields and fields[name[3:]] == "bool"
        if name in fields and fields[name] == "bool" and not eq and (i + 1 >= len(argv) or argv[i + 1].startswith("--")):
            over[name.replace("-", "_")] = True
            i += 1
            continue
        if negated:
            over[name[3:].replace("-", "_")] = False
            i += 1
            continue
        if name not in fields and name not in run_flags:
            owners = field_owner(name.replace("-", "_"))
            if not owners and name in TABULAR_FLAGS:
                raise ConfigError(f"--{name} is an option of {TABULAR_FLAGS[name]}, not of {algo}")
            if owners:
                raise ConfigError(f"--{name} is an option of {', '.join(owners)}, not of {algo}")
            raise ConfigError(f"unknown option --{name}{suggest(name, list(fields) + list(run_flags) + list(BOOL_FLAGS))}"
                              f"; see --help")
        if not eq:
            if i + 1 >= len(argv):
                raise ConfigError(f"--{name} needs a value")
            val = argv[i + 1]
            i += 1
        i += 1
        if name in run_flags:
            run[name] = _convert(name, run_flags[name], val)
        else:
            over[name.replace("-", "_")] = _convert(name, fields[name], val)
    return run, over


def _fields(algo: str) -> dict[str, str]:
    from ..algos import config_class

    return {_kebab(f.name): str(f.type) for f in dataclasses.fields(config_class(algo))}


def _print_help(algo: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..algos import config_class, presets

    cls = config_class(algo)
    docs = field_docs(cls)
    t = Table(title=f"rlworks train {algo} --env ID [options]", show_lines=False)
    t.add_column("option")
    t.add_column("default")
    t.add_column("meaning")
    for flag, doc in [("--env ID", "gymnasium environment id"), ("--total-steps N", "environment steps"),
                      ("--seed S", "random seed (default 0)"), ("--run-dir DIR", "where the run is written"),
                      ("--preset NAME", f"hyperparameter preset; default: the env's own ({', '.join(presets(algo))})"),
                      ("--device cpu|cuda", "torch device (default cpu)"),
                      ("--num-threads N", "torch CPU threads (default 1: fastest for small MLPs)"),
                      ("--matmul-precision P", "highest (default: float32), high (TF32 on CUDA) or medium "
                       "(bfloat16 products where the CPU has AMX/AVX512-BF16: faster, ~2e-3 error)"),
                      ("--checkpoint-every N", "steps between checkpoints (default total/5)"),
                      ("--eval-every N", "evaluate every N steps, keep the best policy in RUN_DIR/best (default off)"),
                      ("--eval-episodes K", "deterministic episodes per evaluation (default 10)"),
                      ("--quiet", "no progress bar")]:
        t.add_row(flag, "", doc)
    for f in dataclasses.fields(cls):
        t.add_row(f"--{_kebab(f.name)}", repr(f.default), docs.get(f.name, ""))
    Console().print(t)


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------


def _setup_torch(run: dict[str, Any]) -> None:
    import torch

    n = int(run.get("num-threads", 1))
    if n < 1:
        raise ConfigError(f"--num-threads {n} is out of range: allowed [1, inf)")
    torch.set_num_threads(n)
    precision = run.get("matmul-precision")
    if precision is not None:
        from ..algos import MATMUL_PRECISIONS
        from ..config import check_choice

        check_choice("matmul_precision", precision, MATMUL_PRECISIONS)
        torch.set_float32_matmul_precision(precision)


def _train_loop(algo: str, env_id: str, cfg: Any, *, run_dir: Path, total_steps: int, seed: int, device: str,
                checkpoint_every: int, quiet: bool, resume_from: Path | None = None, start: int = 0,
                eval_every: int = 0, eval_episodes: int = 10) -> int:
    from rich.console import Console

    from ..algos import module
    from ..core.evaluation import PeriodicEvaluator
    from ..core.guards import NonFiniteError
    from ..core.logging import Progress, RunLogger, Tee

    console = Console(stderr=False, quiet=quiet)
    logger = RunLogger(run_dir, resume_step=start if resume_from is not None else None)
    progress = Progress(total_steps, f"{algo} {env_id}", start=start, quiet=quiet)
    t0 = time.time()
    try:
        extra = {}
        if algo in ("dqn", "sac", "td3"):  # off-policy: say how much memory the replay buffer takes
            from ..algos.offpolicy import describe_buffer

            extra["on_start"] = lambda s: console.print(describe_buffer(s))
        evaluator = None
        if eval_every:  # eval rows go to metrics.csv/TensorBoard only, not to the progress bar
            evaluator = extra["callback"] = PeriodicEvaluator(eval_every, eval_episodes, logger=logger,
                                                              best_dir=run_dir / "best", start=start)
        agent = module(algo).train(env_id, cfg, total_steps=total_steps, seed=seed, device=device,
                                   logger=Tee(logger, progress), checkpoint_dir=run_dir / "checkpoints",
                                   checkpoint_every=checkpoint_every, resume_from=resume_from, **extra)
    except NonFiniteError as exc:
        progress.close()
        logger.close(f"{algo} {env_id}")
        print(f"error: training stopped: {exc}", file=sys.stderr)
        return 1
    progress.close()
    logger.close(f"{algo} {env_id} seed {seed}")
    res = agent.evaluate(5, seed=10_000 + seed)
    wall = time.time() - t0
    console.print(f"[bold green]done[/] {algo} on {env_id}: {agent.meta['global_step']} steps in {wall:.1f} s "
                  f"({(agent.meta['global_step'] - start) / max(agent.meta.get('train_seconds', wall), 1e-9):.0f} "
                  f"training steps/s); evaluation (5 episodes) {res.mean_return:.1f} ± {res.std_return:.1f}")
    if evaluator is not None and evaluator.best_step is not None:
        console.print(f"best evaluation: {evaluator.best_return:.1f} at step {evaluator.best_step} "
                      f"(rlworks eval {run_dir} --checkpoint best)")
    console.print(f"run directory: {run_dir}  (rlworks eval {run_dir})")
    return 0


def train(algo: str, env_id: str | None, argv: list[str]) -> int:
    """``rlworks train ALGO --env ID [flags]``; returns the exit code."""
    from ..algos import check_algo, preset_config, preset_extras
    from ..config import from_dict
    from ..core.vec import check_env_id

    check_algo(algo)
    fields = _fields(algo)
    run, over = parse_args(argv, fields, algo=algo)
    if run.get("help"):
        _print_help(algo)
        return 0
    env_id = env_id or run.get("env")
    base, preset = preset_config(algo, env_id, run.get("preset"))
    extras = preset_extras(algo, preset)
    env_id = env_id or extras.get("env")
    if not env_id:
        raise ConfigError("--env is required (a gymnasium id such as CartPole-v1)")
    check_env_id(env_id)
    from ..algos import config_class

    cfg = from_dict(config_class(algo), {**dataclasses.asdict(base), **over})
    total = int(run.get("total-steps", extras.get("total_steps", 100_000)))
    if total < 1:
        raise ConfigError(f"--total-steps {total} is out of range: allowed [1, inf)")
    seed = int(run.get("seed", 0))
    if seed < 0:
        raise ConfigError(f"--seed {seed} is out of range: allowed [0, inf)")
    device = check_device(run.get("device", "cpu"))
    _setup_torch(run)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(run.get("run-dir") or f"runs/{algo}-{env_id.replace('/', '_')}-{seed}-{stamp}")
    if (run_dir / "checkpoints").exists():
        raise ConfigError(f"{run_dir} already holds a run; use --resume {run_dir} or another --run-dir")
    ckpt_every = int(run.get("checkpoint-every", max(total // 5, 1)))
    if ckpt_every < 0:
        raise ConfigError(f"--checkpoint-every {ckpt_every} is out of range: allowed [0 (final only), inf)")
    eval_every, eval_episodes = int(run.get("eval-every", 0)), int(run.get("eval-episodes", 10))
    if eval_every < 0 or eval_episodes < 1:
        bad = ("--eval-every", eval_every, 0) if eval_every < 0 else ("--eval-episodes", eval_episodes, 1)
        raise ConfigError(f"{bad[0]} {bad[1]} is out of range: allowed [{bad[2]}, inf)")
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = {"kind": "deep", "algo": algo, "env_id": env_id, "seed": seed, "total_steps": total, "preset": preset,
            "device": device, "num_threads": int(run.get("num-threads", 1)),
            "matmul_precision": run.get("matmul-precision"), "checkpoint_every": ckpt_every,
            "eval_every": eval_every, "eval_episodes": eval_episodes, "config": dataclasses.asdict(cfg)}
    (run_dir / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return _train_loop(algo, env_id, cfg, run_dir=run_dir, total_steps=total, seed=seed, device=device,
                       checkpoint_every=ckpt_every, quiet=bool(run.get("quiet")), eval_every=eval_every,
                       eval_episodes=eval_episodes)


def _read_run(run_dir: str) -> dict[str, Any]:
    p = Path(run_dir) / "config.json"
    if not p.is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no config.json)")
    try:
        meta = json.loads(p.read_text())
    except json.JSONDecodeError:
        raise ConfigError(f"{p}: not valid JSON") from None
    if meta.get("kind") != "deep" or meta.get("algo") not in ALGOS:
        raise ConfigError(f"{run_dir}: not a deep-RL run directory")
    return meta


def is_deep_run(run_dir: str) -> bool:
    """A deep-RL run directory (config.json of kind deep), or one of its ``step-N`` checkpoint dirs."""
    p = Path(run_dir)
    if (p / "MANIFEST.json").is_file() and (p / "state.json").is_file():
        return True
    try:
        _read_run(run_dir)
        return True
    except ConfigError:
        return False


def resume(run_dir: str, argv: list[str]) -> int:
    """``rlworks train --resume RUN_DIR [--total-steps N]``: continue from the latest checkpoint."""
    from ..algos import config_class
    from ..algos.onpolicy import load_session_state
    from ..config import from_dict
    from ..core.checkpoint import CheckpointError

    path = Path(run_dir)
    ckpt_given = (path / "MANIFEST.json").exists()
    run_path = path.parent.parent if ckpt_given else path
    meta = _read_run(str(run_path))
    run, over = parse_args(argv, {}, {k: v for k, v in RUN_FLAGS.items()
                                      if k in ("total-steps", "num-threads", "matmul-precision", "device")})
    try:
        _, state, ckpt = load_session_state(path)
    except CheckpointError as exc:
        raise ConfigError(str(exc)) from None
    algo = meta["algo"]
    cfg = from_dict(config_class(algo), state["agent"]["config"])
    total = int(run.get("total-steps", meta["total_steps"]))
    start = int(state["sampler"]["global_step"])
    if total <= start:
        raise ConfigError(f"--total-steps {total} is out of range: the checkpoint is already at step {start}")
    device = check_device(run.get("device", meta.get("device", "cpu")))
    run.setdefault("num-threads", meta.get("num_threads", 1))
    if meta.get("matmul_precision") is not None:
        run.setdefault("matmul-precision", meta["matmul_precision"])
    _setup_torch(run)
    meta["total_steps"] = total
    meta["matmul_precision"] = run.get("matmul-precision")
    (run_path / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return _train_loop(algo, meta["env_id"], cfg, run_dir=run_path, total_steps=total, seed=int(meta["seed"]),
                       device=device, checkpoint_every=int(meta["checkpoint_every"]),
                       quiet=bool(run.get("quiet")), resume_from=ckpt, start=start,
                       eval_every=int(meta.get("eval_every", 0)), eval_episodes=int(meta.get("eval_episodes", 10)))


def evaluate(run_dir: str, argv: list[str]) -> int:
    """``rlworks eval RUN_DIR [--episodes N] [--seed S] [--video out.gif|out.mp4] [--checkpoint step-N|best]``
    (the latest checkpoint by default; ``best``: the best evaluated policy of an ``--eval-every`` run)."""
    from rich.console import Console

    from ..algos import load
    from ..core.checkpoint import CheckpointError

    path = Path(run_dir)
    if not (path / "MANIFEST.json").exists():
        _read_run(run_dir)
    run, _ = parse_args(argv, {}, {"episodes": int, "seed": int, "video": str, "num-threads": int, "checkpoint": str})
    if run.get("checkpoint") == "best":  # the best evaluated policy of a run trained with --eval-every
        if not (path / "best" / "latest").is_file():
            raise ConfigError(f"--checkpoint best: {path} has no best policy (train with --eval-every N)")
        path = path / "best"
    elif run.get("checkpoint"):
        name = run["checkpoint"]
        if "/" in name or not (path / "checkpoints" / name).is_dir():
            have = sorted(p.name for p in (path / "checkpoints").glob("step-*")) + ["best"]
            raise ConfigError(f"--checkpoint {name!r}: no such checkpoint in {path / 'checkpoints'}"
                              f"{suggest(name, have)}")
        path = path / "checkpoints" / name
    episodes = int(run.get("episodes", 10))
    if episodes < 1:
        raise ConfigError(f"--episodes {episodes} is out of range: allowed [1, inf)")
    _setup_torch(run)
    try:
        agent = load(path)
    except CheckpointError as exc:
        raise ConfigError(str(exc)) from None
    res = agent.evaluate(episodes, seed=run.get("seed"), video=run.get("video"))
    Console().print(f"{agent.algo} {agent.env_id} step {agent.meta.get('global_step')}: return "
                    f"{res.mean_return:.2f} ± {res.std_return:.2f} over {episodes} episodes"
                    + (f"; video written to {run['video']}" if run.get("video") else ""))
    return 0
