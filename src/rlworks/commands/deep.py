"""CLI handlers for the deep algorithms: ``rlworks train ALGO``, ``train --resume`` and ``eval`` of a deep run.

The algorithms and their summaries come from ``algos.registry``; the options from their config dataclasses
(``commands.options``). The dispatcher in ``rlworks.cli`` calls these; bad input raises ``ConfigError``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from ..config import MATMUL_PRECISIONS, ConfigError, from_dict, load_toml, suggest
from . import options
from .options import QUIET_HELP, at_least, choice_arg, device_arg
from .parsing import Parser, is_checkpoint, read_run

DEFAULT_TOTAL_STEPS = 100_000
#: flags of the tabular learners, so that a deep algorithm can say whose they are
TABULAR_FLAGS = {
    "planning-steps": "dyna-q",
    **{f: "the tabular learners (q-learning, sarsa, expected-sarsa, dyna-q)"
       for f in ("episodes", "alpha", "epsilon", "tie-break", "q-init", "layout", "slip", "wall-terminal")},
}
RESUME_OPTIONS = ("--total-steps", "--checkpoint", "--device", "--num-threads", "--matmul-precision", "--quiet")


# ---------------------------------------------------------------------------------------------
# parsers
# ---------------------------------------------------------------------------------------------


def _runtime_options(group: Any) -> None:
    """Options of the process, not of the run's results: accepted by train and by --resume."""
    group.add_argument("--device", type=device_arg, metavar="DEVICE",
                       help="torch device: cpu, cuda or cuda:N (default cpu)")
    group.add_argument("--num-threads", type=at_least(1), metavar="N",
                       help="torch CPU threads (default 1: fastest for small MLPs)")
    group.add_argument("--matmul-precision", type=choice_arg(MATMUL_PRECISIONS), metavar="P",
                       help="highest (default: exact float32), high (TF32 on CUDA) or medium (bfloat16 products where "
                            "the CPU has AMX/AVX512-BF16: faster, ~2e-3 error)")
    group.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    group.add_argument("-h", "--help", action="store_true", help="show this help and exit")


def train_parser(algo: str, shown: Any = None, total_steps: int = DEFAULT_TOTAL_STEPS, description: str = "") -> Parser:
    """``rlworks train ALGO``'s options; ``shown`` (a config) and ``total_steps`` are the defaults --help lists."""
    from ..algos import config_class, info

    cls = config_class(algo)
    p = Parser(prog=f"rlworks train {algo}", usage=f"rlworks train {algo} --env ID [options]", add_help=False,
               description=description or info(algo).summary, formatter_class=options.HelpFormatter)
    run = p.add_argument_group("run options")
    run.add_argument("--env", metavar="ID", help="Gymnasium environment id, e.g. CartPole-v1")
    run.add_argument("--total-steps", type=at_least(1), metavar="N",
                     help=f"environment steps (default: {total_steps})")
    run.add_argument("--seed", type=at_least(0), default=0, metavar="S", help="random seed (default: 0)")
    run.add_argument("--run-dir", metavar="DIR", help="where the run is written (default: runs/ALGO-ENV-SEED-TIME)")
    run.add_argument("--preset", metavar="NAME",
                     help="a shipped hyperparameter preset (default: the env's own, if there is one)")
    run.add_argument("--config", metavar="FILE.toml",
                     help="your own preset: a flat TOML table of the fields below (and optionally env, total_steps), "
                          "applied on top of the preset; options on the command line win over it")
    run.add_argument("--print-config", nargs="?", const="toml", choices=("toml", "json"), metavar="toml|json",
                     help="print the resolved config (TOML, usable as --config FILE; or JSON) and exit without "
                          "training")
    run.add_argument("--checkpoint-every", type=at_least(0), metavar="N",
                     help=f"steps between checkpoints; 0: only at the end (default: {max(total_steps // 5, 1)})")
    run.add_argument("--eval-every", type=at_least(0), default=0, metavar="N",
                     help="evaluate every N steps and keep the best policy in RUN_DIR/best (default: 0, off)")
    run.add_argument("--eval-episodes", type=at_least(1), default=10, metavar="K",
                     help="deterministic episodes per evaluation (default: 10)")
    _runtime_options(run)
    fields = p.add_argument_group(f"{cls.__name__} fields (saved in config.json; also settable in a --config file)")
    options.add_config_fields(fields, cls, shown if shown is not None else cls())
    return p


def resume_parser() -> Parser:
    p = Parser(prog="rlworks train --resume", usage="rlworks train --resume RUN_DIR [options]", add_help=False,
               description="Continue a deep run from its latest checkpoint (or --checkpoint step-N), exactly where it "
                           "stopped. Its config, env and seed are those saved with the run and cannot be changed; "
                           "start a new run to train with other settings.")
    p.add_argument("--total-steps", type=at_least(1), metavar="N",
                   help="train until N environment steps (default: the run's total_steps)")
    p.add_argument("--checkpoint", metavar="step-N",
                   help="resume from this checkpoint under RUN_DIR/checkpoints (default: the latest); later "
                        "checkpoints are overwritten as training reaches them")
    _runtime_options(p)
    return p


def _reject_unknown(extras: list[str], parser: Parser, algo: str) -> None:
    """One line for the first argument the parser did not know, naming whose option it is if anyone's."""
    from ..algos import config_class, field_owner

    if not extras:
        return
    tok = extras[0]
    if not tok.startswith("-"):
        raise ConfigError(f"unexpected argument {tok!r}; options are --name value (see `{parser.prog} --help`)")
    flag = tok.split("=", 1)[0]
    name = flag.lstrip("-")
    field = name.replace("-", "_")
    if field.startswith("no_") and field[3:] in {f.name for f in dataclasses.fields(config_class(algo))}:
        raise ConfigError(f"{flag}: {field[3:]} is not a true/false field; pass --{name[3:]} VALUE")
    owners = [o for o in field_owner(field) or field_owner(field.removeprefix("no_")) if o != algo]
    if owners:
        raise ConfigError(f"{flag} is an option of {', '.join(owners)}, not of {algo}")
    if name in TABULAR_FLAGS:
        raise ConfigError(f"{flag} is an option of {TABULAR_FLAGS[name]}, not of {algo}")
    raise ConfigError(f"unknown option {flag}{suggest(flag, parser.option_names())}; see `{parser.prog} --help`")


# ---------------------------------------------------------------------------------------------
# resolving what a command line means: preset, then --config file, then flags
# ---------------------------------------------------------------------------------------------


def _config_file(path: str, algo: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config fields, run keys env/total_steps) of a user's ``--config`` file."""
    from ..algos import config_class, field_owner

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config {path}: no such file")
    table = load_toml(p)
    cls = config_class(algo)
    names = {f.name for f in dataclasses.fields(cls)}
    fields, extras = {}, {}
    for key, value in table.items():
        if isinstance(value, dict):
            raise ConfigError(f"{p}: expected a flat table of {cls.__name__} fields, found the table [{key}] "
                              f"(to use a shipped preset, pass --preset NAME)")
        if key == "env":
            if not isinstance(value, str):
                raise ConfigError(f"{p}: env = {value!r} is not an env id string")
            extras[key] = value
        elif key == "total_steps":
            if not options.is_type(value, int):
                raise ConfigError(f"{p}: total_steps = {value!r} is not an integer")
            if value < 1:
                raise ConfigError(f"{p}: total_steps = {value!r} is out of range: allowed [1, inf)")
            extras[key] = value
        elif key in names:
            fields[key] = options.check_value(str(p), cls, key, value)
        else:
            owners = field_owner(key)
            whose = f" (a field of {', '.join(owners)})" if owners else suggest(key, [*names, "env", "total_steps"])
            raise ConfigError(f"{p}: unknown field {key!r} for {algo}{whose}")
    return fields, extras


@dataclasses.dataclass
class Plan:
    """What ``rlworks train ALGO ...`` will run, before anything is written."""

    config: Any
    env_id: str | None
    preset: str | None
    preset_given: bool
    total_steps: int


def _resolve(algo: str, env_id: str | None, ns: argparse.Namespace) -> Plan:
    from ..algos import config_class, preset_config, preset_extras

    cls = config_class(algo)
    from_file, file_extras = _config_file(ns.config, algo) if ns.config else ({}, {})
    env_id = env_id or ns.env or file_extras.get("env")
    base, preset = preset_config(algo, env_id, ns.preset)
    extras = preset_extras(algo, preset)
    cfg = from_dict(cls, {**dataclasses.asdict(base), **from_file, **options.given(ns, cls)})
    total = ns.total_steps or file_extras.get("total_steps") or extras.get("total_steps") or DEFAULT_TOTAL_STEPS
    return Plan(cfg, env_id or extras.get("env"), preset, ns.preset is not None, int(total))


def _help_text(algo: str, plan: Plan, ns: argparse.Namespace) -> str:
    from ..algos import info, presets

    a = info(algo)
    names = ", ".join(sorted(presets(algo))) or "none"
    if plan.preset is not None:
        how = f"the preset {plan.preset!r} ({'--preset' if plan.preset_given else 'the preset of --env'})"
    elif plan.env_id:
        how = f"the config's defaults (no preset for {plan.env_id})"
    else:
        how = "the config's defaults (--env ID applies that env's preset, if it has one)"
    layers = [how] + ([f"then {ns.config}"] if ns.config else []) + ["then the options on this command line"]
    lines = [f"{a.summary}. Actions: {', '.join(a.actions)}; observations: {', '.join(a.observations)}.",
             f"The defaults shown are the values this command would use: {', '.join(layers)}.",
             f"Shipped presets: {names}."]
    return "\n".join(textwrap.fill(line, 100) for line in lines)


def _print_config(algo: str, plan: Plan, seed: int, fmt: str, config_file: str | None) -> None:
    values = dataclasses.asdict(plan.config)
    if fmt == "json":
        print(json.dumps({"algo": algo, "env": plan.env_id, "preset": plan.preset, "config_file": config_file,
                          "total_steps": plan.total_steps, "seed": seed, "config": values}, indent=2))
        return
    print(f"# rlworks train {algo}: resolved config (preset {plan.preset or 'none'}"
          f"{', then ' + config_file if config_file else ''}, then the command line; seed {seed})")
    print("# pass this file back with --config FILE.toml")
    if plan.env_id:
        print(f"env = {options.toml_value(plan.env_id)}")
    print(f"total_steps = {plan.total_steps}")
    for k, v in values.items():
        print(f"# {k} is unset (None)" if v is None else f"{k} = {options.toml_value(v)}")


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------


def train(algo: str, env_id: str | None, argv: list[str]) -> int:
    """``rlworks train ALGO --env ID [flags]``; returns the exit code."""
    from ..algos import check_algo
    from ..core.vec import check_env_id

    check_algo(algo)
    parser = train_parser(algo)
    ns, extras = parser.parse_known_args(argv)
    _reject_unknown(extras, parser, algo)
    plan = _resolve(algo, env_id, ns)
    if ns.help:  # parsed again so that the defaults listed are the resolved ones
        print(train_parser(algo, plan.config, plan.total_steps, _help_text(algo, plan, ns)).format_help(), end="")
        return 0
    if not plan.env_id:
        raise ConfigError("--env is required (a gymnasium id such as CartPole-v1)")
    check_env_id(plan.env_id)
    if ns.print_config:
        _print_config(algo, plan, ns.seed, ns.print_config, ns.config)
        return 0
    env_id, total, seed = plan.env_id, plan.total_steps, ns.seed
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(ns.run_dir or f"runs/{algo}-{env_id.replace('/', '_')}-{seed}-{stamp}")
    if (run_dir / "checkpoints").exists():
        raise ConfigError(f"{run_dir} already holds a run; use --resume {run_dir} or another --run-dir")
    ckpt_every = ns.checkpoint_every if ns.checkpoint_every is not None else max(total // 5, 1)
    device = ns.device or "cpu"
    threads = ns.num_threads or 1
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = {"kind": "deep", "algo": algo, "env_id": env_id, "seed": seed, "total_steps": total, "preset": plan.preset,
            "device": device, "num_threads": threads, "matmul_precision": ns.matmul_precision,
            "checkpoint_every": ckpt_every, "eval_every": ns.eval_every, "eval_episodes": ns.eval_episodes,
            "config": dataclasses.asdict(plan.config)}
    (run_dir / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return _train_loop(algo, env_id, plan.config, run_dir=run_dir, total_steps=total, seed=seed, device=device,
                       threads=threads, precision=ns.matmul_precision, checkpoint_every=ckpt_every, quiet=ns.quiet,
                       eval_every=ns.eval_every, eval_episodes=ns.eval_episodes)


def resume(run_dir: str, argv: list[str]) -> int:
    """``rlworks train --resume RUN_DIR [--total-steps N] ...``: continue from the latest checkpoint."""
    from ..algos import check_algo, config_class
    from ..algos.onpolicy import load_session_state
    from ..core.checkpoint import CheckpointError

    parser = resume_parser()
    ns, extras = parser.parse_known_args(argv)
    if ns.help:
        parser.print_help()
        return 0
    path = Path(run_dir)
    ckpt = path if is_checkpoint(path) else None
    run_path = path.parent.parent if ckpt is not None else path
    if ckpt is not None and not (path.parent.name == "checkpoints" and (run_path / "config.json").is_file()):
        raise ConfigError(f"{path} is a saved agent, not inside a run directory; --resume takes a run directory "
                          f"written by `rlworks train` (or one of its checkpoints/step-N)")
    meta = read_run(run_path)
    if meta["kind"] == "tabular":
        raise ConfigError(f"{run_path} is a tabular run ({meta.get('algo')} on {meta.get('env')}); tabular runs train "
                          f"in one go and cannot be resumed: start a new one with `rlworks train {meta.get('algo')}`")
    algo = meta["algo"]
    try:
        check_algo(algo)
    except ConfigError as exc:
        raise ConfigError(f"{run_path / 'config.json'}: {exc}") from None
    if extras:
        _reject_on_resume(extras[0], parser, algo, meta, run_path)
    if ns.checkpoint:
        if ckpt is not None:
            raise ConfigError(f"--checkpoint: {path} already names a checkpoint; pass the run directory instead")
        ckpt = _named_checkpoint(run_path, ns.checkpoint, allow_best=False)
    try:
        _, state, ckpt = load_session_state(ckpt or run_path)
    except CheckpointError as exc:
        raise ConfigError(str(exc)) from None
    cfg = from_dict(config_class(algo), state["agent"]["config"])
    start = int(state["sampler"]["global_step"])
    if ns.total_steps is None:
        total = int(meta["total_steps"])
        if total <= start:
            raise ConfigError(f"{run_path} already finished at step {start} (its total_steps); "
                              f"pass --total-steps N > {start} to train further")
    else:
        total = ns.total_steps
        if total <= start:
            raise ConfigError(f"--total-steps {total} is out of range: the checkpoint {ckpt} is already at step "
                              f"{start}; allowed N > {start}")
    device = ns.device or meta.get("device", "cpu")
    threads = ns.num_threads or int(meta.get("num_threads", 1))
    precision = ns.matmul_precision or meta.get("matmul_precision")
    meta.update(total_steps=total, matmul_precision=precision)
    (run_path / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return _train_loop(algo, meta["env_id"], cfg, run_dir=run_path, total_steps=total, seed=int(meta["seed"]),
                       device=device, threads=threads, precision=precision,
                       checkpoint_every=int(meta["checkpoint_every"]), quiet=ns.quiet, resume_from=ckpt, start=start,
                       eval_every=int(meta.get("eval_every", 0)), eval_episodes=int(meta.get("eval_episodes", 10)))


def _reject_on_resume(tok: str, parser: Parser, algo: str, meta: dict[str, Any], run_path: Path) -> None:
    from ..algos import config_class

    flag = tok.split("=", 1)[0]
    allowed = f"--resume takes only {', '.join(RESUME_OPTIONS)}"
    if not tok.startswith("-"):
        raise ConfigError(f"unexpected argument {tok!r}; {allowed}")
    name = flag.lstrip("-").removeprefix("no-").replace("-", "_")
    train_flags = set(train_parser(algo).option_names())
    if flag in train_flags:
        what = (f"{flag} sets {config_class(algo).__name__}.{name}, a config field"
                if name in meta["config"] else f"{flag} is fixed by the run")
        raise ConfigError(f"{what}: a run's settings cannot be changed on resume ({run_path / 'config.json'} keeps "
                          f"them); {allowed}; to train with other settings start a new run: "
                          f"rlworks train {algo} --env {meta['env_id']} {flag} ...")
    raise ConfigError(f"unknown option {flag}{suggest(flag, parser.option_names())}; {allowed}")


def _named_checkpoint(run_path: Path, name: str, *, allow_best: bool) -> Path:
    """RUN/checkpoints/step-N, or RUN/best, from a ``--checkpoint`` value."""
    if name == "best" and allow_best:  # the best evaluated policy of a run trained with --eval-every
        if not (run_path / "best" / "latest").is_file():
            raise ConfigError(f"--checkpoint best: {run_path} has no best policy (train with --eval-every N)")
        return run_path / "best"
    if "/" in name or not (run_path / "checkpoints" / name).is_dir():
        steps = sorted((p.name for p in (run_path / "checkpoints").glob("step-*")), key=lambda n: (len(n), n))
        have = steps + (["best"] if allow_best else [])
        raise ConfigError(f"--checkpoint {name!r}: no such checkpoint in {run_path / 'checkpoints'}"
                          f"{suggest(name, have)}; have: {', '.join(have) or 'none'}")
    return run_path / "checkpoints" / name


def _train_loop(algo: str, env_id: str, cfg: Any, *, run_dir: Path, total_steps: int, seed: int, device: str,
                threads: int, precision: str | None, checkpoint_every: int, quiet: bool,
                resume_from: Path | None = None, start: int = 0, eval_every: int = 0, eval_episodes: int = 10) -> int:
    from ..algos import info
    from ..core.evaluation import PeriodicEvaluator
    from ..core.guards import NonFiniteError
    from ..core.logging import Progress, RunLogger, Tee
    from ..core.run import RunContext
    from ..core.runtime import tuned

    on_start = None
    if info(algo).family == "off-policy" and not quiet:  # say how much memory the replay buffer takes
        from ..algos.offpolicy import describe_buffer

        def on_start(session: Any) -> None:
            print(describe_buffer(session))

    # the CLI owns the process, so it may also keep freed heap between updates (core/runtime.py)
    with tuned(threads, matmul_precision=precision, retain_freed_memory=True):
        logger = RunLogger(run_dir, resume_step=start if resume_from is not None else None)
        # eval rows go to metrics.csv/TensorBoard only, not to the progress bar
        evaluator = PeriodicEvaluator(eval_every, eval_episodes, logger=logger, best_dir=run_dir / "best",
                                      start=start) if eval_every else None
        progress = Progress(total_steps, f"{algo} {env_id}", start=start, quiet=quiet)
        t0 = time.time()
        run = RunContext(logger=Tee(logger, progress), checkpoint_dir=run_dir / "checkpoints",
                         checkpoint_every=checkpoint_every, callback=evaluator, on_start=on_start,
                         resume_from=resume_from)
        try:
            agent = info(algo).train(env_id, cfg, total_steps=total_steps, seed=seed, device=device, run=run)
        except NonFiniteError as exc:
            progress.close()
            logger.close(f"{algo} {env_id}")
            sys.stderr.write(f"rlworks: error: training stopped: {' '.join(str(exc).split())}\n")
            return 1
        progress.close()
        logger.close(f"{algo} {env_id} seed {seed}")
        if quiet:
            return 0
        res = agent.evaluate(5, seed=10_000 + seed)
    wall = time.time() - t0
    steps = agent.meta["global_step"]
    sps = (steps - start) / max(agent.meta.get("train_seconds", wall), 1e-9)
    # plain print, not rich: a path or a summary must never be wrapped or read as markup when piped
    print(f"done: {algo} on {env_id}: {steps} steps in {wall:.1f} s ({sps:.0f} training steps/s); "
          f"evaluation (5 episodes) {res.mean_return:.1f} ± {res.std_return:.1f}")
    if evaluator is not None and evaluator.best_step is not None:
        print(f"best evaluation: {evaluator.best_return:.1f} at step {evaluator.best_step} "
              f"(rlworks eval {run_dir} --checkpoint best)")
    print(f"run directory: {run_dir}  (rlworks eval {run_dir})")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """``rlworks eval RUN_DIR [--episodes N] [--seed S] [--video out.gif|out.mp4] [--checkpoint step-N|best]``
    of a deep run (the latest checkpoint by default), a checkpoint folder or a saved agent."""
    from ..algos import load
    from ..core.checkpoint import CheckpointError
    from ..core.runtime import tuned

    path = Path(args.run_dir)
    if args.checkpoint:
        if is_checkpoint(path):
            raise ConfigError(f"--checkpoint: {path} already names a checkpoint; pass the run directory instead")
        path = _named_checkpoint(path, args.checkpoint, allow_best=True)
    episodes = args.episodes or 10
    with tuned(args.num_threads or 1, retain_freed_memory=True):
        try:
            agent = load(path, device=args.device or "cpu")
        except CheckpointError as exc:
            raise ConfigError(str(exc)) from None
        res = agent.evaluate(episodes, seed=args.seed, video=args.video)
    print(f"{agent.algo} {agent.env_id} step {agent.meta.get('global_step')}: return "
          f"{res.mean_return:.2f} ± {res.std_return:.2f} over {episodes} episodes"
          + (f"; video written to {args.video}" if args.video else ""))
    return 0

