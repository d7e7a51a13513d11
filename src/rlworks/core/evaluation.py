"""Deterministic evaluation episodes and episode videos (GIF/MP4 through imageio)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import ConfigError
from .vec import make_env


@dataclass(frozen=True)
class EvalResult:
    mean_return: float
    std_return: float
    returns: tuple[float, ...]
    lengths: tuple[int, ...]


def evaluate(
    act: Callable[[np.ndarray], Any],
    env_id: str,
    episodes: int,
    *,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    video: str | Path | None = None,
    fps: int = 30,
    max_steps: int = 100_000,
) -> EvalResult:
    """Run ``episodes`` episodes with ``act(obs) -> action``; episode i is reset with ``seed + i``.
    With ``video`` set, frames of the first episode are written to that .gif/.mp4 file."""
    if episodes < 1:
        raise ConfigError(f"episodes={episodes} is out of range: allowed [1, inf)")
    if video is not None and Path(video).suffix.lower() not in (".gif", ".mp4"):
        raise ConfigError(f"video={str(video)!r}: the file must end in .gif or .mp4")
    if video is not None:  # offscreen rendering: no display, no audio device needed
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        os.environ.setdefault("MUJOCO_GL", "egl")
    env = make_env(env_id, env_kwargs, render_mode="rgb_array" if video is not None else None)
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
        env.close()
    if video is not None:
        write_video(frames, video, fps=fps)
    return EvalResult(float(np.mean(returns)), float(np.std(returns)), tuple(returns), tuple(lengths))


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
