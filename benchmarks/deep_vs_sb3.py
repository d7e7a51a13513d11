"""One benchmark run of rlworks or Stable-Baselines3 on CartPole-v1, in this process; prints one JSON line.

    python benchmarks/deep_vs_sb3.py --lib rlworks|sb3 --algo ppo|a2c --config zoo|best --seed 0

Both libraries get the same hyperparameters (RL Zoo's for ``zoo``), the same torch thread count and
the same evaluation protocol: every ``--eval-every`` steps (checked at rollout ends) until the mean
return of ``--eval-episodes`` deterministic episodes first reaches ``--threshold``, then once at the
end. Training seconds exclude evaluation; they start before the envs and networks are built (after
imports). ``rlworks bench`` runs this script in fresh subprocesses, alternating the libraries.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np
import torch

ZOO = {  # rl-baselines3-zoo hyperparams/ppo.yml and a2c.yml, CartPole-v1
    "ppo": dict(n_envs=8, n_steps=32, batch_size=256, n_epochs=20, gae_lambda=0.8, gamma=0.98, learning_rate=1e-3,
                ent_coef=0.0, clip=0.2, lin=True),
    "a2c": dict(n_envs=8, n_steps=5, gamma=0.99, gae_lambda=1.0, learning_rate=7e-4, ent_coef=0.0),
}


class Clock:
    """Training time = wall time minus evaluation time."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.eval_time = 0.0
        self.first_hit: tuple[int, float] | None = None
        self.next_eval = 0
        self.evals: list[tuple[int, float]] = []

    def train_seconds(self) -> float:
        return time.perf_counter() - self.t0 - self.eval_time

    def maybe_eval(self, step: int, evaluate, args) -> None:
        if self.first_hit is not None or step < self.next_eval:
            return
        t = time.perf_counter()
        train_s = t - self.t0 - self.eval_time
        mean = evaluate()
        self.eval_time += time.perf_counter() - t
        self.evals.append((step, mean))
        while self.next_eval <= step:
            self.next_eval += args.eval_every
        if mean >= args.threshold:
            self.first_hit = (step, train_s)


def eval_episodes(act, n: int, seed: int) -> float:
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    rets = []
    for i in range(n):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            obs, r, term, trunc, _ = env.step(act(obs))
            total += r
            done = term or trunc
        rets.append(total)
    return float(np.mean(rets))


def run_rlworks(args, clock: Clock) -> tuple[int, float]:
    from rlworks import algos

    if args.config == "zoo":
        z = ZOO[args.algo]
        if args.algo == "ppo":
            over = dict(n_envs=z["n_envs"], n_steps=z["n_steps"], batch_size=z["batch_size"], n_epochs=z["n_epochs"],
                        gae_lambda=z["gae_lambda"], gamma=z["gamma"], learning_rate=z["learning_rate"],
                        ent_coef=z["ent_coef"], clip_coef=z["clip"], anneal_lr=True, anneal_clip=True)
        else:
            over = dict(n_envs=z["n_envs"], n_steps=z["n_steps"], gamma=z["gamma"], gae_lambda=z["gae_lambda"],
                        learning_rate=z["learning_rate"], ent_coef=z["ent_coef"])
        agent_kw = dict(preset="rlzoo", **over)
    else:
        agent_kw = dict(preset="CartPole-v1", eval_every=0)  # speed: without the preset's periodic evaluations

    def callback(session) -> bool:
        clock.maybe_eval(session.global_step, lambda: eval_episodes(session.agent().act, args.eval_episodes, 10_000),
                         args)
        return False

    agent = algos.train(args.algo, "CartPole-v1", total_steps=args.total_steps, seed=args.seed, callback=callback,
                        log_every=10**12, device=args.device, backend=args.backend, **agent_kw)
    train_s = clock.train_seconds()
    args.compile_seconds = agent.meta.get("compile_seconds")
    return agent.meta["global_step"], train_s, eval_episodes(agent.act, args.eval_episodes, 20_000)


def run_sb3(args, clock: Clock) -> tuple[int, float]:
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    z = ZOO[args.algo]
    if args.config != "zoo":
        raise SystemExit("sb3 runs only with --config zoo")

    class Eval(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            m = self.model
            clock.maybe_eval(m.num_timesteps, lambda: eval_episodes(lambda o: m.predict(o, deterministic=True)[0],
                                                                    args.eval_episodes, 10_000), args)

    env = make_vec_env("CartPole-v1", n_envs=z["n_envs"], seed=args.seed)
    if args.algo == "ppo":
        lin = lambda v: (lambda p: p * v)  # noqa: E731  RL Zoo's lin_<v>
        model = PPO("MlpPolicy", env, n_steps=z["n_steps"], batch_size=z["batch_size"], n_epochs=z["n_epochs"],
                    gae_lambda=z["gae_lambda"], gamma=z["gamma"], learning_rate=lin(z["learning_rate"]),
                    ent_coef=z["ent_coef"], clip_range=lin(z["clip"]), seed=args.seed, device=args.device, verbose=0)
    else:
        model = A2C("MlpPolicy", env, n_steps=z["n_steps"], gamma=z["gamma"], gae_lambda=z["gae_lambda"],
                    learning_rate=z["learning_rate"], ent_coef=z["ent_coef"], seed=args.seed, device=args.device,
                    verbose=0)
    model.learn(args.total_steps, callback=Eval())
    train_s = clock.train_seconds()
    return model.num_timesteps, train_s, eval_episodes(lambda o: model.predict(o, deterministic=True)[0],
                                                       args.eval_episodes, 20_000)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lib", choices=("rlworks", "sb3"), required=True)
    p.add_argument("--algo", choices=("ppo", "a2c"), default="ppo")
    p.add_argument("--config", choices=("zoo", "best"), default="zoo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-steps", type=int, default=50_000)
    p.add_argument("--threshold", type=float, default=475.0)
    p.add_argument("--eval-every", type=int, default=2_000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="torch device for the library under test (cpu, cuda)")
    p.add_argument("--backend", default="auto", help="rlworks: how the update runs (auto, autograd, compile, fused)")
    args = p.parse_args(argv)
    args.compile_seconds = None
    torch.set_num_threads(args.threads)
    if args.lib == "rlworks":  # what the CLI enters for the whole process (rlworks.train sets the rest itself)
        from rlworks.core.runtime import retain_freed_memory_for_process

        retain_freed_memory_for_process()
    import gymnasium  # noqa: F401  (imports outside the timed region, for both libraries)

    if args.lib == "sb3":
        import stable_baselines3  # noqa: F401
    else:
        import rlworks.algos.a2c  # noqa: F401,E401
    clock = Clock()
    steps, train_s, final = (run_sb3 if args.lib == "sb3" else run_rlworks)(args, clock)
    hit = clock.first_hit
    print(json.dumps({
        "lib": args.lib, "backend": args.backend if args.lib == "rlworks" else None,
        "compile_seconds": args.compile_seconds, "algo": args.algo, "config": args.config, "seed": args.seed,
        "threads": args.threads,
        "device": args.device,
        "steps": steps, "train_seconds": train_s, "sps": steps / train_s,
        "steps_to_threshold": hit[0] if hit else None, "seconds_to_threshold": hit[1] if hit else None,
        "final_eval": final, "eval_seconds": clock.eval_time,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cpu_seconds": time.process_time(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
