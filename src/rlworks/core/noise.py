"""Temporally correlated action noise for deterministic policies: the Ornstein–Uhlenbeck process.

DDPG explores with μ(s) + 𝒩, 𝒩 an Ornstein–Uhlenbeck process (Lillicrap et al. 2015, §3, after
Uhlenbeck & Ornstein 1930), discretised by Euler–Maruyama as Stable-Baselines3's
``OrnsteinUhlenbeckActionNoise`` does:

    x_{t+1} = x_t + θ (μ − x_t) dt + σ √dt ε,   ε ~ N(0, I),   x_0 = 0 (restarted at episode ends).

Its stationary variance is σ² dt / (1 − (1 − θ dt)²) = σ² / (θ (2 − θ dt)), which tends to the
continuous process's σ² / (2θ) as dt → 0 (``stationary_variance``).

The process is an ``nn.Module`` whose state is a buffer, so an algorithm keeping it in its state
dataclass gets it checkpointed like its networks (``core/state.py``) and resumes exactly. Draws come
from the caller's ``torch.Generator``. Knows no algorithm.
"""

from __future__ import annotations

import torch
from torch import nn


class OrnsteinUhlenbeckNoise(nn.Module):
    """One OU process per (env, action dimension): ``sample(generator)`` advances it one step and
    returns x (n_envs, act_dim); ``reset(done)`` restarts the rows of finished episodes at μ."""

    def __init__(self, n_envs: int, act_dim: int, sigma: float, theta: float = 0.15, dt: float = 1e-2,
                 mean: float = 0.0) -> None:
        super().__init__()
        self.sigma, self.theta, self.dt, self.mean = float(sigma), float(theta), float(dt), float(mean)
        self.register_buffer("x", torch.full((n_envs, act_dim), self.mean))  # (N, act_dim)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            eps = torch.randn(self.x.shape, generator=generator, device=self.x.device, dtype=self.x.dtype)
            self.x.add_(self.theta * (self.mean - self.x) * self.dt + self.sigma * self.dt ** 0.5 * eps)
            return self.x.clone()

    def reset(self, done: torch.Tensor | None = None) -> None:
        """Restart every process (``done=None``) or those of the envs where ``done`` (N,) is true."""
        with torch.no_grad():
            if done is None:
                self.x.fill_(self.mean)
            else:
                self.x[torch.as_tensor(done, device=self.x.device)] = self.mean

    def stationary_variance(self) -> float:
        """Var[x_∞] of the discretised process: σ² / (θ (2 − θ dt)) (→ σ² / (2θ) as dt → 0)."""
        return self.sigma ** 2 / (self.theta * (2.0 - self.theta * self.dt))

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, theta={self.theta}, dt={self.dt}, mean={self.mean}"
