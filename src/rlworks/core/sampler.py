"""Experience collection behind one small interface.

``Sampler.collect(policy, n_steps) -> Rollout`` is all an on-policy algorithm sees. ``LocalSampler``
steps a local vector env; a Ray actor pool or a GPU-resident batched env can implement the same
protocol and return the same arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .buffers import Rollout
from .guards import check_array
from .returns import next_values_from
from .vec import ObsNormalizer, RewardScaler


class Policy(Protocol):
    def step(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(actions, logprobs, values) for a batch of (normalised) observations."""

    def values(self, obs: np.ndarray) -> np.ndarray:
        """V(obs) for a batch; zeros for policies without a critic."""


class Sampler(Protocol):
    def collect(self, policy: Policy, n_steps: int) -> Rollout: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class RawTransitions:
    """The observations of the last rollout as the env gave them (not normalised), for intrinsic rewards
    (core/intrinsic.py), which need the true next state of every step."""

    obs: np.ndarray  # (T, N, obs_dim) s_t
    next_obs: np.ndarray  # (T, N, obs_dim) the true s_{t+1}: the final observation where an episode ended


class LocalSampler:
    """Collects rollouts from a local vector env, applying observation normalisation and reward
    scaling (whose statistics live here and are checkpointed with the model). With ``record_raw``,
    ``raw`` holds the last rollout's ``RawTransitions`` and ``last_obs`` is the (normalised) observation
    the rollout stopped at."""

    def __init__(self, venv, action_spec: dict[str, Any], *, obs_norm: ObsNormalizer | None = None,
                 reward_scaler: RewardScaler | None = None, record_raw: bool = False) -> None:
        self.venv = venv
        self.spec = action_spec
        self.obs_norm = obs_norm
        self.reward_scaler = reward_scaler
        self.continuous = action_spec["action"] == "box"
        self.global_step = 0
        self._buf: Rollout | None = None
        self.record_raw = record_raw
        self.raw: RawTransitions | None = None
        self._obs = self._receive(venv.reset())

    @property
    def last_obs(self) -> np.ndarray:
        return self._obs

    # -- helpers --------------------------------------------------------------------------------
    def _receive(self, raw: np.ndarray) -> np.ndarray:
        check_array("observation", raw, f"from the environment after step {self.global_step}")
        self._raw = raw
        return self.obs_norm(raw, update=True) if self.obs_norm is not None else raw

    def _env_actions(self, actions: np.ndarray):
        if self.continuous:
            # clip to the bounds for the env only; the buffer keeps the sampled action (CleanRL, SB3)
            a = np.clip(actions, self.spec["low"], self.spec["high"])
            return a.reshape((a.shape[0], *self.spec["act_shape"]))
        return actions + self.spec["act_start"] if self.spec["act_start"] else actions

    # -- protocol -------------------------------------------------------------------------------
    def collect(self, policy: Policy, n_steps: int) -> Rollout:
        N = self.venv.num_envs
        if self._buf is None or self._buf.obs.shape[0] != n_steps:
            # pixels stay bytes (uint8) in the rollout; everything else is stored as float32
            dtype = np.uint8 if self.venv.obs_dtype == np.uint8 else np.float32
            self._buf = Rollout.allocate(n_steps, N, self.venv.obs_dim, self.spec["act_dim"], self.continuous, dtype)
        b = self._buf
        b.episodes, b.episode_ends = [], []
        if self.record_raw and (self.raw is None or self.raw.obs.shape[0] != n_steps):
            shape = (n_steps, N, self.venv.obs_dim)
            self.raw = RawTransitions(np.zeros(shape, np.float32), np.zeros(shape, np.float32))
        raw_t = self.raw if self.record_raw else None
        final_values = np.zeros((n_steps, N), dtype=np.float32)
        for t in range(n_steps):
            obs = self._obs
            b.obs[t] = obs
            if raw_t is not None:
                raw_t.obs[t] = self._raw
            actions, logprobs, values = policy.step(b.obs[t])
            b.actions[t] = actions
            b.logprobs[t] = logprobs
            b.values[t] = values
            raw, rewards, term, trunc, final, episodes = self.venv.step(self._env_actions(actions))
            self.global_step += N
            check_array("reward", rewards, f"from the environment at step {self.global_step}")
            b.episodes.extend(episodes)
            b.episode_ends.extend([self.global_step] * len(episodes))
            if trunc.any():  # bootstrap truncations from V(final obs); terminations need no value
                idx = np.flatnonzero(trunc)
                check_array("observation", final[idx], f"(final) from the environment at step {self.global_step}")
                f = final[idx]
                if self.obs_norm is not None:
                    f = self.obs_norm(f)
                final_values[t, idx] = policy.values(f.astype(b.obs.dtype))
            b.rewards[t] = self.reward_scaler(rewards, term | trunc) if self.reward_scaler is not None else rewards
            b.terminations[t] = term
            b.truncations[t] = trunc
            self._obs = self._receive(raw)
            if raw_t is not None:
                raw_t.next_obs[t] = raw
                done = term | trunc
                raw_t.next_obs[t, done] = final[done]
        last_values = policy.values(self._obs.astype(b.obs.dtype))
        b.next_values[:] = next_values_from(b.values, last_values.astype(np.float32), b.dones, final_values)
        return b

    def state_dict(self) -> dict[str, Any]:
        return {
            "venv": self.venv.get_state(),
            "global_step": self.global_step,
            "obs_norm": self.obs_norm.state_dict() if self.obs_norm is not None else None,
            "reward_scaler": self.reward_scaler.state_dict() if self.reward_scaler is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any], reseed: int | None = None) -> bool:
        """Restore; returns whether the env state was restored exactly (else envs were re-seeded)."""
        self.global_step = int(state["global_step"])
        if self.obs_norm is not None and state.get("obs_norm"):
            self.obs_norm.load_state_dict(state["obs_norm"])
        if self.reward_scaler is not None and state.get("reward_scaler"):
            self.reward_scaler.load_state_dict(state["reward_scaler"])
        exact = bool(state["venv"].get("exact"))
        raw = self.venv.set_state(state["venv"], reseed=None if exact else reseed)
        self._raw = raw
        self._obs = self.obs_norm(raw) if self.obs_norm is not None else raw
        return exact
