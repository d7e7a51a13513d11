"""The exact model of a finite MDP as arrays, for planning and for the compiled learners.

Each (state, action) pair has up to K outcomes ``(probability, next_state, reward, done)``.
``done`` is per outcome (Gymnasium's toy-text envs mark the transition, not the state, as
terminal), so the Bellman backup is ``Q[s,a] = sum_k p_k (r_k + gamma (1 - done_k) V[s'_k])``.
The dense views ``P[s, a, s']`` and ``R[s, a]`` are derived from those arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from rlworks.config import ConfigError


@dataclass(frozen=True, eq=False)
class TabularModel:
    next_states: np.ndarray  # (S, A, K) int64
    cum_probs: np.ndarray  # (S, A, K) float64, cumulative; last valid entry is 1
    probs: np.ndarray  # (S, A, K) float64, 0 for padding
    rewards: np.ndarray  # (S, A, K) float64
    dones: np.ndarray  # (S, A, K) bool
    n_outcomes: np.ndarray  # (S, A) int64
    start: np.ndarray  # (S,) initial-state distribution
    terminal: np.ndarray  # (S,) bool: states from which nothing more happens
    _dense: dict = field(default_factory=dict, repr=False)

    @property
    def n_states(self) -> int:
        return self.next_states.shape[0]

    @property
    def n_actions(self) -> int:
        return self.next_states.shape[1]

    @property
    def deterministic(self) -> bool:
        return bool((self.n_outcomes == 1).all())

    @property
    def P(self) -> np.ndarray:  # noqa: N802
        """Dense transition probabilities ``P[s, a, s']``."""
        if "P" not in self._dense:
            S, A, K = self.next_states.shape
            P = np.zeros((S, A, S))
            s_idx, a_idx = np.meshgrid(np.arange(S), np.arange(A), indexing="ij")
            for k in range(K):
                np.add.at(P, (s_idx, a_idx, self.next_states[:, :, k]), self.probs[:, :, k])
            self._dense["P"] = P
        return self._dense["P"]

    @property
    def R(self) -> np.ndarray:  # noqa: N802
        """Expected immediate reward ``R[s, a]``."""
        if "R" not in self._dense:
            self._dense["R"] = (self.probs * self.rewards).sum(axis=2)
        return self._dense["R"]

    @classmethod
    def from_outcomes(cls, outcomes, start, terminal=None) -> TabularModel:
        """Build from ``outcomes[s][a] = [(prob, next_state, reward, done), ...]``."""
        S = len(outcomes)
        A = len(outcomes[0])
        K = max(len(outcomes[s][a]) for s in range(S) for a in range(A))
        ns = np.zeros((S, A, K), dtype=np.int64)
        pr = np.zeros((S, A, K))
        rw = np.zeros((S, A, K))
        dn = np.zeros((S, A, K), dtype=bool)
        n = np.zeros((S, A), dtype=np.int64)
        for s in range(S):
            if len(outcomes[s]) != A:
                raise ConfigError(f"model state {s} has {len(outcomes[s])} actions, expected {A}")
            for a in range(A):
                items = outcomes[s][a]
                n[s, a] = len(items)
                for k, (p, s2, r, d) in enumerate(items):
                    ns[s, a, k], pr[s, a, k], rw[s, a, k], dn[s, a, k] = int(s2), float(p), float(r), bool(d)
                ns[s, a, len(items) :] = ns[s, a, len(items) - 1]  # padding points at a real outcome
        total = pr.sum(axis=2)
        if not np.allclose(total, 1.0, atol=1e-8):
            s, a = np.argwhere(~np.isclose(total, 1.0, atol=1e-8))[0]
            raise ConfigError(f"model probabilities for state {s}, action {a} sum to {total[s, a]}, not 1")
        cum = np.cumsum(pr, axis=2)
        cum[np.arange(K)[None, None, :] >= (n[:, :, None] - 1)] = 1.0  # exact 1 on the last outcome
        start = np.asarray(start, dtype=np.float64)
        start = start / start.sum()
        if terminal is None:
            # A state is terminal when every transition into it ends the episode and it only
            # loops on itself (FrozenLake's holes and goal, Taxi's delivered states).
            entered_done = np.zeros(S, dtype=bool)
            entered_live = np.zeros(S, dtype=bool)
            valid = np.arange(K)[None, None, :] < n[:, :, None]
            np.logical_or.at(entered_done, ns[valid & dn], True)
            np.logical_or.at(entered_live, ns[valid & ~dn], True)
            terminal = entered_done & ~entered_live & (start == 0)
        return cls(ns, cum, pr, rw, dn, n, start, np.asarray(terminal, dtype=bool))

    @classmethod
    def from_env(cls, env: gym.Env) -> TabularModel:
        """The model an env exposes: ``unwrapped.model`` (GridWorld) or ``unwrapped.P``
        (Gymnasium's toy-text envs: FrozenLake, CliffWalking, Taxi)."""
        base = env.unwrapped
        model = getattr(base, "model", None)
        if isinstance(model, TabularModel):
            return model
        P = getattr(base, "P", None)
        if isinstance(P, dict) and P:
            S, A = int(base.observation_space.n), int(base.action_space.n)
            outcomes = [[list(P[s][a]) for a in range(A)] for s in range(S)]
            start = getattr(base, "initial_state_distrib", None)
            if start is None:
                start = getattr(base, "isd", None)
            if start is None:
                raise ConfigError(f"{describe(env)} exposes P but no initial-state distribution")
            return cls.from_outcomes(outcomes, start)
        raise ConfigError(f"{describe(env)} does not expose its model (P or .model): planning needs one")


def has_model(env: gym.Env) -> bool:
    base = env.unwrapped
    return isinstance(getattr(base, "model", None), TabularModel) or (
        isinstance(getattr(base, "P", None), dict) and bool(base.P)
    )


def describe(env: gym.Env) -> str:
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else type(env.unwrapped).__name__


def max_episode_steps(env: gym.Env) -> int | None:
    """The env's TimeLimit, if any."""
    spec = getattr(env, "spec", None)
    if spec is not None and spec.max_episode_steps:
        return int(spec.max_episode_steps)
    e = env
    while isinstance(e, gym.Wrapper):
        if isinstance(e, gym.wrappers.TimeLimit):
            return int(e._max_episode_steps)
        e = e.env
    return None


def require_discrete(env: gym.Env, method: str) -> tuple[int, int]:
    """(n_states, n_actions), or a ConfigError naming the spaces a tabular method cannot use."""
    obs, act = env.observation_space, env.action_space
    if not isinstance(obs, gym.spaces.Discrete) or not isinstance(act, gym.spaces.Discrete):
        raise ConfigError(
            f"{method} is tabular: it needs Discrete observation and action spaces, but {describe(env)} has "
            f"observations {space_name(obs)} and actions {space_name(act)}; use a deep algorithm (ppo, a2c, dqn, "
            "sac) instead"
        )
    if int(obs.start) != 0 or int(act.start) != 0:
        raise ConfigError(
            f"{method} indexes its table from 0, but {describe(env)} has observation space {obs} and action "
            f"space {act}; wrap the env so that both start at 0"
        )
    return int(obs.n), int(act.n)


def space_name(space: gym.Space) -> str:
    """A short name for a space: ``Discrete(4)``, ``Box(3,)``, ``Dict``."""
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({space.n})"
    if isinstance(space, gym.spaces.Box):
        return f"Box{tuple(space.shape)}"
    return type(space).__name__
