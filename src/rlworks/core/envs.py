"""Where a run's envs come from: a registered id, a ``gymnasium.Env``, an env factory or a ``VectorEnv``.

``env_source(env, env_kwargs, wrappers)`` turns any of these into one ``EnvSource``, which the vector
envs (``core/vec.py``), both training sessions and evaluation build their envs from. A source knows
how to make another env (from the id, the factory, or the instance's ``spec``), the id presets are
looked up by, and a JSON record of itself that checkpoints store — a factory or an instance is never
pickled: it is recorded by its spec where it has one, else as not rebuildable.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import json
from collections.abc import Callable, Iterable
from typing import Any

import gymnasium as gym

from ..config import ConfigError, suggest, tomllib
from .atari import AtariPreprocessing
from .minigrid import MiniGridObs, minigrid_image

Wrapper = tuple[str | None, Callable[[gym.Env], gym.Env]]
"""(name a record can rebuild it from — a ``gymnasium.wrappers`` class name — or None, the wrapper)"""

FORMS = "a registered env id (str), a gymnasium.Env, a zero-argument callable returning one, or a gymnasium VectorEnv"
# the keys gymnasium.make_vec adds to a vector env's spec; the single env's own kwargs are the rest
_VECTOR_KEYS = ("num_envs", "vectorization_mode", "vector_kwargs", "wrappers")
FLATTENED = (gym.spaces.Dict, gym.spaces.Tuple, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)


MINIGRID_PREFIXES = ("minigrid-", "babyai-")
"""ids (any case) the minigrid package registers"""


def check_env_id(env_id: str) -> None:
    if env_id not in gym.registry and env_id.lower().startswith(MINIGRID_PREFIXES) and not _register_minigrid():
        raise ConfigError(f"{env_id!r} is a MiniGrid id and minigrid is not installed: pip install 'rlworks[envs]' "
                          "(or minigrid)")
    if env_id not in gym.registry and not _register_atari() and ("NoFrameskip" in env_id or env_id.startswith("ALE/")):
        raise ConfigError(f"{env_id!r} is an Atari id and ale-py is not installed: pip install 'rlworks[envs]' "
                          "(or ale-py; its wheel carries the ROMs)")
    if env_id not in gym.registry:
        _register_minigrid()  # its ids among the suggestions, for a misspelt prefix too
        raise ConfigError(f"unknown environment {env_id!r}{suggest(env_id, gym.registry.keys())}; "
                          "see gymnasium.registry for the ids installed")


def flatten_obs(env: gym.Env, name: str) -> gym.Env:
    """Flatten Dict/Tuple/Discrete observations into a float vector; refuse what cannot be flattened."""
    space = env.observation_space
    if isinstance(space, FLATTENED):
        try:
            gym.spaces.flatdim(space)
        except (NotImplementedError, ValueError):  # e.g. MiniGrid's MissionSpace inside a Dict
            subs = getattr(space, "spaces", ())
            parts = subs.items() if isinstance(subs, dict) else enumerate(subs)
            bad = ", ".join(f"{k!r}: {type(s).__name__}" for k, s in parts if not _flattenable(s))
            hint = ("use wrappers=['minigrid'] (--wrapper minigrid) for a MiniGrid env's view, direction and mission"
                    if "MissionSpace" in bad else "wrap the env to drop or encode it")
            raise ConfigError(f"{name}: observation space {space} has parts that cannot be flattened into a vector "
                              f"({bad}); {hint}") from None
        return gym.wrappers.FlattenObservation(env)
    if not isinstance(space, gym.spaces.Box):
        raise ConfigError(f"{name}: observation space {space} is not supported; use Box, Dict, Tuple or Discrete")
    return env


def _flattenable(space: gym.Space) -> bool:
    try:
        gym.spaces.flatdim(space)
    except (NotImplementedError, ValueError):
        return False
    return True


def _register_minigrid() -> bool:
    """Register the MiniGrid and BabyAI ids (minigrid, extra ``envs``) on first need: importing it costs
    ~0.1 s. False where minigrid is not installed."""
    try:
        import minigrid
    except ImportError:
        return False
    gym.register_envs(minigrid)  # importing minigrid registers its ids; this names the module as used
    return True


def _register_atari() -> bool:
    """Register the Atari ids (ale-py, extra ``envs``) on first need: importing ale_py costs ~0.2 s.
    False where ale-py is not installed."""
    try:
        import ale_py
    except ImportError:
        return False
    gym.register_envs(ale_py)
    return True


OWN_WRAPPERS: dict[str, Callable[..., gym.Env]] = {"atari": AtariPreprocessing, "minigrid": MiniGridObs,
                                                   "minigrid-image": minigrid_image}
"""rlworks' own wrappers, by the name ``wrappers``/``--wrapper`` and records use"""
EVALUATION_FORMS: dict[str, Callable[..., gym.Env]] = {"atari": functools.partial(AtariPreprocessing, training=False)}
"""what evaluation plays instead of a wrapper that changes the game for the learner (Atari's life-loss ends and
reward clipping): ``EnvSource.for_evaluation``"""
AUTO_WRAPPERS = (("*NoFrameskip-v4", ("atari",)), ("MiniGrid-*", ("minigrid", "minigrid-image")))
"""(id pattern, wrappers): the first of the wrappers is applied first, automatically, to an env id that matches
the pattern (``fnmatch``), unless the user's wrappers name one of them (pass a factory to opt out entirely)"""


def wrapper_names() -> list[str]:
    return [*OWN_WRAPPERS, *(n for n in gym.wrappers.__all__ if n[:1].isupper())]


def _wrapper_name(w: Any) -> str | None:
    """The name a wrapper callable is rebuildable by: one of ours, or a gymnasium wrapper class."""
    for name, own in OWN_WRAPPERS.items():
        if w is own:
            return name
    named = isinstance(w, type) and getattr(gym.wrappers, w.__name__, None) is w
    return w.__name__ if named else None


def resolve_wrappers(wrappers: Iterable[Any] | None) -> tuple[Wrapper, ...]:
    """``wrappers``: ``gymnasium.wrappers`` class names (str) or callables ``env -> env``, in order."""
    out: list[Wrapper] = []
    for w in wrappers or ():
        if isinstance(w, str):
            if w not in wrapper_names():
                raise ConfigError(f"unknown wrapper {w!r}{suggest(w, wrapper_names())}; allowed: "
                                  f"{', '.join(OWN_WRAPPERS)}, a class name "
                                  "from gymnasium.wrappers (e.g. ClipAction, NormalizeReward) or a callable env -> env")
            out.append((w, OWN_WRAPPERS.get(w) or getattr(gym.wrappers, w)))
        elif callable(w):
            # a gymnasium wrapper class (or one of ours) given as an object is as rebuildable as its name
            out.append((_wrapper_name(w), w))
        else:
            raise ConfigError(f"wrappers: {w!r} ({type(w).__name__}) is neither a gymnasium.wrappers class name "
                              "nor a callable env -> env")
    return tuple(out)


def parse_env_kwargs(items: Iterable[str]) -> dict[str, Any]:
    """``["size=8", "slip=0.1", "map_name=\\"4x4\\"", "is_slippery=false"]`` → env kwargs. A value is read
    as JSON, then as a TOML value (``'single quotes'``, ``[1, 2]``), and otherwise kept as a string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"env kwarg {item!r} is not key=value (e.g. size=8, map_name=4x4, is_slippery=false)")
        if key in out:
            raise ConfigError(f"env kwarg {key!r} is given twice")
        out[key] = _parse_value(raw.strip())
    return out


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        pass
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _jsonable(x: Any) -> bool:
    try:
        json.dumps(x)
    except (TypeError, ValueError):
        return False
    return True


@dataclasses.dataclass
class EnvSource:
    """How to build a run's envs. ``form``: "id", "instance", "factory", "vector" or "spec" (rebuilt from a
    record). ``first`` is the user's instance (or the factory's first env, made early to learn its id):
    training's first env uses it; every further env is a new one (``make``)."""

    form: str
    env_id: str | None = None
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    wrappers: tuple[Wrapper, ...] = ()
    spec: gym.envs.registration.EnvSpec | None = None
    factory: Callable[[], gym.Env] | None = None
    first: gym.Env | None = None
    vector: Any = None
    what: str = ""

    @property
    def name(self) -> str:
        """The env id, or a description of the env for messages and run names."""
        return self.env_id or self.what

    @property
    def num_envs(self) -> int | None:
        """A VectorEnv's count (which replaces the config's ``n_envs``); None for the other forms."""
        return int(self.vector.num_envs) if self.vector is not None else None

    @property
    def copyable(self) -> bool:
        """Whether a new env can be made besides ``first`` (for ``n_envs > 1`` and evaluation)."""
        return self.form in ("id", "factory") or self.spec is not None

    def for_evaluation(self) -> EnvSource:
        """This source with each wrapper that has an evaluation form (``EVALUATION_FORMS``) swapped for it."""
        if not any(n in EVALUATION_FORMS for n, _ in self.wrappers):
            return self
        return dataclasses.replace(self, wrappers=tuple((n, EVALUATION_FORMS.get(n, w)) for n, w in self.wrappers))

    def make(self, render_mode: str | None = None, *, reuse: bool = False) -> gym.Env:
        """A wrapped, flattened env; with ``reuse`` the user's instance (``first``) if not handed out yet."""
        if reuse and self.first is not None and render_mode in (None, self.first.render_mode):
            env, self.first = self.first, None
        else:
            env = self._new(render_mode)
        for _, w in self.wrappers:
            env = w(env)
            if not isinstance(env, gym.Env):
                raise ConfigError(f"wrapper {w!r} returned {type(env).__name__}, not a gymnasium.Env")
        return flatten_obs(env, self.name)

    def _new(self, render_mode: str | None) -> gym.Env:
        if self.form == "id":
            check_env_id(self.env_id)
            kwargs = {**self.kwargs, **({"render_mode": render_mode} if render_mode else {})}
            try:
                return gym.make(self.env_id, **kwargs)
            except TypeError as exc:  # a kwarg the env's constructor does not take
                if not self.kwargs:
                    raise
                raise ConfigError(f"{self.env_id}: env_kwargs {self.kwargs} are not accepted ({exc})") from None
        if self.form == "factory":
            env = _check_env(self.factory(), self.what)
            if render_mode is None or env.render_mode == render_mode:
                return env
            env.close()
            if self.spec is None:  # nothing else to make it from with that render mode
                raise ConfigError(f"{self.what} makes envs with render_mode={env.render_mode!r}; a video needs "
                                  f"render_mode={render_mode!r}: pass a factory that sets it")
        if self.spec is None:
            raise ConfigError(f"{self.what} has no spec to make another env from{_for(render_mode)}; pass a "
                              "zero-argument factory that returns a new env (e.g. lambda: MyEnv())")
        try:
            return gym.make(self.spec, **({"render_mode": render_mode} if render_mode else {}))
        except Exception as exc:  # e.g. a wrapper in the spec without recorded arguments
            raise ConfigError(f"cannot make another env from the spec of {self.what}{_for(render_mode)} ({exc}); "
                              "pass a zero-argument factory that returns a new env") from None

    # -- the record checkpoints keep --------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        """JSON: how to rebuild the env (``rebuildable``: whether ``from_record`` can)."""
        names = [n for n, _ in self.wrappers]
        rec: dict[str, Any] = {"form": self.form, "id": self.env_id, "what": self.name,
                               "wrappers": [n if n is not None else repr(w) for n, w in self.wrappers]}
        if self.form == "id":
            ok = _jsonable(self.kwargs)
            rec["kwargs"] = self.kwargs if ok else {}
        else:
            try:
                rec["spec"] = self.spec.to_json() if self.spec is not None else None
            except (TypeError, ValueError):  # a callable or other non-JSON value in the spec
                rec["spec"] = None
            ok = rec["spec"] is not None
        rec["rebuildable"] = ok and None not in names
        return rec

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> EnvSource | None:
        """The source a ``record`` describes, or None where it cannot be rebuilt (loading an agent still
        works then: only evaluating it needs an env passed in)."""
        if not rec.get("rebuildable"):
            return None
        try:
            wrappers = resolve_wrappers(rec.get("wrappers"))
            if rec.get("form") == "id":
                return cls("id", rec["id"], dict(rec.get("kwargs") or {}), wrappers, what=rec["id"])
            spec = gym.envs.registration.EnvSpec.from_json(rec["spec"])
        except (ConfigError, ValueError):  # e.g. a wrapper this gymnasium version no longer has
            return None
        return cls("spec", rec.get("id"), wrappers=wrappers, spec=spec, what=rec.get("what") or spec.id)


def _for(render_mode: str | None) -> str:
    return f" with render_mode={render_mode!r}" if render_mode else ""


def _check_env(env: Any, what: str) -> gym.Env:
    if not isinstance(env, gym.Env):
        raise ConfigError(f"{what} returned {type(env).__name__}, not a gymnasium.Env")
    return env


def _usable_spec(spec: Any) -> Any:
    """``spec`` where ``gym.make(spec)`` can remake the env: not where a wrapper in it did not record its
    arguments (gymnasium refuses to recreate those)."""
    if spec is None or any(w.kwargs is None for w in spec.additional_wrappers):
        return None
    return spec


def _spec_id(spec: Any) -> str | None:
    return spec.id if spec is not None and spec.id in gym.registry else None


def _single_spec(venv: Any) -> Any:
    """The spec of one of ``venv``'s envs, where gymnasium.make_vec recorded it and nothing is lost in
    making one alone (no vector wrappers around it, no per-env wrapper callables)."""
    spec = _usable_spec(getattr(venv, "spec", None))
    if spec is None or venv is not venv.unwrapped or spec.kwargs.get("wrappers"):
        return None
    kwargs = {k: v for k, v in spec.kwargs.items() if k not in _VECTOR_KEYS}
    # make_vec keeps gymnasium.make's own arguments among the env's kwargs; a spec holds them as fields
    fields = {k: kwargs.pop(k) for k in ("max_episode_steps", "disable_env_checker") if k in kwargs}
    return dataclasses.replace(spec, kwargs=kwargs, **fields)


def env_source(env: Any, env_kwargs: dict[str, Any] | None = None, wrappers: Iterable[Any] | None = None) -> EnvSource:
    """Normalise what a user passed as ``env`` (see ``FORMS``); ``env_kwargs`` apply to an id only,
    ``wrappers`` to every single env (not to a VectorEnv, which is used as given)."""
    if isinstance(env, EnvSource):
        if env_kwargs or wrappers:
            raise ConfigError("env_kwargs and wrappers cannot be added to an EnvSource; pass the env itself")
        return env
    ws = resolve_wrappers(wrappers)
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise ConfigError(f"env_kwargs={env_kwargs!r} must be a dict of keyword arguments")
    if isinstance(env, str):
        check_env_id(env)
        named = {n for n, _ in ws}
        auto = tuple((group[0], OWN_WRAPPERS[group[0]]) for pattern, group in AUTO_WRAPPERS
                     if fnmatch.fnmatchcase(env, pattern) and not named & set(group))
        return EnvSource("id", env, dict(env_kwargs or {}), auto + ws, what=env)
    if env_kwargs:
        raise ConfigError(f"env_kwargs apply to a registered env id; {type(env).__name__} is already built: "
                          "pass its arguments where you make it")
    if isinstance(env, gym.vector.VectorEnv):
        if ws:
            raise ConfigError("wrappers apply to single envs; wrap a VectorEnv's envs where you make it "
                              "(gymnasium.make_vec(..., wrappers=[...]))")
        spec = _single_spec(env)
        what = f"the {type(env).__name__} of {env.num_envs} envs"
        return EnvSource("vector", _spec_id(getattr(env, "spec", None)), spec=spec, vector=env, what=what)
    if isinstance(env, gym.Env):
        spec = _usable_spec(env.spec)
        what = f"the env instance {env.spec.id if env.spec is not None else type(env.unwrapped).__name__}"
        return EnvSource("instance", _spec_id(env.spec), spec=spec, first=env, wrappers=ws, what=what)
    if callable(env):
        what = f"the env factory {getattr(env, '__qualname__', type(env).__name__)}"
        first = _check_env(env(), what)  # made now to learn its id (presets); training uses it first
        spec = _usable_spec(first.spec)
        return EnvSource("factory", _spec_id(first.spec), spec=spec, factory=env, first=first, wrappers=ws, what=what)
    raise ConfigError(f"env={env!r} ({type(env).__name__}) is not an env; allowed: {FORMS}")
