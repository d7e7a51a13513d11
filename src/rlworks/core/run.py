"""``RunContext``: what every algorithm's ``train()`` takes besides its config, the env and the seed.

One object instead of the same keyword list in every algorithm file: where logs and checkpoints go,
how often, the hooks a caller plugs in, and the checkpoint to resume from. Algorithms read it; only
the shared loops (``algos/onpolicy.py``, ``algos/offpolicy.py``) act on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    HOOKS = ("logger", "checkpoint_dir", "checkpoint_every", "log_every", "callback", "on_start", "resume_from",
             "stop_at")

    @property
    def log(self) -> Logger:
        return self.logger if self.logger is not None else NullLogger()

    def every(self, default: int) -> int:
        return default if self.log_every is None else int(self.log_every)
