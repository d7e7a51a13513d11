"""Does MuZero's learned model see TicTacToe's winning moves? (why MuZero misses its TicTacToe goal)

Trains MuZero's unrolled loss (``algos/muzero.py``: ``update``) on a fixed replay of 3,000 random self-play
games (discount −1 between movers, the game's outcome as the target), then takes the held-out positions of
2,000 more random games where the mover has a winning move among others (3,348 positions), and asks the
model for each legal move's one-step value r − V(next) (the next state is the opponent's). It prints how
often the best of these is a winning move, and the reward the model predicts for a winning move (truth: 1),
every 1,000 updates. ``--set k=v`` changes MuZeroConfig fields (e.g. latent_dim=128 hidden="(128,128)").

    python benchmarks/muzero_tictactoe_probe.py
"""

from __future__ import annotations

import argparse
import ast

import gymnasium as gym
import numpy as np
import torch

import rlworks  # noqa: F401  (registers rlworks/TicTacToe-v0)
from rlworks.algos import muzero as mz
from rlworks.algos.games import GameHistory, GameReplay
from rlworks.core.optim import Adam
from rlworks.core.support import support_to_scalar
from rlworks.envs.simulators import TicTacToeSimulator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", nargs="*", default=[], help="MuZeroConfig overrides k=v")
    p.add_argument("--updates", type=int, default=3000)
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    over = {k: ast.literal_eval(v) for k, v in (x.split("=", 1) for x in a.set)}
    cfg = mz.MuZeroConfig(discount=1.0, td_steps=9, batch_size=256, **over)
    env, rng = gym.make("rlworks/TicTacToe-v0", opponent="self-play"), np.random.default_rng(0)
    replay = GameReplay(100_000, 9, (27,), num_unroll=cfg.num_unroll, td_steps=9, alpha=cfg.per_alpha,
                        beta=cfg.per_beta, seed=0)
    for ep in range(3000):
        obs, info = env.reset(seed=ep)
        game, done = GameHistory(), False
        while not done:
            legal = np.flatnonzero(info["action_mask"])
            action = int(rng.choice(legal))
            policy = np.zeros(9)
            policy[legal] = 1 / len(legal)
            nxt, r, done, _, info = env.step(action)
            game.append(obs, action, r, -1.0, 0.0, policy)
            obs = nxt
        replay.add(game.finish(obs, terminated=True))

    def build():
        return mz.MuZeroNet(27, 9, cfg.latent_dim, cfg.hidden, cfg.support_size, residual=cfg.residual_dynamics)

    net, target = build(), build()
    st = mz.MuZeroState(mz.MuZeroPlanner(net, cfg, -1.0), target, Adam(net.parameters(), lr=cfg.learning_rate))
    sim, tests = TicTacToeSimulator(), []
    for ep in range(4000, 6000):
        obs, info = env.reset(seed=ep)
        done = False
        while not done:
            state = sim.from_obs(torch.tensor(obs[None]).double())
            legal = np.flatnonzero(info["action_mask"])
            wins = [m for m in legal if float(sim.step(state, torch.tensor([m]))[1][0]) == 1.0]
            if wins and len(wins) < len(legal):
                tests.append((obs.copy(), wins, legal))
            obs, _, done, _, info = env.step(int(rng.choice(legal)))
    x = torch.tensor(np.array([t[0] for t in tests]))
    print(f"{cfg.latent_dim=} {cfg.hidden=} {cfg.residual_dynamics=}: {len(tests)} positions with a win among "
          "other moves")
    for i in range(a.updates + 1):
        b = replay.sample(256)
        prio, _ = mz.update(st, cfg, {k: torch.as_tensor(v) for k, v in b.items() if k != "legal"})
        replay.update_priorities(b["indices"], prio.numpy())
        st.n_updates += 1
        if st.n_updates % cfg.target_update_interval == 0:
            target.load_state_dict(net.state_dict())
        if i % 1000:
            continue
        with torch.no_grad():
            s0 = net.initial_inference(x)[0]
            q = []
            for m in range(9):
                _, r1, _, v1 = net.recurrent_inference(s0, torch.full((len(x),), m))
                q.append(support_to_scalar(r1, cfg.support_size) - support_to_scalar(v1, cfg.support_size))
            q = torch.stack(q, 1)
            for j, t in enumerate(tests):
                illegal = torch.full((9,), float("-inf"))
                illegal[t[2]] = 0
                q[j] += illegal
            hit = np.mean([int(q[j].argmax()) in t[1] for j, t in enumerate(tests)])
            r_win = np.mean([float(support_to_scalar(net.recurrent_inference(s0[j:j + 1], torch.tensor([t[1][0]]))[1],
                                                     cfg.support_size)) for j, t in enumerate(tests[:200])])
        print(f"  {i} updates: a winning move chosen in {hit:.2f}; predicted reward of a winning move {r_win:.2f}",
              flush=True)


if __name__ == "__main__":
    main()
