"""``rlworks bench exploration``: the DeepSea scaling picture (Osband et al. 2020, bsuite's deep_sea analysis).

For each method, size N and seed: train on ``rlworks/DeepSea-v0`` (N x N, the action mapping drawn from the
seed) for at most ``--max-episodes`` episodes and record the episode at which the agent first reached the
treasure in at least 90 of 100 consecutive episodes (its own training episodes). The plot shows the median
over seeds against N on a log scale, with the 2^N episodes a uniformly random policy needs per treasure;
a size where most seeds never learned is drawn as a cross at the cap.

    rlworks bench exploration [--methods bootstrapped-dqn,dqn,ppo-rnd,count-bonus,q-learning]
                              [--sizes 10,20,30,40,50] [--seeds 5] [--max-episodes 10000] [--jobs 2]
                              [--json FILE] [--png FILE]

Results go to ``--json`` one run at a time, and a run already there is not run again: an interrupted
benchmark continues where it stopped, and more sizes or seeds can be added later.

Methods: ``bootstrapped-dqn`` (its DeepSea preset: K heads with randomized priors), ``dqn`` (ε-greedy, the
same network and settings), ``ppo-rnd`` (PPO with RND, the ``deepsea-rnd`` preset), ``count-bonus`` (tabular
Q-learning with the UCB count bonus and optimistic initial values, on the index observations), ``q-learning``
(tabular, ε-greedy).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from ..config import ConfigError

METHODS = ("bootstrapped-dqn", "dqn", "ppo-rnd", "count-bonus", "q-learning")
#: deep methods: (algorithm, preset; None = the env's own)
DEEP = {"bootstrapped-dqn": ("bootstrapped-dqn", None), "dqn": ("dqn", None), "ppo-rnd": ("ppo", "deepsea-rnd")}
WINDOW, NEED = 100, 0.9  # "learned": the treasure in at least 90 % of 100 consecutive episodes
#: the tabular learners' settings (the lab's DeepSea presets)
LABELS = {"bootstrapped-dqn": "Bootstrapped DQN + priors", "dqn": "DQN, ε-greedy", "ppo-rnd": "PPO + RND",
          "count-bonus": "tabular Q, UCB count bonus + optimistic Q", "q-learning": "tabular Q, ε-greedy"}
TABULAR = {"count-bonus": dict(epsilon=0.0, alpha=0.5, q_init=1.0, bonus="ucb", bonus_c=0.1),
           "q-learning": dict(epsilon=0.1, alpha=0.5, q_init=0.0)}


class Learned:
    """Tracks treasure hits episode by episode; ``at`` is the first episode ending a window of 100 with ≥ 90."""

    def __init__(self) -> None:
        self.hits: list[bool] = []
        self.at: int | None = None

    def add(self, returns) -> None:
        for r in returns:
            self.hits.append(r > 0)  # only the treasure pays: any other episode returns ≤ 0
            if self.at is None and len(self.hits) >= WINDOW and sum(self.hits[-WINDOW:]) >= NEED * WINDOW:
                self.at = len(self.hits)


def run_one(method: str, size: int, seed: int, max_episodes: int) -> dict[str, Any]:
    """One (method, size, seed): episodes to learn (None if not within ``max_episodes``), episodes run,
    treasures found and seconds."""
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    learned = Learned()
    if method in TABULAR:
        import gymnasium as gym

        import rlworks.envs  # noqa: F401  (registers the DeepSea ids)
        from rlworks.tabular.learner import TabularLearner

        env = gym.make("rlworks/DeepSeaIndex-v0", size=size, mapping_seed=seed)
        learner = TabularLearner(env.unwrapped.model, "q-learning", gamma=0.99, max_episode_steps=size, seed=seed,
                                 **TABULAR[method])
        while learned.at is None and len(learned.hits) < max_episodes:
            returns, _ = learner.run(episodes=min(100, max_episodes - len(learned.hits)))
            learned.add(returns)
    else:
        import rlworks

        algo, preset = DEEP[method]
        rlworks.train(algo, "rlworks/DeepSea-v0", total_steps=max_episodes * size, seed=seed, preset=preset,
                      env_kwargs={"size": size, "mapping_seed": seed},
                      on_episodes=lambda step, eps: learned.add(r for r, _ in eps),
                      callback=lambda s: learned.at is not None or len(learned.hits) >= max_episodes)
    return {"method": method, "size": size, "seed": seed, "episodes_to_learn": learned.at,
            "episodes": len(learned.hits), "treasures": int(sum(learned.hits)),
            "seconds": round(time.perf_counter() - t0, 2)}


def _call(args: tuple[str, int, int, int]) -> dict[str, Any]:
    return run_one(*args)


def summary(results: list[dict[str, Any]], max_episodes: int) -> dict[str, dict[int, dict[str, Any]]]:
    """method -> size -> {learned: k of n, median: episodes (None when most seeds did not learn)}.
    A seed that did not learn counts as the cap in the median, so the median is an honest lower bound."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for r in results:
        out.setdefault(r["method"], {}).setdefault(r["size"], {"runs": []})["runs"].append(r)
    for sizes in out.values():
        for cell in sizes.values():
            runs = cell.pop("runs")
            eps = [r["episodes_to_learn"] for r in runs]
            done = [e for e in eps if e is not None]
            cell["learned"], cell["seeds"] = len(done), len(eps)
            cell["median"] = (statistics.median(e if e is not None else max_episodes for e in eps)
                              if len(done) * 2 > len(eps) else None)
    return out


def plot(table: dict[str, dict[int, dict[str, Any]]], max_episodes: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    sizes = sorted({n for s in table.values() for n in s})
    if sizes:
        ax.plot(sizes, [2.0 ** n for n in sizes], ":", color="grey", label="2^N (random policy, per treasure)")
    step = (sizes[-1] - sizes[0]) / 60 if len(sizes) > 1 else 0.1
    for i, (method, cells) in enumerate(table.items()):
        ns = sorted(cells)
        ok = [(n, cells[n]["median"]) for n in ns if cells[n]["median"] is not None]
        line = ax.plot([n for n, _ in ok], [m for _, m in ok], "o-", label=LABELS.get(method, method))[0]
        failed = [n for n in ns if cells[n]["median"] is None]
        if failed:  # side by side, so that the methods that failed at one size do not hide each other
            shift = (i - (len(table) - 1) / 2) * step
            ax.plot([n + shift for n in failed], [max_episodes] * len(failed), "x", color=line.get_color(),
                    markersize=8, mew=2)
    ax.axhline(max_episodes, color="black", lw=0.6)
    ax.set_yscale("log")
    ax.set_ylim(10, max_episodes * 3)
    ax.set_xlabel("DeepSea size N")
    ax.set_ylabel("episodes to learn (median of seeds)")
    ax.set_title(f"DeepSea: learned = treasure in ≥ {NEED:.0%} of {WINDOW} episodes; x = not within {max_episodes:,}",
                 fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _list(kind, text: str) -> list:
    try:
        return [kind(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlworks bench exploration", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", type=lambda t: _list(str, t), default=list(METHODS), metavar="LIST",
                   help=f"comma-separated, from {', '.join(METHODS)} (default: all)")
    p.add_argument("--sizes", type=lambda t: _list(int, t), default=[10, 20, 30, 40, 50], metavar="LIST",
                   help="DeepSea sizes N (default: 10,20,30,40,50)")
    p.add_argument("--seeds", type=int, default=5, metavar="K", help="seeds 0..K-1 (default: 5)")
    p.add_argument("--max-episodes", type=int, default=10_000, metavar="E", help="cap per run (default: 10000)")
    p.add_argument("--jobs", type=int, default=1, metavar="J", help="runs at a time, one process each (default: 1)")
    p.add_argument("--json", default="exploration.json", metavar="FILE",
                   help="results, appended run by run; runs already there are skipped (default: exploration.json)")
    p.add_argument("--png", default="deepsea-scaling.png", metavar="FILE",
                   help="the scaling plot (default: deepsea-scaling.png)")
    p.add_argument("--plot-only", action="store_true",
                   help="run nothing: summarise and plot what --json holds for these methods and sizes")
    return p


def main(argv: list[str]) -> int:
    o = parser().parse_args(argv)
    bad = [m for m in o.methods if m not in METHODS]
    if bad:
        raise ConfigError(f"unknown method {bad[0]!r}; allowed: {', '.join(METHODS)}")
    if min(o.sizes, default=0) < 1 or o.seeds < 1 or o.max_episodes < WINDOW or o.jobs < 1:
        raise ConfigError(f"--sizes must be >= 1, --seeds and --jobs >= 1, --max-episodes >= {WINDOW}")
    path = Path(o.json)
    data = json.loads(path.read_text()) if path.is_file() else {"results": []}
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ConfigError(f"{path} is not a results file of rlworks bench exploration; pass another --json")
    done = {(r["method"], r["size"], r["seed"], r.get("max_episodes")) for r in data["results"]}
    todo = [(m, n, s, o.max_episodes) for n in o.sizes for m in o.methods for s in range(o.seeds)
            if (m, n, s, o.max_episodes) not in done and not o.plot_only]
    print(f"{len(todo)} runs to do, {len(data['results'])} already in {path}", flush=True)

    def record(r: dict[str, Any]) -> None:
        r["max_episodes"] = o.max_episodes
        data["results"].append(r)
        path.write_text(json.dumps(data, indent=1))
        got = r["episodes_to_learn"]
        print(f"{r['method']:17s} N={r['size']:<3d} seed {r['seed']}: "
              f"{'learned at episode ' + str(got) if got else 'not learned'} ({r['episodes']} episodes, "
              f"{r['treasures']} treasures, {r['seconds']:.0f} s)", flush=True)

    if o.jobs == 1:
        for job in todo:
            record(run_one(*job))
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(o.jobs) as pool:
            for r in pool.imap_unordered(_call, todo):
                record(r)
    results = [r for r in data["results"] if r.get("max_episodes") == o.max_episodes and r["method"] in o.methods
               and r["size"] in o.sizes and r["seed"] < o.seeds]
    table = summary(results, o.max_episodes)
    for method, cells in table.items():
        row = ", ".join(f"N={n}: {c['median'] if c['median'] is not None else 'x'} ({c['learned']}/{c['seeds']})"
                        for n, c in sorted(cells.items()))
        print(f"{method:17s} {row}")
    plot(table, o.max_episodes, Path(o.png))
    print(f"plot: {o.png}")
    return 0
