"""Why offline RL is hard, shown exactly: prints the figures of docs/offline.md and draws docs/offline-tabular.png.

The lab's 5x5 GridWorld as a cost-to-go task (-1 a step, 0 on entering the goal, gamma 0.9); 50 episodes of a
behaviour policy that only goes right or down (uniformly, 15-step cap), so "up" and "left" are never in the data.
Three value tables: naive offline Q-learning, tabular CQL(H) (alpha_cql = 1) and the exact values of the data's
MDP (``rlworks.offline.tabular.q_star_of_data``). Usage: ``python benchmarks/offline_tabular.py [--out PATH]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rlworks.envs.gridworld import GridWorld  # noqa: E402
from rlworks.offline.tabular import (  # noqa: E402
    behaviour_policy,
    collect,
    empirical_model,
    offline_cql,
    offline_q_learning,
    policy_return,
    q_star_of_data,
)

GAMMA, EPISODES, MAX_STEPS, SEED, ALPHA_CQL = 0.9, 50, 15, 0, 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "offline-tabular.png"))
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    env = GridWorld(step_reward=-1.0, goal_reward=0.0)
    model = env.model
    S, A = model.n_states, model.n_actions
    data = collect(model, behaviour_policy(S, A, (1, 2)), episodes=EPISODES, seed=SEED, max_steps=MAX_STEPS)
    emp = empirical_model(data, S, A)
    exact = q_star_of_data(emp, model, GAMMA)
    q_naive = offline_q_learning(data, S, A, gamma=GAMMA)
    q_cql = offline_cql(data, S, A, gamma=GAMMA, alpha_cql=ALPHA_CQL)
    seconds = time.perf_counter() - t0

    visited = emp.seen.any(axis=1)
    unseen = ~emp.seen & visited[:, None]
    rows = np.arange(S)
    print(f"dataset: {len(data)} transitions, {visited.sum()} states visited, actions taken: right and down only")
    for name, q in (("naive offline Q-learning", q_naive), (f"tabular CQL (alpha_cql={ALPHA_CQL})", q_cql)):
        gap = q[unseen] - exact.q[unseen]
        greedy = q.argmax(axis=1)
        off_data = (~emp.seen[rows, greedy] & visited).sum()
        print(f"{name}: Q - exact on the {unseen.sum()} unseen pairs: min {gap.min():+.2f}, mean {gap.mean():+.2f}, "
              f"max {gap.max():+.2f}; greedy picks an unseen action in {off_data}/{visited.sum()} states; "
              f"true return {policy_return(model, greedy, GAMMA):.3f}")
        seen_gap = q[emp.seen] - exact.q[emp.seen]
        print(f"    on the {emp.seen.sum()} seen pairs: max {seen_gap.max():+.2f}, above exact in "
              f"{(seen_gap > 1e-6).sum()}")
    print(f"data-optimal policy: true return {policy_return(model, exact.policy, GAMMA):.3f}")
    print(f"all of it in {seconds:.2f} s")

    # Per visited state: the value of "up" (never in the data) as each method believes it, against the exact value.
    states = np.flatnonzero(visited)
    labels = [f"{s // env.n_cols},{s % env.n_cols}" for s in states]
    x = np.arange(len(states))
    fig, ax = plt.subplots(figsize=(9, 4.4))
    ax.plot(x, exact.q[states, 0], "k_", markersize=14, mew=2, label="exact: take 'up', then the data-optimal policy")
    ax.plot(x, q_naive[states, 0], "o", color="tab:red", label="naive offline Q-learning")
    ax.plot(x, q_cql[states, 0], "s", color="tab:blue", label=f"tabular CQL (alpha_cql={ALPHA_CQL:g})")
    ax.set_xticks(x, labels, rotation=0, fontsize=8)
    ax.set_xlabel("state (row,col) visited by the data")
    ax.set_ylabel("Q(s, up)")
    ax.set_title("Q of an action the data never takes: naive overestimates it, CQL stays below")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
