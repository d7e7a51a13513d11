"""Per-episode schedules for epsilon and alpha: constant, linear, exponential decay."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlworks.config import ConfigError, check_choice, check_range

KINDS = ("constant", "linear", "exponential")


@dataclass(frozen=True)
class Schedule:
    """A value per episode.

    - ``constant``: ``start`` throughout.
    - ``linear``: from ``start`` to ``end`` over the first ``fraction`` of the episodes, then ``end``.
    - ``exponential``: ``max(end, start * decay**episode)``.
    """

    kind: str = "constant"
    start: float = 0.1
    end: float = 0.0
    fraction: float = 0.5
    decay: float = 0.99

    def __post_init__(self) -> None:
        check_choice("schedule", self.kind, KINDS)
        check_range("schedule fraction", self.fraction, 0.0, 1.0, low_open=True)
        check_range("schedule decay", self.decay, 0.0, 1.0, low_open=True)

    @classmethod
    def constant(cls, value: float) -> Schedule:
        return cls("constant", value, value)

    @classmethod
    def linear(cls, start: float, end: float, fraction: float = 0.5) -> Schedule:
        return cls("linear", start, end, fraction=fraction)

    @classmethod
    def exponential(cls, start: float, end: float, decay: float) -> Schedule:
        return cls("exponential", start, end, decay=decay)

    def values(self, episodes: int) -> np.ndarray:
        n = max(int(episodes), 1)
        i = np.arange(n, dtype=np.float64)
        if self.kind == "constant":
            v = np.full(n, self.start)
        elif self.kind == "linear":
            span = max(self.fraction * n, 1.0)
            v = self.start + (self.end - self.start) * np.minimum(i / span, 1.0)
        else:
            v = np.maximum(self.end, self.start * self.decay**i)
        return v.astype(np.float64)

    def check(self, name: str, low: float, high: float, *, low_open: bool = False) -> None:
        for label, value in (("", self.start), (" end", self.end)):
            if self.kind == "constant" and label:
                continue
            check_range(f"{name}{label}", value, low, high, low_open=low_open)


def as_schedule(value: float | Schedule, name: str) -> Schedule:
    if isinstance(value, Schedule):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ConfigError(f"{name}={value!r} must be a number or a Schedule")
    return Schedule.constant(float(value))
