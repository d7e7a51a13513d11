"""How many CQL updates per second this CPU can do at most, one thread: the matrix-product work of one update
(Kumar et al. 2020's sizes by default, Hopper's dimensions) against the speed torch multiplies those shapes at,
in float32 and with bfloat16 inputs (what ``matmul_precision="medium"`` gives the conservative term).

    python benchmarks/cql_ceiling.py [--hidden 256 256 256] [--batch 256] [--samples 10] [--obs 11] [--act 3]
                                     [--critics 2] [--d3rlpy UPS] [--rlworks UPS] [--rlworks-medium UPS]

Per update, counted in MLP passes over rows (a pass is about 2 FLOPs per weight per row; the backward pass
is two passes: the gradients of the weights and of the layer inputs):

* the conservative term: every critic on 3·N·B (state, action) rows — N uniform actions, N policy actions
  at s and N at s' — forward and backward: 3 passes, n critics;
* the policy's 2·N·B proposals for it: the actor forward on 2·N·B rows (no gradient);
* SAC's part on the minibatch: the actor on [s; s'] (2B rows) and backward on B; the critics on (s, a)
  forward and backward, the target critics on (s', a') forward, the critics on (s, π(s)) forward and
  backward for the actor loss.

The conservative term is ~85 % of the work at these sizes, so no CQL on a CPU escapes it: d3rlpy pays the same.
``--d3rlpy`` and ``--rlworks`` are measured updates/s (``benchmarks/offline_vs_d3rlpy.py``, same machine);
the script prints the ratio the ceiling allows. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import time

import torch

from matmul_ceiling import macs  # the same count as the DDPG ceiling (run as a script from benchmarks/)


def gflops(rows: int, sizes: list[int], dtype: torch.dtype, seconds: float = 2.0) -> float:
    """Sustained GFLOP/s of the matrix products of a forward pass through layers ``sizes`` on ``rows`` rows."""
    ws = [torch.randn(a, b, dtype=dtype) for a, b in zip(sizes, sizes[1:])]
    x = torch.randn(rows, sizes[0], dtype=dtype)

    def forward() -> None:
        h = x
        for w in ws:
            h = h @ w

    for _ in range(5):
        forward()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        forward()
        n += 1
    return 2 * rows * macs(sizes) * n / (time.perf_counter() - t0) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256, 256])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--samples", type=int, default=10, help="N: actions of each kind per state")
    p.add_argument("--obs", type=int, default=11)
    p.add_argument("--act", type=int, default=3)
    p.add_argument("--critics", type=int, default=2)
    p.add_argument("--d3rlpy", type=float, default=None, help="d3rlpy's measured updates/s on this machine")
    p.add_argument("--rlworks", type=float, default=None, help="rlworks' measured updates/s, float32")
    p.add_argument("--rlworks-medium", type=float, default=None, help="rlworks' updates/s, bfloat16 products")
    a = p.parse_args()
    torch.set_num_threads(1)
    actor = [a.obs, *a.hidden, 2 * a.act]  # mean and log-std
    critic = [a.obs + a.act, *a.hidden, 1]
    B, N, n = a.batch, a.samples, a.critics
    conservative = 2 * macs(critic) * 3 * N * B * n * 3
    proposals = 2 * macs(actor) * 2 * N * B
    sac = 2 * (macs(actor) * (2 * B + 2 * B) + macs(critic) * n * (3 * B + B + 3 * B))
    rest = proposals + sac
    f32 = gflops(3 * N * B, critic, torch.float32)
    bf16 = gflops(3 * N * B, critic, torch.bfloat16)
    small = gflops(B, critic, torch.float32)
    t32 = conservative / f32 / 1e9 + rest / f32 / 1e9
    tbf = conservative / bf16 / 1e9 + rest / f32 / 1e9
    print(f"CQL update, hidden {a.hidden}, B {B}, N {N}, {n} critics, obs {a.obs}, act {a.act}: "
          f"{(conservative + rest) / 1e9:.2f} GFLOP of products ({conservative / (conservative + rest):.0%} the "
          f"conservative term's {3 * N * B} rows per critic)")
    print(f"products, one thread: float32 {f32:.0f} GFLOP/s at {3 * N * B} rows ({small:.0f} at {B}); "
          f"bfloat16 inputs {bf16:.0f} GFLOP/s")
    print(f"ceiling: {1 / t32:.2f} updates/s in float32, {1 / tbf:.2f} with bfloat16 products in the "
          "conservative term")
    for name, ups in (("d3rlpy", a.d3rlpy), ("rlworks float32", a.rlworks), ("rlworks bfloat16", a.rlworks_medium)):
        if ups:
            ceiling = 1 / tbf if "bfloat16" in name else 1 / t32
            print(f"{name}: {ups:.2f} updates/s = {ups / ceiling:.0%} of its ceiling")
    if a.d3rlpy:
        print(f"largest ratio over d3rlpy (float32): {1 / t32 / a.d3rlpy:.2f}x; "
              f"with bfloat16 products: {1 / tbf / a.d3rlpy:.2f}x")


if __name__ == "__main__":
    main()
