"""Search simulations per second against the number of roots, on CPU and (when there is one) CUDA.

MuZero's MLP network (``algos/muzero.py``, latent 64, 2 actions, CartPole's observation) drives
``rlworks.search.puct_search`` (or, with ``--search gumbel``, ``gumbel_search``) over B roots with 50 simulations;
the CPU runs the numba walk (its default) and the tensor walk, CUDA the tensor walk (the trees on the GPU, one
network call per simulation for all roots).

    python benchmarks/search_scaling.py                      # CPU, B = 64, 256, 1024
    python benchmarks/search_scaling.py --search gumbel      # Gumbel MuZero's search, the same way
    python benchmarks/search_scaling.py --device cuda        # the GPU as well (issue 18's GPU check)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from rlworks.algos.muzero import MuZeroConfig, MuZeroNet, search
from rlworks.search import Tree


def bench(batch: int, device: str, walk: str, simulations: int, seconds: float, kind: str = "puct") -> dict:
    torch.manual_seed(0)
    net = MuZeroNet(4, 2, 64, (64,), 25).to(device).eval()
    cfg = MuZeroConfig(num_simulations=simulations, walk=walk, search=kind)
    tree = Tree(batch, 2, simulations + 1, (64,), device=device)
    rng = np.random.default_rng(0)
    obs = torch.as_tensor(rng.uniform(-0.05, 0.05, size=(batch, 4)), dtype=torch.float32, device=device)

    def once():
        with torch.inference_mode():
            out = search(net, obs, cfg, discount=0.997, rng=rng, tree=tree)
        return out.visit_counts.cpu()

    once()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        once()
        n += 1
    dt = time.perf_counter() - t0
    return {"device": device, "search": kind, "walk": walk, "roots": batch, "simulations": simulations,
            "searches_per_s": n / dt, "simulations_per_s": batch * simulations * n / dt,
            "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--roots", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--simulations", type=int, default=50)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--device", default="cpu", help="cpu, or cuda to add the GPU rows")
    p.add_argument("--search", default="puct", choices=("puct", "gumbel"))
    a = p.parse_args()
    torch.set_num_threads(1)
    runs = [("cpu", "compiled"), ("cpu", "tensor")] + ([("cuda", "tensor")] if a.device.startswith("cuda") else [])
    for B in a.roots:
        for device, walk in runs:
            r = bench(B, device if device == "cpu" else a.device, walk, a.simulations, a.seconds, a.search)
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
