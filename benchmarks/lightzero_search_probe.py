"""Time LightZero's C++ MuZero tree search (the peer we compare our batched torch search with).

What it measures
----------------
One "search" is what LightZero's MuZero collector does per environment step for a batch
of B environments:

  1. ``model.initial_inference(obs)`` on B CartPole-shaped observations (obs dim 4),
  2. ``MuZeroMCTSCtree.roots(B, legal_actions)`` + ``roots.prepare(...)`` (Dirichlet root noise),
  3. ``MuZeroMCTSCtree.search(roots, model, latent_roots, to_play)`` with ``num_simulations``
     simulations: per simulation one C++ ``batch_traverse``, one batched
     ``model.recurrent_inference`` over the B leaves, one C++ ``batch_backpropagate``,
  4. ``roots.get_distributions()`` / ``roots.get_values()``.

The model is LightZero's own ``MuZeroModelMLP`` (lzero.model.muzero_model_mlp):
representation obs 4 -> latent 64, dynamics (latent + one-hot action) -> latent + reward,
prediction latent -> 2 policy logits + value. Reward and value heads are categorical with
support_scale=300 (601 bins), as LightZero's MuZero config defaults. BatchNorm as in the
CartPole config (model in eval mode during search, which LightZero's search sets itself).
``last_linear_layer_init_zero=False`` so the untrained heads give non-uniform priors/values
(with LightZero's default zero init every prior is uniform and every value 0).

Reported: ``searches_per_s`` (full steps 1-4 per second), ``simulations_per_s`` =
roots * simulations * searches_per_s, plus a split of wall time into the batched network
calls (``recurrent_inference``) and everything else (C++ tree + Python glue + numpy copies).
torch runs with ONE intra-op thread (torch.set_num_threads(1)), on CPU.

How to run
----------
LightZero needs its own venv (it pins gym 0.25.1 / gymnasium 0.28.0 / numpy<2 / DI-engine):

    .lzvenv/bin/python benchmarks/lightzero_search_probe.py            # B=64 and B=256
    .lzvenv/bin/python benchmarks/lightzero_search_probe.py --roots 64 --seconds 10
    .lzvenv/bin/python benchmarks/lightzero_search_probe.py --latent 128   # CartPole config width

One JSON line is printed per batch size.
"""

import argparse
import json
import time

import lzero
import numpy as np
import torch
from easydict import EasyDict
from lzero.mcts.tree_search.mcts_ctree import MuZeroMCTSCtree
from lzero.model.muzero_model_mlp import MuZeroModelMLP
from lzero.policy.scaling_transform import InverseScalarTransform

OBS_DIM = 4
NUM_ACTIONS = 2
LATENT = 64
SUPPORT_SCALE = 300  # 601-bin categorical reward/value, LightZero MuZero default


class TimedModel(torch.nn.Module):
    """Wraps the model so the time spent in batched recurrent_inference can be split out."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.recurrent_s = 0.0

    def initial_inference(self, obs):
        return self.model.initial_inference(obs)

    def recurrent_inference(self, latent, action):
        t = time.perf_counter()
        out = self.model.recurrent_inference(latent, action)
        self.recurrent_s += time.perf_counter() - t
        return out


def make_mcts(num_simulations):
    cfg = EasyDict(
        dict(
            num_simulations=num_simulations,
            discount_factor=0.997,
            device='cpu',
            model=dict(support_scale=SUPPORT_SCALE, categorical_distribution=True),
        )
    )
    return MuZeroMCTSCtree(cfg)


def one_search(mcts, model, inv, obs, num_simulations, rng):
    """One collector step: root inference + root prep + ctree search + read-out."""
    batch = obs.shape[0]
    with torch.no_grad():
        out = model.initial_inference(obs)
    latent_roots = out.latent_state.detach().cpu().numpy()
    reward_roots = out.reward  # scalar 0 for roots in MuZero's initial_inference
    if isinstance(reward_roots, torch.Tensor):
        reward_roots = reward_roots.detach().cpu().numpy()
    reward_roots = np.asarray(reward_roots, dtype=np.float32).reshape(-1).tolist()
    if len(reward_roots) != batch:
        reward_roots = [0.0] * batch
    policy_logits = out.policy_logits.detach().cpu().numpy().tolist()
    legal_actions = [list(range(NUM_ACTIONS)) for _ in range(batch)]
    to_play = [-1] * batch
    noises = [rng.dirichlet([0.3] * NUM_ACTIONS).astype(np.float32).tolist() for _ in range(batch)]
    roots = MuZeroMCTSCtree.roots(batch, legal_actions)
    roots.prepare(0.25, noises, reward_roots, policy_logits, to_play)
    mcts.search(roots, model, latent_roots, to_play)
    dists = roots.get_distributions()
    values = roots.get_values()
    # sanity: every root got num_simulations visits
    assert sum(dists[0]) == num_simulations, (sum(dists[0]), num_simulations)
    return dists, values


def bench(batch, num_simulations, seconds, latent=LATENT, seed=0):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = MuZeroModelMLP(
        observation_shape=OBS_DIM,
        action_space_size=NUM_ACTIONS,
        latent_state_dim=latent,
        reward_support_size=2 * SUPPORT_SCALE + 1,
        value_support_size=2 * SUPPORT_SCALE + 1,
        categorical_distribution=True,
        self_supervised_learning_loss=False,
        discrete_action_encoding_type='one_hot',
        norm_type='BN',
        last_linear_layer_init_zero=False,
    ).eval()
    model = TimedModel(net).eval()
    inv = InverseScalarTransform(SUPPORT_SCALE, 'cpu', True)
    mcts = make_mcts(num_simulations)
    obs = torch.from_numpy(rng.uniform(-0.05, 0.05, size=(batch, OBS_DIM)).astype(np.float32))

    for _ in range(2):  # warm-up
        one_search(mcts, model, inv, obs, num_simulations, rng)

    model.recurrent_s = 0.0
    n = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    while True:
        one_search(mcts, model, inv, obs, num_simulations, rng)
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and n >= 3:
            break
    cpu = time.process_time() - c0
    sps = n / elapsed
    return {
        "lib": "lightzero",
        "version": lzero.__version__ if hasattr(lzero, "__version__") else "0.2.0",
        "torch": torch.__version__,
        "roots": batch,
        "simulations": num_simulations,
        "num_actions": NUM_ACTIONS,
        "latent": latent,
        "searches": n,
        "seconds": round(elapsed, 3),
        "searches_per_s": round(sps, 3),
        "simulations_per_s": round(batch * num_simulations * sps, 1),
        "ms_per_search": round(1000 * elapsed / n, 2),
        "recurrent_inference_share": round(model.recurrent_s / elapsed, 3),
        # process CPU seconds / wall seconds: well below 1.0 means the process was starved
        # by other load on the machine, so the figures understate an idle machine
        "cpu_over_wall": round(cpu / elapsed, 3),
        "threads": torch.get_num_threads(),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--roots", type=int, nargs="+", default=[64, 256])
    p.add_argument("--simulations", type=int, default=50)
    p.add_argument("--latent", type=int, default=LATENT, help="latent width (LightZero's CartPole config uses 128)")
    p.add_argument("--seconds", type=float, default=8.0, help="minimum timed wall time per batch size")
    args = p.parse_args()
    torch.set_num_threads(1)
    for b in args.roots:
        print(json.dumps(bench(b, args.simulations, args.seconds, latent=args.latent)), flush=True)


if __name__ == "__main__":
    main()
