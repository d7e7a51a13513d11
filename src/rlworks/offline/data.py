"""The in-memory form of an offline dataset: flat transition arrays, as D4RL's ``qlearning_dataset`` gives them,
with the spaces, the env that made them and the reference scores that normalise a return.

Every offline algorithm reads an ``OfflineDataset``; where it came from (a Minari dataset on disk,
``rlworks.offline.datasets.load``, or arrays built in memory, ``OfflineDataset.from_episodes``) does not matter
to it. Transition t is (s_t, a_t, r_t, s_{t+1}); ``terminations[t]`` says s_{t+1} is terminal (no bootstrap),
``truncations[t]`` that the episode was cut there (a time limit: bootstrap from s_{t+1}, but the next transition
starts a new episode).

The normalised score is D4RL's (Fu et al. 2020, "D4RL: Datasets for Deep Data-Driven Reinforcement
Learning", §5): 100 · (return − ref_min_score) / (ref_max_score − ref_min_score), 0 for the random policy's
return and 100 for the expert's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from ..config import ConfigError


@dataclass(frozen=True, eq=False)
class OfflineDataset:
    dataset_id: str
    observations: np.ndarray
    """(T, *obs_shape) s_t"""
    actions: np.ndarray
    """(T, *act_shape) a_t (int64 for Discrete actions, float32 for Box)"""
    rewards: np.ndarray
    """(T,) float32 r_t"""
    next_observations: np.ndarray
    """(T, *obs_shape) s_{t+1}"""
    terminations: np.ndarray
    """(T,) bool: s_{t+1} is terminal"""
    truncations: np.ndarray
    """(T,) bool: the episode was cut after this transition (not terminal)"""
    episode_starts: np.ndarray
    """(E,) int64: the index of each episode's first transition (ascending; episode e ends before the next start)"""
    observation_space: gym.Space
    action_space: gym.Space
    env_id: str | None = None
    """the Gymnasium id the data was recorded on (evaluation uses it)"""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    ref_min_score: float | None = None
    """the return that normalises to 0 (D4RL: a uniformly random policy's mean return)"""
    ref_max_score: float | None = None
    """the return that normalises to 100 (D4RL: the expert policy's mean return)"""
    metadata: dict[str, Any] = field(default_factory=dict)
    """anything else the source recorded (Minari's metadata: algorithm_name, description, ...)"""

    def __post_init__(self) -> None:
        n = len(self.observations)
        for name in ("actions", "rewards", "next_observations", "terminations", "truncations"):
            if len(getattr(self, name)) != n:
                raise ConfigError(f"dataset {self.dataset_id}: {name} has {len(getattr(self, name))} entries, "
                                  f"observations {n}")
        starts = self.episode_starts
        if n and (len(starts) == 0 or starts[0] != 0 or np.any(np.diff(starts) <= 0) or starts[-1] >= n):
            raise ConfigError(f"dataset {self.dataset_id}: episode_starts must ascend from 0 below {n}")

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def n_episodes(self) -> int:
        return len(self.episode_starts)

    @property
    def episode_returns(self) -> np.ndarray:
        """(E,) the undiscounted return of each episode."""
        return np.add.reduceat(self.rewards.astype(np.float64), self.episode_starts) if len(self) else np.zeros(0)

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(np.append(self.episode_starts, len(self)))

    def normalized_score(self, returns: float | np.ndarray) -> float | np.ndarray:
        """D4RL's normalised score of ``returns``: 100 · (R − ref_min) / (ref_max − ref_min)."""
        if self.ref_min_score is None or self.ref_max_score is None or self.ref_max_score == self.ref_min_score:
            raise ConfigError(f"dataset {self.dataset_id} has no reference scores (ref_min_score, ref_max_score): "
                              "a normalised score needs both")
        return 100.0 * (np.asarray(returns, dtype=np.float64) - self.ref_min_score) / (
            self.ref_max_score - self.ref_min_score)

    @classmethod
    def from_episodes(cls, dataset_id: str, episodes: Sequence[dict[str, np.ndarray]], observation_space: gym.Space,
                      action_space: gym.Space, **info: Any) -> OfflineDataset:
        """From episodes as Minari stores them: each a dict with ``observations`` (L + 1, ...), ``actions``,
        ``rewards``, ``terminations`` and ``truncations`` (L, ...) each."""
        obs, nxt, acts, rews, terms, truncs, starts = [], [], [], [], [], [], []
        t = 0
        for ep in episodes:
            o = np.asarray(ep["observations"])
            length = len(ep["rewards"])
            if len(o) != length + 1:
                raise ConfigError(f"dataset {dataset_id}: an episode has {len(o)} observations for {length} steps "
                                  "(need one more observation than steps)")
            if length == 0:
                continue
            starts.append(t)
            t += length
            obs.append(o[:-1])
            nxt.append(o[1:])
            acts.append(np.asarray(ep["actions"]))
            rews.append(np.asarray(ep["rewards"], dtype=np.float32))
            terms.append(np.asarray(ep["terminations"], dtype=bool))
            truncs.append(np.asarray(ep["truncations"], dtype=bool))

        def cat(parts: list[np.ndarray], empty_shape: tuple[int, ...], dtype: Any = None) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros((0, *empty_shape), dtype=dtype or np.float32)

        obs_shape = observation_space.shape or ()
        act_dtype = np.int64 if isinstance(action_space, gym.spaces.Discrete) else np.float32
        actions = cat(acts, action_space.shape or (), act_dtype).astype(act_dtype, copy=False)
        return cls(dataset_id, cat(obs, obs_shape), actions, cat(rews, (), np.float32), cat(nxt, obs_shape),
                   cat(terms, (), bool), cat(truncs, (), bool), np.asarray(starts, dtype=np.int64),
                   observation_space, action_space, **info)
