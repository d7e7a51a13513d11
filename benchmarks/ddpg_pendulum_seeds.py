"""DDPG on Pendulum-v1 with its preset (20k steps), Gaussian and Ornstein-Uhlenbeck noise, one JSON line per run.

    python benchmarks/ddpg_pendulum_seeds.py --seeds 3,4 [--noises gaussian,ou] >> results.jsonl

The figure is the final 10-episode deterministic evaluation of the agent ``rlworks.train`` returns
(``agent.evaluate(10)``), as in benchmarks/results/2026-12-04-ddpg-pendulum-preset-20k-seeds0-2.jsonl.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import rlworks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--noises", default="gaussian,ou")
    p.add_argument("--total-steps", type=int, default=20_000)
    o = p.parse_args()
    torch.set_num_threads(1)
    for seed in (int(s) for s in o.seeds.split(",")):
        for noise in o.noises.split(","):
            t0 = time.perf_counter()
            agent = rlworks.train("ddpg", "Pendulum-v1", total_steps=o.total_steps, seed=seed, action_noise=noise)
            wall = time.perf_counter() - t0
            print(json.dumps({"noise": noise, "seed": seed, "final_eval": agent.evaluate(10).mean_return,
                              "train_s": agent.meta["train_seconds"], "wall_s": wall,
                              "backend": agent.meta["backend"]}), flush=True)


if __name__ == "__main__":
    main()
