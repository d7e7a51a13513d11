"""argparse with rlworks' error contract, and what a run directory on disk is.

A bad flag is one line and exit code 2 (``ConfigError``), never argparse's usage dump; ``--help``
prints and ends the command with ``Done`` instead of calling ``sys.exit`` from deep inside a parser.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from rlworks.config import ConfigError, suggest


class Done(Exception):
    """The command finished early and successfully (it printed ``--help``); the CLI exits 0."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise ConfigError (with a did-you-mean for unknown flags)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        if message.startswith("unrecognized arguments:"):
            flags = [w for w in message.split(":", 1)[1].split() if w.startswith("-")]
            hint = suggest(flags[0].split("=")[0], self.option_names(), cutoff=0.75) if flags else ""
            raise ConfigError(f"{self.prog}: {message}{hint}; see `{self.prog} --help`")
        # "argument --seed/-s: 'x': expected int" reads better as "--seed 'x': expected int"
        m = re.match(r"argument ([^/:\s]+)(?:/\S+)?: (.*)", message, re.DOTALL)
        if not m:
            raise ConfigError(f"{self.prog}: {message}")
        flag, what = m[1], m[2].replace("expected one argument", "needs a value")
        # our converters' messages start with the value ("'abc': expected int"), argparse's with a word
        sep = " " if what[:1] in "'-0123456789" else ": "
        raise ConfigError(f"{flag}{sep}{what}")

    def exit(self, status: int = 0, message: str | None = None):  # type: ignore[override]
        if status:  # argparse only exits non-zero through error(), which raises above; kept for safety
            raise ConfigError(message or f"{self.prog}: failed")
        raise Done

    def option_names(self) -> list[str]:
        return [o for a in self._actions for o in a.option_strings]


def check_device(device: str) -> str:
    """``--device`` as the commands accept it: cpu, cuda or cuda:N."""
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"--device {device!r} is not one of 'cpu', 'cuda'{suggest(device, ['cpu', 'cuda'])}")
    return device


# ---------------------------------------------------------------------------------------------
# run directories: which kind a path is, read from its config.json
# ---------------------------------------------------------------------------------------------

DEEP_KEYS = ("algo", "env_id", "seed", "total_steps", "checkpoint_every", "config")


def read_run(path: str | Path) -> dict[str, Any]:
    """``config.json`` of the run directory ``path``: a dict whose ``kind`` is "deep" or "tabular".

    Raises ConfigError naming the file and what is wrong with it (missing, not JSON, not a run)."""
    run = Path(path)
    if not run.is_dir():
        raise ConfigError(f"run directory {str(run)!r} does not exist")
    p = run / "config.json"
    if not p.is_file():
        raise ConfigError(f"{run}: not a run directory (no config.json)")
    try:
        meta = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: unreadable ({exc})") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{p}: expected a JSON object, found {type(meta).__name__}")
    kind = meta.get("kind")
    if kind not in ("deep", "tabular"):
        raise ConfigError(f"{p}: 'kind' is {kind!r}, expected 'deep' or 'tabular'; not an rlworks run directory")
    if kind == "deep":
        missing = [k for k in DEEP_KEYS if k not in meta]
        if missing:
            raise ConfigError(f"{p}: missing {', '.join(map(repr, missing))}; the file is damaged")
    return meta


def is_step_dir(path: str | Path) -> bool:
    """One checkpoint directory (``state.json`` + ``MANIFEST.json``), such as a run's ``checkpoints/step-N``."""
    p = Path(path)
    return (p / "MANIFEST.json").is_file() and (p / "state.json").is_file()


def is_checkpoint(path: str | Path) -> bool:
    """Something a deep agent loads from without a run's config.json: a checkpoint directory, or a
    folder whose ``latest`` file names one (what ``Agent.save`` writes)."""
    p = Path(path)
    if is_step_dir(p):
        return True
    try:
        name = (p / "latest").read_text().strip()
    except (OSError, UnicodeDecodeError):
        return False
    return name.startswith("step-") and "/" not in name and is_step_dir(p / name)


def named_checkpoint(run_path: Path, name: str, *, allow_best: bool) -> Path:
    """RUN/checkpoints/step-N, or RUN/best, from a ``--checkpoint`` value."""
    if name == "best" and allow_best:  # the best evaluated policy of a run trained with --eval-every
        if not (run_path / "best" / "latest").is_file():
            raise ConfigError(f"--checkpoint best: {run_path} has no best policy (train with --eval-every N)")
        return run_path / "best"
    if "/" in name or not (run_path / "checkpoints" / name).is_dir():
        steps = sorted((p.name for p in (run_path / "checkpoints").glob("step-*")), key=lambda n: (len(n), n))
        have = steps + (["best"] if allow_best else [])
        raise ConfigError(f"--checkpoint {name!r}: no such checkpoint in {run_path / 'checkpoints'}"
                          f"{suggest(name, have)}; have: {', '.join(have) or 'none'}")
    return run_path / "checkpoints" / name
