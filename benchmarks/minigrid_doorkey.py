"""PPO on MiniGrid-DoorKey-5x5-v0 with the entropy bonus on and off, side by side (issue 16).

    python benchmarks/minigrid_doorkey.py [--seeds 0-4] [--total-steps 200000] [--ent-on 0.01] [--arms on,off]
        [--jobs 2] [--eval-episodes 20] [--stochastic-eval] [--json out.json] [--field value ...]

Each (seed, ent_coef) pair trains ``rlworks.train("ppo", "MiniGrid-DoorKey-5x5-v0", ...)`` with the env's
preset (src/rlworks/presets/ppo.toml; the minigrid wrapper applies itself) and ``ent_coef`` set to
``--ent-on`` or 0, in its own process (``--jobs`` at a time, one torch thread each). The figure is the
final evaluation of the agent the call returns: ``--eval-episodes`` deterministic episodes reset with
seeds 10,000 + seed, …, which training does not use. Printed: one row per seed (ent on, ent off), the
medians and how many seeds reach ``--threshold`` (0.9, the issue's "solved"); beside it, the first step at
which the logged mean training return reached the threshold. ``--stochastic-eval`` also evaluates the
policy's sampled actions on the same episodes (``stochastic_mean_return``). ``--field value`` pairs are further PPO
config overrides for both arms (e.g. ``--n_epochs 4``). The JSON is rewritten as each run finishes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

ENV = "MiniGrid-DoorKey-5x5-v0"


class _Curve:
    """A logger keeping (step, mean return of recent training episodes)."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []

    def log(self, step: int, metrics: dict[str, float]) -> None:
        r = metrics.get("charts/episodic_return")
        if r is not None and r == r:  # NaN until an episode has finished
            self.points.append((int(step), round(float(r), 3)))


def _one(seed: int, ent_coef: float, total_steps: int, episodes: int, overrides: dict[str, Any],
         stochastic: bool = False) -> dict[str, Any]:
    import rlworks

    curve = _Curve()
    t0 = time.perf_counter()
    agent = rlworks.train("ppo", ENV, total_steps=total_steps, seed=seed, ent_coef=ent_coef, logger=curve, **overrides)
    train_s = time.perf_counter() - t0
    ev = agent.evaluate(episodes, seed=10_000 + seed)
    row = {"seed": seed, "ent_coef": ent_coef, "mean_return": round(float(ev.mean_return), 4),
           "returns": [round(float(r), 4) for r in ev.returns], "lengths": [int(n) for n in ev.lengths],
           "train_seconds": round(train_s, 1), "curve": curve.points}
    if stochastic:
        sev = agent.evaluate(episodes, seed=10_000 + seed, deterministic=False)
        row.update(stochastic_mean_return=round(float(sev.mean_return), 4),
                   stochastic_returns=[round(float(r), 4) for r in sev.returns])
    return row


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _first_reach(curve: list, threshold: float) -> int | None:
    return next((step for step, r in curve if r >= threshold), None)


def table(runs: list[dict[str, Any]], ent_on: float, threshold: float) -> str:
    """Seed | ent on | ent off (final evaluation mean return; the first logged training step ≥ threshold)."""
    by = {(r["seed"], r["ent_coef"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    lines = [f"{'seed':>4}  {f'ent_coef={ent_on:g}':>22}  {'ent_coef=0':>22}"]
    cols: dict[float, list[float]] = {ent_on: [], 0.0: []}
    for s in seeds:
        cells = []
        for ent in (ent_on, 0.0):
            r = by.get((s, ent))
            if r is None:
                cells.append(f"{'-':>22}")
                continue
            cols[ent].append(r["mean_return"])
            first = _first_reach(r["curve"], threshold)
            cells.append(f"{r['mean_return']:>8.3f} (≥{threshold:g} at {first if first is not None else '—':>7})")
        lines.append(f"{s:>4}  " + "  ".join(cells))
    summary = []
    for ent in (ent_on, 0.0):
        v = cols[ent]
        summary.append(f"{statistics.median(v):>8.3f} median, {sum(x >= threshold for x in v)}/{len(v)} ≥ {threshold:g}"
                       if v else f"{'-':>22}")
    lines.append(f"{'':>4}  " + "  ".join(summary))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--total-steps", type=int, default=200_000)
    p.add_argument("--ent-on", type=float, default=0.01, help="ent_coef of the 'on' arm (the preset's)")
    p.add_argument("--arms", default="on,off", help="on: ent_coef --ent-on; off: ent_coef 0")
    p.add_argument("--stochastic-eval", action="store_true")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--json", default=None)
    args, extra = p.parse_known_args(argv)
    if len(extra) % 2:
        p.error(f"overrides come as --field value pairs: {extra}")
    overrides = {k.lstrip("-").replace("-", "_"): _value(v) for k, v in zip(extra[::2], extra[1::2])}
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    command = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    runs: list[dict[str, Any]] = []
    if not set(args.arms.split(",")) <= {"on", "off"}:
        p.error(f"--arms {args.arms}: a comma-separated list of on and off")
    ents = [{"on": args.ent_on, "off": 0.0}[a] for a in args.arms.split(",")]
    arms = [(s, ent) for s in _seeds(args.seeds) for ent in ents]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(_one, s, ent, args.total_steps, args.eval_episodes, overrides, args.stochastic_eval)
                   for s, ent in arms]
        for f in as_completed(futures):
            r = f.result()
            runs.append(r)
            sampled = f", sampled actions {r['stochastic_mean_return']:.3f}" if "stochastic_mean_return" in r else ""
            print(f"seed {r['seed']} ent_coef {r['ent_coef']:g}: {r['mean_return']:.3f}{sampled} "
                  f"({r['train_seconds']:.0f} s)", flush=True)
            if args.json:
                with open(args.json, "w") as fh:
                    json.dump({"env": ENV, "algo": "ppo", "total_steps": args.total_steps, "ent_on": args.ent_on,
                               "overrides": overrides, "eval_episodes": args.eval_episodes,
                               "eval_seeds": "10000 + seed", "threshold": args.threshold, "started": started,
                               "command": command,
                               "complete": len(runs) == len(arms),
                               "runs": sorted(runs, key=lambda r: (r["seed"], -r["ent_coef"]))}, fh, indent=1)
    print(table(runs, args.ent_on, args.threshold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
