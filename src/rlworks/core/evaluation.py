"""Deterministic evaluation episodes and episode videos (GIF/MP4 through imageio)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ConfigError
from .envs import env_source


@dataclass(frozen=True)
class EvalResult:
    mean_return: float
    std_return: float
    returns: tuple[float, ...]
    lengths: tuple[int, ...]


def evaluate(
    act: Callable[[np.ndarray], Any],
    env: Any,
    episodes: int,
    *,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    video: str | Path | None = None,
    fps: int = 30,
    max_steps: int = 100_000,
) -> EvalResult:
    """Run ``episodes`` episodes with ``act(obs) -> action``; episode i is reset with ``seed + i``.
    ``env``: an id (with ``env_kwargs``), an ``EnvSource``, an env instance (played as it is, and left
    open) or a factory. With ``video`` set, frames of the first episode are written to that .gif/.mp4
    file (the env must render ``rgb_array``: an id or a spec is made so, a factory must do it itself)."""
    if episodes < 1:
        raise ConfigError(f"episodes={episodes} is out of range: allowed [1, inf)")
    if video is not None and Path(video).suffix.lower() not in (".gif", ".mp4"):
        raise ConfigError(f"video={str(video)!r}: the file must end in .gif or .mp4")
    if video is not None:  # offscreen rendering: no display, no audio device needed
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        os.environ.setdefault("MUJOCO_GL", "egl")
    source = env_source(env, env_kwargs)
    lent = source.form == "instance" and source.first is not None
    env = source.make("rgb_array" if video is not None else None, reuse=True)
    lent = lent and source.first is None  # the caller's own instance was used: it is theirs to close
    returns, lengths, frames = [], [], []
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=None if seed is None else seed + ep)
            total, n, done = 0.0, 0, False
            while not done and n < max_steps:
                if video is not None and ep == 0:
                    frames.append(env.render())
                obs, r, term, trunc, _ = env.step(act(np.asarray(obs)))
                total += float(r)
                n += 1
                done = term or trunc
            if video is not None and ep == 0:
                frames.append(env.render())
            returns.append(total)
            lengths.append(n)
    finally:
        if not lent:
            env.close()
    if video is not None:
        write_video(frames, video, fps=fps)
    return EvalResult(float(np.mean(returns)), float(np.std(returns)), tuple(returns), tuple(lengths))


def evaluate_lockstep(act_batch: Callable[[np.ndarray], np.ndarray], env: Any, episodes: int, *,
                      seed: int | None = None, max_steps: int = 100_000) -> EvalResult:
    """``evaluate`` for a policy that is cheaper per batch than per observation (a tree search runs all its
    roots in one pass): the ``episodes`` episodes run side by side, episode i in its own env reset with
    ``seed + i``, and ``act_batch`` gets the observations of the episodes still running (k, ...)."""
    if episodes < 1:
        raise ConfigError(f"episodes={episodes} is out of range: allowed [1, inf)")
    source = env_source(env)
    envs = [source.make(None) for _ in range(episodes)]
    try:
        obs = [np.asarray(e.reset(seed=None if seed is None else seed + i)[0]) for i, e in enumerate(envs)]
        returns, lengths = np.zeros(episodes), np.zeros(episodes, dtype=np.int64)
        running = list(range(episodes))
        while running:
            actions = act_batch(np.stack([obs[i] for i in running]))
            still = []
            for i, a in zip(running, actions):
                obs[i], r, term, trunc, _ = envs[i].step(a)
                returns[i] += float(r)
                lengths[i] += 1
                if not (term or trunc) and lengths[i] < max_steps:
                    still.append(i)
            running = still
    finally:
        for e in envs:
            e.close()
    return EvalResult(float(np.mean(returns)), float(np.std(returns)), tuple(float(r) for r in returns),
                      tuple(int(n) for n in lengths))


def write_video(frames: list[np.ndarray], path: str | Path, fps: int = 30) -> Path:
    import imageio.v2 as imageio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    else:
        try:
            imageio.mimsave(path, frames, fps=fps, macro_block_size=1)
        except Exception as exc:  # imageio-ffmpeg missing
            raise ConfigError(f"{path}: cannot write MP4 ({exc}); install imageio-ffmpeg or use .gif") from None
    return path


class PeriodicEvaluator:
    """Evaluate the policy being trained every ``every`` environment steps and keep the best one —
    what SB3's ``EvalCallback`` does. Pass it as a training ``callback`` (callback time is excluded
    from ``perf/sps``); ``rlworks.train(..., eval_every=N)`` and ``rlworks train --eval-every N`` set
    it up.

    Each evaluation plays ``episodes`` deterministic episodes reset with seeds ``seed, seed + 1, …``
    (the same episodes every time, so evaluations compare like with like; the default seeds are
    apart from the ones training and ``benchmarks/`` use). It logs ``eval/mean_return`` and
    ``eval/std_return`` to ``logger`` and, when the mean beats every earlier one, saves the agent to
    ``best_dir`` (the previous best is replaced; ``agent.meta`` records ``eval_mean_return`` and
    ``eval_step``). A selected policy's own evaluation is biased upward: measure it again on fresh
    seeds before quoting it. ``start``: the step a resumed run starts from (the next evaluation is
    at the first multiple of ``every`` after it). ``keep_best``: also hold a copy of the best policy in
    memory as ``best_agent`` (``rlworks.train(..., keep="best")``; a resumed run whose best came before
    the resume has it only in ``best_dir``)."""

    def __init__(self, every: int, episodes: int = 10, *, seed: int = 1_000_000, logger: Any = None,
                 best_dir: str | Path | None = None, then: Callable[[Any], bool] | None = None,
                 start: int = 0, keep_best: bool = False) -> None:
        if int(every) < 1:
            raise ConfigError(f"eval_every={every} is out of range: allowed [1, inf)")
        if int(episodes) < 1:
            raise ConfigError(f"eval_episodes={episodes} is out of range: allowed [1, inf)")
        self.every, self.episodes, self.seed = int(every), int(episodes), int(seed)
        self.logger, self.then = logger, then
        self.best_dir = Path(best_dir) if best_dir is not None else None
        self.history: list[tuple[int, float, float]] = []  # (step, mean, std)
        self.best_return, self.best_step = float("-inf"), None
        self.keep_best, self.best_agent = bool(keep_best), None
        self._next = (int(start) // self.every + 1) * self.every
        if self.best_dir is not None and (self.best_dir / "latest").is_file():  # a resumed run keeps its best
            from .checkpoint import CheckpointError, read_state

            try:
                meta = read_state(self.best_dir)["agent"]["meta"]
                self.best_return, self.best_step = float(meta["eval_mean_return"]), int(meta["eval_step"])
            except (CheckpointError, KeyError, TypeError, ValueError):
                pass  # unreadable: the next evaluation writes a fresh best

    def __call__(self, session: Any) -> bool:
        step = int(session.global_step)
        if step >= self._next:
            self._next = (step // self.every + 1) * self.every
            self.evaluate(session.agent(), step)
        return bool(self.then(session)) if self.then is not None else False

    def evaluate(self, agent: Any, step: int) -> EvalResult:
        res = agent.evaluate(self.episodes, seed=self.seed)
        self.history.append((step, res.mean_return, res.std_return))
        if self.logger is not None:
            self.logger.log(step, {"eval/mean_return": res.mean_return, "eval/std_return": res.std_return})
        if res.mean_return > self.best_return:
            self.best_return, self.best_step = res.mean_return, step
            agent.meta.update(eval_mean_return=res.mean_return, eval_step=step)
            if self.best_dir is not None:
                agent.save(self.best_dir, keep=1)
            if self.keep_best:
                self.best_agent = _snapshot(agent)
        return res


def _snapshot(agent: Any) -> Any:
    """A copy of ``agent`` that training no longer changes: its own network (the live one is trained on),
    meta and acting caches; the env binding and config are shared, as they do not change."""
    import copy

    out = copy.copy(agent)
    out.model = copy.deepcopy(agent.model)
    out.meta = dict(agent.meta)
    if hasattr(out, "_np_actor"):
        out._np_actor = None  # rebuilt from the copied network on the first act
    return out
