"""Offline RL: learning from a fixed dataset without environment access.

Here: ``rlworks.offline.tabular``, an exact tabular demonstration of extrapolation error (naive offline
Q-learning) and of its conservative fix (tabular CQL).

Datasets (docs/datasets.md): ``collect`` records episodes of an agent, a checkpoint or a random policy as a
Minari dataset, ``make`` builds D4RL's five kinds for an env, ``load`` reads any Minari dataset on disk as
an ``OfflineDataset``; ``list_datasets``, ``describe``, ``check_spaces`` and ``save`` complete the set. They
are imported on first use, so ``import rlworks.offline`` stays light (no minari, no torch). ``to_d3rlpy``
turns an ``OfflineDataset`` into a d3rlpy ``MDPDataset`` (``rlworks.offline.interop``).
"""

from __future__ import annotations

from typing import Any

_LAZY = {"collect": "recording", "make": "recording", "record": "recording", "KINDS": "recording",
         "load": "datasets", "save": "datasets", "list_datasets": "datasets", "describe": "datasets",
         "check_spaces": "datasets", "datasets_root": "datasets", "OfflineDataset": "data", "to_d3rlpy": "interop"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = sorted(_LAZY)
