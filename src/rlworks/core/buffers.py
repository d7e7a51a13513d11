"""Experience storage. ``Rollout`` holds one on-policy batch in preallocated NumPy arrays,
time-major ``(T, N, ...)``; replay and prioritised buffers for off-policy algorithms go here too."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Rollout:
    """T steps from N envs. ``next_values[t]`` is V(s_{t+1}) of the true next state (the final
    observation on a truncation); see ``core.returns`` for how the masks are used."""

    obs: np.ndarray  # (T, N, obs_dim) float32 (normalised if obs normalisation is on), or uint8 pixels
    actions: np.ndarray  # (T, N) int64 or (T, N, act_dim) float32
    logprobs: np.ndarray  # (T, N)
    rewards: np.ndarray  # (T, N) float32, scaled if reward scaling is on
    terminations: np.ndarray  # (T, N) bool
    truncations: np.ndarray  # (T, N) bool
    values: np.ndarray  # (T, N)
    next_values: np.ndarray  # (T, N)
    episodes: list[tuple[float, int]] = field(default_factory=list)  # raw (return, length) of finished episodes
    episode_ends: list[int] = field(default_factory=list)  # the env step at which each of them ended

    @classmethod
    def allocate(cls, n_steps: int, n_envs: int, obs_dim: int, act_dim: int, continuous: bool,
                 obs_dtype: np.dtype | type = np.float32) -> Rollout:
        z = lambda *s, dt=np.float32: np.zeros(s, dtype=dt)  # noqa: E731
        return cls(
            obs=z(n_steps, n_envs, obs_dim, dt=obs_dtype),
            actions=z(n_steps, n_envs, act_dim) if continuous else z(n_steps, n_envs, dt=np.int64),
            logprobs=z(n_steps, n_envs), rewards=z(n_steps, n_envs),
            terminations=z(n_steps, n_envs, dt=bool), truncations=z(n_steps, n_envs, dt=bool),
            values=z(n_steps, n_envs), next_values=z(n_steps, n_envs),
        )

    @property
    def dones(self) -> np.ndarray:
        return self.terminations | self.truncations

    @property
    def n_steps(self) -> int:
        return self.obs.shape[0] * self.obs.shape[1]

    def flat(self, name: str, device: torch.device | str = "cpu") -> torch.Tensor:
        """One field flattened over (T, N) into a tensor: the ``b_`` batch."""
        a = getattr(self, name)
        return torch.from_numpy(a.reshape((-1,) + a.shape[2:])).to(device)
