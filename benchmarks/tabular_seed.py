"""The reference Q-learning snippet (SEED.txt) against rlworks' ``q_learning``, in one run.

Settings (the snippet's): FrozenLake-v1 non-slippery, 5000 episodes, alpha 0.1, gamma 0.95,
epsilon 0.2. Three figures, peer and rlworks alternated A B A B on the same seeds:

1. learning-loop steps per second after warm-up (median over seeds): the snippet's loop timed
   in-process and instrumented to count steps; rlworks' ``TabularResult.loop_seconds`` and
   ``.steps`` on a warm (already compiled) kernel;
2. whole-process wall time (median over repeats), each a fresh ``python -c`` process: the snippet
   as written vs ``import rlworks; q_learning(...)`` with numba's cache warm (rlworks is run once
   before timing);
3. seeds whose greedy policy reaches the goal (greedy rollout, 100-step cap).

Usage: ``python benchmarks/tabular_seed.py [--repeats N] [--seeds N] [--markdown]``;
``main(argv) -> int`` is what ``rlworks bench tabular`` calls.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np

EPISODES, ALPHA, GAMMA, EPSILON = 5000, 0.1, 0.95, 0.2

# The snippet exactly as in SEED.txt, with a seed line so that both sides see the same seeds.
SNIPPET = """\
import numpy as np
import gymnasium as gym
np.random.seed({seed})

env = gym.make("FrozenLake-v1", is_slippery=False)
Q = np.zeros((env.observation_space.n, env.action_space.n))
alpha, gamma, eps = 0.1, 0.95, 0.2

for episode in range(5000):
    s, _ = env.reset()
    done = False
    while not done:
        a = np.random.randint(4) if np.random.random() < eps \\
            else Q[s].argmax()
        s_next, r, done, *_ = env.step(a)
        Q[s, a] += alpha * (r + gamma * Q[s_next].max() - Q[s, a])
        s = s_next

# Greedy policy
policy = Q.argmax(axis=1)
"""

RLWORKS = """\
import gymnasium as gym
import rlworks
from rlworks.tabular import q_learning

env = gym.make("FrozenLake-v1", is_slippery=False)
res = q_learning(env, episodes=5000, alpha=0.1, gamma=0.95, epsilon=0.2, seed={seed})
policy = res.policy
"""


def snippet_loop(seed: int) -> tuple[np.ndarray, int, float]:
    """The snippet's learning loop, instrumented: (Q, steps, loop seconds)."""
    np.random.seed(seed)
    env = gym.make("FrozenLake-v1", is_slippery=False)
    Q = np.zeros((env.observation_space.n, env.action_space.n))
    alpha, gamma, eps = ALPHA, GAMMA, EPSILON
    steps = 0
    t0 = time.perf_counter()
    for _episode in range(EPISODES):
        s, _ = env.reset()
        done = False
        while not done:
            a = np.random.randint(4) if np.random.random() < eps else Q[s].argmax()
            s_next, r, done, *_ = env.step(a)
            Q[s, a] += alpha * (r + gamma * Q[s_next].max() - Q[s, a])
            s = s_next
            steps += 1
    seconds = time.perf_counter() - t0
    return Q, steps, seconds


def rlworks_loop(seed: int, tie_break: str = "random"):
    from rlworks.tabular import q_learning

    env = gym.make("FrozenLake-v1", is_slippery=False)
    res = q_learning(env, episodes=EPISODES, alpha=ALPHA, gamma=GAMMA, epsilon=EPSILON, seed=seed, tie_break=tie_break)
    return res.q, res.steps, res.loop_seconds


def reaches_goal(q: np.ndarray) -> bool:
    """Follow ``argmax`` (lowest index on ties) from the start for at most 100 steps."""
    env = gym.make("FrozenLake-v1", is_slippery=False)
    s, _ = env.reset(seed=0)
    for _ in range(100):
        s, r, terminated, truncated, _ = env.step(int(q[s].argmax()))
        if terminated or truncated:
            return terminated and r > 0
    return False


def wall_time(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def versions() -> str:
    import numba

    import rlworks

    return (
        f"python {platform.python_version()}, numpy {np.__version__}, gymnasium {gym.__version__}, "
        f"numba {numba.__version__}, rlworks {rlworks.__version__}"
    )


def run(seeds: int, repeats: int, rlworks_seeds: int, log=print) -> dict:
    import rlworks  # noqa: F401  (import and warm the kernel before any timing)

    rlworks_loop(0)
    snip_sps, rlw_sps, snip_steps, rlw_steps, snip_loop_s, rlw_loop_s = [], [], [], [], [], []
    snip_ok = rlw_ok_same = 0
    log(f"learning loop, {seeds} seeds, alternating snippet / rlworks ...")
    for seed in range(seeds):
        q, n, sec = snippet_loop(seed)
        snip_sps.append(n / sec)
        snip_steps.append(n)
        snip_loop_s.append(sec)
        snip_ok += reaches_goal(q)
        q, n, sec = rlworks_loop(seed)
        rlw_sps.append(n / sec)
        rlw_steps.append(n)
        rlw_loop_s.append(sec)
        rlw_ok_same += reaches_goal(q)
    rlw_ok = sum(reaches_goal(rlworks_loop(seed)[0]) for seed in range(rlworks_seeds))
    rlw_first_ok = sum(reaches_goal(rlworks_loop(seed, "first")[0]) for seed in range(rlworks_seeds))

    log(f"whole process, {repeats} repeats, alternating ...")
    wall_time(RLWORKS.format(seed=0))  # numba's cache warm
    snip_wall, rlw_wall = [], []
    for rep in range(repeats):
        snip_wall.append(wall_time(SNIPPET.format(seed=rep)))
        rlw_wall.append(wall_time(RLWORKS.format(seed=rep)))
    med = statistics.median
    return dict(
        seeds=seeds, repeats=repeats, rlworks_seeds=rlworks_seeds,
        snip_sps=med(snip_sps), rlw_sps=med(rlw_sps),
        snip_steps=med(snip_steps), rlw_steps=med(rlw_steps),
        snip_loop_s=med(snip_loop_s), rlw_loop_s=med(rlw_loop_s),
        snip_wall=med(snip_wall), rlw_wall=med(rlw_wall),
        snip_wall_range=(min(snip_wall), max(snip_wall)), rlw_wall_range=(min(rlw_wall), max(rlw_wall)),
        snip_ok=snip_ok, rlw_ok_same=rlw_ok_same, rlw_ok=rlw_ok, rlw_first_ok=rlw_first_ok,
    )  # fmt: skip


def table(r: dict, markdown: bool) -> str:
    rows = [
        ("figure", "reference snippet", "rlworks q_learning", "ratio"),
        (
            f"learning-loop steps/s (median of {r['seeds']} seeds)",
            f"{r['snip_sps']:,.0f}",
            f"{r['rlw_sps']:,.0f}",
            f"{r['rlw_sps'] / r['snip_sps']:,.0f}x faster",
        ),
        ("learning-loop seconds per run (median)", f"{r['snip_loop_s']:.3f}", f"{r['rlw_loop_s']:.5f}", ""),
        ("steps per run (median)", f"{r['snip_steps']:,.0f}", f"{r['rlw_steps']:,.0f}", ""),
        (
            f"whole process wall s (median of {r['repeats']}; min-max)",
            f"{r['snip_wall']:.2f} ({r['snip_wall_range'][0]:.2f}-{r['snip_wall_range'][1]:.2f})",
            f"{r['rlw_wall']:.2f} ({r['rlw_wall_range'][0]:.2f}-{r['rlw_wall_range'][1]:.2f})",
            f"{r['snip_wall'] / r['rlw_wall']:.1f}x less time",
        ),
        (
            "seeds whose greedy policy reaches the goal",
            f"{r['snip_ok']} of {r['seeds']}",
            f"{r['rlw_ok_same']} of {r['seeds']} (same seeds); {r['rlw_ok']} of {r['rlworks_seeds']}",
            "",
        ),
        ("same, rlworks with tie_break='first'", "", f"{r['rlw_first_ok']} of {r['rlworks_seeds']}", ""),
    ]
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rlworks bench tabular", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="whole-process timings per side (default 5)")
    p.add_argument("--seeds", type=int, default=30, help="seeds for the learning-loop comparison (default 30)")
    p.add_argument("--rlworks-seeds", type=int, default=100, help="seeds for rlworks' success count (default 100)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.seeds < 1 or args.rlworks_seeds < 1:
        print("--repeats, --seeds and --rlworks-seeds must be at least 1", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    started = _dt.datetime.now(_dt.timezone.utc)
    r = run(args.seeds, args.repeats, args.rlworks_seeds, log=lambda m: print(m, file=sys.stderr))
    load_after = os.getloadavg()
    print(
        f"tabular seed benchmark: FrozenLake-v1 non-slippery, {EPISODES} episodes, alpha {ALPHA}, gamma {GAMMA}, "
        f"epsilon {EPSILON}"
    )
    print(
        f"{started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before / "
        f"{load_after[0]:.2f} after; {versions()}"
    )
    print()
    print(table(r, args.markdown))
    ok = r["rlw_sps"] >= 100 * r["snip_sps"] and r["rlw_wall"] < r["snip_wall"]
    print()
    print(
        f"targets: steps/s >= 100x the snippet: {'met' if r['rlw_sps'] >= 100 * r['snip_sps'] else 'NOT met'}; "
        f"whole process below the snippet: {'met' if r['rlw_wall'] < r['snip_wall'] else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
