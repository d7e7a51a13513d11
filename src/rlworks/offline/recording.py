"""Recording offline datasets with rlworks' own agents, following D4RL's recipe (Fu et al. 2020, §4-5).

``collect`` plays a policy (a trained agent, a checkpoint along its way, or a uniformly random policy)
on an env, optionally with Gaussian action noise σ (Box actions, clipped to the bounds) or ε-random
actions (Discrete), and writes the episodes as a Minari dataset (``datasets.save``).

Reference scores, D4RL's choice: ``ref_min_score`` is the mean return of a uniformly random policy,
``ref_max_score`` the mean return of the expert policy. Where the caller does not give them,
``collect`` measures them: ref_min over ``ref_episodes`` random episodes (seeded from ``seed``), and
ref_max over as many episodes of the given policy played deterministically without noise (the policy
is taken as the expert), or, for a random policy, the env's ``reward_threshold`` where the env has one.

``make`` builds D4RL's five kinds of dataset for one env in one go: random, medium, expert,
medium-replay and medium-expert. Every dataset is labelled as locally generated data.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from ..config import ConfigError, check_range
from . import datasets
from .data import OfflineDataset

#: D4RL's dataset kinds, in the order ``make`` writes them
KINDS = ("random", "medium", "expert", "medium-replay", "medium-expert")
#: "medium": the checkpoint whose normalised score is closest to this (D4RL: about a third to a half of expert)
MEDIUM_TARGET = 40.0
MEDIUM_RANGE = (100 / 3, 50.0)


def _seeds(seed: int, n: int) -> list[int]:
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def _make_env(env: str, env_kwargs: dict | None) -> gym.Env:
    try:
        return gym.make(env, **(env_kwargs or {}))
    except gym.error.Error as exc:
        raise ConfigError(f"cannot make env {env!r}: {' '.join(str(exc).split())}") from None


def resolve_policy(policy: Any) -> tuple[Any, str]:
    """``policy`` as (an agent or "random", its name): a run folder, checkpoint or saved-agent path, an
    agent (anything with ``act(obs, deterministic)``), or "random"."""
    if isinstance(policy, str) and policy == "random":
        return "random", "random"
    if hasattr(policy, "act"):
        return policy, f"{getattr(policy, 'algo', type(policy).__name__)} agent"
    if isinstance(policy, (str, Path)):
        from ..algos import load
        from ..core.checkpoint import CheckpointError

        if not Path(policy).exists():
            raise ConfigError(f"policy {str(policy)!r} does not exist: give a run folder, a checkpoint or saved "
                              "agent, or 'random'")
        try:
            agent = load(policy)
        except (CheckpointError, ConfigError, OSError) as exc:
            raise ConfigError(f"cannot load a policy from {policy}: {' '.join(str(exc).split())}") from None
        return agent, f"{agent.algo} agent from {policy}"
    raise ConfigError(f"policy must be a run folder or agent path, an agent or 'random', not {type(policy).__name__}")


def record(env: str, policy: Any, episodes: int, *, seed: int = 0, noise: float = 0.0, epsilon: float = 0.0,
           deterministic: bool = True, env_kwargs: dict | None = None) -> list[dict[str, np.ndarray]]:
    """Play ``episodes`` episodes of ``policy`` (an agent or "random") on ``env`` and return them as Minari
    stores them (``observations`` has one entry more than the other arrays). The env is reset with
    ``seed`` once, the action space and the noise draw from generators derived from it: same seed,
    same episodes."""
    check_range("episodes", episodes, 1)
    check_range("noise", noise, 0.0)
    check_range("epsilon", epsilon, 0.0, 1.0)
    e = _make_env(env, env_kwargs)
    space = e.action_space
    for what, sp in (("observation", e.observation_space), ("action", space)):
        if not isinstance(sp, (gym.spaces.Box, gym.spaces.Discrete)):
            e.close()
            raise ConfigError(f"{env} has a {type(sp).__name__} {what} space; rlworks' datasets take Box or Discrete "
                              f"{what}s")
    if noise and not isinstance(space, gym.spaces.Box):
        raise ConfigError(f"noise={noise} is Gaussian action noise for Box actions; {env} has Discrete actions: "
                          "use epsilon")
    if epsilon and not isinstance(space, gym.spaces.Discrete):
        raise ConfigError(f"epsilon={epsilon} is for Discrete actions; {env} has Box actions: use noise")
    space_seed, noise_seed = _seeds(seed, 2)
    space.seed(space_seed)
    rng = np.random.default_rng(noise_seed)

    def act(obs: np.ndarray) -> Any:
        if policy == "random":
            return space.sample()
        a = policy.act(obs, deterministic)
        if isinstance(space, gym.spaces.Box):
            a = np.asarray(a, dtype=space.dtype).reshape(space.shape)
            if noise:
                a = np.clip(a + rng.normal(0.0, noise, size=space.shape), space.low, space.high).astype(space.dtype)
            return a
        if epsilon and rng.random() < epsilon:
            return int(rng.integers(space.n))
        return int(np.asarray(a).reshape(()))

    out = []
    try:
        obs, _ = e.reset(seed=seed)
        for _ in range(episodes):
            o, a, r, te, tr = [obs], [], [], [], []
            while True:
                try:
                    action = act(obs)
                    obs, rew, term, trunc, _ = e.step(action)
                except ConfigError:
                    raise
                except Exception as exc:  # an agent trained on another env: wrong shapes somewhere in act
                    raise ConfigError(f"the policy does not fit {env}: {' '.join(str(exc).split())[:200]}") from None
                o.append(obs)
                a.append(action)
                r.append(rew)
                te.append(term)
                tr.append(trunc)
                if term or trunc:
                    break
            out.append({"observations": np.asarray(o), "actions": np.asarray(a), "rewards": np.asarray(r, np.float64),
                        "terminations": np.asarray(te, bool), "truncations": np.asarray(tr, bool)})
            obs, _ = e.reset()
    finally:
        e.close()
    return out


def mean_return(episodes: list[dict[str, np.ndarray]]) -> float:
    return float(np.mean([ep["rewards"].sum() for ep in episodes]))


def reference_scores(env: str, policy: Any, *, seed: int = 0, episodes: int = 100, env_kwargs: dict | None = None,
                     ref_min_score: float | None = None, ref_max_score: float | None = None,
                     ) -> tuple[float, float | None]:
    """D4RL's reference scores, measured where not given: ref_min = a uniformly random policy's mean return over
    ``episodes`` episodes; ref_max = ``policy``'s (deterministic, no noise), or for a random policy the env's
    ``reward_threshold`` (None where it has none)."""
    s_min, s_max = _seeds(seed + 1, 2)
    if ref_min_score is None:
        ref_min_score = mean_return(record(env, "random", episodes, seed=s_min, env_kwargs=env_kwargs))
    if ref_max_score is None:
        if policy != "random":
            ref_max_score = mean_return(record(env, policy, episodes, seed=s_max, env_kwargs=env_kwargs))
        else:
            spec = gym.spec(env)
            ref_max_score = None if spec.reward_threshold is None else float(spec.reward_threshold)
    return float(ref_min_score), ref_max_score


def collect(env: str, policy: Any, episodes: int, dataset_id: str, *, seed: int = 0, noise: float = 0.0,
            epsilon: float = 0.0, deterministic: bool = True, ref_min_score: float | None = None,
            ref_max_score: float | None = None, ref_episodes: int = 100, env_kwargs: dict | None = None,
            root: str | Path | None = None, overwrite: bool = False, description: str | None = None,
            ) -> OfflineDataset:
    """Record ``episodes`` episodes of ``policy`` on ``env`` and write them as the Minari dataset ``dataset_id``
    under ``root`` (default ``$MINARI_DATASETS_PATH``); returns the dataset as loaded back from disk.

    ``policy``: a run folder, a checkpoint (``checkpoints/step-N``) or saved agent, an agent object, or
    "random". ``noise``: Gaussian action noise σ for Box actions (clipped to the bounds); ``epsilon``: the
    probability of a uniformly random action for Discrete ones. Reference scores not given are measured over
    ``ref_episodes`` episodes (the module docstring says how). An existing id is refused unless ``overwrite``."""
    datasets.check_writable(dataset_id, root, overwrite)  # before any work
    agent, name = resolve_policy(policy)
    eps = record(env, agent, episodes, seed=seed, noise=noise, epsilon=epsilon, deterministic=deterministic,
                 env_kwargs=env_kwargs)
    lo, hi = reference_scores(env, agent, seed=seed, episodes=ref_episodes, env_kwargs=env_kwargs,
                              ref_min_score=ref_min_score, ref_max_score=ref_max_score)
    how = f"{name}" + (f", Gaussian action noise sigma={noise}" if noise else "") + \
        (f", epsilon={epsilon}" if epsilon else "")
    datasets.save(dataset_id, eps, env, env_kwargs=env_kwargs, root=root, overwrite=overwrite, ref_min_score=lo,
                  ref_max_score=hi, algorithm_name=name.split(" ")[0],
                  description=description or f"locally generated by rlworks: {episodes} episodes of {how} on {env}, "
                                             f"seed {seed}")
    return datasets.load(dataset_id, root)


def replay_episodes(checkpoint: str | Path) -> list[dict[str, np.ndarray]] | None:
    """The episodes in the replay buffer an off-policy checkpoint (DQN, SAC, TD3, ...: ``buffer.npz``) saved,
    in env units (the buffer keeps Box actions in [-1, 1]), episode by episode for each env of the run; the
    episode still running at the checkpoint ends there as truncated. None where there is no replay buffer (an
    on-policy run) or the ring has wrapped (its oldest transitions are gone)."""
    from ..algos.agent import scale_actions
    from ..core.checkpoint import load_checkpoint

    _, state, buf, _ = load_checkpoint(checkpoint, with_buffer=True)
    if not buf or "replay/counters" not in buf:
        return None
    rows, n_envs, _, count, head, live, _ = (int(v) for v in buf["replay/counters"])
    if count >= rows:
        return None
    spec = state["agent"]["spec"]
    obs, acts, rew = buf["replay/obs"], buf["replay/actions"], buf["replay/rewards"]  # (rows, n_envs, ...)
    term, trunc, fid, fobs = (buf[f"replay/{k}"] for k in ("terminations", "truncations", "final_id", "final_obs"))
    if spec["action"] == "box":
        acts = scale_actions(acts, spec).reshape((*acts.shape[:2], *spec["act_shape"]))
    elif spec.get("act_start"):
        acts = acts + spec["act_start"]
    oldest = head - live  # final_obs[j] is the final observation with id oldest + j

    def episode(e: int, a: int, b: int, last_obs: np.ndarray, cut: bool) -> dict[str, np.ndarray]:
        tr = trunc[a:b, e].copy()
        tr[-1] |= cut
        return {"observations": np.concatenate([obs[a:b, e], last_obs[None]]), "actions": acts[a:b, e],
                "rewards": rew[a:b, e].astype(np.float64), "terminations": term[a:b, e].copy(), "truncations": tr}

    out = []
    for e in range(n_envs):
        start = 0
        for t in np.flatnonzero(term[:count, e] | trunc[:count, e]):
            out.append(episode(e, start, t + 1, fobs[(int(fid[t, e]) - oldest) % 2**31], False))
            start = t + 1
        if start < count:  # row ``count`` holds the next observation, written ahead
            out.append(episode(e, start, count, obs[count, e], True))
    return out


def env_name(env_id: str) -> str:
    """``CartPole-v1`` -> ``cartpole``: the middle part of ``rlworks/<env>/<kind>-v0``."""
    name = env_id.split("/")[-1].split(":")[-1]
    name = name.rsplit("-v", 1)[0] if name.rsplit("-v", 1)[-1].isdigit() else name
    return name.lower().replace("_", "-")


def make(env_id: str, *, episodes: int = 20, total_steps: int | None = None, seed: int = 0, algo: str | None = None,
         root: str | Path | None = None, overwrite: bool = False, work_dir: str | Path | None = None,
         eval_episodes: int = 10, ref_episodes: int = 100, checkpoints: int = 25,
         progress: Callable[[str], None] | None = None) -> dict[str, OfflineDataset]:
    """D4RL's five datasets for ``env_id``, as ``rlworks/<env>/<kind>-v0`` (kind in ``KINDS``); returns them by kind.

    An rlworks agent is trained with its preset for the env (``algo``: "ppo" for Discrete actions, "sac" for
    Box; ``total_steps``: the preset's budget by default) into a run folder under ``work_dir`` (a temporary
    folder by default), checkpointing ``checkpoints`` times (dense enough that one usually lands in medium's
    range). Every checkpoint is evaluated (``eval_episodes``, deterministic):
    "expert" is the best one (normally the final policy), "medium" the earlier checkpoint whose normalised score
    is closest to ``MEDIUM_TARGET`` (D4RL: a third to a half of expert; the score reached is written into the
    description). random / medium / expert: ``episodes``
    episodes each (medium and expert with the policy's own stochastic actions, as D4RL samples its SAC
    policies). medium-replay is what the run saw up to "medium": for an off-policy agent (SAC, DQN) the replay
    buffer saved with the medium checkpoint (``replay_episodes``); where there is none (PPO) or it has wrapped,
    it is recorded again by playing random actions (the run's first collection) and every checkpoint up to
    medium, ``episodes`` episodes in all. medium-expert is medium's episodes then expert's.
    Reference scores (all five): the random policy's mean return over ``ref_episodes`` episodes and the
    expert's over ``eval_episodes`` (deterministic). ``progress`` receives one line per stage."""
    from .. import algos

    ids = {k: f"rlworks/{env_name(env_id)}/{k}-v0" for k in KINDS}
    for k in KINDS:
        datasets.check_writable(ids[k], root, overwrite)
    check_range("episodes", episodes, 1)
    say = progress or (lambda _msg: None)
    probe = _make_env(env_id, None)
    discrete = isinstance(probe.action_space, gym.spaces.Discrete)
    probe.close()
    algo = algo or ("ppo" if discrete else "sac")
    algos.check_algo(algo)
    preset_steps = algos.presets(algo).get(env_id, {}).get("total_steps")
    steps = int(total_steps or preset_steps or 100_000)
    s_train, s_eval, s_rec = _seeds(seed, 3)
    with tempfile.TemporaryDirectory(prefix="rlworks-make-") as tmp:
        run = Path(work_dir or tmp) / f"{algo}-{env_name(env_id)}-{seed}"
        say(f"training {algo} on {env_id} for {steps} steps into {run}")
        algos.train(algo, env_id, total_steps=steps, seed=s_train % 2**31, run_dir=run,
                    checkpoint_every=max(steps // checkpoints, 1), keep="last", eval_every=0)
        ckpts = sorted((p for p in (run / "checkpoints").glob("step-*") if p.is_dir()),
                       key=lambda p: int(p.name.split("-")[1]))
        agents = [algos.load(p) for p in ckpts]
        lo, _ = reference_scores(env_id, "random", seed=seed, episodes=ref_episodes)
        scores = [a.evaluate(eval_episodes, seed=s_eval % 2**31).mean_return for a in agents]
        x = max(range(len(agents)), key=lambda i: (scores[i], i))  # the expert: the best checkpoint, latest on ties
        hi = scores[x]
        say(f"checkpoints {[int(p.name.split('-')[1]) for p in ckpts]}: returns {[round(s, 1) for s in scores]}; "
            f"random {lo:.1f}")
        span = hi - lo if hi != lo else 1.0
        norm = [100.0 * (s - lo) / span for s in scores]
        m = min(range(x) if x else range(1), key=lambda i: abs(norm[i] - MEDIUM_TARGET))
        if not MEDIUM_RANGE[0] <= norm[m] <= MEDIUM_RANGE[1]:
            say(f"no checkpoint scored {MEDIUM_RANGE[0]:.0f}-{MEDIUM_RANGE[1]:.0f} (normalised); medium is the "
                f"closest, step {ckpts[m].name[5:]} at {norm[m]:.0f} (more checkpoints or another seed may find one)")
        rec = dict(seed=s_rec % 2**31, deterministic=False)
        eps = {"random": record(env_id, "random", episodes, **rec),
               "medium": record(env_id, agents[m], episodes, **rec),
               "expert": record(env_id, agents[x], episodes, **rec)}
        replay = replay_episodes(ckpts[m])  # D4RL's medium-replay: the buffer of the run up to medium
        if replay is None:  # on-policy (no buffer), or a ring that wrapped: play the run's policies again
            share = [episodes // (m + 2) + (1 if i < episodes % (m + 2) else 0) for i in range(m + 2)]
            replay = [ep for i, (pol, n) in enumerate(zip(["random", *agents[:m + 1]], share)) if n
                      for ep in record(env_id, pol, n, seed=(s_rec + i + 1) % 2**31, deterministic=False)]
            replay_how = (f"random actions and the {algo} checkpoints up to step {ckpts[m].name[5:]}, replayed "
                          f"({episodes} episodes; a stand-in for a replay buffer, which this run does not keep)")
        else:
            replay_how = f"the replay buffer of the {algo} run up to the medium checkpoint (step {ckpts[m].name[5:]})"
        eps["medium-replay"] = replay
        eps["medium-expert"] = eps["medium"] + eps["expert"]
        src = f"{algo} trained {steps} steps on {env_id} (seed {seed})" + (
            "; the expert is no better than random: train longer (--steps)" if hi <= lo else "")
        what = {"random": "a uniformly random policy",
                "medium": f"the {algo} checkpoint at step {ckpts[m].name[5:]} (normalised score {norm[m]:.0f})",
                "expert": f"the best {algo} checkpoint (step {ckpts[x].name[5:]} of {ckpts[-1].name[5:]})",
                "medium-replay": replay_how,
                "medium-expert": "the medium and expert datasets' episodes together"}
        with datasets.staging(root) as stage:  # all five or none: written aside, then moved in together
            for k in KINDS:
                say(f"writing {ids[k]} ({len(eps[k])} episodes)")
                datasets.save(ids[k], eps[k], env_id, root=stage, ref_min_score=lo, ref_max_score=hi,
                              algorithm_name=algo, description=f"locally generated by rlworks (D4RL's recipe, "
                                                               f"{k}): {what[k]}; {src}")
            datasets.install(stage, [ids[k] for k in KINDS], root, overwrite)
    return {k: datasets.load(ids[k], root) for k in KINDS}
