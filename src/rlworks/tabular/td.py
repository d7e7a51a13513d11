"""Tabular TD control: Q-learning, SARSA and Expected SARSA (Sutton & Barto, ch. 6).

Two paths give the same learning behaviour from the same seed:

- **compiled** (default when the env exposes its model: GridWorld, FrozenLake, CliffWalking,
  Taxi): the whole run is one numba call over the model arrays, tens of millions of steps/s;
- **generic**: any Gymnasium env with Discrete observation and action spaces, stepped through
  ``env.step``. On a deterministic env it produces the very same Q-table as the compiled path
  (same random stream for the agent's choices); on a stochastic one, the same statistics.

Exploration is epsilon-greedy with ties broken at random, and episodes cut by the time limit are
truncations: their last target bootstraps from the next state (only termination stops it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from rlworks.config import ConfigError, check_choice, check_range
from rlworks.tabular import kernels
from rlworks.tabular.learner import TabularLearner
from rlworks.tabular.mdp import TabularModel, describe, has_model, max_episode_steps, require_discrete
from rlworks.tabular.mdp import max_episode_steps as time_limit_of
from rlworks.tabular.schedules import Schedule, as_schedule

#: Episode cap used when the env has no TimeLimit and none is given.
DEFAULT_MAX_EPISODE_STEPS = 1000
PATHS = ("auto", "compiled", "python", "generic")


@dataclass
class TabularResult:
    """What a tabular run learned and how it went."""

    q: np.ndarray  # (n_states, n_actions)
    episode_returns: np.ndarray  # (episodes,) undiscounted
    episode_lengths: np.ndarray  # (episodes,)
    steps: int
    algo: str = "q-learning"
    path: str = "compiled"
    loop_seconds: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    counts: np.ndarray | None = None  # (n_states, n_actions) updates N(s, a), kept with bonus="ucb"

    @property
    def policy(self) -> np.ndarray:
        """The greedy policy (ties toward the lowest action index, so it is reproducible)."""
        return self.q.argmax(axis=1)

    @property
    def v(self) -> np.ndarray:
        return self.q.max(axis=1)


def make_env(env: gym.Env | str, **kwargs: Any) -> gym.Env:
    """An env from an instance or an id, with a did-you-mean for unknown ids."""
    if isinstance(env, gym.Env):
        return env
    if not isinstance(env, str):
        raise ConfigError(f"env must be a gymnasium.Env or an env id, got {type(env).__name__}")
    import rlworks.envs  # noqa: F401  (registers rlworks/GridWorld-v0)
    from rlworks.config import suggest

    if env not in gym.registry:
        raise ConfigError(f"unknown env {env!r}{suggest(env, gym.registry.keys())}; `rlworks list` shows the envs")
    try:
        return gym.make(env, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise ConfigError(f"env {env!r} needs an extra package: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"env {env!r}: {exc}") from None


def learn(
    algo: str,
    env: gym.Env | str,
    *,
    episodes: int,
    alpha: float | Schedule = 0.1,
    gamma: float = 0.95,
    epsilon: float | Schedule = 0.1,
    seed: int = 0,
    planning_steps: int = 0,
    max_episode_steps: int | None = None,
    q_init: float = 0.0,
    tie_break: str = "random",
    path: str = "auto",
    bonus: str = "none",
    bonus_c: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
) -> TabularResult:
    """Run a tabular TD algorithm for ``episodes`` episodes. See ``q_learning`` for the arguments."""
    check_choice("path", path, PATHS)
    alpha_s, eps_s = check_args(episodes, alpha, gamma, epsilon, planning_steps)
    env = make_env(env)
    require_discrete(env, algo)
    # The env's own TimeLimit always applies on the generic path, so the compiled path honours it
    # too: a larger max_episode_steps cannot lift it, a smaller one tightens it.
    env_cap = time_limit_of(env)
    cap = max_episode_steps or env_cap or DEFAULT_MAX_EPISODE_STEPS
    if max_episode_steps and env_cap:
        cap = min(int(max_episode_steps), env_cap)
    check_range("max_episode_steps", cap, 1, None)
    if path == "auto":
        path = "compiled" if has_model(env) else "generic"
    if path in ("compiled", "python"):
        model = TabularModel.from_env(env)
    else:
        n_states, n_actions = require_discrete(env, algo)
        model = _shape_only_model(n_states, n_actions)
    learner = TabularLearner(
        model, algo, alpha=alpha_s.start, gamma=gamma, epsilon=eps_s.start,
        planning_steps=planning_steps, max_episode_steps=cap, seed=seed, q_init=q_init, tie_break=tie_break,
        bonus=bonus, bonus_c=bonus_c,
    )  # fmt: skip
    alphas, epsilons = alpha_s.values(episodes), eps_s.values(episodes)
    if path == "compiled":
        # compile (or load from numba's cache) outside the timed loop, on a throwaway learner
        TabularLearner(model, algo, max_episode_steps=cap).run(steps=1)
    t0 = time.perf_counter()
    seconds = 0.0  # the learning loop's own time (progress callbacks excluded)
    if episodes == 0:
        returns, lengths = np.zeros(0), np.zeros(0, dtype=np.int64)
    elif path == "generic":
        returns, lengths = run_generic(learner, env, episodes, alphas, epsilons, seed)
    elif progress is None:
        returns, lengths = learner.run(episodes=episodes, alphas=alphas, epsilons=epsilons, compiled=path == "compiled")
    else:
        # The same run in slices (the learner carries its state), reporting between them.
        parts, done, seconds = [], 0, 0.0
        chunk = max(1, episodes // 100)
        while done < episodes:
            n = min(chunk, episodes - done)
            t1 = time.perf_counter()
            parts.append(learner.run(episodes=n, alphas=alphas[done : done + n], epsilons=epsilons[done : done + n],
                                     compiled=path == "compiled"))  # fmt: skip
            seconds += time.perf_counter() - t1
            done += n
            progress(done, episodes)
        returns = np.concatenate([p[0] for p in parts])
        lengths = np.concatenate([p[1] for p in parts])
    if progress is None or path == "generic":
        seconds = time.perf_counter() - t0
    config = dict(
        algo=algo, env=describe(env), episodes=int(episodes), alpha=_sched_json(alpha_s), gamma=float(gamma),
        epsilon=_sched_json(eps_s), seed=int(seed), planning_steps=int(learner.planning_steps),
        max_episode_steps=int(cap), q_init=float(q_init), tie_break=tie_break, path=path,
        bonus=bonus, bonus_c=float(bonus_c),
    )  # fmt: skip
    return TabularResult(
        q=learner.q, episode_returns=returns, episode_lengths=lengths, steps=learner.steps,
        algo=algo, path=path, loop_seconds=seconds, config=config,
        counts=learner.counts if learner.effective_bonus_c > 0 else None,
    )  # fmt: skip


def check_args(episodes, alpha, gamma, epsilon, planning_steps=0) -> tuple[Schedule, Schedule]:
    """Validate the arguments shared by every tabular learner; returns the two schedules."""
    if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)):
        raise ConfigError(f"episodes={episodes!r} must be a whole number")
    check_range("episodes", episodes, 0, None)
    alpha_s, eps_s = as_schedule(alpha, "alpha"), as_schedule(epsilon, "epsilon")
    alpha_s.check("alpha", 0.0, 1.0, low_open=True)
    eps_s.check("epsilon", 0.0, 1.0)
    check_range("gamma", gamma, 0.0, 1.0)
    check_range("planning_steps", planning_steps, 0, 10_000)
    return alpha_s, eps_s


def max_episode_steps_of(env: gym.Env) -> int:
    return max_episode_steps(env) or DEFAULT_MAX_EPISODE_STEPS


def _sched_json(s: Schedule) -> Any:
    if s.kind == "constant":
        return s.start
    return {"kind": s.kind, "start": s.start, "end": s.end, "fraction": s.fraction, "decay": s.decay}


def _shape_only_model(n_states: int, n_actions: int) -> TabularModel:
    """A placeholder model for the generic path: the learner needs shapes, not dynamics."""
    outcomes = [[[(1.0, s, 0.0, True)] for _ in range(n_actions)] for s in range(n_states)]
    start = np.zeros(n_states)
    start[0] = 1.0
    return TabularModel.from_outcomes(outcomes, start, terminal=np.zeros(n_states, dtype=bool))


def run_generic(
    learner: TabularLearner, env: gym.Env, episodes: int, alphas: np.ndarray, epsilons: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The same algorithm as ``kernels.run_kernel``, stepping a real env. It draws from the
    agent's random stream in the same order, so on a deterministic env the Q-tables match."""
    q, rng, gamma = learner.q, learner.rng, float(learner.gamma)
    code = kernels.ALGO_CODES[learner.algo]
    n_actions = q.shape[1]
    first = learner.tie_break == "first"
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    k = learner.planning_steps
    counts, bonus_c = learner.counts, learner.effective_bonus_c

    def choose(state: int) -> int:
        if bonus_c > 0.0:
            return kernels.select_action_counted(q, counts, state, eps, rng, first)
        return kernels.select_action(q, state, eps, rng, first)

    for ep in range(episodes):
        j = min(ep, len(alphas) - 1)
        alpha, eps = float(alphas[j]), float(epsilons[j])
        s, _ = env.reset(seed=seed if ep == 0 else None)
        s = int(s)
        a = choose(s)
        t, total = 0, 0.0
        while True:
            s2, r, terminated, truncated, _ = env.step(a)
            s2, r = int(s2), float(r)
            t += 1
            truncated = bool(truncated or t >= learner.max_episode_steps) and not terminated
            target = r
            if bonus_c > 0.0:
                counts[s, a] += 1
                target += bonus_c / math.sqrt(counts[s, a])
            a2 = -1
            if code == kernels.SARSA:
                a2 = choose(s2)
                if not terminated:
                    target += gamma * q[s2, a2]
            elif not terminated:
                target += gamma * kernels.state_value(q, s2, code, eps)
            q[s, a] += alpha * (target - q[s, a])
            if k > 0:
                if learner.m_next[s, a] < 0:
                    learner.seen_list[learner.seen_count[0]] = s * n_actions + a
                    learner.seen_count[0] += 1
                learner.m_next[s, a], learner.m_reward[s, a], learner.m_done[s, a] = s2, r, terminated
                kernels.plan(q, gamma, alpha, k, learner.m_next, learner.m_reward, learner.m_done,
                             learner.seen_list, learner.seen_count[0], rng)  # fmt: skip
            total += r
            learner.steps += 1
            if terminated or truncated:
                break
            s = s2
            a = a2 if a2 >= 0 else choose(s)
        returns[ep], lengths[ep] = total, t
        learner.episodes += 1
    return returns, lengths


_DOC_ARGS = """
    Args:
        env: a Gymnasium env (Discrete observations and actions) or its id.
        episodes: number of episodes to run (each capped by the env's TimeLimit or
            ``max_episode_steps``; the cap is a truncation and bootstraps).
        alpha: step size in (0, 1], a number or a ``Schedule`` over episodes.
        gamma: discount in [0, 1].
        epsilon: exploration rate in [0, 1], a number or a ``Schedule`` over episodes.
        seed: seeds the agent's random stream (and the env's first reset).
        max_episode_steps: episode cap (default: the env's TimeLimit, else 1000); it can
            tighten the env's TimeLimit but not lift it.
        q_init: initial Q for non-terminal states (> 0 is optimistic initialisation).
        tie_break: ``"random"`` (default) or ``"first"`` (``argmax``'s lowest index, as the
            reference snippet does; it strands agents whose first action bumps a wall).
        progress: optional ``progress(episodes_done, episodes)`` callback (same result).
        path: ``"auto"`` (compiled when the env exposes its model), ``"compiled"``,
            ``"python"`` (the same kernel uncompiled) or ``"generic"`` (``env.step``).
        bonus: ``"none"`` (default) or ``"ucb"``, a count-based exploration bonus: each update's
            target gains ``bonus_c / sqrt(N(s, a))`` and untried actions go first
            (``rlworks.tabular.learner.BONUSES``); ``result.counts`` then holds N(s, a).
        bonus_c: the bonus coefficient (>= 0; used with ``bonus="ucb"``).
"""


def q_learning(env: gym.Env | str, *, episodes: int, alpha=0.1, gamma=0.95, epsilon=0.1, seed=0, **kw) -> TabularResult:
    """Q-learning (Watkins 1989): off-policy TD control, target ``r + gamma max_a' Q(s', a')``."""
    return learn("q-learning", env, episodes=episodes, alpha=alpha, gamma=gamma, epsilon=epsilon, seed=seed, **kw)


def sarsa(env: gym.Env | str, *, episodes: int, alpha=0.1, gamma=0.95, epsilon=0.1, seed=0, **kw) -> TabularResult:
    """SARSA (Rummery & Niranjan 1994): on-policy TD control, target ``r + gamma Q(s', a')``
    with ``a'`` the action the epsilon-greedy policy then takes."""
    return learn("sarsa", env, episodes=episodes, alpha=alpha, gamma=gamma, epsilon=epsilon, seed=seed, **kw)


def expected_sarsa(env: gym.Env | str, *, episodes: int, alpha=0.1, gamma=0.95, epsilon=0.1, seed=0,
                   **kw) -> TabularResult:
    """Expected SARSA (van Seijen et al. 2009): target ``r + gamma E_pi[Q(s', .)]`` under the
    epsilon-greedy policy, which removes SARSA's variance from sampling ``a'``."""
    return learn("expected-sarsa", env, episodes=episodes, alpha=alpha, gamma=gamma, epsilon=epsilon, seed=seed, **kw)


for _fn in (q_learning, sarsa, expected_sarsa):
    _fn.__doc__ = (_fn.__doc__ or "") + _DOC_ARGS
