"""The standard Atari preprocessing as one wrapper (``wrappers=["atari"]``, ``--wrapper atari``; applied
automatically to ``*NoFrameskip-v4`` ids by ``core.envs.env_source``).

It follows Stable-Baselines3's ``AtariWrapper`` + ``VecFrameStack`` (the RL Zoo's Atari setting), itself
Mnih et al. 2015 (Methods, "Preprocessing" and "Training details") with the later conventions of
openai/baselines' ``atari_wrappers.py``:

* on reset, 1–30 random no-op frames (Mnih et al. 2015, "Evaluation procedure");
* each action repeated for 4 frames, the observation the pixel-wise max of the last two (removes the
  flicker of sprites drawn every other frame) and the rewards summed;
* the screen as ALE's grey luminance, resized to 84×84 with area averaging (OpenCV's INTER_AREA, written
  here in NumPy so that no OpenCV is needed);
* training only: a lost life ends the episode for the learner (the game itself goes on: the next
  reset continues it with a no-op), and rewards are clipped to their sign (−1, 0, 1);
* FIRE pressed after each reset in games that need it to start (Breakout, ...);
* the last 4 frames stacked channel-first: observations are uint8 arrays of shape (4, 84, 84), zeros
  before the first frame of an episode, as SB3's VecFrameStack.

Evaluation (``Agent.evaluate``, ``rlworks eval``) plays the ``training=False`` form: the same frames,
the true game score over whole games (all lives), FIRE pressed after a lost life as training's reset
does. At the end of a game ``info["episode"]`` holds its true score and length (gymnasium's
RecordEpisodeStatistics convention), which the training log's ``charts/episodic_return`` reports.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np

from ..config import ConfigError


@functools.cache
def _area_taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Area-averaging resampling of one axis (OpenCV's INTER_AREA when shrinking): output pixel i averages
    input [i·s, (i+1)·s), s = n_in / n_out, counting partly covered pixels by the fraction covered. As
    (n_out, k) input indices and weights: each output reads k ≤ ⌈s⌉ + 1 inputs (a sparse product costs
    ~40 µs a frame; a dense one, through a multithreaded BLAS on a busy machine, up to 40× more)."""
    s = n_in / n_out
    k = int(np.ceil(s)) + 1
    idx = np.zeros((n_out, k), dtype=np.intp)
    w = np.zeros((n_out, k), dtype=np.float32)
    for i in range(n_out):
        lo, hi = i * s, (i + 1) * s
        for t, j in enumerate(range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in))):
            idx[i, t], w[i, t] = j, (min(hi, j + 1) - max(lo, j)) / s
    return idx, w


def resize_area(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """A 2-D uint8 image resized by area averaging, rounded to uint8."""
    iy, wy = _area_taps(height, img.shape[0])
    ix, wx = _area_taps(width, img.shape[1])
    rows = np.einsum("ikw,ik->iw", img.astype(np.float32)[iy], wy)  # (height, W)
    return np.rint(np.einsum("ijk,jk->ij", rows[:, ix], wx)).astype(np.uint8)  # (height, width)


class AtariPreprocessing(gym.Wrapper):
    """See the module docstring. ``training=False``: no life-loss ends, no reward clipping (evaluation)."""

    keeps_episode_record = True
    """the vector envs log this env's games from ``info["episode"]``, not its life-long episodes"""

    def __init__(self, env: gym.Env, *, training: bool = True, noop_max: int = 30, frame_skip: int = 4,
                 screen_size: int = 84, frame_stack: int = 4) -> None:
        super().__init__(env)
        ale = getattr(env.unwrapped, "ale", None)
        if ale is None:
            raise ConfigError(f"the atari wrapper needs an Atari (ALE) env, e.g. BreakoutNoFrameskip-v4; got "
                              f"{env.spec.id if env.spec else type(env.unwrapped).__name__}")
        if getattr(env.unwrapped, "_frameskip", 1) != 1:
            raise ConfigError("the atari wrapper skips frames itself: use a NoFrameskip-v4 id, or pass "
                              "env_kwargs frameskip=1 (and repeat_action_probability=0.0 for the v4 setting)")
        self.ale, self.training = ale, training
        self.noop_max, self.frame_skip, self.size = noop_max, frame_skip, screen_size
        meanings = env.unwrapped.get_action_meanings()
        self.fire = len(meanings) >= 3 and meanings[1] == "FIRE"
        h, w = ale.getScreenDims()
        self._screens = np.zeros((2, h, w), dtype=np.uint8)  # the last two grey frames of a step
        self.frames = np.zeros((frame_stack, screen_size, screen_size), dtype=np.uint8)
        self.observation_space = gym.spaces.Box(0, 255, self.frames.shape, np.uint8)
        self.lives = 0
        self.game_over = True
        self.game_return, self.game_steps = 0.0, 0  # the true score and length of the game being played

    # -- frames ---------------------------------------------------------------------------------
    def _frame(self) -> np.ndarray:
        return resize_area(np.maximum(self._screens[0], self._screens[1]), self.size, self.size)

    def _push(self, frame: np.ndarray) -> np.ndarray:
        self.frames[:-1] = self.frames[1:]
        self.frames[-1] = frame
        return self.frames.copy()

    def _skip(self, action: Any) -> tuple[float, bool, bool, dict[str, Any]]:
        """``action`` for ``frame_skip`` frames; the last two grey screens kept for the max."""
        total, term, trunc, info = 0.0, False, False, {}
        for i in range(self.frame_skip):
            _, r, term, trunc, info = self.env.step(action)
            total += float(r)
            if i >= self.frame_skip - 2:
                self.ale.getScreenGrayscale(self._screens[i - (self.frame_skip - 2)])
            if term or trunc:
                break
        return total, term, trunc, info

    def _fire(self) -> tuple[float, bool, bool]:
        """FIRE then action 2, as SB3's FireResetEnv (some games need both to start)."""
        total = 0.0
        for a in (1, 2):
            r, term, trunc, _ = self._skip(a)
            total += r
            if term or trunc:
                return total, term, trunc
        return total, False, False

    # -- gymnasium API --------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        info: dict[str, Any] = {}
        restart = True
        if self.training and not self.game_over and seed is None:
            # a life was lost, the game goes on: a no-op step stands in for the reset (SB3 EpisodicLifeEnv)
            r, term, trunc, info = self._skip(0)
            self.game_return += r
            restart = term or trunc
        if restart:
            info = self._new_game(seed, options)
        if self.fire:
            r, term, trunc = self._fire()
            self.game_return += r
            if term or trunc:
                info = self._new_game(None, options)
        self.lives = self.ale.lives()
        self.game_over = False
        self.frames[:] = 0
        return self._push(self._frame()), info

    def _new_game(self, seed: int | None, options: dict[str, Any] | None) -> dict[str, Any]:
        _, info = self.env.reset(seed=seed, options=options)
        self.game_return, self.game_steps = 0.0, 0
        noops = int(self.env.unwrapped.np_random.integers(1, self.noop_max + 1)) if self.noop_max > 0 else 0
        for _ in range(noops):  # single frames, before frame skipping (SB3 NoopResetEnv)
            _, _, term, trunc, info = self.env.step(0)
            if term or trunc:
                _, info = self.env.reset(options=options)
        self.ale.getScreenGrayscale(self._screens[0])
        self._screens[1] = self._screens[0]
        return info

    def step(self, action: Any):
        reward, term, trunc, info = self._skip(action)
        self.game_over = term or trunc
        lives = self.ale.lives()
        lost = 0 < lives < self.lives
        self.lives = lives
        if lost and self.training:
            term = True  # the learner's episode ends with the life (SB3 EpisodicLifeEnv)
        elif lost and self.fire and not self.game_over:  # evaluation: relaunch as training's reset would
            r, term, trunc = self._fire()
            reward += r
            self.game_over = term or trunc
            self.lives = self.ale.lives()
        self.game_return += reward
        self.game_steps += 1
        if self.game_over:  # the game's true score, as gymnasium's RecordEpisodeStatistics reports an episode
            info = {**info, "episode": {"r": self.game_return, "l": self.game_steps}}
        if self.training:
            reward = float(np.sign(reward))  # reward clipping (Mnih et al. 2015, "Training details")
        return self._push(self._frame()), reward, term, trunc, info
