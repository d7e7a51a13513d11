"""Configuration helpers: ConfigError, range checks, did-you-mean, JSON round trip, presets.

Every algorithm's config is a frozen dataclass with a docstring under each field; its
``__post_init__`` calls the checks below so that a bad value fails at construction with a message
naming the field, the value and what is allowed.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import json
import sys
import textwrap
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


#: torch.set_float32_matmul_precision's values: exact float32, TF32 allowed (CUDA), bfloat16 allowed
MATMUL_PRECISIONS = ("highest", "high", "medium")
#: how an algorithm's update runs (the config field ``backend``; algos/backends.py)
BACKENDS = ("auto", "autograd", "compile", "fused")


class ConfigError(ValueError):
    """A user-facing configuration problem. The message is one line that says what is wrong
    and what is allowed; the CLI prints it and exits with code 2."""


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------


def check_range(
    name: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ConfigError unless ``low (<|<=) value (<|<=) high``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r} is not a number") from None
    if v != v:  # NaN
        raise ConfigError(f"{name}={value!r} is not a number")
    bad = (
        (low is not None and (v <= low if low_open else v < low))
        or (high is not None and (v >= high if high_open else v > high))
    )
    if bad:
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ConfigError(f"{name}={value!r} is out of range: allowed {interval}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    choices = list(choices)
    if value not in choices:
        hint = suggest(str(value), map(str, choices))
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(map(repr, choices))}{hint}")


def suggest(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=cutoff)
    return f" (did you mean {match[0]!r}?)" if match else ""


# --------------------------------------------------------------------------------------------
# dataclass <-> JSON, field docs
# --------------------------------------------------------------------------------------------


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def to_json(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build ``cls`` from a dict, refusing unknown keys with a did-you-mean."""
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"unknown field {key!r} for {cls.__name__}{suggest(key, names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            value = data[f.name]
            if isinstance(value, list):  # JSON has no tuples
                value = tuple(value)
            kwargs[f.name] = value
    return cls(**kwargs)


def from_saved(cls: type, data: dict[str, Any], source: Any) -> Any:
    """Build ``cls`` from a config saved by an earlier run (a checkpoint's ``state.json``, an agent).

    A field this version no longer has is dropped with a warning naming it and ``source``, instead of making
    the checkpoint unloadable; a field added since takes its default (as ``from_dict``). A run resumed so is not
    guaranteed to continue exactly as the version that saved it would have."""
    names = {f.name for f in dataclasses.fields(cls)}
    gone = sorted(set(data) - names)
    if gone:
        warnings.warn(f"{source}: the saved {cls.__name__} has fields this version of rlworks no longer has "
                      f"({', '.join(gone)}); they are ignored", UserWarning, stacklevel=2)
    return from_dict(cls, {k: v for k, v in data.items() if k in names})


def overlay(cls: type, base: Any, given: dict[str, Any]) -> Any:
    """``base`` (a preset's config) with the fields in ``given`` replaced, adapted to a changed env count.

    A preset's minibatch size is tuned for its own rollout (``n_envs * n_steps``). When ``given``
    changes ``n_envs`` (a user's ``--n-envs 2``, a VectorEnv's own count) but sets neither
    ``batch_size`` nor ``n_steps``, the minibatch size is scaled with the rollout so that each epoch
    still makes the same number of minibatches, instead of failing with "batch_size=256 is out of
    range" (SB3 only warns and truncates the last minibatch)."""
    data = {**dataclasses.asdict(base), **given}
    names = {f.name for f in dataclasses.fields(cls)}
    if ({"n_envs", "n_steps", "batch_size"} <= names and "n_envs" in given
            and not {"batch_size", "n_steps"} & given.keys() and given["n_envs"] != base.n_envs):
        minibatches = max(1, (base.n_envs * base.n_steps) // base.batch_size)
        data["batch_size"] = max(1, int(given["n_envs"]) * base.n_steps // minibatches)
    return from_dict(cls, data)


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each dataclass field (the CleanRL/tyro convention), the inherited
    fields' included (e.g. ``core.nets.ActorCriticOptions``)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_own_field_docs(klass))
    return docs


def _own_field_docs(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


# --------------------------------------------------------------------------------------------
# presets (TOML files shipped in rlworks/presets)
# --------------------------------------------------------------------------------------------

PRESET_DIR = Path(__file__).parent / "presets"


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
