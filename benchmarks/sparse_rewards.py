"""Sparse rewards: PPO with and without an intrinsic reward (RND, ICM), same settings otherwise (issue 16).

    python benchmarks/sparse_rewards.py mountaincar [--seeds 0-4] [--jobs 2] [--json out.json]
    python benchmarks/sparse_rewards.py multiroom   [--seeds 0-2] [--total-steps 200000] [--jobs 2] [--json out.json]

``mountaincar``: MountainCar-v0 (−1 per step until the flag, 200-step limit), 300k steps, the presets
``mountaincar-rnd`` and ``mountaincar-icm`` (src/rlworks/presets/ppo.toml) and plain PPO with the RND preset's
settings and ``intrinsic="none"``. "Reached the flag" = final evaluation return > −200.
``multiroom``: MiniGrid-MultiRoom-N2-S4-v0 with its PPO preset, with and without ``intrinsic="rnd"``, at a
fixed budget.

Each (arm, seed) trains in its own process (``--jobs`` at a time, one torch thread each); the figure is the
final evaluation of the agent ``rlworks.train`` returns: ``--eval-episodes`` deterministic episodes reset with
seeds 10,000 + seed, …, which training does not use. The JSON is rewritten as each run finishes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

SUITES: dict[str, dict[str, Any]] = {
    "mountaincar": {"env": "MountainCar-v0", "total_steps": 300_000, "seeds": "0-4", "solved": -200.0,
                    "arms": {"ppo": ("mountaincar-rnd", {"intrinsic": "none"}),
                             "ppo+rnd": ("mountaincar-rnd", {}), "ppo+icm": ("mountaincar-icm", {})}},
    "multiroom": {"env": "MiniGrid-MultiRoom-N2-S4-v0", "total_steps": 200_000, "seeds": "0-2", "solved": 0.0,
                  "arms": {"ppo": (None, {}), "ppo+rnd": (None, {"intrinsic": "rnd", "int_coef": 1.0,
                                                                 "ext_coef": 2.0})}},
}


def _one(env: str, arm: str, preset: str | None, over: dict[str, Any], seed: int, total_steps: int,
         episodes: int) -> dict[str, Any]:
    import torch

    import rlworks

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    agent = rlworks.train("ppo", env, total_steps=total_steps, seed=seed, preset=preset, **over)
    seconds = time.perf_counter() - t0
    ev = agent.evaluate(episodes, seed=10_000 + seed)
    return {"arm": arm, "seed": seed, "mean_return": round(float(ev.mean_return), 2),
            "returns": [round(float(r), 2) for r in ev.returns], "train_seconds": round(seconds, 1),
            "sps": round(total_steps / seconds, 1), "preset": preset, "overrides": over}


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("suite", choices=sorted(SUITES))
    p.add_argument("--seeds")
    p.add_argument("--total-steps", type=int)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--arms", help="comma-separated subset of the suite's arms")
    p.add_argument("--json")
    o = p.parse_args()
    suite = SUITES[o.suite]
    seeds = _seeds(o.seeds or suite["seeds"])
    steps = o.total_steps or suite["total_steps"]
    arms = {k: v for k, v in suite["arms"].items() if not o.arms or k in o.arms.split(",")}
    jobs = [(suite["env"], arm, preset, over, seed, steps, o.eval_episodes)
            for seed in seeds for arm, (preset, over) in arms.items()]
    rows: list[dict[str, Any]] = []
    out = {"suite": o.suite, "env": suite["env"], "total_steps": steps, "eval_episodes": o.eval_episodes,
           "rows": rows, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with ProcessPoolExecutor(o.jobs) as pool:
        for fut in as_completed([pool.submit(_one, *j) for j in jobs]):
            r = fut.result()
            rows.append(r)
            print(f"{r['arm']:8s} seed {r['seed']}: {r['mean_return']:8.2f}  ({r['train_seconds']:.0f} s, "
                  f"{r['sps']:.0f} steps/s)", flush=True)
            if o.json:
                with open(o.json, "w") as fh:
                    json.dump(out, fh, indent=1)
    print(f"\n{suite['env']}, {steps:,} steps, final {o.eval_episodes}-episode evaluation of the returned agent")
    print("seed  " + "  ".join(f"{a:>9s}" for a in arms))
    by = {(r["arm"], r["seed"]): r["mean_return"] for r in rows}
    for seed in seeds:
        print(f"{seed:<5d} " + "  ".join(f"{by[(a, seed)]:9.2f}" for a in arms))
    for a in arms:
        vals = [by[(a, s)] for s in seeds]
        print(f"{a:8s} median {statistics.median(vals):8.2f}; above {suite['solved']:g}: "
              f"{sum(v > suite['solved'] for v in vals)}/{len(vals)}")


if __name__ == "__main__":
    main()
