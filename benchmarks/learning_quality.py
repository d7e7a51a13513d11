"""Learning quality at a fixed budget: train one algorithm on one env for several seeds with the
env's preset, evaluate each final agent deterministically, print per-seed returns and the median.

    python benchmarks/learning_quality.py --algo ppo --env LunarLander-v3 --total-steps 1000000 \
        --seeds 0,1,2,3,4 [--workers 2] [--json out.json] [--field value ...]

Each seed runs in its own process (``--workers`` at a time, one torch thread each). The evaluation
is ``agent.evaluate(10, seed=10_000 + seed)``: 10 deterministic episodes on seeds the training
never used. Training time and evaluation are reported separately.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any


def _one(algo: str, env_id: str, total_steps: int, seed: int, overrides: dict[str, Any]) -> dict[str, Any]:
    import rlworks

    t0 = time.perf_counter()
    agent = rlworks.train(algo, env_id, total_steps=total_steps, seed=seed, **overrides)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    ev = agent.evaluate(10, seed=10_000 + seed)
    return {"seed": seed, "mean_return": float(ev.mean_return), "std_return": float(ev.std_return),
            "train_seconds": train_s, "eval_seconds": time.perf_counter() - t1}


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--total-steps", type=int, required=True)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--json", help="write the per-seed results here")
    args, rest = p.parse_known_args(argv)
    overrides = {rest[i].lstrip("-").replace("-", "_"): _value(rest[i + 1]) for i in range(0, len(rest), 2)}
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    rows = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(_one, args.algo, args.env, args.total_steps, s, overrides) for s in seeds]
        for f in as_completed(futures):  # report each seed as it finishes: long runs show progress
            r = f.result()
            rows.append(r)
            print(f"seed {r['seed']}: {r['mean_return']:9.1f} ± {r['std_return']:6.1f}   "
                  f"(training {r['train_seconds']:.0f} s)", flush=True)
    rows.sort(key=lambda r: r["seed"])
    median = statistics.median(r["mean_return"] for r in rows)
    print(f"{args.algo} {args.env} @ {args.total_steps:,} steps, overrides {overrides or 'none'}: "
          f"median of {len(rows)} seeds = {median:.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"algo": args.algo, "env": args.env, "total_steps": args.total_steps, "overrides": overrides,
                       "started": started, "median": median, "seeds": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
