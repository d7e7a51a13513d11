"""Exact planning on a known model: value iteration and policy iteration (Sutton & Barto, ch. 4).

Both take an env that exposes its model (GridWorld, FrozenLake, CliffWalking, Taxi) or a
TabularModel, and return V*, Q* and a greedy optimal policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from rlworks.config import ConfigError, check_range
from rlworks.tabular.mdp import TabularModel


@dataclass(frozen=True)
class PlanResult:
    v: np.ndarray  # (S,)
    q: np.ndarray  # (S, A)
    policy: np.ndarray  # (S,) greedy action, ties toward the lowest index
    iterations: int = 0

    def optimal_actions(self, tol: float = 1e-6) -> np.ndarray:
        """(S, A) mask of the actions whose Q* is within ``tol`` of V*: every optimal action."""
        return self.q >= self.q.max(axis=1, keepdims=True) - tol


def _model(env: gym.Env | TabularModel) -> TabularModel:
    return env if isinstance(env, TabularModel) else TabularModel.from_env(env)


def backup(model: TabularModel, v: np.ndarray, gamma: float) -> np.ndarray:
    """One Bellman backup: Q[s, a] = sum_k p_k (r_k + gamma (1 - done_k) V[s'_k])."""
    cont = np.where(model.dones, 0.0, v[model.next_states])
    return (model.probs * (model.rewards + gamma * cont)).sum(axis=2)


def value_iteration(
    env: gym.Env | TabularModel, gamma: float, tol: float = 1e-10, max_iterations: int = 100_000
) -> PlanResult:
    """Value iteration until the largest change in V is below ``tol``."""
    check_range("gamma", gamma, 0.0, 1.0)
    m = _model(env)
    v = np.zeros(m.n_states)
    for it in range(1, max_iterations + 1):
        q = backup(m, v, gamma)
        v_new = np.where(m.terminal, 0.0, q.max(axis=1))
        delta = np.abs(v_new - v).max()
        v = v_new
        if delta < tol:
            iterations = it
            break
    else:
        raise ConfigError(
            f"value iteration did not converge in {max_iterations} iterations (gamma={gamma}); "
            "with gamma=1 every policy must reach a terminal state"
        )
    q = backup(m, v, gamma)
    q[m.terminal] = 0.0
    return PlanResult(v=v, q=q, policy=q.argmax(axis=1), iterations=iterations)


def policy_iteration(
    env: gym.Env | TabularModel, gamma: float, tol: float = 1e-10, max_iterations: int = 10_000
) -> PlanResult:
    """Policy iteration: exact evaluation (a linear solve) and greedy improvement."""
    check_range("gamma", gamma, 0.0, 1.0)
    m = _model(env)
    S = m.n_states
    policy = np.zeros(S, dtype=np.int64)
    idx = np.arange(S)
    P, R = m.P, m.R
    # Transitions that end the episode contribute no future value.
    cont = np.zeros_like(P)
    for k in range(m.next_states.shape[2]):
        s_i, a_i = np.nonzero(~m.dones[:, :, k] & (k < m.n_outcomes))
        np.add.at(cont, (s_i, a_i, m.next_states[s_i, a_i, k]), m.probs[s_i, a_i, k])
    for it in range(1, max_iterations + 1):
        A = np.eye(S) - gamma * cont[idx, policy]
        b = R[idx, policy].copy()
        A[m.terminal] = np.eye(S)[m.terminal]
        b[m.terminal] = 0.0
        try:
            v = np.linalg.solve(A, b)
        except np.linalg.LinAlgError:
            raise ConfigError(
                "policy iteration: the current policy never terminates and gamma=1, so its value is "
                "undefined; use gamma < 1 or value_iteration"
            ) from None
        q = backup(m, v, gamma)
        q[m.terminal] = 0.0
        # Keep the current action unless another is strictly better (avoids cycling on ties).
        best = q.max(axis=1)
        stable = q[idx, policy] >= best - tol
        new_policy = np.where(stable, policy, q.argmax(axis=1))
        if (new_policy == policy).all():
            return PlanResult(v=v, q=q, policy=q.argmax(axis=1), iterations=it)
        policy = new_policy
    raise ConfigError(f"policy iteration did not converge in {max_iterations} iterations")
