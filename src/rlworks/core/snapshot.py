"""Env snapshots: exact resume where an env's state is plain data (classic control, toy text).

``env_snapshot`` walks the wrapper chain and records every attribute that is plain data (numbers,
strings, NumPy arrays, NumPy generators); ``env_restore`` writes them back into a freshly made env of
the same id. Where some state is not plain data (a Box2D world, MuJoCo's data), the snapshot says it is
incomplete, and a resumed run restarts its episodes instead of continuing them (``core/vec.py``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

_SCALARS = (bool, int, float, str, type(None), np.integer, np.floating, np.bool_)
_IGNORED = (gym.Space, gym.envs.registration.EnvSpec)
# wrapper links, constructor kwargs and the passive checker's cache are not episode state
_SKIP = {"env", "_env", "metadata", "render_mode", "spec", "_saved_kwargs", "_previous_data"}


def _encode(v: Any) -> Any:
    if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
        return {"__nd__": str(v.dtype), "shape": list(v.shape), "data": v.ravel().tolist()}
    if isinstance(v, np.random.Generator):
        return {"__rng__": v.bit_generator.state}
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return v.item()
    if isinstance(v, _SCALARS):
        return v
    if isinstance(v, (tuple, list)) and all(isinstance(x, _SCALARS) for x in v):
        return {"__seq__": [x.item() if hasattr(x, "item") else x for x in v], "tuple": isinstance(v, tuple)}
    raise TypeError


def _decode(v: Any, current: Any) -> Any:
    if isinstance(v, dict) and "__nd__" in v:
        return np.asarray(v["data"], dtype=v["__nd__"]).reshape(v["shape"])
    if isinstance(v, dict) and "__rng__" in v:
        rng = current if isinstance(current, np.random.Generator) else np.random.default_rng()
        rng.bit_generator.state = v["__rng__"]
        return rng
    if isinstance(v, dict) and "__seq__" in v:
        return tuple(v["__seq__"]) if v["tuple"] else list(v["__seq__"])
    return v


def env_snapshot(env: gym.Env) -> tuple[list[dict[str, Any]], bool]:
    """Plain-data state of every layer of ``env`` and whether that state is complete."""
    layers, exact, e = [], True, env
    while True:
        snap = {}
        for k, v in vars(e).items():
            if k in _SKIP or isinstance(v, _IGNORED):
                continue
            try:
                snap[k] = _encode(v)
            except TypeError:
                if not (callable(v) or k in ("screen", "clock", "viewer", "mujoco_renderer")):
                    exact = False  # e.g. a Box2D world or MuJoCo data: not plain data
        layers.append(snap)
        if not isinstance(e, gym.Wrapper):
            break
        e = e.env
    return layers, exact


def env_restore(env: gym.Env, layers: list[dict[str, Any]]) -> None:
    e = env
    for snap in layers:
        for k, v in snap.items():
            setattr(e, k, _decode(v, getattr(e, k, None)))
        if not isinstance(e, gym.Wrapper):
            break
        e = e.env
