"""``RunContext``: what every algorithm's ``train()`` takes besides its config, the env and the seed.

One object instead of the same keyword list in every algorithm file: where logs and checkpoints go,
how often, the hooks a caller plugs in, and the checkpoint to resume from. Algorithms read it; only
the shared loops (``algos/onpolicy.py``, ``offpolicy.py``, ``selfplay.py``, ``offline.py``) act on it, each
with a ``Pace`` (its clock and the logged throughput) and ``RunContext.after_step`` (checkpoints, signals,
the callback) after every step.
"""

from __future__ import annotations

import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .logging import Logger, NullLogger


@dataclass
class RunContext:
    logger: Logger | None = None
    """receives ``log(step, metrics)`` every ``log_every`` environment steps"""
    checkpoint_dir: str | Path | None = None
    """training checkpoints go to ``checkpoint_dir/step-<N>/`` (none when ``None``)"""
    checkpoint_every: int = 0
    """environment steps between checkpoints; 0: only at the end"""
    log_every: int | None = None
    """environment steps between log lines; ``None``: the algorithm family's default"""
    callback: Callable[[Any], bool] | None = None
    """called with the training session after each iteration; returning True stops the run"""
    on_start: Callable[[Any], None] | None = None
    """called once with the session when it is built (and restored), before the first step"""
    resume_from: str | Path | None = None
    """a training checkpoint (or run directory) to continue exactly where it stopped"""
    stop_at: int | None = None
    """stop at this many environment steps even if ``total_steps`` is larger (used by tests)"""
    keep_checkpoints: int | None = None
    """keep only this many newest checkpoints in ``checkpoint_dir`` (``None``: all)"""
    on_episodes: Callable[[int, list[tuple[float, int]]], None] | None = None
    """called with the step count and the ``(return, length)`` of each episode that ended by then"""

    HOOKS = ("logger", "checkpoint_dir", "checkpoint_every", "log_every", "callback", "on_start", "resume_from",
             "stop_at", "keep_checkpoints", "on_episodes")

    @property
    def log(self) -> Logger:
        return self.logger if self.logger is not None else NullLogger()

    def every(self, default: int) -> int:
        return default if self.log_every is None else int(self.log_every)

    def after_step(self, session: Any, stop: StopSignals, step: int, prev: int, end: int,
                   save: Callable[[int], Path]) -> bool:
        """What a training loop does after each step that took it from ``prev`` to ``step`` env steps (of
        ``end``): a checkpoint with ``save(step)`` when one is due (every ``checkpoint_every`` steps and at the
        end); on SIGINT/SIGTERM a checkpoint, then ``TrainingInterrupted``; then the callback. True: stop."""
        every = self.checkpoint_every
        saved = None
        if self.checkpoint_dir is not None and ((every and step // every > prev // every) or step >= end):
            saved = save(step)
        if stop.signum is not None:
            if self.checkpoint_dir is not None and saved is None:
                saved = save(step)
            raise TrainingInterrupted(stop.signum, step, saved)
        return self.callback is not None and bool(self.callback(session))


class Pace:
    """A training loop's clock. ``train_seconds``: the time of its steps, the callback (evaluations) and
    checkpoints excluded (an agent's ``meta["train_seconds"]``). Over the window since the last logged line: the
    env steps, gradient updates and seconds behind ``perf/sps`` and ``perf/ups``. With ``recent`` (the session's
    deque of episode returns) it keeps the ended episodes' lengths beside their returns for
    ``charts/episodic_*``."""

    def __init__(self, step: int, recent: deque | None = None) -> None:
        self.train_seconds, self.last_logged = 0.0, step
        self.recent = recent
        self.lengths: deque = deque(maxlen=None if recent is None else recent.maxlen)
        self._steps, self._updates, self._seconds = 0, 0, 0.0

    def add(self, seconds: float, steps: int = 0, updates: int = 0) -> None:
        """One loop step: ``seconds`` long, ``steps`` env steps, ``updates`` gradient updates."""
        self.train_seconds += seconds
        self._seconds += seconds
        self._steps += steps
        self._updates += updates

    def episodes(self, ended: Iterable[tuple[float, int]]) -> None:
        """Episodes that ended, as (return, length)."""
        for ret, length in ended:
            self.recent.append(ret)
            self.lengths.append(length)

    def due(self, step: int, every: int, end: int) -> bool:
        """Whether a line is logged at ``step``: ``every`` steps after the last one, and at the end."""
        return step - self.last_logged >= every or step >= end

    def window(self, step: int, *, sps: bool = True, ups: bool = True) -> dict[str, float]:
        """The figures of the window ending at ``step`` (the recent episodes' mean return and length, steps
        and updates per second), and a new window from there."""
        out = {}
        if self.recent is not None:
            out["charts/episodic_return"] = float(np.mean(self.recent)) if self.recent else float("nan")
            out["charts/episodic_length"] = float(np.mean(self.lengths)) if self.lengths else float("nan")
        seconds = max(self._seconds, 1e-9)
        if sps:
            out["perf/sps"] = self._steps / seconds
        if ups:
            out["perf/ups"] = self._updates / seconds
        self.last_logged, self._steps, self._updates, self._seconds = step, 0, 0, 0.0
        return out


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped a training loop once its current step was done and checkpointed.

    A ``KeyboardInterrupt``, so code that handles Ctrl+C keeps working; ``checkpoint`` is the
    checkpoint written (``None`` without a ``checkpoint_dir``)."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None) -> None:
        super().__init__(f"{signal.Signals(signum).name} at step {step}")
        self.signum, self.step, self.checkpoint = int(signum), int(step), checkpoint


class StopSignals:
    """While the ``with`` block runs, SIGINT and SIGTERM only set ``signum``, so that a training loop
    finishes its step, writes a checkpoint and stops, instead of dying mid-update with nothing saved.

    The previous handlers come back on exit (a library call leaves the process as it found it). Python
    lets only the main thread install handlers, so elsewhere nothing changes. A second signal raises
    ``KeyboardInterrupt`` at once, for a user who will not wait (checkpoints are written atomically)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            # None: a handler installed outside Python, which signal.signal cannot put back; the default is closest
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
