"""PPO steps per second on BreakoutNoFrameskip-v4: rlworks beside Stable-Baselines3, in one run.

    python benchmarks/atari_vs_sb3.py --seeds 0 1 2 --steps 20000

Both libraries train the RL Zoo's Atari PPO (8 envs × 128 steps, 4 epochs of 256, lr 2.5e-4 and clip 0.1
decayed linearly, entropy 0.01) with the Nature CNN shared by both heads (SB3's CnnPolicy; rlworks' preset
for the id) on the same envs: rlworks' atari wrapper (core/atari.py: no-op reset, frame skip 4 with max
pooling, 84×84 grey, episodic life, FIRE reset, reward clipping, 4 frames stacked channel-first) around
each env, stepped one after another in the trainer's process (SB3's DummyVecEnv; rlworks' lean vector
env). One torch thread each. Each run is a fresh subprocess (the libraries alternate, seed by seed);
``env`` runs measure the envs alone under random actions: the ceiling of any trainer here.

Prints one JSON line per run, then the median steps/s of each library and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

ENV = "BreakoutNoFrameskip-v4"
ZOO = dict(n_envs=8, n_steps=128, batch_size=256, n_epochs=4, learning_rate=2.5e-4, clip=0.1, ent_coef=0.01,
           vf_coef=0.5)


def make_env():
    import gymnasium as gym

    from rlworks.core.atari import AtariPreprocessing
    from rlworks.core.envs import check_env_id

    check_env_id(ENV)  # registers the ALE ids
    return AtariPreprocessing(gym.make(ENV))


def run_rlworks(steps: int, seed: int) -> dict:
    from rlworks import algos

    t0 = time.perf_counter()
    # the id's preset is the RL Zoo setting above; the id gets the same atari wrapper automatically
    agent = algos.train("ppo", ENV, total_steps=steps, seed=seed, n_envs=ZOO["n_envs"], log_every=10**12,
                        num_threads=1)
    assert agent.config.n_steps == ZOO["n_steps"] and agent.config.batch_size == ZOO["batch_size"]
    return {"steps": agent.meta["global_step"], "seconds": time.perf_counter() - t0,
            "backend": agent.meta["backend"]}


def run_sb3(steps: int, seed: int) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    t0 = time.perf_counter()
    venv = DummyVecEnv([make_env] * ZOO["n_envs"])
    venv.seed(seed)
    lin = lambda v: (lambda p: p * v)  # noqa: E731  RL Zoo's lin_<v>
    model = PPO("CnnPolicy", venv, n_steps=ZOO["n_steps"], batch_size=ZOO["batch_size"], n_epochs=ZOO["n_epochs"],
                learning_rate=lin(ZOO["learning_rate"]), clip_range=lin(ZOO["clip"]), ent_coef=ZOO["ent_coef"],
                vf_coef=ZOO["vf_coef"], seed=seed, device="cpu", verbose=0)
    model.learn(steps)
    return {"steps": model.num_timesteps, "seconds": time.perf_counter() - t0, "backend": None}


def run_env(steps: int, seed: int) -> dict:
    import numpy as np

    envs = [make_env() for _ in range(ZOO["n_envs"])]
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for i, e in enumerate(envs):
        e.reset(seed=seed + i)
    done = 0
    while done < steps:
        for e in envs:
            _, _, term, trunc, _ = e.step(int(rng.integers(4)))
            if term or trunc:
                e.reset()
        done += len(envs)
    return {"steps": done, "seconds": time.perf_counter() - t0, "backend": None}


def child(lib: str, steps: int, seed: int) -> int:
    import torch

    torch.set_num_threads(1)
    if lib == "rlworks":  # what the CLI enters for its whole process (rlworks.train sets the rest itself)
        from rlworks.core.runtime import retain_freed_memory_for_process

        retain_freed_memory_for_process()
    result = {"rlworks": run_rlworks, "sb3": run_sb3, "env": run_env}[lib](steps, seed)
    result.update(lib=lib, seed=seed, sps=result["steps"] / result["seconds"])
    print(json.dumps(result), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=20_000, help="env steps per run (all envs together)")
    p.add_argument("--libs", nargs="+", default=["rlworks", "sb3", "env"], choices=("rlworks", "sb3", "env"))
    p.add_argument("--child", choices=("rlworks", "sb3", "env"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.child, args.steps, args.seeds[0])
    sps: dict[str, list[float]] = {lib: [] for lib in args.libs}
    for seed in args.seeds:
        for lib in args.libs:
            out = subprocess.run([sys.executable, __file__, "--child", lib, "--steps", str(args.steps),
                                  "--seeds", str(seed)], capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                return out.returncode
            line = out.stdout.strip().splitlines()[-1]
            print(line, flush=True)
            sps[lib].append(json.loads(line)["sps"])
    summary = {lib: statistics.median(v) for lib, v in sps.items()}
    if "rlworks" in summary and "sb3" in summary:
        summary["ratio_rlworks_to_sb3"] = summary["rlworks"] / summary["sb3"]
    print(json.dumps({"median_sps": summary, "env": ENV, "steps": args.steps, "seeds": args.seeds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
