"""How many DDPG/TD3 updates per second this CPU can do at most: the floating-point work of one update with the
RL Zoo's Pendulum settings, against the matrix-product speed torch reaches on the same shapes, one thread.

    python benchmarks/matmul_ceiling.py [--hidden 400 300] [--batch 256] [--obs 3] [--act 1] [--sb3 83.6]

An update of DDPG (TD3 with one critic and the actor updated every step) does, per sample of the minibatch:
the target actor and the target critic forward on s' (2 passes), the critic forward and backward on (s, a)
(3 passes: the backward pass computes the gradients of the weights and of the layer inputs), the actor
forward, the critic forward on (s, π(s)) and both backward for the actor loss (1 + 1 + 2 + 2 passes): 11
passes of an MLP, each about as many multiply-adds as the network has weights. ``--sb3`` is Stable-Baselines3's
measured updates/s (benchmarks/offpolicy_vs_sb3.py, same machine); the script prints the speed ratio that the
ceiling allows, so a goal of "2x SB3" can be checked against what the processor can do at all. Run it on an
idle machine.
"""

from __future__ import annotations

import argparse
import time

import torch

PASSES = 11  # MLP passes per DDPG update (see above); TD3 with two critics and policy delay 2: 15 per update


def macs(sizes: list[int]) -> int:
    return sum(a * b for a, b in zip(sizes, sizes[1:]))


def gflops(batch: int, sizes: list[int], seconds: float = 2.0) -> float:
    """Sustained GFLOP/s of a forward pass through dense layers of ``sizes`` on a (batch, sizes[0]) input,
    matrix products only (the floor of every pass: no activations, no optimizer)."""
    ws = [torch.randn(a, b) for a, b in zip(sizes, sizes[1:])]
    x = torch.randn(batch, sizes[0])
    for _ in range(20):
        h = x
        for w in ws:
            h = h @ w
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        h = x
        for w in ws:
            h = h @ w
        n += 1
    return 2 * batch * macs(sizes) * n / (time.perf_counter() - t0) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[400, 300])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--obs", type=int, default=3)
    p.add_argument("--act", type=int, default=1)
    p.add_argument("--sb3", type=float, default=None, help="SB3's measured updates/s on this machine")
    p.add_argument("--rlworks", type=float, default=None, help="rlworks' measured updates/s on this machine")
    args = p.parse_args()
    torch.set_num_threads(1)
    actor = [args.obs, *args.hidden, args.act]
    critic = [args.obs + args.act, *args.hidden, 1]
    per_update = 2 * args.batch * (macs(actor) + macs(critic)) / 2 * PASSES  # FLOPs, the two nets averaged
    peak = gflops(args.batch, critic)
    ceiling = peak * 1e9 / per_update
    print(f"one update: {per_update / 1e9:.3f} GFLOP ({PASSES} passes of a {critic} MLP on {args.batch} samples)")
    print(f"matrix products on these shapes, one thread: {peak:.1f} GFLOP/s -> at most {ceiling:.0f} updates/s")
    if args.rlworks:
        print(f"rlworks measured {args.rlworks:.1f} updates/s = {args.rlworks / ceiling:.0%} of the ceiling")
    if args.sb3:
        print(f"SB3 measured {args.sb3:.1f} updates/s = {args.sb3 / ceiling:.0%} of the ceiling; "
              f"the largest ratio to SB3 this CPU allows: {ceiling / args.sb3:.2f}x")


if __name__ == "__main__":
    main()
