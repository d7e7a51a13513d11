"""MiniGrid's observations as a policy reads them (``wrappers=["minigrid"]``, ``--wrapper minigrid``; applied
automatically to ``MiniGrid-*`` ids by ``core.envs.env_source``).

A MiniGrid env (Chevalier-Boisvert et al. 2023, the ``minigrid`` package) observes a Dict: ``image``, the
agent's egocentric 7×7 view as (object, colour, state) *indices* per cell (not pixels), ``direction``
(0–3) and ``mission``, a text that cannot be flattened. ``MiniGridObs`` turns it into one float vector:

* each cell of the view one-hot encoded: 11 object types, 6 colours, 4 states (open / closed / locked,
  or the agent's direction where a fully observed grid shows the agent), 21 values a cell, 1,029 for the
  7×7 view. The indices are categories — a key (5) is not "between" a door (4) and a ball (6) — so an MLP
  reads them best as one-hots (minigrid's own ``OneHotPartialObsWrapper`` does the same per cell); the
  alternative, the raw indices with running normalisation (the RL Zoo's ``FlatObsWrapper`` +
  ``normalize: true``), makes every layer carve the categories out of magnitudes;
* the direction one-hot (4 values): the view is egocentric, so it is the only compass the agent has;
* the mission, where it varies between episodes (Fetch, GoToDoor, PutNear, ...), as one one-hot per
  placeholder of its ``MissionSpace`` (the colour, the object type, ...); where it is one fixed text
  (DoorKey, MultiRoom, Empty, FourRooms, ...) it carries nothing and is left out. A free-text mission
  (BabyAI) is refused: use minigrid's own ``FlatObsWrapper`` (its mission as characters) in a factory.

``MiniGridObs(env, image=True)`` (``wrappers=["minigrid-image"]``) keeps the view as a (21, H, W) float
image, channels first, and drops direction and mission: the form for your own CNN
(``features="package.module:ClassName"``); ``features="auto"`` reads it with the MLP, as the flat form.
The view's size is read from the env, so minigrid's ``ViewSizeWrapper`` or ``FullyObsWrapper`` may come
before it.
"""

from __future__ import annotations

import itertools
from typing import Any

import gymnasium as gym
import numpy as np

from ..config import ConfigError

CELL = (11, 6, 4)
"""one-hot sizes of a cell's (object, colour, state): minigrid.core.constants' OBJECT_TO_IDX and COLOR_TO_IDX;
STATE_TO_IDX has 3, a fully observed grid writes the agent's direction (0-3) there"""
MAX_MISSIONS = 10_000  # placeholder combinations enumerated to read a mission back (PutNear: 324)


def _env_name(env: gym.Env) -> str:
    return env.spec.id if env.spec is not None else type(env.unwrapped).__name__


def mission_table(space: Any, name: str) -> tuple[dict[str, tuple[int, ...]], list[int]]:
    """{mission text: the index of each placeholder's choice} and each placeholder's number of choices; a
    fixed mission gives {text: ()} and []. A ConfigError for missions this cannot encode (free text)."""
    from minigrid.core.mission import MissionSpace

    if space is None:
        return {}, []
    if type(space) is not MissionSpace:  # BabyAI's accepts any text; gymnasium's Text likewise
        raise ConfigError(f"{name}: the minigrid wrapper cannot encode the free-text missions of this env "
                          f"({type(space).__name__}); pass a factory that wraps it in minigrid.wrappers.FlatObsWrapper")
    placeholders = space.ordered_placeholders or []
    sizes = [len(p) for p in placeholders]
    if int(np.prod(sizes)) > MAX_MISSIONS:
        raise ConfigError(f"{name}: {int(np.prod(sizes))} possible missions are too many for the minigrid wrapper's "
                          "one-hots; pass a factory that wraps the env in minigrid.wrappers.FlatObsWrapper")
    table: dict[str, tuple[int, ...]] = {}
    for combo in itertools.product(*(range(n) for n in sizes)):
        table.setdefault(space.mission_func(*(p[i] for p, i in zip(placeholders, combo))), combo)
    return table, sizes


class MiniGridObs(gym.ObservationWrapper):
    """See the module docstring: a MiniGrid env's Dict observation as a float vector (or, with ``image``,
    the one-hot view as a (21, H, W) image)."""

    def __init__(self, env: gym.Env, *, image: bool = False) -> None:
        super().__init__(env)
        space, name = env.observation_space, _env_name(env)
        view = space.spaces.get("image") if isinstance(space, gym.spaces.Dict) else None
        if not isinstance(view, gym.spaces.Box) or len(view.shape) != 3 or view.shape[2] != len(CELL):
            raise ConfigError(f"the minigrid wrapper needs a MiniGrid env's Dict observation with an 'image' of "
                              f"(object, colour, state) indices, shape (H, W, 3); {name} observes {space}")
        self.image, self.view_shape = image, view.shape[:2]
        self.has_direction = not image and "direction" in space.spaces
        self.missions, self.mission_sizes = ({}, []) if image else mission_table(space.spaces.get("mission"), name)
        h, w = self.view_shape
        # a cell's flat one-hot slot: cell * 21 + (object, 11 + colour, 17 + state)
        self._slot = (np.arange(h * w) * sum(CELL))[:, None] + np.cumsum((0, *CELL[:-1]))  # (H·W, 3)
        self._limit = np.array(CELL)
        n = h * w * sum(CELL) + 4 * self.has_direction + sum(self.mission_sizes)
        shape = (sum(CELL), h, w) if image else (n,)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape, np.float32)

    def observation(self, obs: dict[str, Any]) -> np.ndarray:
        img = np.asarray(obs["image"]).reshape(-1, len(CELL))  # (H·W, 3) indices
        if (img >= self._limit).any():
            raise ValueError(f"MiniGrid cell values {img.max(0).tolist()} exceed the one-hot sizes {CELL}")
        h, w = self.view_shape
        cells = np.zeros(h * w * sum(CELL), np.float32)
        cells[(self._slot + img).ravel()] = 1.0
        if self.image:  # (H·W·21) → (21, H, W)
            return cells.reshape(h, w, sum(CELL)).transpose(2, 0, 1).copy()
        parts = [cells]
        if self.has_direction:
            parts.append(np.eye(4, dtype=np.float32)[int(obs["direction"])])
        if self.missions:
            choice = self.missions.get(obs["mission"])
            if choice is None:  # an env that sets missions its MissionSpace does not describe
                raise ValueError(f"mission {obs['mission']!r} is not one of the {len(self.missions)} its "
                                 "MissionSpace generates; wrap the env in minigrid.wrappers.FlatObsWrapper instead")
            parts.extend(np.eye(n, dtype=np.float32)[i] for n, i in zip(self.mission_sizes, choice))
        return np.concatenate(parts)


def minigrid_image(env: gym.Env) -> MiniGridObs:
    """``MiniGridObs(env, image=True)``, by the name ``minigrid-image``."""
    return MiniGridObs(env, image=True)
