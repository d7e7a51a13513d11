"""What the intrinsic-reward modules cost: PPO vs PPO+RND vs PPO+ICM steps/s on the same env.

    python benchmarks/intrinsic_overhead.py [--env MountainCar-v0] [--steps 100000] [--repeats 3]

Each configuration trains ``--steps`` environment steps from the same seed, ``--repeats`` times, in
alternating order (so that drift of a shared machine spreads over all of them); the median wall-clock
steps/s is reported beside its ratio to the peer. Two peers are measured: PPO as it runs by default
(backend "auto": the fused update where there is one) and PPO on the autograd backend, which is what
an intrinsic run uses (its two-head model has no fused update): the second ratio is the modules' own
overhead. ``rlworks.train`` enters the CLI's runtime (one torch thread). Run it on an idle machine;
the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from rlworks import algos

RUNS = {  # name -> (PPO preset, overrides): each intrinsic module with its own preset's settings
    "ppo": ("mountaincar-rnd", {"intrinsic": "none"}),
    "ppo-autograd": ("mountaincar-rnd", {"intrinsic": "none", "backend": "autograd"}),
    "ppo+rnd": ("mountaincar-rnd", {}),
    "ppo+icm": ("mountaincar-icm", {}),
}


def one(env: str, steps: int, seed: int, run: tuple[str, dict]) -> float:
    preset, overrides = run
    t0 = time.perf_counter()
    algos.train("ppo", env, total_steps=steps, seed=seed, preset=preset, **overrides)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="MountainCar-v0")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    for overrides in RUNS.values():  # warm-up: imports, first allocations, lazy initialisation
        one(args.env, 2048, args.seed, overrides)
    sps: dict[str, list[float]] = {k: [] for k in RUNS}
    for r in range(args.repeats):
        for name in list(RUNS) if r % 2 == 0 else list(reversed(RUNS)):
            sps[name].append(one(args.env, args.steps, args.seed, RUNS[name]))
    med = {k: statistics.median(v) for k, v in sps.items()}
    print(f"PPO settings: presets mountaincar-rnd (ICM: mountaincar-icm); env {args.env}, {args.steps} steps, "
          f"{args.repeats} repeats (median)")
    print(f"{'run':<14}{'steps/s':>10}{'vs ppo':>9}{'vs autograd':>13}")
    for k, v in med.items():
        print(f"{k:<14}{v:>10.0f}{v / med['ppo']:>9.2f}{v / med['ppo-autograd']:>13.2f}")
    print(json.dumps({"env": args.env, "steps": args.steps, "repeats": args.repeats, "sps": sps, "median": med}))


if __name__ == "__main__":
    main()
