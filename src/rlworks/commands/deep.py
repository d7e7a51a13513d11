"""CLI handlers for the deep algorithms: ``rlworks train ALGO``, ``train --resume`` and ``eval`` of a deep run.

The algorithms and their summaries come from ``algos.registry``; the options from their config dataclasses
(``commands.options``). The dispatcher in ``rlworks.cli`` calls these; bad input raises ``ConfigError``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from ..config import MATMUL_PRECISIONS, ConfigError, from_saved, suggest
from . import options
from .options import QUIET_HELP, at_least, choice_arg, device_arg
from .parsing import Parser, is_checkpoint, is_step_dir, named_checkpoint, read_run
from .resolve import DEFAULT_TOTAL_STEPS, evaluation, help_text, print_config, resolve
from .seeds import parse_seeds

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
    from ..algos import KEEP, config_class, info
    from ..algos.rundir import default_checkpoint_every

    cls = config_class(algo)
    offline = info(algo).family == "offline"  # learns from --dataset for gradient steps; the env only evaluates
    usage = f"rlworks train {algo} " + ("--dataset ID [--env ID] [options]" if offline else "--env ID [options]")
    p = Parser(prog=f"rlworks train {algo}", usage=usage, add_help=False,
               description=description or info(algo).summary, formatter_class=options.HelpFormatter)
    run = p.add_argument_group("run options")
    run.add_argument("--env", metavar="ID", help="Gymnasium environment id, e.g. CartPole-v1"
                     + ("; here only evaluated on (default: the dataset's)" if offline else ""))
    run.add_argument("--env-kwargs", nargs="+", metavar="KEY=VALUE",
                     help="arguments for gymnasium.make (values read as JSON or TOML, else text), e.g. "
                          "--env-kwargs is_slippery=false map_name=8x8")
    run.add_argument("--wrapper", action="append", metavar="NAME",
                     help="a wrapper applied to every env (repeatable, in order): a gymnasium.wrappers class, e.g. "
                          "--wrapper NormalizeReward, or one of rlworks' own: atari, minigrid, minigrid-image "
                          "(atari and minigrid are applied automatically to their ids)")
    run.add_argument("--total-steps", type=at_least(1), metavar="N",
                     help=f"{'gradient' if offline else 'environment'} steps (default: {total_steps})")
    run.add_argument("--seed", type=at_least(0), default=0, metavar="S", help="random seed (default: 0)")
    run.add_argument("--run-dir", metavar="DIR", help="where the run is written (default: runs/ALGO-ENV-SEED-TIME)")
    run.add_argument("--seeds", type=parse_seeds, metavar="LIST",
                     help="train one run per seed, each in its own process, e.g. 0-9, 0,3,5 or 0-2,7: the runs go to "
                          "RUN_DIR/seed-S (default RUN_DIR: runs/ALGO-ENV-seeds-TIME); compare them with rlworks "
                          "compare RUN_DIR")
    run.add_argument("--jobs", type=at_least(1), metavar="N", help="with --seeds: seeds trained at a time (default: 1)")
    run.add_argument("--preset", metavar="NAME",
                     help="a shipped hyperparameter preset (default: the env's own, if there is one)")
    run.add_argument("--config", metavar="FILE.toml",
                     help="your own preset: a flat TOML table of the fields below (and optionally env, total_steps), "
                          "applied on top of the preset; options on the command line win over it")
    run.add_argument("--print-config", nargs="?", const="toml", choices=("toml", "json"), metavar="toml|json",
                     help="print the resolved config (TOML, usable as --config FILE; or JSON) and exit without "
                          "training")
    run.add_argument("--checkpoint-every", type=at_least(0), metavar="N",
                     help=f"steps between checkpoints; 0: only at the end (default: "
                          f"{default_checkpoint_every(total_steps)})")
    run.add_argument("--keep-checkpoints", type=at_least(1), metavar="N",
                     help="keep only the N newest checkpoints (default: all); Ctrl+C also writes one")
    run.add_argument("--eval-every", type=at_least(0), metavar="N",
                     help="evaluate every N steps and keep the best policy in RUN_DIR/best (default: the preset's, "
                          "else 0: off)")
    run.add_argument("--eval-episodes", type=at_least(1), metavar="K",
                     help="deterministic episodes per evaluation (default: the preset's, else 10)")
    run.add_argument("--keep", type=choice_arg(KEEP), metavar="best|last",
                     help="the policy the run ends with (RUN_DIR/best, or the final one; rlworks eval RUN_DIR reads "
                          "it): best needs --eval-every (default: the preset's, else last)")
    _runtime_options(run)
    fields = p.add_argument_group(f"{cls.__name__} fields (saved in config.json; also settable in a --config file)")
    options.add_config_fields(fields, cls, shown if shown is not None else cls())
    return p


def resume_parser() -> Parser:
    p = Parser(prog="rlworks train --resume", usage="rlworks train --resume RUN_DIR [options]", add_help=False,
               description="Continue a deep run from its latest checkpoint (the newest intact one if the latest is "
                           "damaged; or --checkpoint step-N), exactly where it stopped. Its config, env and seed "
                           "are those saved with the run and cannot be changed; start a new run to train with other "
                           "settings.")
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
# commands
# ---------------------------------------------------------------------------------------------


def train(algo: str, env_id: str | None, argv: list[str]) -> int:
    """``rlworks train ALGO --env ID [flags]``; returns the exit code."""
    from ..algos import check_algo, info
    from ..algos.rundir import RunFolder, default_checkpoint_every, default_run_dir, run_meta
    from ..core.envs import env_source, parse_env_kwargs
    from ..core.vec import check_env_id

    check_algo(algo)
    parser = train_parser(algo)
    ns, extras = parser.parse_known_args(argv)
    if (ns.seeds is not None or ns.jobs is not None) and not ns.help:
        from .seeds import check_args

        check_args(argv, ns)  # --seed, --resume or --print-config with --seeds; --jobs without it
    _reject_unknown(extras, parser, algo)
    plan = resolve(algo, env_id, ns)
    if ns.help:  # parsed again so that the defaults listed are the resolved ones
        print(train_parser(algo, plan.config, plan.total_steps, help_text(algo, plan, ns)).format_help(), end="")
        return 0
    data = None
    if info(algo).family == "offline" and not (ns.print_config and plan.env_id):
        from ..algos.offline import env_of, resolve_dataset

        data = resolve_dataset(algo, plan.config.dataset)  # loaded once, here; its env is the default one
        if not plan.env_id:
            plan = resolve(algo, env_of(algo, data), ns)
    if not plan.env_id:
        raise ConfigError("--env is required (a gymnasium id such as CartPole-v1)")
    check_env_id(plan.env_id)
    ev, keep = evaluation(algo, plan, ns)
    if ns.print_config:
        print_config(algo, plan, ns.seed, ns.print_config, ns.config, ev, keep)
        return 0
    env_id, total, seed = plan.env_id, plan.total_steps, ns.seed
    # an env with kwargs or wrappers is recorded in config.json, from which resume rebuilds it
    kwargs = parse_env_kwargs(ns.env_kwargs or [])
    if data is not None and not kwargs and env_id == data.env_id:  # the dataset's env as it was recorded
        kwargs = dict(data.env_kwargs)
    source = env_source(env_id, kwargs, ns.wrapper or [])
    device = ns.device or "cpu"
    threads = ns.num_threads or 1
    meta = run_meta(algo, env_id, plan.config, seed=seed, total_steps=total, preset=plan.preset, device=device,
                    num_threads=threads, matmul_precision=ns.matmul_precision,
                    checkpoint_every=default_checkpoint_every(total) if ns.checkpoint_every is None
                    else ns.checkpoint_every,
                    eval_every=ev.get("eval_every", 0), eval_episodes=ev.get("eval_episodes", 10),
                    keep_checkpoints=ns.keep_checkpoints, keep=keep)
    meta["env"] = source.record()
    if ns.seeds is not None:  # one child process per seed, each running this command line with --seed S
        from .seeds import run_seed_set

        return run_seed_set(algo, env_id, argv, ns)
    # nothing is written until the session is built: a run that cannot start leaves no folder (algos/rundir.py)
    folder = RunFolder(ns.run_dir or default_run_dir(algo, env_id, seed), meta)
    fed = None
    if data is not None:  # the loaded dataset goes to the algorithm with the env
        from ..algos.offline import OfflineSource

        fed = OfflineSource(source, data)
    return _train_loop(folder, plan.config, device=device, threads=threads, precision=ns.matmul_precision,
                       quiet=ns.quiet, env=fed)


def resume(run_dir: str, argv: list[str]) -> int:
    """``rlworks train --resume RUN_DIR [--total-steps N] ...``: continue from the latest checkpoint."""
    from ..algos import check_algo, config_class
    from ..algos.onpolicy import load_session_state
    from ..algos.rundir import RunFolder
    from ..core.checkpoint import CheckpointError, intact_checkpoint

    parser = resume_parser()
    ns, extras = parser.parse_known_args(argv)
    if ns.help:
        parser.print_help()
        return 0
    path = Path(run_dir)
    ckpt = path if is_step_dir(path) else None
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
        ckpt = named_checkpoint(run_path, ns.checkpoint, allow_best=False)
    try:
        # the latest checkpoint, or else the newest intact one before it; one named (a step-N) is taken or refused
        ckpt, damaged = intact_checkpoint(ckpt or run_path)
        for bad, why in damaged:
            sys.stderr.write(f"{bad.name} is damaged ({' '.join(why.split())}); resuming from {ckpt.name}\n")
        _, state, ckpt = load_session_state(ckpt)
    except CheckpointError as exc:
        raise ConfigError(str(exc)) from None
    cfg = from_saved(config_class(algo), state["agent"]["config"], ckpt / "state.json")
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
    meta.setdefault("eval_every", 0)  # runs written before these keys existed
    meta.setdefault("eval_episodes", 10)
    folder = RunFolder(run_path, meta, resume_from=ckpt)
    return _train_loop(folder, cfg, device=device, threads=threads, precision=precision, quiet=ns.quiet)


def _reject_on_resume(tok: str, parser: Parser, algo: str, meta: dict[str, Any], run_path: Path) -> None:
    from ..algos import config_class

    flag = tok.split("=", 1)[0]
    allowed = f"--resume takes only {', '.join(RESUME_OPTIONS)}"
    if not tok.startswith("-"):
        raise ConfigError(f"unexpected argument {tok!r}; {allowed}")
    if flag in ("--seeds", "--jobs"):
        raise ConfigError(f"{flag} starts a new seed set and cannot be combined with --resume; resume each seed's "
                          f"run on its own: rlworks train --resume SET/seed-S")
    name = flag.lstrip("-").removeprefix("no-").replace("-", "_")
    train_flags = set(train_parser(algo).option_names())
    if flag in train_flags:
        what = (f"{flag} sets {config_class(algo).__name__}.{name}, a config field"
                if name in meta["config"] else f"{flag} is fixed by the run")
        raise ConfigError(f"{what}: a run's settings cannot be changed on resume ({run_path / 'config.json'} keeps "
                          f"them); {allowed}; to train with other settings start a new run: "
                          f"rlworks train {algo} --env {meta['env_id']} {flag} ...")
    raise ConfigError(f"unknown option {flag}{suggest(flag, parser.option_names())}; {allowed}")


def _train_loop(folder: Any, cfg: Any, *, device: str, threads: int, precision: str | None, quiet: bool,
                env: Any = None) -> int:
    """Train into ``folder`` (an ``algos.rundir.RunFolder``) with a progress bar; print the outcome. ``env``:
    what the algorithm takes as its env when not the run's own (an offline algorithm's env and dataset)."""
    from ..algos import info
    from ..core.guards import NonFiniteError
    from ..core.logging import Progress
    from ..core.run import TrainingInterrupted
    from ..core.runtime import tuned

    meta, run_dir = folder.meta, folder.path
    algo, env_id, seed = meta["algo"], meta["env_id"], meta["seed"]
    # the CLI owns the process, so it may also keep freed heap between updates (core/runtime.py)
    with tuned(threads, matmul_precision=precision, retain_freed_memory=True):
        progress = Progress(meta["total_steps"], f"{algo} {env_id}", start=folder.start, quiet=quiet)

        def on_start(session: Any) -> None:  # the session is built: the run will start
            if info(algo).family == "off-policy" and not quiet:  # how much memory the replay buffer takes
                from ..algos.offpolicy import describe_buffer

                print(describe_buffer(session))
            progress.begin()

        t0 = time.time()
        try:
            agent = folder.train(cfg, env=env, device=device, display=progress, on_start=on_start)
        except NonFiniteError as exc:
            sys.stderr.write(f"rlworks: error: training stopped: {' '.join(str(exc).split())}\n")
            return 1
        except TrainingInterrupted as exc:  # SIGINT/SIGTERM: the loop finished its step and wrote a checkpoint
            sys.stderr.write(f"rlworks: interrupted at step {exc.step}; checkpoint written; resume with "
                             f"rlworks train --resume {run_dir}\n")
            return 128 + exc.signum  # the shell's code for death by that signal: 130 for SIGINT, 143 for SIGTERM
        finally:
            progress.close()
        if quiet:
            return 0
        res = agent.evaluate(5, seed=10_000 + seed)
    wall = time.time() - t0
    steps = agent.meta.get("final_step", agent.meta["global_step"])  # a kept best policy names the run's end
    sps = (steps - folder.start) / max(agent.meta.get("train_seconds", wall), 1e-9)
    kept = f" of the best policy (step {agent.meta['global_step']}, --keep best)" if "final_step" in agent.meta else ""
    # plain print, not rich: a path or a summary must never be wrapped or read as markup when piped
    print(f"done: {algo} on {env_id}: {steps} steps in {wall:.1f} s ({sps:.0f} training steps/s); "
          f"evaluation (5 episodes){kept} {res.mean_return:.1f} ± {res.std_return:.1f}")
    evaluator = folder.evaluator
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
        path = named_checkpoint(path, args.checkpoint, allow_best=True)
    elif (path / "best" / "latest").is_file() and read_run(path).get("keep") == "best":
        path = path / "best"  # the policy the run kept (--keep best); --checkpoint step-N reads the others
    episodes = args.episodes or 10
    with tuned(args.num_threads or 1, retain_freed_memory=True):
        try:
            agent = load(path, device=args.device or "cpu")
        except CheckpointError as exc:
            raise ConfigError(str(exc)) from None
        env = None
        if args.env_kwargs:
            import gymnasium as gym

            from ..core.envs import parse_env_kwargs

            if not agent.env_id:
                raise ConfigError("--env-kwargs needs an agent trained on a registered env id")
            kwargs = {**agent.env_kwargs, **parse_env_kwargs(args.env_kwargs)}
            env = lambda: gym.make(agent.env_id, **kwargs)  # noqa: E731
        if args.show_search:
            from .show_search import show_search

            print(f"search picture written to {show_search(agent, env, args.seed or 0, args.show_search)}")
        res = agent.evaluate(episodes, seed=args.seed, video=args.video, env=env() if env else None)
    print(f"{agent.algo} {agent.env_id} step {agent.meta.get('global_step')}: return "
          f"{res.mean_return:.2f} ± {res.std_return:.2f} over {episodes} episodes"
          + (f"; video written to {args.video}" if args.video else ""))
    return 0


