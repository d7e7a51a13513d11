"""Return math: discounted returns, GAE(λ) and n-step returns — one implementation each.

All functions take time-major arrays of shape ``(T, N)`` (T steps of N parallel envs), NumPy
arrays or torch tensors alike, and keep terminations and truncations apart:

* ``next_values[t]`` is V(s_{t+1}) for the *true* next state of step t — on a truncated step that
  is the final observation of the episode (not the reset observation), and at ``t = T-1`` it is
  the value of the observation the rollout stopped at.
* ``terminations[t]`` — s_{t+1} is terminal: its value is 0, nothing is bootstrapped.
* ``dones[t] = terminations[t] | truncations[t]`` — the episode ended at t, so the recursion must not
  carry information from step t+1 (which belongs to the next episode) back into step t.

A time-limit truncation is therefore bootstrapped with γ·V(final obs) but does not leak across the
episode boundary (Pardo et al. 2018, "Time Limits in Reinforcement Learning").
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def _float(x, like):
    if isinstance(like, torch.Tensor):
        return torch.as_tensor(x, device=like.device).to(like.dtype)
    return np.asarray(x, dtype=like.dtype)


def _zeros_like(x):
    return torch.zeros_like(x) if isinstance(x, torch.Tensor) else np.zeros_like(x)


def gae(
    rewards: Array,
    values: Array,
    next_values: Array,
    terminations: Array,
    dones: Array,
    gamma: float,
    lam: float,
) -> tuple[Array, Array]:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16).

    δ_t = r_t + γ (1 - term_t) V(s_{t+1}) - V(s_t);   A_t = δ_t + γ λ (1 - done_t) A_{t+1}.
    Returns ``(advantages, returns)`` with ``returns = advantages + values`` (the TD(λ) target).
    """
    not_term = 1.0 - _float(terminations, rewards)
    not_done = 1.0 - _float(dones, rewards)
    deltas = rewards + gamma * not_term * next_values - values  # (T, N)
    advantages = _zeros_like(rewards)
    last = _zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        last = deltas[t] + gamma * lam * not_done[t] * last
        advantages[t] = last
    return advantages, advantages + values


def discounted_returns(
    rewards: Array,
    next_values: Array,
    terminations: Array,
    dones: Array,
    gamma: float,
) -> Array:
    """Discounted returns-to-go G_t = r_t + γ G_{t+1}, cut at episode ends.

    At a truncation (or at the end of the rollout) the tail is bootstrapped with γ·V(s_{t+1});
    at a termination it is zero. With ``next_values`` all zero this is the Monte-Carlo return
    that REINFORCE uses (Williams 1992).
    """
    not_term = 1.0 - _float(terminations, rewards)
    not_done = 1.0 - _float(dones, rewards)
    returns = _zeros_like(rewards)
    T = rewards.shape[0]
    # the step after the rollout is "unknown": treat it as a cut and bootstrap from next_values
    last = _zeros_like(rewards[0])
    for t in range(T - 1, -1, -1):
        cut = (1.0 - not_done[t]) if t < T - 1 else _float(1.0, rewards)
        tail = (1.0 - cut) * last + cut * not_term[t] * next_values[t]
        last = rewards[t] + gamma * tail
        returns[t] = last
    return returns


def n_step_returns(
    rewards: Array,
    next_values: Array,
    terminations: Array,
    dones: Array,
    gamma: float,
    n: int,
) -> Array:
    """n-step returns G^n_t = Σ_{k<m} γ^k r_{t+k} + γ^m V(s_{t+m}) with m ≤ n.

    m stops early at an episode end (bootstrapping only a truncation) or at the rollout's end
    (Sutton & Barto 2018, §7.1). ``n=1`` is the one-step TD target; ``n ≥ T`` equals
    ``discounted_returns``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    not_term = 1.0 - _float(terminations, rewards)
    not_done = 1.0 - _float(dones, rewards)
    T = rewards.shape[0]
    out = _zeros_like(rewards)
    for t in range(T):
        acc = _zeros_like(rewards[0])
        alive = _zeros_like(rewards[0]) + 1.0  # 1 while the n-step window is still open
        discount = 1.0
        for k in range(min(n, T - t)):
            i = t + k
            acc = acc + alive * discount * rewards[i]
            last_step = k == min(n, T - t) - 1
            # the window closes at an episode end or at the window's last step: bootstrap here
            closes = alive * (1.0 - not_done[i]) if not last_step else alive
            acc = acc + closes * discount * gamma * not_term[i] * next_values[i]
            alive = alive - closes
            discount *= gamma
        out[t] = acc
    return out


def next_values_from(values: Array, last_values: Array, dones: Array, final_values: Array) -> Array:
    """Assemble ``next_values`` for the functions above from per-step values.

    ``values`` (T, N) are V(s_t); ``last_values`` (N,) is V of the observation after the rollout;
    ``final_values`` (T, N) holds V(final obs) on done steps (anything elsewhere).
    """
    nxt = _zeros_like(values)
    nxt[:-1] = values[1:]
    nxt[-1] = last_values
    d = _float(dones, values)
    return d * final_values + (1.0 - d) * nxt
