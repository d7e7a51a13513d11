"""Learning quality at a fixed budget: train one algorithm on one env for several seeds with the
env's preset, evaluate each final agent deterministically, print per-seed returns and the median.

    python benchmarks/learning_quality.py --algo ppo --env LunarLander-v3 --total-steps 1000000 \
        --seeds 0,1,2,3,4 [--workers 2] [--json out.json] [--png curves.png [--target 200]]
        [--threshold 475] [--eval-episodes 20] [--lib rlworks|sb3] [--preset NAME] [--field value ...]

Each seed runs in its own process (``--workers`` at a time, one torch thread each). The figure is the
final evaluation of the agent ``rlworks.train`` returns (with ``keep="best"`` the best periodically
evaluated policy, else the last): ``--eval-episodes`` (default 20) deterministic episodes reset with
seeds 10,000 + seed, …, which neither training nor the periodic evaluations (1,000,000 + …) use, so a
policy selected on its periodic evaluation is not scored on the episodes it was selected by.
``--threshold`` counts the seeds whose final evaluation reaches it. Training wall time (the whole
``train`` call: env setup, periodic evaluations included) and the algorithm's own training time
(``agent.meta["train_seconds"]``: acting and learning only) are reported beside it. Each seed's
training curve (the mean return of recent training episodes, as logged) is kept in the JSON; ``--png``
draws them all, with ``--target`` as a dashed line. The JSON is rewritten as each seed finishes
(``"complete"`` says whether every seed is in), so a long run that is stopped keeps the seeds it finished.

``--lib sb3`` trains Stable-Baselines3's own implementation of the algorithm instead (the ``bench``
extra), with SB3's defaults plus the ``--field value`` pairs as its keyword arguments (e.g. the RL
Zoo's ``--learning_starts 10000`` for SAC on MuJoCo), one torch thread, and the same evaluation:
``model.predict(obs, deterministic=True)`` through ``rlworks.core.evaluation.evaluate``. With
``--preset NAME`` (e.g. ``rlzoo``) the settings come from that rlworks preset, translated to SB3's
names (``hidden`` → ``net_arch``, ``n_envs`` → a vector env, ``anneal_lr``/``anneal_clip`` → linear
schedules); with ``--lib rlworks`` ``--preset`` is passed to ``rlworks.train``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any


class _Curve:
    """A logger keeping (step, mean return of recent training episodes)."""

    def __init__(self) -> None:
        self.points: list[tuple[int, float]] = []

    def log(self, step: int, metrics: dict[str, float]) -> None:
        r = metrics.get("charts/episodic_return")
        if r is not None and r == r:  # not NaN: at least one episode has finished
            self.points.append((int(step), round(float(r), 2)))


EVAL_EPISODES = 20


def _evaluated(seed: int, env_id: str, act, train_s: float, curve: list, env_kwargs=None,
               episodes: int = EVAL_EPISODES) -> dict[str, Any]:
    """One seed's row, after the protocol both libraries share: ``episodes`` deterministic episodes
    seeded 10,000 + seed, …, timed apart from training."""
    from rlworks.core.evaluation import evaluate

    t1 = time.perf_counter()
    ev = evaluate(act, env_id, episodes, seed=10_000 + seed, env_kwargs=env_kwargs)
    return {"seed": seed, "mean_return": float(ev.mean_return), "std_return": float(ev.std_return),
            "returns": [float(r) for r in ev.returns], "train_seconds": train_s,
            "eval_seconds": time.perf_counter() - t1, "curve": curve}


def _one(algo: str, env_id: str, total_steps: int, seed: int, overrides: dict[str, Any],
         episodes: int = EVAL_EPISODES) -> dict[str, Any]:
    import rlworks

    curve = _Curve()
    t0 = time.perf_counter()
    agent = rlworks.train(algo, env_id, total_steps=total_steps, seed=seed, logger=curve, **overrides)
    row = _evaluated(seed, env_id, agent.act, time.perf_counter() - t0, curve.points, agent.env_kwargs, episodes)
    m = agent.meta
    row.update(algo_train_seconds=m.get("train_seconds"), kept=m.get("kept", "last"), policy_step=m.get("global_step"),
               selection_return=m.get("eval_mean_return") if m.get("kept") == "best" else None,
               q_diverged_at=m.get("q_diverged_at"))
    return row


def _sb3_curve(points: list, every: int):
    """An SB3 callback appending (step, mean return of the last 20 training episodes) to ``points``
    every ``every`` steps: the same curve ``_Curve`` keeps for rlworks."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Curve(BaseCallback):
        last = 0

        def _on_step(self) -> bool:
            buf = self.model.ep_info_buffer
            if self.num_timesteps - self.last >= every and buf:
                self.last = self.num_timesteps
                recent = [ep["r"] for ep in list(buf)[-20:]]
                points.append((int(self.num_timesteps), round(float(sum(recent) / len(recent)), 2)))
            return True

    return Curve()


#: run defaults and rlworks-only keys, not passed to SB3
SB3_SKIP = ("env", "total_steps", "eval_every", "eval_episodes", "keep")


class Linear:
    """SB3's linear schedule (the Zoo's "lin_<v>"): v times the remaining progress, 1 → 0. A class, not a
    lambda, so that it reaches the worker processes."""

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.value

    def __repr__(self) -> str:
        return f"lin_{self.value:g}"


def sb3_kwargs(algo: str, preset: str) -> dict[str, Any]:
    """An rlworks preset (e.g. ``rlzoo``, the RL Zoo's settings) as SB3 keyword arguments; ``n_envs``
    stays a key for ``_one_sb3`` to build the vector env with."""
    from rlworks import algos

    table = dict(algos.presets(algo)[preset])
    out: dict[str, Any] = {}
    lr, clip = table.pop("learning_rate", None), table.pop("clip_coef", None)
    anneal_lr, anneal_clip = table.pop("anneal_lr", False), table.pop("anneal_clip", False)
    if lr is not None:
        out["learning_rate"] = Linear(lr) if anneal_lr else lr
    if clip is not None:
        out["clip_range"] = Linear(clip) if anneal_clip else clip
    if "hidden" in table:
        out["policy_kwargs"] = {"net_arch": list(table.pop("hidden"))}
    for k, v in table.items():
        if k not in SB3_SKIP:
            out[k] = v  # the other preset keys have SB3's names
    return out


def _one_sb3(algo: str, env_id: str, total_steps: int, seed: int, kwargs: dict[str, Any],
             episodes: int = EVAL_EPISODES) -> dict[str, Any]:
    import stable_baselines3
    import torch
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    cls = getattr(stable_baselines3, algo.upper())
    points: list[tuple[int, float]] = []
    kwargs = dict(kwargs)
    n_envs = kwargs.pop("n_envs", 1)
    t0 = time.perf_counter()
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed) if n_envs > 1 else env_id
    model = cls("MlpPolicy", env, seed=seed, device="cpu", **kwargs)
    model.learn(total_steps, callback=_sb3_curve(points, every=2048))
    train_s = time.perf_counter() - t0
    return _evaluated(seed, env_id, lambda o: model.predict(o, deterministic=True)[0], train_s, points,
                      episodes=episodes)


def plot(path: str, title: str, rows: list[dict[str, Any]], target: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    for r in rows:
        if r.get("curve"):
            steps, rets = zip(*r["curve"])
            ax.plot(steps, rets, lw=1.2, label=f"seed {r['seed']} (eval {r['mean_return']:.0f})")
    if target is not None:
        ax.axhline(target, color="k", ls="--", lw=1, label=f"target {target:g}")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("training episode return (recent mean)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _value(text: str) -> Any:
    if "," in text:  # a list, e.g. --hidden 256,256
        return tuple(_value(t) for t in text.split(",") if t)
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--total-steps", type=int, required=True)
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--json", help="write the per-seed results (and training curves) here")
    p.add_argument("--png", help="draw every seed's training curve here")
    p.add_argument("--target", type=float, help="a dashed reference line on the PNG (e.g. the RL Zoo's figure)")
    p.add_argument("--lib", choices=("rlworks", "sb3"), default="rlworks",
                   help="whose implementation to train (sb3: Stable-Baselines3's, fields as its keyword arguments)")
    p.add_argument("--preset", help="an rlworks preset (with --lib sb3: its settings, translated to SB3's names)")
    p.add_argument("--threshold", type=float, help="count the seeds whose final evaluation reaches this")
    p.add_argument("--eval-episodes", type=int, default=EVAL_EPISODES,
                   help=f"final evaluation episodes per seed (default {EVAL_EPISODES})")
    args, rest = p.parse_known_args(argv)
    overrides = {rest[i].lstrip("-").replace("-", "_"): _value(rest[i + 1]) for i in range(0, len(rest), 2)}
    if args.preset and args.lib == "sb3":
        overrides = {**sb3_kwargs(args.algo, args.preset), **overrides}
    elif args.preset:
        overrides = {"preset": args.preset, **overrides}
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    one = _one_sb3 if args.lib == "sb3" else _one
    rows: list[dict[str, Any]] = []

    def reached() -> int | None:
        return None if args.threshold is None else sum(r["mean_return"] >= args.threshold for r in rows)

    def write_json() -> None:
        if args.json:
            median = statistics.median(r["mean_return"] for r in rows)
            shown = {k: (repr(v) if isinstance(v, Linear) else v) for k, v in overrides.items()}
            with open(args.json, "w") as fh:
                json.dump({"lib": args.lib, "algo": args.algo, "env": args.env, "total_steps": args.total_steps,
                           "preset": args.preset, "overrides": shown, "eval_episodes": args.eval_episodes,
                           "eval_seeds": "10000 + seed + episode", "started": started,
                           "complete": len(rows) == len(seeds), "median": median, "threshold": args.threshold,
                           "seeds_at_threshold": reached(), "seeds": sorted(rows, key=lambda r: r["seed"])},
                          fh, indent=1)

    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(one, args.algo, args.env, args.total_steps, s, overrides, args.eval_episodes)
                   for s in seeds]
        for f in as_completed(futures):  # report each seed as it finishes: long runs show progress
            r = f.result()
            rows.append(r)
            write_json()
            kept = f"; kept {r['kept']} @ {r['policy_step']}" if r.get("kept") == "best" else ""
            print(f"seed {r['seed']}: {r['mean_return']:9.1f} ± {r['std_return']:6.1f}   "
                  f"(training {r['train_seconds']:.1f} s{kept})", flush=True)
    rows.sort(key=lambda r: r["seed"])
    median = statistics.median(r["mean_return"] for r in rows)
    who = "SB3 " if args.lib == "sb3" else ""
    count = f"; {reached()} of {len(rows)} seeds >= {args.threshold:g}" if args.threshold is not None else ""
    print(f"{who}{args.algo} {args.env} @ {args.total_steps:,} steps, preset {args.preset or 'default'}, overrides "
          f"{overrides or 'none'}: median of {len(rows)} seeds = {median:.1f} ({args.eval_episodes} episodes "
          f"each){count}")
    if args.png:
        title = f"{args.algo.upper()} {args.env}, {len(rows)} seeds, median eval {median:.1f}"
        plot(args.png, title, rows, args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
