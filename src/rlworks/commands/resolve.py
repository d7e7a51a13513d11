"""The config a ``rlworks train ALGO`` command line asks for: the shipped preset (the env's own by default),
then a ``--config FILE.toml``, then the flags given; and the two ways of showing it without training
(``--help`` with the resolved defaults, ``--print-config``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import textwrap
from pathlib import Path
from typing import Any

from ..config import ConfigError, load_toml, overlay, suggest
from . import options

DEFAULT_TOTAL_STEPS = 100_000


def config_file(path: str, algo: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config fields, run keys) of a user's ``--config`` file; the run keys are a preset's
    (``algos.RUN_KEYS``: env, total_steps, eval_every, eval_episodes, keep)."""
    from ..algos import KEEP, RUN_KEYS, config_class, field_owner

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--config {path}: no such file")
    table = load_toml(p)
    cls = config_class(algo)
    names = {f.name for f in dataclasses.fields(cls)}
    fields, extras = {}, {}
    for key, value in table.items():
        if isinstance(value, dict):
            raise ConfigError(f"{p}: expected a flat table of {cls.__name__} fields, found the table [{key}] "
                              f"(to use a shipped preset, pass --preset NAME)")
        if key == "env":
            if not isinstance(value, str):
                raise ConfigError(f"{p}: env = {value!r} is not an env id string")
            extras[key] = value
        elif key == "total_steps":
            if not options.is_type(value, int):
                raise ConfigError(f"{p}: total_steps = {value!r} is not an integer")
            if value < 1:
                raise ConfigError(f"{p}: total_steps = {value!r} is out of range: allowed [1, inf)")
            extras[key] = value
        elif key in ("eval_every", "eval_episodes"):
            low = 0 if key == "eval_every" else 1
            if not options.is_type(value, int) or value < low:
                raise ConfigError(f"{p}: {key} = {value!r} is out of range: allowed integers [{low}, inf)")
            extras[key] = value
        elif key == "keep":
            if value not in KEEP:
                raise ConfigError(f"{p}: keep = {value!r} is not allowed: allowed {', '.join(map(repr, KEEP))}")
            extras[key] = value
        elif key in names:
            fields[key] = options.check_value(str(p), cls, key, value)
        else:
            owners = field_owner(key)
            whose = f" (a field of {', '.join(owners)})" if owners else suggest(key, [*names, *RUN_KEYS])
            raise ConfigError(f"{p}: unknown field {key!r} for {algo}{whose}")
    return fields, extras


@dataclasses.dataclass
class Plan:
    """What ``rlworks train ALGO ...`` will run, before anything is written."""

    config: Any
    env_id: str | None
    preset: str | None
    preset_given: bool
    total_steps: int
    evaluation: dict[str, Any] = dataclasses.field(default_factory=dict)
    """eval_every, eval_episodes and keep as the --config file set them (the command line's win)"""


def resolve(algo: str, env_id: str | None, ns: argparse.Namespace) -> Plan:
    from ..algos import config_class, preset_config, preset_extras

    cls = config_class(algo)
    from_file, file_extras = config_file(ns.config, algo) if ns.config else ({}, {})
    env_id = env_id or ns.env or file_extras.get("env")
    base, preset = preset_config(algo, env_id, ns.preset)
    extras = preset_extras(algo, preset)
    cfg = overlay(cls, base, {**from_file, **options.given(ns, cls)})
    total = ns.total_steps or file_extras.get("total_steps") or extras.get("total_steps") or DEFAULT_TOTAL_STEPS
    evaluation = {k: v for k, v in file_extras.items() if k in ("eval_every", "eval_episodes", "keep")}
    return Plan(cfg, env_id or extras.get("env"), preset, ns.preset is not None, int(total), evaluation)


def evaluation(algo: str, plan: Plan, ns: argparse.Namespace, *, copyable: bool = True) -> tuple[dict[str, Any], str]:
    """The periodic evaluation and ``keep`` of the run: the command line's, else the --config file's, else
    the preset's (``algos.evaluation_settings``)."""
    from ..algos import evaluation_settings

    given = {k: v for k, v in plan.evaluation.items() if k != "keep"}
    given.update({k: v for k, v in (("eval_every", ns.eval_every), ("eval_episodes", ns.eval_episodes))
                  if v is not None})
    if not given.get("eval_every", 1) and ns.eval_episodes is None:
        given.pop("eval_episodes", None)  # evaluation off: the file's episode count (--print-config writes one) idles
    keep = ns.keep if ns.keep is not None else plan.evaluation.get("keep")
    return evaluation_settings(algo, plan.preset, given, keep, copyable=copyable)


def help_text(algo: str, plan: Plan, ns: argparse.Namespace) -> str:
    from ..algos import info, presets

    a = info(algo)
    names = ", ".join(sorted(presets(algo))) or "none"
    if plan.preset is not None:
        how = f"the preset {plan.preset!r} ({'--preset' if plan.preset_given else 'the preset of --env'})"
    elif plan.env_id:
        how = f"the config's defaults (no preset for {plan.env_id})"
    else:
        how = "the config's defaults (--env ID applies that env's preset, if it has one)"
    layers = [how] + ([f"then {ns.config}"] if ns.config else []) + ["then the options on this command line"]
    lines = [f"{a.summary}. Actions: {', '.join(a.actions)}; observations: {', '.join(a.observations)}.",
             f"The defaults shown are the values this command would use: {', '.join(layers)}.",
             f"Shipped presets: {names}."]
    return "\n".join(textwrap.fill(line, 100) for line in lines)


def print_config(algo: str, plan: Plan, seed: int, fmt: str, config_path: str | None,
                 ev: dict[str, Any], keep: str) -> None:
    values = dataclasses.asdict(plan.config)
    run = {"eval_every": ev.get("eval_every", 0), "eval_episodes": ev.get("eval_episodes", 10), "keep": keep}
    if fmt == "json":
        print(json.dumps({"algo": algo, "env": plan.env_id, "preset": plan.preset, "config_file": config_path,
                          "total_steps": plan.total_steps, "seed": seed, **run, "config": values}, indent=2))
        return
    print(f"# rlworks train {algo}: resolved config (preset {plan.preset or 'none'}"
          f"{', then ' + config_path if config_path else ''}, then the command line; seed {seed})")
    print("# pass this file back with --config FILE.toml")
    if plan.env_id:
        print(f"env = {options.toml_value(plan.env_id)}")
    print(f"total_steps = {plan.total_steps}")
    for k, v in run.items():
        print(f"{k} = {options.toml_value(v)}")
    for k, v in values.items():
        print(f"# {k} is unset (None)" if v is None else f"{k} = {options.toml_value(v)}")
