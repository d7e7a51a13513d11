"""An ``OfflineDataset`` as a d3rlpy 2.x ``MDPDataset``, to train d3rlpy's algorithms on exactly the data rlworks'
learn from (``benchmarks/offline_vs_d3rlpy.py``, docs/offline-vs-d3rlpy.md).

The mapping, row for row (T rows, one per transition t):

* ``observations``, ``rewards``: the same arrays (rewards as float32);
* ``actions``: Box actions as they are (env units; scale them with d3rlpy's ``MinMaxActionScaler``), Discrete
  ones shifted to start at 0 (d3rlpy's discrete actions are 0 … n−1);
* ``terminals`` = ``terminations`` (s_{t+1} terminal: no bootstrap);
* ``timeouts`` = the last row of every episode (``episode_starts``) that is not terminal: a truncation (a time
  limit) or an episode that just ends in the data with neither flag. d3rlpy cuts its episodes after every
  terminal or timeout row, so its episodes are exactly the dataset's.

d3rlpy stores one observation per step and no ``next_observations``: it takes s_{t+1} from the next row of the
same episode. A terminal last row needs none (d3rlpy bootstraps nothing from it), but the last transition of a
timed-out episode has no s_{t+1} in d3rlpy and it drops that transition: a truncated episode of L steps gives
d3rlpy L − 1 transitions (0.5 % fewer on Pendulum's 200-step episodes).

d3rlpy is imported here, on first use, and is not a dependency of rlworks (``make install-dev`` installs it with
``--no-deps``: its gymnasium pin conflicts with rlworks'; see docs/offline-vs-d3rlpy.md).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ..config import ConfigError
from .data import OfflineDataset


def to_d3rlpy(dataset: OfflineDataset) -> Any:
    """``dataset`` as a ``d3rlpy.dataset.MDPDataset`` with the same episodes (see the module docstring)."""
    try:
        import d3rlpy
    except ImportError as exc:
        raise ConfigError(f"to_d3rlpy needs d3rlpy ({exc}); install it with pip install --no-deps d3rlpy==2.8.1 "
                          "(its other dependencies come with the bench extra: make install-dev)") from None
    n = len(dataset)
    if n == 0:
        raise ConfigError(f"dataset {dataset.dataset_id} holds no transitions")
    ends = np.zeros(n, dtype=bool)
    ends[np.append(dataset.episode_starts[1:] - 1, n - 1)] = True
    terminals = dataset.terminations.astype(bool)
    inside = (terminals | dataset.truncations.astype(bool)) & ~ends
    if inside.any():
        raise ConfigError(f"dataset {dataset.dataset_id}: row {int(np.argmax(inside))} is terminated or truncated "
                          "but does not end an episode (episode_starts); d3rlpy would cut an episode there")
    timeouts = ends & ~terminals
    space = dataset.action_space
    if isinstance(space, gym.spaces.Discrete):
        actions = dataset.actions.reshape(n).astype(np.int64) - int(space.start)
        kind, size = d3rlpy.ActionSpace.DISCRETE, int(space.n)
    elif isinstance(space, gym.spaces.Box):
        actions = dataset.actions.reshape(n, -1).astype(np.float32)
        kind, size = d3rlpy.ActionSpace.CONTINUOUS, actions.shape[1]
    else:
        raise ConfigError(f"dataset {dataset.dataset_id}: to_d3rlpy takes Box or Discrete actions, not {space}")
    return d3rlpy.dataset.MDPDataset(observations=np.asarray(dataset.observations), actions=actions,
                                     rewards=dataset.rewards.astype(np.float32),
                                     terminals=terminals.astype(np.float32), timeouts=timeouts.astype(np.float32),
                                     action_space=kind, action_size=size)
