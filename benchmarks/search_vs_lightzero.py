"""Search speed side by side with LightZero's C++ tree (issue 18): simulations per second for B roots.

One "search" is what a collector does per env step for B envs: the representation/prediction call on B
observations, Dirichlet root noise, ``num_simulations`` simulations (each: a walk of the B trees, one batched
dynamics/prediction call, a backup), and reading the visit counts. rlworks runs ``rlworks.search.puct_search``
with MuZero's MLP network (``algos/muzero.py``) at the sizes LightZero's probe uses (obs 4, latent 64, 2 actions,
601-atom value and reward supports), with both tree walks (numba loops and torch tensor ops); LightZero runs
``benchmarks/lightzero_search_probe.py`` (its ``MuZeroMCTSCtree`` and its ``MuZeroModelMLP``) in its own venv,
in the same run, alternating. One torch thread each; run it with nothing else busy.

    python benchmarks/search_vs_lightzero.py --lightzero-python .lzvenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def rlworks_bench(batch: int, simulations: int, seconds: float, walk: str, latent: int = 64, support: int = 300
                  ) -> dict:
    from rlworks.algos.muzero import MuZeroConfig, MuZeroNet, search
    from rlworks.search import Tree

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = MuZeroNet(4, 2, latent, (latent,), support).eval()
    for head in (net.value_head, net.reward_head):  # non-uniform outputs, as the probe's untrained model
        torch.nn.init.normal_(head[-1].weight, std=0.1)
    tree = Tree(batch, 2, simulations + 1, (latent,))
    rng = np.random.default_rng(0)
    obs = torch.as_tensor(rng.uniform(-0.05, 0.05, size=(batch, 4)), dtype=torch.float32)
    cfg = MuZeroConfig(num_simulations=simulations, support_size=support, walk=walk)

    def once():
        with torch.inference_mode():
            out = search(net, obs, cfg, discount=0.997, rng=rng, tree=tree)
        return out.visit_counts.numpy()

    once()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        once()
        n += 1
    dt = time.perf_counter() - t0
    params = sum(p.numel() for p in net.parameters())
    return {"lib": f"rlworks ({walk} walk)", "roots": batch, "simulations": simulations, "searches_per_s": n / dt,
            "simulations_per_s": batch * simulations * n / dt, "params": params, "threads": torch.get_num_threads()}


def lightzero_bench(python: str, batch: int, simulations: int, seconds: float) -> dict | None:
    script = Path(__file__).with_name("lightzero_search_probe.py")
    proc = subprocess.run([python, str(script), "--roots", str(batch), "--simulations", str(simulations),
                           "--seconds", str(seconds)], capture_output=True, text=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"LightZero probe failed ({proc.returncode}): {proc.stderr.strip()[-400:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--roots", type=int, nargs="+", default=[64, 256])
    p.add_argument("--simulations", type=int, default=50)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds per library")
    p.add_argument("--lightzero-python", default=".lzvenv/bin/python",
                   help="the python of a venv with LightZero 0.2.0 (benchmarks/lightzero_notes.md)")
    p.add_argument("--json", default=None, help="append the results there")
    a = p.parse_args()
    rows = []
    have_lz = Path(a.lightzero_python).exists()
    for B in a.roots:
        got: dict[str, list[float]] = {}
        for _ in range(a.rounds):
            for walk in ("compiled", "tensor"):
                r = rlworks_bench(B, a.simulations, a.seconds if walk == "compiled" else a.seconds / 2, walk)
                got.setdefault(r["lib"], []).append(r["simulations_per_s"])
                rows.append(r)
            if have_lz:
                r = lightzero_bench(a.lightzero_python, B, a.simulations, a.seconds)
                if r is not None:
                    got.setdefault("LightZero (C++ tree)", []).append(r["simulations_per_s"])
                    rows.append(r)
        print(f"B = {B} roots, {a.simulations} simulations (median of {a.rounds}, simulations/s):")
        lz = np.median(got["LightZero (C++ tree)"]) if "LightZero (C++ tree)" in got else None
        for lib, v in got.items():
            ratio = f"  {np.median(v) / lz:.2f}x LightZero" if lz and not lib.startswith("LightZero") else ""
            print(f"  {lib:24s} {np.median(v):>10,.0f}{ratio}")
    if a.json:
        with open(a.json, "a") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
