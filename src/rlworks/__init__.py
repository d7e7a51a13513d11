"""rlworks: reinforcement learning from the grid world to the modern stack.

``import rlworks`` registers ``rlworks/GridWorld-v0`` with Gymnasium. The deep-RL API
(``train``, ``load``) imports torch only when first used, so tabular work starts fast.
"""

from __future__ import annotations

from typing import Any

import rlworks.envs  # noqa: F401  (registers the envs)
from rlworks._version import __version__
from rlworks.config import ConfigError
from rlworks.tabular import ALGORITHMS as TABULAR_ALGOS


def train(algo: str, env: Any, *, total_steps: int, seed: int = 0, **overrides: Any):
    """Train a deep RL agent on ``env`` (a registered id, a ``gymnasium.Env``, an env factory or a
    ``VectorEnv``); returns an ``Agent`` (``act``, ``evaluate``, ``save``). See ``rlworks.algos.train``."""
    from rlworks import algos

    return algos.train(algo, env, total_steps=total_steps, seed=seed, **overrides)


def load(path: str):
    """Load an ``Agent`` saved by ``Agent.save`` or a run's checkpoint directory."""
    from rlworks import algos

    return algos.load(path)


def algorithms() -> dict[str, tuple[str, ...]]:
    """The algorithms rlworks offers, by family."""
    try:
        from rlworks.algos import ALGOS as deep
    except ImportError:  # pragma: no cover - deep RL needs torch
        deep = ()
    return {"tabular": TABULAR_ALGOS, "deep": tuple(deep)}


__all__ = ["ConfigError", "TABULAR_ALGOS", "algorithms", "load", "train", "__version__"]
