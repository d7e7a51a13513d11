"""rlworks vs d3rlpy 2.8, offline: CQL and IQL on the same Minari dataset with the same hyperparameters (rlworks'
CQLConfig / IQLConfig defaults, mapped field by field onto d3rlpy's; docs/offline-vs-d3rlpy.md has the table), side
by side in one run: a fresh subprocess per (library, algo, seed), rlworks and d3rlpy alternating (the order flips
on odd seeds).

    python benchmarks/offline_vs_d3rlpy.py [--dataset rlworks/pendulum/medium-replay-v0] [--algos cql,iql]
                                           [--seeds 3] [--steps 20000] [--threads 1] [--hidden 64,64]
                                           [--matmul-precision highest|high|medium] [--json runs.jsonl]

Per run: gradient updates per second over the training loop only (the clock starts once the networks are built
and stops when the loop ends; no evaluation runs inside it), the final policy's mean return over 10
deterministic episodes of the dataset's env (the same env and reset seeds for both libraries) and its D4RL
normalised score (the dataset's ref_min / ref_max), and the child's peak RSS. Then per algo: the medians,
the mean ± std of the final scores over seeds, and the ratio rlworks / d3rlpy of updates per second.

Both children enter the same process settings: ``--threads`` torch threads, ``--matmul-precision``
(torch.set_float32_matmul_precision), flush-to-zero and rlworks' glibc heap thresholds (``core.runtime.tuned``,
what ``rlworks train`` runs under). ``--lib`` runs one side only (a child) and prints its JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ALGOS = ("cql", "iql")
LIBS = ("rlworks", "d3rlpy")
EVAL_EPISODES, EVAL_SEED = 10, 10_000  # episode e resets with seed EVAL_SEED + e, in both libraries


def evaluate(act, data) -> list[float]:
    """Undiscounted returns of ``act`` (one observation -> one action) over EVAL_EPISODES episodes."""
    import gymnasium as gym
    import numpy as np

    env = gym.make(data.env_id, **data.env_kwargs)
    returns = []
    for ep in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=EVAL_SEED + ep)
        done, total = False, 0.0
        while not done:
            obs, r, term, trunc, _ = env.step(act(np.asarray(obs, np.float32)))
            total += float(r)
            done = term or trunc
        returns.append(total)
    env.close()
    return returns


def run_rlworks(a, data):
    """rlworks' own train() for the algo with its config defaults; returns (act, loop seconds, updates)."""
    from rlworks.algos import cql, iql
    from rlworks.algos.offline import OfflineSource
    from rlworks.core.run import RunContext

    mod = {"cql": cql, "iql": iql}[a.algo]
    t0 = []
    agent = mod.train(OfflineSource(None, data), config(a.algo, a.hidden), total_steps=a.steps, seed=a.seed,
                      run=RunContext(on_start=lambda s: t0.append(time.perf_counter())))
    seconds = time.perf_counter() - t0[0]  # the loop, and building the returned agent (cheap)
    return agent.act, seconds, int(agent.meta["n_updates"])


def config(algo: str, hidden: str | None):
    """rlworks' config defaults for ``algo``, with ``--hidden`` (comma-separated sizes) if given."""
    import dataclasses

    from rlworks.algos import cql, iql

    cfg = {"cql": cql.CQLConfig, "iql": iql.IQLConfig}[algo]()
    return dataclasses.replace(cfg, hidden=tuple(int(h) for h in hidden.split(","))) if hidden else cfg


def d3rlpy_config(algo: str, data, steps: int, hidden: str | None):
    """d3rlpy's config with rlworks' defaults, field by field (docs/offline-vs-d3rlpy.md has the table)."""
    import d3rlpy
    import numpy as np
    from d3rlpy.models.encoders import VectorEncoderFactory
    from d3rlpy.optimizers import AdamFactory
    from d3rlpy.optimizers.lr_schedulers import CosineAnnealingLRFactory
    from d3rlpy.preprocessing import MinMaxActionScaler, StandardObservationScaler

    cfg = config(algo, hidden)
    obs = data.observations.reshape(len(data), -1).astype(np.float64)
    common = dict(
        # rlworks: (obs − mean) / (std + 1e-3) with the population std over every row; d3rlpy: the same formula
        # (eps 1e-3); mean and std given, so d3rlpy does not refit them on its own transitions
        observation_scaler=StandardObservationScaler(mean=obs.mean(0), std=obs.std(0)) if cfg.norm_obs else None,
        # rlworks learns Box actions rescaled from the bounds to [-1, 1]; d3rlpy's min-max scaler does the same
        action_scaler=MinMaxActionScaler(minimum=data.action_space.low, maximum=data.action_space.high),
        batch_size=cfg.batch_size, gamma=cfg.gamma, tau=cfg.tau)
    adam = AdamFactory(eps=cfg.adam_eps)
    if algo == "cql":
        assert cfg.autotune and cfg.target_entropy_scale == 1.0, "d3rlpy's target entropy is −|A|"
        assert cfg.lagrange_threshold is None and cfg.target_update_interval == 1 and not cfg.critic_hidden
        enc = VectorEncoderFactory(hidden_units=list(cfg.hidden), activation=cfg.activation)
        return d3rlpy.algos.CQLConfig(
            **common, actor_learning_rate=cfg.actor_learning_rate, critic_learning_rate=cfg.learning_rate,
            temp_learning_rate=cfg.learning_rate, actor_optim_factory=adam, critic_optim_factory=adam,
            temp_optim_factory=adam, actor_encoder_factory=enc, critic_encoder_factory=enc,
            n_critics=cfg.n_critics, initial_temperature=cfg.ent_coef, n_action_samples=cfg.cql_n_actions,
            # a fixed weight α_cql: d3rlpy's α' stays at exp(log 1) = 1 (not trained), times conservative_weight;
            # its alpha_threshold (10) then only shifts the loss by a constant (no gradient)
            conservative_weight=cfg.cql_alpha, initial_alpha=1.0, alpha_learning_rate=0.0,
            soft_q_backup=cfg.backup_entropy)
    assert not cfg.normalize_rewards, "not mapped: d3rlpy would need a reward scaler"
    enc = VectorEncoderFactory(hidden_units=list(cfg.hidden), activation=cfg.activation)
    # rlworks decays the actor's step size as lr · ½ (1 + cos(π t / T)) over the run: torch's CosineAnnealingLR
    schedule = CosineAnnealingLRFactory(T_max=steps) if cfg.actor_cosine_lr else None
    actor_adam = AdamFactory(eps=cfg.adam_eps, lr_scheduler_factory=schedule)
    return d3rlpy.algos.IQLConfig(
        **common, actor_learning_rate=cfg.learning_rate, critic_learning_rate=cfg.learning_rate,
        actor_optim_factory=actor_adam, critic_optim_factory=adam, actor_encoder_factory=enc,
        critic_encoder_factory=enc, value_encoder_factory=enc, n_critics=2, expectile=cfg.expectile,
        weight_temp=cfg.beta, max_weight=cfg.max_weight)


def run_d3rlpy(a, data):
    import logging

    import d3rlpy
    import structlog

    from rlworks.offline.interop import to_d3rlpy

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # stdout: JSON only
    d3rlpy.seed(a.seed)
    mdp = to_d3rlpy(data)
    algo = d3rlpy_config(a.algo, data, a.steps, a.hidden).create(device="cpu:0" if a.device == "cpu" else a.device)
    algo.build_with_dataset(mdp)
    t0 = time.perf_counter()
    algo.fit(mdp, n_steps=a.steps, n_steps_per_epoch=a.steps, show_progress=False, save_interval=10**9,
             logger_adapter=d3rlpy.logging.NoopAdapterFactory(), with_timestamp=False)
    seconds = time.perf_counter() - t0  # one epoch: the loop, then one no-op logger commit
    return (lambda o: algo.predict(o[None])[0]), seconds, algo.grad_step


def child(a) -> dict:
    import gymnasium as gym
    import torch

    from rlworks.core.runtime import retain_freed_memory_for_process
    from rlworks.offline.datasets import load

    torch.set_num_threads(a.threads)
    torch.set_float32_matmul_precision(a.matmul_precision)  # process-wide: the same for both libraries
    torch.set_flush_denormal(True)
    retain_freed_memory_for_process()
    data = load(a.dataset)
    if not isinstance(data.action_space, gym.spaces.Box):
        raise SystemExit(f"{a.dataset}: Box actions only (d3rlpy's IQL is continuous, its discrete CQL another "
                         "algorithm)")
    act, seconds, updates = (run_rlworks if a.lib == "rlworks" else run_d3rlpy)(a, data)
    returns = evaluate(act, data)
    mean = statistics.fmean(returns)
    scored = data.ref_min_score is not None and data.ref_max_score not in (None, data.ref_min_score)
    return {"lib": a.lib, "algo": a.algo, "dataset": a.dataset, "seed": a.seed, "steps": a.steps,
            "threads": a.threads, "hidden": a.hidden, "matmul_precision": a.matmul_precision, "device": a.device,
            "train_seconds": seconds, "updates": updates, "updates_per_s": updates / seconds,
            "final_return": mean, "final_score": float(data.normalized_score(mean)) if scored else None,
            "eval_returns": returns, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def summary(rows: list[dict], algo: str) -> list[str]:
    def med(lib: str, key: str) -> float:
        return statistics.median(r[key] for r in rows if r["lib"] == lib)

    def mean_std(lib: str, key: str) -> str:
        xs = [r[key] for r in rows if r["lib"] == lib and r[key] is not None]
        if not xs:
            return "n/a"
        return f"{statistics.fmean(xs):.1f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.1f}"

    ups = {lib: med(lib, "updates_per_s") for lib in LIBS}
    lines = [f"{algo}: updates/s median rlworks {ups['rlworks']:.1f}, d3rlpy {ups['d3rlpy']:.1f}, "
             f"ratio rlworks/d3rlpy {ups['rlworks'] / ups['d3rlpy']:.2f}"]
    for lib in LIBS:
        lines.append(f"  {lib:8s} final score {mean_std(lib, 'final_score')} (median "
                     f"{statistics.median(r['final_score'] or float('nan') for r in rows if r['lib'] == lib):.1f}), "
                     f"return {mean_std(lib, 'final_return')}; peak RSS median {med(lib, 'peak_rss_mb'):.0f} MB")
    return lines


def main() -> int:
    from rlworks.config import MATMUL_PRECISIONS  # no torch import: the parent only starts children

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="rlworks/pendulum/medium-replay-v0")
    p.add_argument("--algos", default="cql,iql", help="comma-separated: cql, iql")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20_000, help="gradient steps per run")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads, both libraries")
    p.add_argument("--hidden", default=None, help="hidden sizes of every network, both libraries (e.g. 64,64; "
                   "default: rlworks' config defaults, CQL 256,256,256, IQL 256,256)")
    p.add_argument("--matmul-precision", choices=MATMUL_PRECISIONS, default="highest",
                   help="torch.set_float32_matmul_precision for both libraries (default: exact float32)")
    p.add_argument("--device", default="cpu", help="torch device for both libraries (cpu, cuda)")
    p.add_argument("--json", help="append each run's row (JSON lines) to this file")
    p.add_argument("--lib", choices=LIBS, help="(child) run one library and print its JSON line")
    p.add_argument("--algo", choices=ALGOS, help="(child) the algo of this run")
    p.add_argument("--seed", type=int, default=0, help="(child) the seed of this run")
    a = p.parse_args()
    if a.lib:
        print(json.dumps(child(a)))
        return 0
    algos = [x.strip() for x in a.algos.split(",") if x.strip()]
    for x in algos:
        if x not in ALGOS:
            p.error(f"--algos: {x!r} is not one of {', '.join(ALGOS)}")
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)}
    rows: list[dict] = []
    for algo in algos:
        for seed in range(a.seeds):
            for lib in LIBS if seed % 2 == 0 else LIBS[::-1]:
                cmd = [sys.executable, __file__, "--lib", lib, "--algo", algo, "--seed", str(seed), "--dataset",
                       a.dataset, "--steps", str(a.steps), "--threads", str(a.threads), "--matmul-precision",
                       a.matmul_precision, "--device", a.device, *(["--hidden", a.hidden] if a.hidden else [])]
                out = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if out.returncode:
                    print(out.stderr[-3000:], file=sys.stderr)
                    return 1
                row = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "eval_returns"}), flush=True)
                if a.json:
                    with open(a.json, "a") as f:
                        f.write(json.dumps(row) + "\n")
    prec = "" if a.matmul_precision == "highest" else f", matmul precision {a.matmul_precision}"
    size = f", hidden {a.hidden}" if a.hidden else ""
    print(f"{a.dataset}: {a.seeds} seed(s), {a.steps} gradient steps{size}, {a.threads} thread(s), {a.device}{prec}")
    for algo in algos:
        print("\n".join(summary([r for r in rows if r["algo"] == algo], algo)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
