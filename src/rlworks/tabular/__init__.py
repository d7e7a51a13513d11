"""Tabular RL: exact planning and compiled TD learning on finite MDPs.

Names are imported lazily, so ``import rlworks`` (which registers GridWorld and needs only the
model arrays) does not load numba; the first use of a learner does.
"""

from __future__ import annotations

import importlib
from typing import Any

#: the tabular learners (``rlworks.tabular.learner``; the lab and the CLI offer the same four)
ALGORITHMS = ("q-learning", "sarsa", "expected-sarsa", "dyna-q")

_EXPORTS = {
    "TabularModel": "rlworks.tabular.mdp",
    "has_model": "rlworks.tabular.mdp",
    "PlanResult": "rlworks.tabular.planning",
    "policy_iteration": "rlworks.tabular.planning",
    "value_iteration": "rlworks.tabular.planning",
    "TabularResult": "rlworks.tabular.td",
    "q_learning": "rlworks.tabular.td",
    "sarsa": "rlworks.tabular.td",
    "expected_sarsa": "rlworks.tabular.td",
    "dyna_q": "rlworks.tabular.dyna",
    "TabularLearner": "rlworks.tabular.learner",
    "Schedule": "rlworks.tabular.schedules",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rlworks.tabular' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
