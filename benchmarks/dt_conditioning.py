"""Decision Transformer conditioning on CartPole: the achieved return against the target return; prints the table of
docs/decision-transformer.md and draws docs/dt-conditioning.png.

The dataset is "medium"-like: episodes of a scripted balancing policy (push toward the side the pole leans to,
counting its angular velocity: 500 every time) made ε-greedy with ε drawn uniformly in [0, 1] per episode, so the
returns span 10 to 500. DT (the CartPole-v1 preset: K 10, 2 layers, 1 head, embedding 64) trains on it,
then plays ``--episodes`` episodes (fixed seeds) at each target return. ``--dataset ID`` trains on a Minari
dataset on disk instead, e.g. ``rlworks/cartpole/medium-v0`` from ``rlworks datasets make CartPole-v1`` (a PPO
checkpoint at about a third of expert). Usage: ``python benchmarks/dt_conditioning.py [--steps N] [--seeds 0 1 ...]
[--dataset ID] [--out PATH]``; one core by default.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import gymnasium as gym  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import rlworks  # noqa: E402
from rlworks.config import load_toml  # noqa: E402
from rlworks.offline.data import OfflineDataset  # noqa: E402

TARGETS = (25, 50, 100, 150, 200, 300, 400, 500)
PRESET = Path(rlworks.__file__).parent / "presets" / "dt.toml"


def medium_dataset(episodes: int, seed: int) -> OfflineDataset:
    """ε-greedy episodes of the scripted policy, ε ~ U[0, 1] per episode."""
    env, rng, eps = gym.make("CartPole-v1"), np.random.default_rng(seed), []
    for e in range(episodes):
        o, _ = env.reset(seed=seed * 10_000 + e)
        epsilon = rng.random()
        ep = {"observations": [o], "actions": [], "rewards": [], "terminations": [], "truncations": []}
        done = False
        while not done:
            a = int(rng.integers(2)) if rng.random() < epsilon else int(o[2] + 0.5 * o[3] > 0)
            o, r, term, trunc, _ = env.step(a)
            for k, v in zip(ep, (o, a, r, term, trunc)):
                ep[k].append(v)
            done = term or trunc
        eps.append({k: np.array(v) for k, v in ep.items()})
    env.close()
    return OfflineDataset.from_episodes("bench/cartpole/medium-v0", eps, env.observation_space, env.action_space,
                                        env_id="CartPole-v1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="gradient steps")
    parser.add_argument("--episodes", type=int, default=5, help="evaluation episodes per target")
    parser.add_argument("--dataset-episodes", type=int, default=100)
    parser.add_argument("--dataset", default=None, help="a Minari dataset id on disk (default: the scripted data)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "dt-conditioning.png"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    preset = {k: v for k, v in load_toml(PRESET)["CartPole-v1"].items()
              if k not in ("env", "total_steps", "eval_every", "eval_episodes", "keep")}
    achieved = np.zeros((len(args.seeds), len(TARGETS)))
    for i, seed in enumerate(args.seeds):
        if args.dataset:
            from rlworks.offline.datasets import load

            data = load(args.dataset)
        else:
            data = medium_dataset(args.dataset_episodes, seed)
        r = data.episode_returns
        print(f"seed {seed}: {len(data)} transitions, {data.n_episodes} episodes, returns min {r.min():.0f} "
              f"median {np.median(r):.0f} max {r.max():.0f}")
        t0 = time.perf_counter()
        agent = rlworks.train("dt", "CartPole-v1", dataset=data, total_steps=args.steps, seed=seed, **preset)
        train_s = time.perf_counter() - t0
        print(f"  {args.steps} gradient steps in {train_s:.0f} s ({args.steps / agent.meta['train_seconds']:.1f} "
              f"steps/s in the loop)")
        for j, g in enumerate(TARGETS):
            achieved[i, j] = agent.evaluate(args.episodes, seed=1_000, target_return=g).mean_return
    print("\n| target return | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean |")
    print("|---|" + "---|" * (len(args.seeds) + 1))
    for j, g in enumerate(TARGETS):
        print(f"| {g} | " + " | ".join(f"{a:.0f}" for a in achieved[:, j]) + f" | {achieved[:, j].mean():.0f} |")
    fig, ax = plt.subplots(figsize=(5, 4))
    for i, seed in enumerate(args.seeds):
        ax.plot(TARGETS, achieved[i], "o-", alpha=0.6, label=f"seed {seed}")
    ax.plot([0, 500], [0, 500], "k:", label="achieved = target")
    ax.set(xlabel="target return R̂₀", ylabel="achieved return (mean of episodes)",
           title=f"Decision Transformer, CartPole\n{args.dataset or 'medium-like data'}, {args.steps} gradient steps")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
