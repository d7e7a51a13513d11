"""MuZero and AlphaZero learning, seed by seed: CartPole-v1 and TicTacToe (issue 18's learning goals).

Each (algorithm, env, seed) trains with its preset through ``rlworks.train`` and is evaluated every
``--eval-every`` env steps (``--eval-episodes`` deterministic episodes, searching). A run records each
evaluation with the wall time since the run began (evaluations included), the final evaluation of the
agent the API returns, and the training seconds. On TicTacToe (trained by self-play) the returned agent
is scored against the random and the perfect (minimax) player, first and second, with its search and with
its raw policy head: exactly, as win/draw/loss probabilities over every game the opponent can make
(``envs.tictactoe.exact_outcomes``; no sampling noise), and, with ``--games N``, also over N sampled games.
With ``weight_average`` set (the returned agent acts with the averaged weights), the latest weights of the
same run are scored as well (``exact_latest``): a paired comparison, since the option leaves training alone.

Results are appended to ``--json`` one line per run; runs already there are skipped, so an interrupted
sweep resumes. ``--table`` prints what the file holds.

    python benchmarks/search_learning.py --algo muzero --env CartPole-v1 --seeds 0-9
    python benchmarks/search_learning.py --algo alphazero --env rlworks/TicTacToe-v0 --seeds 0-4
    python benchmarks/search_learning.py --json benchmarks/results/search-learning.jsonl --table
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

SELF_PLAY = {"rlworks/TicTacToe-v0": {"opponent": "self-play"}}


def seeds_arg(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(x) for x in text.split(",")]


class Recorder:
    """A logger that keeps the evaluations with the wall time at which each was logged."""

    def __init__(self) -> None:
        self.start, self.evals = time.perf_counter(), []

    def log(self, step: int, metrics: dict) -> None:
        if "eval/mean_return" in metrics:
            self.evals.append([int(step), float(metrics["eval/mean_return"]), time.perf_counter() - self.start])

    def close(self) -> None:
        pass


def each_player(agent):
    """Yields (key, opponent, side) for the four TicTacToe games, first acting with the search and then with the
    raw policy head (``agent.model.use_search`` set to match; the search is back on afterwards)."""
    try:
        for search in (True, False):
            agent.model.use_search = search
            for opponent in ("random", "minimax"):
                for side in ("first", "second"):
                    yield f"{'search' if search else 'policy'}/{opponent}/{side}", opponent, side
    finally:
        agent.model.use_search = True


def games(agent, n: int) -> dict:
    import gymnasium as gym

    out = {}
    for key, opponent, side in each_player(agent):
        r = np.array(agent.evaluate(n, seed=10_000, env=lambda o=opponent, s=side: gym.make(
            "rlworks/TicTacToe-v0", opponent=o, agent_plays=s)).returns)
        out[key] = {"wins": float(np.mean(r > 0)), "draws": float(np.mean(r == 0)), "losses": float(np.mean(r < 0))}
    return out


def exact_games(agent) -> dict:
    """The exact win/draw/loss probabilities against each opponent and side, with the search and with the raw
    policy head: every game the opponent can make, followed to its end (``envs.tictactoe.exact_outcomes``)."""
    from rlworks.envs.tictactoe import exact_outcomes

    out = {}
    for key, opponent, side in each_player(agent):
        res = exact_outcomes(lambda obs: agent.act(obs, True), opponent, side)
        out[key] = {k: res[k] for k in ("wins", "draws", "losses", "positions", "mistakes")}
    return out


def run_one(algo: str, env: str, seed: int, steps: int | None, eval_every: int, eval_episodes: int, n_games: int,
            overrides: dict, save_dir: str | None = None) -> dict:
    import torch

    import rlworks
    from rlworks.algos import preset_extras

    torch.set_num_threads(1)
    total = steps or preset_extras(algo, env).get("total_steps")
    rec = Recorder()
    sessions: list = []
    t0 = time.perf_counter()
    agent = rlworks.train(algo, env, total_steps=total, seed=seed, env_kwargs=SELF_PLAY.get(env), logger=rec,
                          eval_every=eval_every, eval_episodes=eval_episodes, on_start=sessions.append, **overrides)
    wall = time.perf_counter() - t0
    row = {"algo": algo, "env": env, "seed": seed, "total_steps": total, "overrides": overrides, "evals": rec.evals,
           "wall_seconds": wall, "train_seconds": agent.meta.get("train_seconds"),
           "n_updates": agent.meta.get("n_updates")}
    if save_dir:
        tag = hashlib.md5(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]
        row["checkpoint"] = str(agent.save(Path(save_dir) / f"{algo}-{env.split('/')[-1]}-seed{seed}-{tag}"))
    if env in SELF_PLAY:
        row["exact"] = exact_games(agent)
        if sessions[0].averaged is not None:  # the same run acting with its latest weights
            row["exact_latest"] = exact_games(sessions[0].agent(latest=True))
        if n_games:
            row["games"] = games(agent, n_games)
    else:
        final = agent.evaluate(eval_episodes, seed=2_000_000)
        row["final_eval"] = {"mean": final.mean_return, "returns": list(final.returns)}
    return row


def table(rows: list[dict]) -> None:
    for r in rows:
        line = f"{r['algo']:9s} {r['env']:22s} seed {r['seed']}: "
        if "final_eval" in r:
            at = {s: m for s, m, _ in r["evals"]}
            first = next((f"{s} steps, {w:.0f} s" for s, m, w in r["evals"] if m >= 195), "never")
            line += (f"eval@20k {at.get(20000, float('nan')):.1f}, final {r['final_eval']['mean']:.1f}; "
                     f"first eval >= 195: {first}")
        else:
            g = r.get("exact") or r["games"]
            line += ("exact " if "exact" in r else "") + " ".join(
                f"{k.split('/', 1)[1]} L{v['losses']:.3f}/D{v['draws']:.3f}"
                + (f" m{v['mistakes']}/{v['positions']}" if "mistakes" in v else "")
                for k, v in g.items() if k.startswith("search"))
            if "exact_latest" in r:
                line += "; latest weights: " + " ".join(
                    f"{k.split('/', 1)[1]} L{v['losses']:.3f}" for k, v in r["exact_latest"].items()
                    if k.startswith("search/minimax"))
        print(line + f"  ({r['train_seconds']:.0f} s training)")


def markdown(rows: list[dict]) -> str:
    """The rows as markdown tables (CartPole-style runs and TicTacToe runs apart), with a median line."""
    out = []
    cart = [r for r in rows if "final_eval" in r]
    if cart:
        marks = sorted({s for r in cart for s, _, _ in r["evals"]})
        marks = [m for m in marks if m in (5000, 10000, 15000, 20000, 30000, 50000)] or marks
        out.append("| seed | " + " | ".join(f"eval @ {m // 1000}k" for m in marks)
                   + " | final (fresh 10 episodes) | first eval ≥ 195: steps, wall s | training s |")
        out.append("|---" * (len(marks) + 4) + "|")
        for r in cart:
            at = {s: m for s, m, _ in r["evals"]}
            first = next(((s, w) for s, m, w in r["evals"] if m >= 195), None)
            out.append(f"| {r['seed']} | " + " | ".join(f"{at.get(m, float('nan')):.1f}" for m in marks)
                       + f" | {r['final_eval']['mean']:.1f} | "
                       + (f"{first[0]:,}, {first[1]:.0f}" if first else "never") + f" | {r['train_seconds']:.0f} |")
        med = [np.median([{s: m for s, m, _ in r["evals"]}.get(m, np.nan) for r in cart]) for m in marks]
        out.append("| **median** | " + " | ".join(f"**{v:.1f}**" for v in med)
                   + f" | **{np.median([r['final_eval']['mean'] for r in cart]):.1f}** | | |")
    ttt = [r for r in rows if "exact" in r or "games" in r]
    if ttt:
        what = "exact" if all("exact" in r for r in ttt) else "games"
        keys = [k for k in ttt[0][what]]
        out.append("")
        out.append("| seed | " + " | ".join(k.replace("/", " ") for k in keys) + " | training s |")
        out.append("|---" * (len(keys) + 2) + "|")
        for r in ttt:
            g, digits = r[what], 3 if what == "exact" else 2
            out.append(f"| {r['seed']} | " + " | ".join(f"L {g[k]['losses']:.{digits}f} / D {g[k]['draws']:.{digits}f}"
                                                         for k in keys)
                       + f" | {r['train_seconds']:.0f} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", default="muzero", choices=("muzero", "alphazero"))
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--seeds", default="0-4", type=seeds_arg)
    p.add_argument("--steps", type=int, default=None, help="env steps (default: the preset's)")
    p.add_argument("--eval-every", type=int, default=5000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--games", type=int, default=0,
                   help="TicTacToe: also play this many sampled games per opponent and side (the exact outcomes "
                        "over every game the opponent can make are always computed)")
    p.add_argument("--set", nargs="*", action="extend", default=[],
                   help="config overrides k=v (python literals, else strings); --set may repeat")
    p.add_argument("--json", default="search-learning.jsonl")
    p.add_argument("--save-dir", default=None, help="also save each returned agent as a checkpoint under this folder")
    p.add_argument("--table", action="store_true", help="print the file's results and stop")
    p.add_argument("--markdown", action="store_true", help="print the file's results as markdown and stop")
    a = p.parse_args()
    path = Path(a.json)
    rows = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    if a.table:
        table(rows)
        return
    if a.markdown:
        print(markdown(rows))
        return
    import ast

    def value(text: str):  # a Python literal, else the text itself (--set search=gumbel)
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text

    overrides = {k: value(v) for k, v in (s.split("=", 1) for s in a.set)}
    for seed in a.seeds:
        key = (a.algo, a.env, seed, a.steps, json.dumps(overrides, sort_keys=True))
        if any((r["algo"], r["env"], r["seed"], r.get("steps_arg"), json.dumps(r["overrides"], sort_keys=True)) == key
               for r in rows):
            continue
        row = run_one(a.algo, a.env, seed, a.steps, a.eval_every, a.eval_episodes, a.games, overrides, a.save_dir)
        row["steps_arg"] = a.steps
        with path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        rows.append(row)
        table([row])


if __name__ == "__main__":
    main()
