"""``rlworks collect`` and ``rlworks datasets list|show|make``: offline datasets in the Minari format.

The work is done by ``rlworks.offline`` (recording.py, datasets.py); this module parses and prints.
Every bad input is a ConfigError (one line, exit code 2), and a failed run leaves the datasets folder as it was.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from rlworks.commands.options import count_arg
from rlworks.commands.parsing import Parser
from rlworks.config import ConfigError, suggest

SUBCOMMANDS = ("list", "show", "make")
WHERE = "datasets live under $MINARI_DATASETS_PATH (default ~/.minari/datasets)"


def _number(low: float | None = None, high: float | None = None):
    def convert(raw: str) -> float:
        try:
            x = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r}: expected a number") from None
        if not math.isfinite(x) or (low is not None and x < low) or (high is not None and x > high):
            top = "inf" if high is None else high
            raise argparse.ArgumentTypeError(f"{raw} is out of range: allowed [{low}, {top}]")
        return x
    return convert


def collect_parser() -> Parser:
    p = Parser(prog="rlworks collect", description="Record episodes of a trained agent, a checkpoint or a random "
               f"policy as a Minari dataset ({WHERE}). Labelled as locally generated data.")
    p.add_argument("--from", dest="policy", required=True, metavar="RUN_DIR|random",
                   help="a run folder, a checkpoint (checkpoints/step-N), a saved agent, or 'random'")
    p.add_argument("--env", required=True, metavar="ID", help="the Gymnasium env id to play, e.g. CartPole-v1")
    p.add_argument("--episodes", type=count_arg(1), required=True, metavar="N", help="episodes to record")
    p.add_argument("--dataset-id", required=True, metavar="NS/ENV/NAME-vN", help="e.g. me/cartpole/medium-v0")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--noise", type=_number(0.0), default=0.0, metavar="SIGMA",
                   help="Gaussian action noise (Box actions; clipped to the bounds)")
    g.add_argument("--epsilon", type=_number(0.0, 1.0), default=0.0, metavar="EPS",
                   help="probability of a uniformly random action (Discrete actions)")
    p.add_argument("--stochastic", action="store_true", help="sample the agent's own stochastic actions "
                   "(default: its deterministic ones)")
    p.add_argument("--seed", type=count_arg(0), default=0, help="env, action-space and noise seed (default 0)")
    p.add_argument("--ref-min", type=_number(), default=None, metavar="R",
                   help="return that normalises to 0 (default: a random policy's mean return, measured)")
    p.add_argument("--ref-max", type=_number(), default=None, metavar="R",
                   help="return that normalises to 100 (default: the policy's own noiseless mean return; for "
                        "--from random the env's reward_threshold, if any)")
    p.add_argument("--ref-episodes", type=count_arg(1), default=100, metavar="N",
                   help="episodes that measure each reference score (default 100)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset of the same id")
    return p


def collect(argv: list[str]) -> int:
    from rlworks.offline import collect as run

    a = collect_parser().parse_args(argv)
    ds = run(a.env, a.policy, a.episodes, a.dataset_id, seed=a.seed, noise=a.noise, epsilon=a.epsilon,
             deterministic=not a.stochastic, ref_min_score=a.ref_min, ref_max_score=a.ref_max,
             ref_episodes=a.ref_episodes, overwrite=a.overwrite)
    r = ds.episode_returns
    print(f"wrote {a.dataset_id}: {ds.n_episodes} episodes, {len(ds)} steps, return mean {r.mean():.2f} "
          f"(min {r.min():.2f}, max {r.max():.2f}) -> {ds.metadata.get('path')}")
    return 0


def datasets_parsers() -> dict[str, Parser]:
    """A parser per subcommand with its own prog, so an unknown flag is reported (and suggested) where it belongs."""
    ps = {"list": Parser(prog="rlworks datasets list", description="the dataset ids on disk, with env, episodes and "
                         f"steps ({WHERE})"),
          "show": Parser(prog="rlworks datasets show", description="one dataset: env, spaces, size, returns, "
                         "normalised score, reference scores, algorithm, description, path"),
          "make": Parser(prog="rlworks datasets make", description="D4RL's five datasets for ENV: random, medium, "
                         "expert, medium-replay, medium-expert (ids rlworks/<env>/<kind>-v0), from an rlworks agent "
                         "trained with its preset (docs/datasets.md)")}
    ps["show"].add_argument("dataset_id", metavar="ID")
    ps["show"].add_argument("--json", action="store_true", help="print it as one JSON object")
    mk = ps["make"]
    mk.add_argument("env", metavar="ENV", help="a Gymnasium env id, e.g. CartPole-v1 or Pendulum-v1")
    mk.add_argument("--episodes", type=count_arg(1), default=20, metavar="N", help="episodes per dataset (default 20)")
    mk.add_argument("--steps", type=count_arg(1), default=None, metavar="N",
                    help="training steps of the agent (default: its preset's budget for ENV)")
    mk.add_argument("--algo", default=None, help="the agent to train (default: ppo for Discrete actions, sac for Box)")
    mk.add_argument("--seed", type=count_arg(0), default=0)
    mk.add_argument("--work-dir", default=None, metavar="DIR", help="keep the training run here (default: removed)")
    mk.add_argument("--overwrite", action="store_true", help="replace datasets of the same ids")
    return ps


def datasets(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: rlworks datasets {{list | show ID | make ENV}} [options]\n\nMinari datasets on disk ({WHERE}).")
        print("  list        the dataset ids on disk, with env, episodes and steps")
        print("  show ID     one dataset: env, size, returns, normalised score, reference scores")
        print("  make ENV    D4RL's five kinds for ENV: random, medium, expert, medium-replay, medium-expert")
        print("`rlworks datasets SUBCOMMAND --help` for its options; `rlworks collect --help` records one dataset.")
        return 0
    if argv[0] not in SUBCOMMANDS:
        raise ConfigError(f"unknown datasets command {argv[0]!r}{suggest(argv[0], SUBCOMMANDS)}; "
                          f"available: {', '.join(SUBCOMMANDS)}")
    a = datasets_parsers()[argv[0]].parse_args(argv[1:])
    return {"list": _list, "show": _show, "make": _make}[argv[0]](a)


def _list(a: Any) -> int:
    from rlworks.offline.datasets import datasets_root, list_datasets, read_metadata

    ids = list_datasets()
    if not ids:
        print(f"no datasets in {datasets_root()} (make one: `rlworks collect ...` or `rlworks datasets make ENV`)")
        return 0
    for i in ids:
        try:
            m = read_metadata(i)
            env = json.loads(m["env_spec"])["id"] if m.get("env_spec") else "-"
            print(f"{i}\t{env}\t{m.get('total_episodes', '?')} episodes\t{m.get('total_steps', '?')} steps")
        except (ConfigError, KeyError, TypeError, ValueError) as exc:
            print(f"{i}\tdamaged: {' '.join(str(exc).split())}")
    return 0


def _show(a: Any) -> int:
    from rlworks.offline.datasets import describe

    d = describe(a.dataset_id)
    if a.json:
        print(json.dumps(d))
        return 0

    def num(x: Any) -> str:
        return "-" if x is None else f"{x:.2f}"

    print(f"id            {d['id']}")
    print(f"env           {d['env'] or '-'}   observations {d['observation_space']}, actions {d['action_space']}")
    print(f"size          {d['episodes']} episodes, {d['steps']} steps")
    print(f"returns       mean {num(d['return_mean'])}, min {num(d['return_min'])}, max {num(d['return_max'])}")
    print(f"normalised    {num(d['normalized_score'])}" + ("" if d["normalized_score"] is not None
                                                          else " (no reference scores)"))
    print(f"ref scores    min {num(d['ref_min_score'])}, max {num(d['ref_max_score'])}")
    print(f"algorithm     {d['algorithm_name'] or '-'}")
    print(f"description   {d['description'] or '-'}")
    print(f"path          {d['path']}")
    return 0


def _make(a: Any) -> int:
    from rlworks.offline import make

    out = make(a.env, episodes=a.episodes, total_steps=a.steps, seed=a.seed, algo=a.algo, overwrite=a.overwrite,
               work_dir=a.work_dir, progress=print)
    for ds in out.values():
        r = ds.episode_returns
        print(f"{ds.dataset_id}\t{ds.n_episodes} episodes\treturn {r.mean():.1f}\t"
              f"normalised {float(ds.normalized_score(r.mean())):.1f}")
    return 0
