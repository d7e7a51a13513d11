"""Envs that inject a non-finite observation or reward at a given step, for the NaN-guard tests."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class NaNEnv(gym.Wrapper):
    """``base`` until step ``at``, where observation[``index``] becomes NaN or the reward ``bad_reward``."""

    def __init__(self, base: str, what: str, at: int, index: int, bad_reward: float):
        super().__init__(gym.make(base))
        self.what, self.at, self.index, self.bad_reward, self.t = what, at, index, bad_reward, 0

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        self.t += 1
        if self.t == self.at:
            if self.what == "observation":
                obs = obs.copy()
                obs[self.index] = np.nan
            else:
                r = self.bad_reward
        return obs, r, term, trunc, info


# on-policy tests (test_deep_reliability.py): CartPole, step 300, an infinite reward
gym.register("rlworks-test/NaNObs-v0", entry_point=lambda: NaNEnv("CartPole-v1", "observation", 300, 2, np.inf))
gym.register("rlworks-test/NaNReward-v0", entry_point=lambda: NaNEnv("CartPole-v1", "reward", 300, 2, np.inf))
# off-policy tests (test_offpolicy_reliability.py): step 250, a NaN reward
for _base, _short in (("CartPole-v1", "CartPole"), ("Pendulum-v1", "Pendulum")):
    for _what in ("observation", "reward"):
        gym.register(f"rlworks-test/Off{_short}NaN{_what.title()}-v0",
                     entry_point=lambda b=_base, w=_what: NaNEnv(b, w, 250, 1, np.nan))
