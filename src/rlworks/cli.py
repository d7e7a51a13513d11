"""The ``rlworks`` command: parses, dispatches, prints. No algorithm logic lives here.

    rlworks train ALGO --env ID [...]     train a tabular or deep algorithm (`rlworks list` names them all)
    rlworks train --resume RUN_DIR        continue a deep run where it stopped (its options: --resume --help)
    rlworks plan value-iteration|policy-iteration --env ID
    rlworks eval RUN_DIR                  greedy episodes of a saved agent
    rlworks compare RUN_OR_GLOB ...       runs and seed sets side by side: IQM with 95% bootstrap intervals, curves
    rlworks collect --from RUN_DIR ...    record episodes of an agent (or random) as a Minari dataset
    rlworks datasets list|show|make       offline datasets on disk; `datasets make ENV`: D4RL's five kinds
    rlworks lab                           the live grid world in the browser (--label PAIRS: preference labelling)
    rlworks rlhf run|pretrain|sft|...     RLHF on a language model made here: reward model, PPO, DPO, GRPO
    rlworks list                          algorithms and envs
    rlworks bench                         benchmarks against the peers, printed as ratios (bench offline: the
                                          D4RL-protocol table on locally made datasets)

Any bad input ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console

from rlworks.commands.parsing import Done
from rlworks.config import ConfigError, suggest

USAGE = __doc__.split("\n\n")[1]
COMMANDS = ("train", "plan", "eval", "compare", "collect", "datasets", "lab", "rlhf", "list", "bench")


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit 1 here; main() ends every command the same quiet way when the reader goes away
        raise BrokenPipeError


def _deep():
    try:
        from rlworks.commands import deep
    except ImportError as exc:  # torch or the deep package missing
        raise ConfigError(f"deep RL is unavailable here: {exc}") from None
    return deep


def cmd_train(argv: list[str], console: Console) -> int:
    from rlworks.algos.registry import ALGOS
    from rlworks.commands import tabular

    if not argv or argv[0] in ("-h", "--help"):
        # plain print: rich would read "[options]" as markup and drop it
        print("usage: rlworks train ALGO --env ID [options]  |  rlworks train --resume RUN_DIR [options]")
        print(f"tabular: {', '.join(tabular.ALGORITHMS)}")
        print(f"deep:    {', '.join(ALGOS)}")
        print("`rlworks train ALGO --help` lists every option of ALGO; `rlworks train --resume --help` those of "
              "resume.")
        return 0
    if argv[0] == "--resume" or argv[0].startswith("--resume="):
        rest = argv[1:]
        if "=" in argv[0]:
            run_dir = argv[0].split("=", 1)[1]
        elif rest and not rest[0].startswith("-"):
            run_dir, rest = rest[0], rest[1:]
        elif any(a in ("-h", "--help") for a in rest):
            return _deep().resume("", rest)
        else:
            raise ConfigError("--resume needs a run directory")
        return _deep().resume(run_dir, rest)
    algo, rest = argv[0], argv[1:]
    if algo in tabular.ALGORITHMS:
        return tabular.train(algo, rest, console)
    if algo in ALGOS:
        return _deep().train(algo, None, rest)
    known = tuple(tabular.ALGORITHMS) + ALGOS
    if algo in tabular.PLANNERS:
        raise ConfigError(f"{algo} is a planner: use `rlworks plan {algo} --env ID`")
    raise ConfigError(f"unknown algorithm {algo!r}{suggest(algo, known)}; available: {', '.join(known)}")


def cmd_plan(argv: list[str], console: Console) -> int:
    from rlworks.commands import tabular

    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: rlworks plan {{{','.join(tabular.PLANNERS)}}} --env ID [--gamma G]")
        return 0
    method, rest = argv[0], argv[1:]
    if method not in tabular.PLANNERS:
        raise ConfigError(f"unknown planner {method!r}{suggest(method, tabular.PLANNERS)}; "
                          f"available: {', '.join(tabular.PLANNERS)}")
    return tabular.plan(method, rest, console)


def cmd_eval(argv: list[str], console: Console) -> int:
    from rlworks.commands import tabular
    from rlworks.commands.options import DEEP_EVAL_ONLY, eval_parser
    from rlworks.commands.parsing import is_checkpoint, read_run

    args = eval_parser().parse_args(argv)  # --help anywhere prints the help and ends here
    if is_checkpoint(args.run_dir):  # a checkpoints/step-N folder or a saved agent
        return _deep().evaluate(args)
    meta = read_run(args.run_dir)
    if meta["kind"] == "deep":
        return _deep().evaluate(args)
    for name in DEEP_EVAL_ONLY:
        if getattr(args, name) is not None:
            raise ConfigError(f"--{name.replace('_', '-')} is an option for deep runs; {args.run_dir} is a tabular "
                              f"run ({meta.get('algo')})")
    return tabular.evaluate(args, console)


def cmd_compare(argv: list[str], console: Console) -> int:
    from rlworks.commands import compare

    return compare.main(argv)


def _datasets():
    try:
        import minari  # noqa: F401

        from rlworks.commands import datasets
    except ImportError as exc:  # the offline extra missing
        raise ConfigError(f"offline datasets are unavailable here ({exc}); install rlworks[offline]") from None
    return datasets


def cmd_collect(argv: list[str], console: Console) -> int:
    return _datasets().collect(argv)


def cmd_datasets(argv: list[str], console: Console) -> int:
    return _datasets().datasets(argv)


def cmd_lab(argv: list[str], console: Console) -> int:
    try:
        from rlworks.commands import lab
    except ImportError as exc:
        raise ConfigError(f"the lab is unavailable here: {exc}") from None
    return lab.main(argv)


def cmd_rlhf(argv: list[str], console: Console) -> int:
    from rlworks.commands import rlhf

    return rlhf.main(argv)


def cmd_list(argv: list[str], console: Console) -> int:
    from rich.table import Table

    from rlworks.algos.registry import REGISTRY
    from rlworks.commands import tabular

    if argv:
        raise ConfigError(f"rlworks list takes no arguments (got {' '.join(argv)})")
    algos = [*tabular.list_algorithms(),
             *((name, f"deep, {' or '.join(a.actions)} actions: {a.summary}") for name, a in REGISTRY.items())]
    if not console.is_terminal:  # piped (grep, head): one unwrapped line per entry, name TAB description
        for name, what in algos:
            print(f"{name}\t{what}")
        for env_id, what in tabular.TABULAR_ENVS:
            print(f"{env_id}\ttabular env: {what}")
        return 0
    t = Table(title="algorithms")
    t.add_column("name", style="bold")
    t.add_column("what")
    for name, what in algos:
        t.add_row(name, what)
    console.print(t)
    e = Table(title="environments for tabular methods (any Discrete-observation Gymnasium env works too)")
    e.add_column("id", style="bold")
    e.add_column("what")
    for env_id, what in tabular.TABULAR_ENVS:
        e.add_row(env_id, what)
    console.print(e)
    print("Deep algorithms take Gymnasium envs with Box observations, e.g. CartPole-v1, Acrobot-v1, Pendulum-v1, "
          "LunarLander-v3, HalfCheetah-v5, Hopper-v5.")
    return 0


def cmd_bench(argv: list[str], console: Console) -> int:
    if argv and argv[0] == "exploration":  # the DeepSea scaling plot: no peer library involved
        from rlworks.commands import exploration

        return exploration.main(argv[1:])
    if argv and argv[0] == "tabular":
        import importlib.util

        path = Path(__file__).resolve().parents[2] / "benchmarks" / "tabular_seed.py"
        if not path.is_file():
            raise ConfigError(f"{path} not found: benchmarks run from a source checkout of rlworks")
        spec = importlib.util.spec_from_file_location("tabular_seed", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        return int(module.main(argv[1:]) or 0)
    try:
        from rlworks.commands import bench
    except ImportError as exc:
        raise ConfigError(f"deep benchmarks are unavailable here: {exc}") from None
    return bench.main(argv)


HANDLERS = {"train": cmd_train, "plan": cmd_plan, "eval": cmd_eval, "compare": cmd_compare, "collect": cmd_collect,
            "datasets": cmd_datasets, "lab": cmd_lab, "rlhf": cmd_rlhf, "list": cmd_list, "bench": cmd_bench}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _run(argv)
        sys.stdout.flush()  # a reader that went away shows up here at the latest, while it can still be caught
        return code
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as Unix tools do
        # stdout now points nowhere, so that Python's own flush at exit does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _run(argv: list[str]) -> int:
    # soft_wrap: piped output is 80 columns to rich, and a wrapped path cannot be copied back into a command
    console = _Console(soft_wrap=True)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv[0] in ("-V", "--version"):
        from rlworks import __version__

        print(f"rlworks {__version__}")
        return 0
    cmd = argv[0]
    if cmd not in HANDLERS:
        return _fail(f"unknown command {cmd!r}{suggest(cmd, COMMANDS)}; commands: {', '.join(COMMANDS)}")
    try:
        return HANDLERS[cmd](argv[1:], console)
    except Done:  # a parser printed --help
        return 0
    except ConfigError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        sys.stderr.write("rlworks: interrupted\n")
        return 130


def _fail(message: str) -> int:
    """The one line every bad input ends in (exit code 2)."""
    sys.stderr.write(f"rlworks: error: {' '.join(message.split())}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
