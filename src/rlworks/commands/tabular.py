"""CLI handlers for tabular work: ``train`` (q-learning, sarsa, expected-sarsa, dyna-q),
``plan`` (value-iteration, policy-iteration) and ``eval`` of a tabular run directory."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from rlworks.commands.options import QUIET_HELP, int_arg
from rlworks.commands.parsing import Parser
from rlworks.config import ConfigError, check_range
from rlworks.tabular import planning, rundir, td
from rlworks.tabular.learner import ALGORITHMS, BONUSES, TIE_BREAKS
from rlworks.tabular.mdp import TabularModel, has_model, require_discrete
from rlworks.tabular.schedules import KINDS, Schedule

PLANNERS = ("value-iteration", "policy-iteration")
GRID_ENV = "rlworks/GridWorld-v0"
ARROWS = {  # per env family: action index -> arrow
    "gridworld": "↑→↓←",
    "CliffWalking": "↑→↓←",
    "FrozenLake": "←↓→↑",
}


# ------------------------------------------------------------------------------------------------
# parsers
# ------------------------------------------------------------------------------------------------


def _env_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default=GRID_ENV,
                   help="Gymnasium env id with Discrete observations and actions (default: %(default)s)")
    p.add_argument("--layout", help="GridWorld map: a file, or rows separated by '/' or newlines "
                                    "(S start, G goal, W wall, . floor)")
    p.add_argument("--slip", type=float, help="GridWorld: probability a move slips sideways (default 0)")
    p.add_argument("--wall-terminal", action="store_true", help="GridWorld: stepping onto a wall ends the episode")
    p.add_argument("--slippery", choices=("yes", "no"), help="FrozenLake: is_slippery (default no)")
    p.add_argument("--max-episode-steps", type=int_arg,
                   help="episode cap (a truncation; default: the env's time limit)")


def _schedule_args(p: argparse.ArgumentParser, name: str, default: float, what: str) -> None:
    p.add_argument(f"--{name}", type=float, default=default,
                   help=f"{what} (start value of its schedule; default %(default)s)")
    p.add_argument(f"--{name}-schedule", choices=KINDS, default="constant",
                   help=f"{name} schedule over episodes (default %(default)s)")
    p.add_argument(f"--{name}-end", type=float, help=f"final {name} for linear/exponential schedules")
    p.add_argument(f"--{name}-fraction", type=float, default=0.5,
                   help="linear: fraction of the episodes to reach the end value")
    p.add_argument(f"--{name}-decay", type=float, default=0.99, help="exponential: factor per episode")


def train_parser(algo: str) -> Parser:
    p = Parser(prog=f"rlworks train {algo}", description=f"Train {algo} (tabular) and write a run directory.")
    _env_args(p)
    p.add_argument("--episodes", type=int_arg, default=500, help="episodes to run (default %(default)s)")
    _schedule_args(p, "alpha", 0.1, "step size in (0, 1]")
    p.add_argument("--gamma", type=float, default=0.95, help="discount in [0, 1] (default %(default)s)")
    _schedule_args(p, "epsilon", 0.1, "exploration rate in [0, 1]")
    if algo == "dyna-q":
        p.add_argument("--planning-steps", type=int_arg, default=5,
                       help="model backups per real step (default %(default)s)")
    p.add_argument("--seed", type=int_arg, default=0, help="random seed (default %(default)s)")
    p.add_argument("--q-init", type=float, default=0.0, help="initial Q (> 0: optimistic; default 0)")
    p.add_argument("--tie-break", choices=TIE_BREAKS, default="random",
                   help="greedy ties: random (default) or first index")
    p.add_argument("--bonus", choices=BONUSES, default="none",
                   help="count-based exploration bonus: ucb adds bonus_c/sqrt(N(s,a)) to each target and tries "
                        "untried actions first (default none)")
    p.add_argument("--bonus-c", type=float, default=1.0, help="bonus coefficient, >= 0 (default %(default)s)")
    p.add_argument("--path", choices=td.PATHS, default="auto",
                   help="compiled model kernel, python, or generic env.step loop")
    p.add_argument("--run-dir", help="where to write the run (default runs/<algo>-<env>-<seed>-<time>)")
    p.add_argument("--no-save", action="store_true", help="do not write a run directory")
    p.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    return p


def plan_parser(method: str) -> Parser:
    p = Parser(prog=f"rlworks plan {method}", description=f"Solve an env's exact model by {method}.")
    _env_args(p)
    p.add_argument("--gamma", type=float, default=0.95, help="discount in [0, 1] (default %(default)s)")
    p.add_argument("--tol", type=float, default=1e-10, help="convergence tolerance (default %(default)s)")
    return p


# ------------------------------------------------------------------------------------------------
# env construction
# ------------------------------------------------------------------------------------------------


def env_kwargs_from(args: argparse.Namespace) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    is_grid = args.env == GRID_ENV
    if not is_grid and (args.layout or args.slip is not None or args.wall_terminal):
        raise ConfigError(f"--layout, --slip and --wall-terminal are GridWorld options; env {args.env!r} does not "
                          "take them")
    if args.slippery and not args.env.startswith("FrozenLake"):
        raise ConfigError(f"--slippery is a FrozenLake option; env {args.env!r} does not take it")
    if args.layout:
        path = Path(args.layout)
        kw["layout"] = path.read_text() if path.is_file() else args.layout.replace("/", "\n")
    if args.slip is not None:
        kw["slip"] = args.slip
    if args.wall_terminal:
        kw["wall_terminal"] = True
    if args.env.startswith("FrozenLake"):
        kw["is_slippery"] = args.slippery == "yes"
    return kw


def make_env(env_id: str, kwargs: dict[str, Any], max_episode_steps: int | None = None) -> gym.Env:
    if max_episode_steps is not None:
        check_range("max_episode_steps", max_episode_steps, 1, None)
        kwargs = {**kwargs, "max_episode_steps": max_episode_steps}
    return td.make_env(env_id, **kwargs)


def _schedule(args: argparse.Namespace, name: str) -> Schedule:
    kind = getattr(args, f"{name}_schedule")
    start = getattr(args, name)
    if kind == "constant":
        return Schedule.constant(start)
    end = getattr(args, f"{name}_end")
    if end is None:
        raise ConfigError(f"--{name}-schedule {kind} needs --{name}-end")
    return Schedule(kind, start, end, fraction=getattr(args, f"{name}_fraction"), decay=getattr(args, f"{name}_decay"))


# ------------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------------


def train(algo: str, argv: list[str], console: Console) -> int:
    if algo != "dyna-q" and any(a.split("=")[0] == "--planning-steps" for a in argv):
        raise ConfigError(f"--planning-steps belongs to dyna-q, not {algo}")
    args = train_parser(algo).parse_args(argv)
    env_kwargs = env_kwargs_from(args)
    env = make_env(args.env, env_kwargs, args.max_episode_steps)
    require_discrete(env, algo)
    alpha, eps = _schedule(args, "alpha"), _schedule(args, "epsilon")
    kw: dict[str, Any] = {
        "episodes": args.episodes, "alpha": alpha, "gamma": args.gamma, "epsilon": eps, "seed": args.seed,
        "q_init": args.q_init, "tie_break": args.tie_break, "path": args.path,
        "planning_steps": getattr(args, "planning_steps", 0), "max_episode_steps": args.max_episode_steps,
        "bonus": args.bonus, "bonus_c": args.bonus_c,
    }  # fmt: skip
    check_range("bonus_c", args.bonus_c, 0.0, None)
    td.check_args(args.episodes, alpha, args.gamma, eps, kw["planning_steps"])  # before the progress bar
    if args.quiet:
        result = td.learn(algo, env, **kw)
    else:
        columns = (TextColumn(f"[bold]{algo}[/] {args.env}"), BarColumn(), MofNCompleteColumn(), TextColumn("episodes"),
                   TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("train", total=max(args.episodes, 1))
            result = td.learn(algo, env, progress=lambda done, total: bar.update(task, completed=done), **kw)
            bar.update(task, completed=max(args.episodes, 1))
    if not args.quiet:
        print_summary(console, result, env)
    if not args.no_save:
        run = Path(args.run_dir) if args.run_dir else rundir.default_run_dir(algo, args.env, args.seed)
        rundir.save_run(run, result, env_id=args.env, env_kwargs={**env_kwargs, **_cap(args)},
                        epsilons=eps.values(args.episodes), alphas=alpha.values(args.episodes))  # fmt: skip
        if not args.quiet:  # plain print: a path is never wrapped or read as rich markup
            print(f"run directory: {run}  (evaluate with `rlworks eval {run}`)")
    return 0


def _cap(args: argparse.Namespace) -> dict[str, Any]:
    return {"max_episode_steps": args.max_episode_steps} if args.max_episode_steps else {}


def plan(method: str, argv: list[str], console: Console) -> int:
    args = plan_parser(method).parse_args(argv)
    env = make_env(args.env, env_kwargs_from(args), args.max_episode_steps)
    require_discrete(env, method)
    if not has_model(env):
        raise ConfigError(f"{args.env} does not expose its model (P); planning needs GridWorld, FrozenLake, "
                          "CliffWalking or Taxi")
    solve = planning.value_iteration if method == "value-iteration" else planning.policy_iteration
    result = solve(env, args.gamma, tol=args.tol)
    console.print(f"[bold]{method}[/] on {args.env}, γ = {args.gamma}: converged in {result.iterations} iterations")
    model = TabularModel.from_env(env)
    start = int(np.argmax(model.start))
    console.print(f"V*(start) = {result.v[start]:.6f}")
    grid = heatmap(env, result.q)
    if grid is not None:
        console.print(grid)
    return 0


def evaluate(args: argparse.Namespace, console: Console) -> int:
    """``rlworks eval RUN_DIR`` of a tabular run (``options.eval_parser``'s arguments)."""
    episodes, seed = args.episodes or 100, args.seed or 0
    config, q = rundir.load_run(args.run_dir)
    kwargs = dict(config.get("env_kwargs", {}))
    env = make_env(config["env"], kwargs)
    if q.shape != (env.observation_space.n, env.action_space.n):
        raise ConfigError(f"{args.run_dir}: Q-table shape {q.shape} does not fit {config['env']}")
    cap = config.get("max_episode_steps") or td.max_episode_steps_of(env)
    returns, lengths, successes = [], [], 0
    win_reward = _success_reward(env)
    for ep in range(episodes):
        s, _ = env.reset(seed=seed + ep)
        total, t = 0.0, 0
        while True:
            s, r, terminated, truncated, _ = env.step(int(np.argmax(q[int(s)])))
            total += float(r)
            t += 1
            if terminated or truncated or t >= cap:
                won = r > 0 if win_reward is None else r >= win_reward
                successes += bool(terminated and won)
                break
        returns.append(total)
        lengths.append(t)
    r = np.array(returns)
    console.print(
        f"[bold]{config['algo']}[/] on {config['env']}: {episodes} greedy episodes, "
        f"mean return {r.mean():.3f} ± {r.std():.3f}, mean length {np.mean(lengths):.1f}, "
        f"success rate {successes / episodes:.0%}"
    )
    return 0


def _success_reward(env: gym.Env) -> float | None:
    """The reward of the best episode-ending transition (reaching a goal), if the model says."""
    if not has_model(env):
        return None
    m = TabularModel.from_env(env)
    valid = np.arange(m.next_states.shape[2])[None, None, :] < m.n_outcomes[:, :, None]
    ending = m.dones & valid & ~m.terminal[:, None, None]
    return float(m.rewards[ending].max()) if ending.any() else None


# ------------------------------------------------------------------------------------------------
# terminal output
# ------------------------------------------------------------------------------------------------


def print_summary(console: Console, result: td.TabularResult, env: gym.Env) -> None:
    n = len(result.episode_returns)
    tail = result.episode_returns[-100:] if n else np.zeros(1)
    sps = result.steps / result.loop_seconds if result.loop_seconds > 0 else math.inf
    console.print(
        f"{n} episodes, {result.steps:,} steps in {result.loop_seconds:.3f} s ({sps:,.0f} steps/s, "
        f"{result.path} path); "
        f"mean return of the last {min(n, 100)}: {tail.mean():.3f}"
    )
    grid = heatmap(env, result.q)
    if grid is not None:
        console.print(grid)


def _grid_shape(env: gym.Env) -> tuple[tuple[int, int], np.ndarray | None, str] | None:
    base = env.unwrapped
    if hasattr(base, "grid") and hasattr(base, "n_rows"):
        return (base.n_rows, base.n_cols), base.grid, "gridworld"
    if hasattr(base, "desc"):
        desc = np.asarray(base.desc).astype(str)
        return desc.shape, desc, "FrozenLake"
    if type(base).__name__ == "CliffWalkingEnv":
        shape = tuple(base.shape)
        cells = np.full(shape, ".")
        cells[3, 1:-1] = "C"
        cells[3, 0], cells[3, -1] = "S", "G"
        return shape, cells, "CliffWalking"
    return None


def heatmap(env: gym.Env, q: np.ndarray) -> Table | None:
    """Max-Q per cell as a coloured grid with the greedy arrow; None for non-grid envs."""
    info = _grid_shape(env)
    if info is None:
        return None
    (rows, cols), cells, family = info
    v = q.max(axis=1)
    arrows = ARROWS[family]
    scale = max(np.abs(v).max(), 1e-12)
    table = Table(show_header=False, show_lines=True, padding=(0, 1), title="max Q and greedy action")
    for _ in range(cols):
        table.add_column(justify="center", min_width=7)
    for r in range(rows):
        row = []
        for c in range(cols):
            s = r * cols + c
            ch = cells[r, c] if cells is not None else "."
            if ch in ("W",):
                row.append(Text("  ▓▓  ", style="grey50"))
            elif ch in ("G",):
                row.append(Text(" goal ", style="bold black on dark_orange"))
            elif ch in ("H", "C"):
                row.append(Text(" hole " if ch == "H" else "cliff", style="white on grey23"))
            else:
                row.append(Text(f"{v[s]:+.2f} {arrows[int(q[s].argmax())]}", style=_style(v[s] / scale)))
        table.add_row(*row)
    return table


def _style(x: float) -> str:
    """A diverging colour: warm for positive values, blue for negative ones."""
    x = max(-1.0, min(1.0, float(x)))
    if x >= 0:
        r, g, b = 255, int(255 - 140 * x), int(255 - 215 * x)
    else:
        r, g, b = int(255 + 185 * x), int(255 + 120 * x), 255
    return f"black on rgb({r},{g},{b})"


def list_algorithms() -> list[tuple[str, str]]:
    return [
        ("q-learning", "tabular: off-policy TD control (Watkins 1989)"),
        ("sarsa", "tabular: on-policy TD control (Rummery & Niranjan 1994)"),
        ("expected-sarsa", "tabular: TD control on the expected next value (van Seijen et al. 2009)"),
        ("dyna-q", "tabular: Q-learning + planning on a learned model (Sutton 1990)"),
        ("value-iteration", "planning (rlworks plan): exact, on an env's model"),
        ("policy-iteration", "planning (rlworks plan): exact, on an env's model"),
    ]


TABULAR_ENVS = (
    (GRID_ENV, "the lab's 5×5 grid world; any layout via --layout"),
    ("FrozenLake-v1", "4×4 ice (--slippery yes|no)"),
    ("FrozenLake8x8-v1", "8×8 ice"),
    ("CliffWalking-v1", "Sutton & Barto's cliff (Example 6.6)"),
    ("Taxi-v4", "Dietterich's taxi, 500 states"),
    ("rlworks/DeepSeaIndex-v0", "bsuite's DeepSea, N = 10, index observations (other N: from Python, size=N)"),
)


def assert_algorithm(algo: str) -> None:
    if algo not in ALGORITHMS:
        raise ConfigError(f"unknown tabular algorithm {algo!r}")
