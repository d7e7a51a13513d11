"""rlworks vs Stable-Baselines3, off-policy: DQN on CartPole-v1, SAC, TD3 and DDPG on Pendulum-v1 with the RL
Zoo's hyperparameters, side by side in one run (fresh subprocess per run, alternating A B A B).

    python benchmarks/offpolicy_vs_sb3.py --algo dqn|sac|td3|ddpg [--seeds 3] [--total-steps N] [--threads 1]
                                          [--eval-every K] [--threshold T] [--config zoo|best]
                                          [--device cpu|cuda] [--matmul-precision highest|high|medium]

Prints per-run figures and the medians, with the ratio rlworks / SB3 for training speed (DQN: env steps
per second; SAC, TD3, DDPG: gradient (critic) updates per second; both clocks start once the agent is
built, and evaluation time is excluded) and the seconds to the first deterministic 10-episode
evaluation at or above the threshold. ``--lib`` runs one side only (a child). ``--matmul-precision`` sets
torch's float32 matrix-product precision in both libraries' processes (``medium``: bfloat16 products on CPUs with AMX).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ZOO = {  # rl-baselines3-zoo hyperparams/dqn.yml (CartPole-v1), sac.yml, td3.yml and ddpg.yml (Pendulum-v1)
    "dqn": ("CartPole-v1", dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
                                gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
                                exploration_fraction=0.16, exploration_final_eps=0.04), [256, 256]),
    "sac": ("Pendulum-v1", dict(learning_rate=1e-3), [256, 256]),
    # the Zoo trains TD3 once per episode (train_freq [1, "episode"], gradient_steps -1): on Pendulum's fixed
    # 200-step episodes that is 200 updates every 200 steps, written here in steps for both libraries;
    # exploration noise N(0, TD3_NOISE) (rlworks' exploration_noise, SB3's NormalActionNoise below)
    "td3": ("Pendulum-v1", dict(learning_rate=1e-3, gamma=0.98, buffer_size=200_000, learning_starts=10_000,
                                train_freq=200, gradient_steps=200), [400, 300]),
    # ddpg.yml's Pendulum entry is td3.yml's (the same once-per-episode training and N(0, 0.1) noise)
    "ddpg": ("Pendulum-v1", dict(learning_rate=1e-3, gamma=0.98, buffer_size=200_000, learning_starts=10_000,
                                 train_freq=200, gradient_steps=200), [400, 300]),
}
DEFAULTS = {"dqn": (50_000, 2000, 475.0), "sac": (20_000, 1000, -200.0), "td3": (20_000, 1000, -200.0),
            "ddpg": (20_000, 1000, -200.0)}
TD3_NOISE = 0.1  # the Zoo's noise_type normal, noise_std 0.1 (Pendulum-v1), for TD3 and DDPG
ALGOS = tuple(ZOO)


class Clock:
    """Training time = wall time minus the time spent in evaluations."""

    def __init__(self) -> None:
        self.t0, self.excluded = time.perf_counter(), 0.0
        self.first_hit: tuple[int, float] | None = None
        self.evals: list[tuple[int, float]] = []

    def train_seconds(self) -> float:
        return time.perf_counter() - self.t0 - self.excluded

    def evaluate(self, step: int, act, env_id: str, threshold: float) -> None:
        import gymnasium as gym
        import numpy as np

        t = time.perf_counter()
        env = gym.make(env_id)
        rets = []
        for ep in range(10):
            obs, _ = env.reset(seed=10_000 + ep)
            done, total = False, 0.0
            while not done:
                obs, r, term, trunc, _ = env.step(act(np.asarray(obs)))
                total += float(r)
                done = term or trunc
            rets.append(total)
        mean = float(np.mean(rets))
        self.evals.append((step, mean))
        if self.first_hit is None and mean >= threshold:
            self.first_hit = (step, t - self.t0 - self.excluded)  # training seconds when the eval began
        self.excluded += time.perf_counter() - t


def child(a) -> dict:
    import torch

    torch.set_num_threads(a.threads)
    torch.set_float32_matmul_precision(a.matmul_precision)  # process-wide: the same for both libraries
    env_id, hp, arch = ZOO[a.algo]
    clock = Clock()
    if a.lib == "rlworks":
        from rlworks.algos import ddpg, dqn, sac, td3
        from rlworks.core.run import RunContext
        from rlworks.core.runtime import tuned

        mod = {"dqn": dqn, "sac": sac, "td3": td3, "ddpg": ddpg}[a.algo]
        if a.config == "best":  # rlworks' own preset for the env
            from rlworks.config import PRESET_DIR, from_dict, load_toml

            table = load_toml(PRESET_DIR / f"{a.algo}.toml")[env_id]
            from rlworks.algos import RUN_KEYS  # env, total_steps, eval_every, ...: run defaults, not fields

            cfg = from_dict(mod.CONFIG, {k: v for k, v in table.items() if k not in RUN_KEYS})
        else:
            noise = {"exploration_noise": TD3_NOISE} if a.algo in ("td3", "ddpg") else {}
            cfg = mod.CONFIG(**hp, **noise, hidden=tuple(arch))
        cfg = dataclasses.replace(cfg, backend=a.backend)
        holder = {}

        def callback(s) -> bool:
            holder["s"] = s
            if a.eval_every and s.global_step % a.eval_every == 0:
                agent = s.agent()
                clock.evaluate(s.global_step, lambda o: agent.act(o), env_id, a.threshold)
            return False

        def start(s) -> None:  # the clock starts once the agent is built, as it does for SB3 below
            clock.t0 = time.perf_counter()

        # the process settings the CLI enters (one thread, flush-to-zero, glibc heap kept between updates)
        with tuned(a.threads, matmul_precision=a.matmul_precision, retain_freed_memory=True):
            agent = mod.train(env_id, cfg, total_steps=a.total_steps, seed=a.seed, device=a.device,
                              run=RunContext(callback=callback, on_start=start))
        seconds, updates = clock.train_seconds(), agent.meta["n_updates"]
        compile_seconds = agent.meta.get("compile_seconds")
    else:
        import numpy as np
        from stable_baselines3 import DDPG, DQN, SAC, TD3
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.noise import NormalActionNoise

        cls = {"dqn": DQN, "sac": SAC, "td3": TD3, "ddpg": DDPG}[a.algo]
        if a.algo in ("td3", "ddpg"):
            hp = {**hp, "action_noise": NormalActionNoise(np.zeros(1), TD3_NOISE * np.ones(1))}

        class CB(BaseCallback):
            def _on_step(self) -> bool:
                if a.eval_every and self.num_timesteps % a.eval_every == 0:
                    m = self.model
                    clock.evaluate(self.num_timesteps, lambda o: m.predict(o, deterministic=True)[0], env_id,
                                   a.threshold)
                return True

        model = cls("MlpPolicy", env_id, seed=a.seed, device=a.device, policy_kwargs=dict(net_arch=arch), **hp)
        clock.t0 = time.perf_counter()  # after building the model, as rlworks' clock starts in on_start
        model.learn(a.total_steps, callback=CB())
        seconds, updates = clock.train_seconds(), int(model._n_updates)
        compile_seconds = None
    return {"lib": a.lib, "backend": a.backend if a.lib == "rlworks" else None, "compile_seconds": compile_seconds,
            "algo": a.algo, "device": a.device, "seed": a.seed, "steps": a.total_steps, "train_seconds": seconds,
            "steps_per_s": a.total_steps / seconds, "updates": updates, "updates_per_s": updates / seconds,
            "first_hit": clock.first_hit, "final_eval": clock.evals[-1][1] if clock.evals else None,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--algo", choices=ALGOS, default="dqn")
    p.add_argument("--lib", choices=("both", "rlworks", "sb3"), default="both")
    p.add_argument("--config", choices=("zoo", "best"), default="zoo")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-steps", type=int)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--threshold", type=float)
    p.add_argument("--device", default="cpu", help="torch device for both libraries (cpu, cuda)")
    from rlworks.config import BACKENDS, MATMUL_PRECISIONS  # no torch import: the parent only starts children

    p.add_argument("--backend", choices=BACKENDS, default="auto", help="(child) the rlworks backend of this run")
    p.add_argument("--backends", default="auto",
                   help="comma-separated rlworks backends to run beside SB3, each with its ratio (e.g. auto,autograd)")

    p.add_argument("--matmul-precision", choices=MATMUL_PRECISIONS, default="highest",
                   help="torch.set_float32_matmul_precision for both libraries (default: exact float32)")
    a = p.parse_args()
    steps, every, thr = DEFAULTS[a.algo]
    a.total_steps = a.total_steps or steps
    a.eval_every = every if a.eval_every is None else a.eval_every
    a.threshold = thr if a.threshold is None else a.threshold
    if a.lib != "both":
        print(json.dumps(child(a)))
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)}
    chosen = [b.strip() for b in a.backends.split(",") if b.strip()]
    for b in chosen:
        if b not in BACKENDS:
            p.error(f"--backends: {b!r} is not one of {', '.join(BACKENDS)}")
    rows = []
    for seed in range(a.seeds):
        for lib, backend in [*(("rlworks", b) for b in chosen), ("sb3", "auto")]:
            cmd = [sys.executable, __file__, "--algo", a.algo, "--lib", lib, "--seed", str(seed), "--config",
                   a.config if lib == "rlworks" else "zoo", "--total-steps", str(a.total_steps), "--threads",
                   str(a.threads), "--eval-every", str(a.eval_every), "--threshold", str(a.threshold),
                   "--device", a.device, "--matmul-precision", a.matmul_precision, "--backend", backend]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode:
                print(out.stderr[-2000:], file=sys.stderr)
                return 1
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), flush=True)
    key = "steps_per_s" if a.algo == "dqn" else "updates_per_s"
    runs = {f"rlworks {b}": [r for r in rows if r["lib"] == "rlworks" and r["backend"] == b] for b in chosen}
    runs["sb3"] = [r for r in rows if r["lib"] == "sb3"]
    med = {name: statistics.median(r[key] for r in rs) for name, rs in runs.items()}
    prec = "" if a.matmul_precision == "highest" else f", matmul precision {a.matmul_precision}"
    print(f"{a.algo} {ZOO[a.algo][0]} ({a.config} vs zoo), {a.seeds} seeds, {a.threads} thread(s), {a.device}{prec}: "
          f"{key} median sb3 {med['sb3']:.1f}")
    for name, rs in runs.items():
        hits = [r["first_hit"][1] for r in rs if r["first_hit"]]
        rss = statistics.median(r["peak_rss_mb"] for r in rs)
        compiled = [r["compile_seconds"] for r in rs if r.get("compile_seconds")]
        ratio = med[name] / med["sb3"] if med["sb3"] else float("nan")
        compiling = f"; of the training time, compiling took {statistics.median(compiled):.1f} s" if compiled else ""
        print(f"  {name}: {key} {med[name]:.1f}, ratio to sb3 {ratio:.2f}; seconds to >= {a.threshold}: "
              f"{[f'{h:.1f}' for h in hits]} ({len(hits)}/{a.seeds} reached); peak RSS median {rss:.0f} MB{compiling}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
