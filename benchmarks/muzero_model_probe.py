"""Does MuZero's learned model tell CartPole's two actions apart? (why rlworks' dynamics are residual)

Trains MuZero's unrolled loss (``algos/muzero.py``: ``update``) on a fixed replay of 150 random-policy
CartPole episodes, then asks the model, for 800 held-out states, which action leads to the higher value
after 1, 3 and 6 steps of the same action, three ways:

* ``true sim``: the value network on the states gymnasium's equations reach (envs/simulators.py);
* ``model``: the value head on the hidden states the learned dynamics reach;
* the lean-of-the-pole heuristic (push toward the side the pole falls to: sign of θ + θ̇/2), which balances
  CartPole for hundreds of steps.

It prints how often each agrees with the heuristic, and how far the dynamics move the hidden state between
the two actions against its error. Configurations: ``--residual`` on/off, ``--consistency W``.

    python benchmarks/muzero_model_probe.py                       # residual dynamics, consistency 2
    python benchmarks/muzero_model_probe.py --no-residual         # the plain MLP dynamics
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from rlworks.algos import muzero as mz
from rlworks.algos.games import GameHistory, GameReplay
from rlworks.core.optim import Adam
from rlworks.core.support import support_to_scalar
from rlworks.envs.simulators import CartPoleSimulator


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--residual", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--consistency", type=float, default=2.0)
    p.add_argument("--updates", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    cfg = mz.MuZeroConfig(td_steps=5, batch_size=256, learning_rate=3e-3, residual_dynamics=a.residual,
                          consistency_loss_weight=a.consistency)
    env, rng = gym.make("CartPole-v1"), np.random.default_rng(a.seed)
    replay = GameReplay(100_000, 2, (4,), num_unroll=5, td_steps=5, alpha=0.5, beta=1.0, seed=a.seed)
    for ep in range(150):
        obs, _ = env.reset(seed=ep)
        game, done = GameHistory(), False
        while not done:
            action = int(rng.integers(2))
            nxt, r, term, trunc, _ = env.step(action)
            game.append(obs, action, r, 0.997, 0.0, [0.5, 0.5])
            obs, done = nxt, term or trunc
        replay.add(game.finish(obs, terminated=term))
    held_out = []
    for ep in range(1000, 1040):
        obs, _ = env.reset(seed=ep)
        done = False
        while not done:
            held_out.append(obs)
            obs, _, term, trunc, _ = env.step(int(rng.integers(2)))
            done = term or trunc
    x = torch.tensor(np.array(held_out[:800]))
    heuristic = (x[:, 2] + 0.5 * x[:, 3] > 0).long()

    def build():
        return mz.MuZeroNet(4, 2, cfg.latent_dim, cfg.hidden, cfg.support_size, residual=a.residual)

    net, target = build(), build()
    st = mz.MuZeroState(mz.MuZeroPlanner(net, cfg, 0.997), target, Adam(net.parameters(), lr=cfg.learning_rate))
    for _ in range(a.updates):
        b = replay.sample(cfg.batch_size)
        prio, _ = mz.update(st, cfg, {k: torch.as_tensor(v) for k, v in b.items() if k != "legal"})
        replay.update_priorities(b["indices"], prio.numpy())
        st.n_updates += 1
        if st.n_updates % cfg.target_update_interval == 0:
            target.load_state_dict(net.state_dict())
    sim = CartPoleSimulator()
    print(f"residual={a.residual} consistency={a.consistency} updates={a.updates}")
    with torch.no_grad():
        for depth in (1, 3, 6):
            true_v, model_v = [], []
            for action in (0, 1):
                state, latent = x.double(), net.initial_inference(x)[0]
                act = torch.full((len(x),), action)
                for _ in range(depth):
                    state, _, done, _ = sim.step(state, act)
                    latent = net.recurrent_inference(latent, act)[0]
                true_v.append(support_to_scalar(net.initial_inference(state.float())[2], cfg.support_size) * ~done)
                model_v.append(support_to_scalar(net.value_head(latent), cfg.support_size))
            t, m = torch.stack(true_v, 1).argmax(1), torch.stack(model_v, 1).argmax(1)
            print(f"  depth {depth}: agreement with the heuristic: true sim {(t == heuristic).float().mean():.2f}, "
                  f"model {(m == heuristic).float().mean():.2f}")
        b = replay.sample(1024)
        obs, act = torch.as_tensor(b["obs"]), torch.as_tensor(b["actions"][:, 0])
        seen = torch.as_tensor(b["unroll_seen"][:, 1]) > 0
        s = net.initial_inference(obs)[0]
        nxt = net.initial_inference(torch.as_tensor(b["unroll_obs"][:, 1]))[0]
        taken, other = net.recurrent_inference(s, act)[0], net.recurrent_inference(s, 1 - act)[0]
        err = ((taken - nxt) ** 2).sum(-1)[seen].mean()
        gap = ((taken - other) ** 2).sum(-1).mean()
        cos = F.cosine_similarity(taken, nxt)[seen].mean()
        print(f"  one step: error to the encoded next observation {err:.3f} (cosine {cos:.3f}); "
              f"distance between the two actions' next states {gap:.3f}")


if __name__ == "__main__":
    main()
