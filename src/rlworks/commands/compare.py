"""``rlworks compare RUN_OR_GLOB ...``: many runs' final scores and learning curves, compared honestly.

Which runs form a group: each argument is one group — a seed set's folder (``rlworks train --seeds``), any
folder of run folders, or a quoted glob (``'runs/ppo-CartPole-v1-*'``); ``NAME=PATH_OR_GLOB`` names it.
Plain run folders given one by one (what an unquoted glob expands to) are pooled by algorithm and env. A group
whose runs span several algorithms or envs is split by them: returns of different envs are never pooled.

Per group it prints the interquartile mean (IQM) of the runs' final scores with a 95 % stratified bootstrap
interval (Agarwal et al. 2021, ``core/stats.py``), the median and the mean. A run's final score is its last
evaluation return (``eval/mean_return`` in metrics.csv; train with ``--eval-every N``) when every run of that
env has one, else the mean return of its last ``--last`` training episodes; the output says which. ``--png``
draws the mean learning curve of each group over a common step grid with a 95 % bootstrap band, one panel per
env.
"""

from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ConfigError
from ..core.stats import REPS, bootstrap_mean_band, iqm, stratified_bootstrap_ci
from .options import HelpFormatter, at_least, choice_arg
from .parsing import Parser, read_run

GRID_POINTS = 200
SCORES = ("auto", "eval", "train")


@dataclass
class Run:
    """What compare needs of one run folder: training episodes and evaluations as (step, return) arrays."""

    path: Path
    algo: str
    env_id: str
    episode_steps: np.ndarray
    episode_returns: np.ndarray
    eval_steps: np.ndarray
    eval_returns: np.ndarray
    end: int  # the last step the run logged (at which its score is taken)
    eval_episodes: int | None = None


@dataclass
class Group:
    name: str
    algo: str
    env_id: str
    runs: list[Run] = field(default_factory=list)


def parser() -> Parser:
    p = Parser(prog="rlworks compare", usage="rlworks compare RUN_OR_GLOB [RUN_OR_GLOB ...] [options]",
               description=__doc__.split("\n\n", 1)[1], formatter_class=HelpFormatter)
    p.add_argument("runs", nargs="*", metavar="RUN_OR_GLOB",
                   help="a run folder, a folder of runs (a seed set), a quoted glob, or NAME=any of these")
    p.add_argument("--png", metavar="FILE", help="draw the groups' learning curves with 95%% bands into FILE")
    p.add_argument("--last", type=at_least(1), default=20, metavar="N",
                   help="training episodes averaged for a run's score when it has no evaluations (default: 20)")
    p.add_argument("--score", type=choice_arg(SCORES), default="auto", metavar="auto|eval|train",
                   help="eval: last evaluation return; train: mean of the last --last training episodes; auto: eval "
                        "where every run of the env has evaluations (default: auto)")
    p.add_argument("--reps", type=at_least(100), default=REPS, metavar="N",
                   help=f"bootstrap resamples (default: {REPS})")
    p.add_argument("--seed", type=at_least(0), default=0, metavar="S", help="seed of the bootstrap (default: 0)")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if not args.runs:
        raise ConfigError("rlworks compare needs run folders, seed-set folders or quoted globs, e.g. rlworks compare "
                          "runs/ppo-CartPole-v1-seeds-*")
    if args.png and not Path(args.png).resolve().parent.is_dir():
        raise ConfigError(f"--png {args.png}: the folder {Path(args.png).parent} does not exist")
    groups = find_groups(args.runs)
    sources = _sources(groups, args.score)
    rows = []
    for g in groups:
        src = sources[g.env_id]
        scores = np.array([final_score(r, src, args.last) for r in g.runs])
        by_env = [scores]  # one stratum: a group holds one env (Agarwal et al. stratify by task)
        low, high = stratified_bootstrap_ci(by_env, iqm, reps=args.reps, seed=args.seed)
        ends = sorted({r.end for r in g.runs})
        rows.append((g.name, str(len(g.runs)), str(ends[0]) if len(ends) == 1 else f"{ends[0]}-{ends[-1]}",
                     _source_text(g, src, args.last), f"{iqm(scores):.2f}",
                     f"[{low:.2f}, {high:.2f}]" if len(scores) > 1 else "(1 run)",
                     f"{np.median(scores):.2f}", f"{np.mean(scores):.2f}"))
    _print_table(("group", "runs", "steps", "score", "IQM", "95% CI", "median", "mean"), rows)
    print(f"IQM: mean of the middle half of the runs' scores; 95% CI: percentile bootstrap over runs, {args.reps} "
          f"resamples, seed {args.seed} (Agarwal et al. 2021, 'Deep RL at the Edge of the Statistical Precipice')")
    if args.png:
        print(f"learning curves: {plot(groups, sources, args.png, last=args.last, seed=args.seed)}")
    return 0


# ---------------------------------------------------------------------------------------------
# finding and reading runs
# ---------------------------------------------------------------------------------------------


def find_groups(arguments: list[str]) -> list[Group]:
    """The groups the arguments name, in order (see the module docstring)."""
    groups: dict[tuple[str, str, str], Group] = {}
    for arg in arguments:
        label, target = None, arg
        if not os.path.exists(arg) and "=" in arg:
            label, target = arg.split("=", 1)
            if not label:
                raise ConfigError(f"{arg!r}: empty group name before '='")
        if glob.has_magic(target):
            matches = sorted(p for p in glob.glob(target) if os.path.isdir(p))
            if not matches:
                raise ConfigError(f"no run folders match {target!r}")
            runs = [r for m in matches for r in _runs_in(Path(m))]
            label = label or target
        else:
            path = Path(target)
            if not path.exists():
                raise ConfigError(f"{target}: no such run folder")
            runs = _runs_in(path)
            if label is None and not (path / "config.json").is_file():
                label = str(path)  # a seed set or another folder of runs is a group of its own
        for r in runs:
            key = (label or "", r.algo, r.env_id)
            if key not in groups:
                groups[key] = Group(label or f"{r.algo} {r.env_id}", r.algo, r.env_id)
            if all(r.path.resolve() != o.path.resolve() for o in groups[key].runs):
                groups[key].runs.append(r)
    # a label whose runs span several algorithms or envs becomes one group per (algo, env), named so
    labels = [k[0] for k in groups]
    for (label, algo, env_id), g in groups.items():
        if label and labels.count(label) > 1:
            g.name = f"{label}: {algo} {env_id}"
    return list(groups.values())


def _runs_in(path: Path) -> list[Run]:
    """``path`` itself if it is a run folder, else the run folders directly inside it."""
    if (path / "config.json").is_file():
        return [load_run(path)]
    if not path.is_dir():
        raise ConfigError(f"{path}: not a run folder (a file)")
    inside = sorted((p for p in path.iterdir() if (p / "config.json").is_file()), key=_natural)
    if not inside:
        raise ConfigError(f"{path}: not a run folder (no config.json) and holds no run folders")
    return [load_run(p) for p in inside]


def _natural(p: Path) -> tuple:
    """seed-2 before seed-10."""
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name))


def load_run(path: Path) -> Run:
    """Read a deep or tabular run folder's episodes and evaluations; ConfigError names what is missing."""
    meta = read_run(path)
    if meta["kind"] == "tabular":  # metrics.csv: one row per episode (episode, return, length, ...)
        rows = _read_csv(path / "metrics.csv")
        lengths = np.array([float(r["length"]) for r in rows])
        steps = np.cumsum(lengths)
        rets = np.array([float(r["return"]) for r in rows])
        run = Run(path, str(meta.get("algo")), str(meta.get("env")), steps, rets, np.empty(0), np.empty(0),
                  int(steps[-1]) if len(steps) else 0)
    else:
        rows = _read_csv(path / "metrics.csv")
        if (path / "episodes.csv").is_file():
            eps = _read_csv(path / "episodes.csv")
            steps = np.array([float(r["step"]) for r in eps])
            rets = np.array([float(r["return"]) for r in eps])
        else:  # runs from before episodes.csv: the logged recent means stand in for episodes
            kept = [r for r in rows if _number(r.get("charts/episodic_return")) is not None]
            steps = np.array([float(r["step"]) for r in kept])
            rets = np.array([_number(r["charts/episodic_return"]) for r in kept])
        evals = [(float(r["step"]), _number(r.get("eval/mean_return"))) for r in rows]
        evals = [e for e in evals if e[1] is not None]
        end = max([int(float(r["step"])) for r in rows] + [int(s) for s in steps] + [0])
        run = Run(path, meta["algo"], meta["env_id"], steps, rets, np.array([e[0] for e in evals]),
                  np.array([e[1] for e in evals]), end, meta.get("eval_episodes"))
    if not len(run.episode_returns) and not len(run.eval_returns):
        raise ConfigError(f"{path}: no finished episodes or evaluations to score yet")
    return run


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    except FileNotFoundError:
        raise ConfigError(f"{path.parent}: run folder without {path.name}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path}: unreadable ({exc})") from None


def _number(raw: str | None) -> float | None:
    try:
        x = float(raw) if raw not in (None, "") else None
    except ValueError:
        return None
    return x if x is not None and np.isfinite(x) else None


# ---------------------------------------------------------------------------------------------
# scores and curves
# ---------------------------------------------------------------------------------------------


def _sources(groups: list[Group], choice: str) -> dict[str, str]:
    """Per env, "eval" or "train": the same kind of score for every group on an env."""
    out = {}
    for env_id in dict.fromkeys(g.env_id for g in groups):
        runs = [r for g in groups if g.env_id == env_id for r in g.runs]
        missing = [r for r in runs if not len(r.eval_returns)]
        if choice == "eval" and missing:
            raise ConfigError(f"--score eval: {missing[0].path} has no evaluations (train with --eval-every N); "
                              f"use --score train")
        empty = [r for r in runs if not len(r.episode_returns)]
        if choice == "train" and empty:
            raise ConfigError(f"--score train: {empty[0].path} has no finished training episodes")
        out[env_id] = choice if choice != "auto" else ("train" if missing else "eval")
    return out


def final_score(run: Run, source: str, last: int) -> float:
    """The run's last evaluation return, or the mean return of its last ``last`` training episodes."""
    if source == "eval":
        return float(run.eval_returns[-1])
    return float(np.mean(run.episode_returns[-last:]))


def _source_text(g: Group, source: str, last: int) -> str:
    if source == "eval":
        eps = {r.eval_episodes for r in g.runs}
        return "last evaluation" + (f" ({eps.pop()} episodes)" if len(eps) == 1 and None not in eps else "")
    return f"mean of last {last} training episodes"


def curve(run: Run, source: str, grid: np.ndarray, last: int) -> np.ndarray:
    """The run's score along ``grid``: its evaluations, or the trailing mean of up to ``last`` training episodes
    at each episode's end, joined by straight lines; NaN outside the steps it has values for."""
    if source == "eval":
        steps, values = run.eval_steps, run.eval_returns
    else:
        steps, rets = run.episode_steps, run.episode_returns
        csum = np.concatenate([[0.0], np.cumsum(rets)])
        i = np.arange(1, len(rets) + 1)
        lo = np.maximum(i - last, 0)
        values = (csum[i] - csum[lo]) / (i - lo)
    if not len(steps):
        return np.full(grid.shape, np.nan)
    out = np.interp(grid, steps, values)
    return np.where((grid >= steps[0]) & (grid <= steps[-1]), out, np.nan)


def plot(groups: list[Group], sources: dict[str, str], png: str, *, last: int, seed: int) -> str:
    """Mean curve and 95 % bootstrap band of every group, one panel per env; returns the file written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(sources)
    fig, axes = plt.subplots(1, len(envs), figsize=(6 * len(envs), 4), dpi=100, squeeze=False)
    for ax, env_id in zip(axes[0], envs):
        mine = [g for g in groups if g.env_id == env_id]
        grid = np.linspace(0, max(r.end for g in mine for r in g.runs), GRID_POINTS)
        for k, g in enumerate(mine):
            curves = np.stack([curve(r, sources[env_id], grid, last) for r in g.runs])  # (runs, points)
            mean, low, high = bootstrap_mean_band(curves, seed=seed)
            n = len(g.runs)
            ax.plot(grid, mean, color=f"C{k}", lw=1.5, label=f"{g.name} ({n} run{'s' if n > 1 else ''})")
            ax.fill_between(grid, low, high, color=f"C{k}", alpha=0.2, lw=0)
        what = "evaluation return" if sources[env_id] == "eval" else f"training return, mean of last {last}"
        ax.set_title(env_id)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle("mean over runs, 95% bootstrap band", fontsize=10)
    fig.tight_layout()
    try:
        fig.savefig(png)
    except OSError as exc:
        raise ConfigError(f"--png {png}: cannot write ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
    return png


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    # plain print, not rich: a group named by a path must never be wrapped or read as markup
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for r in (header, *rows):
        print("  ".join(c.ljust(w) if i in (0, 3) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
