"""Command-line options generated from a config dataclass, and the value converters every command shares.

Each field of an algorithm's frozen config dataclass becomes ``--kebab-name``: its type comes from
``typing.get_type_hints``, its help from the docstring under the field (``config.field_docs``), the
default shown from the config the command would actually build. A field added to a config (``backend``,
say) is on the command line without touching the CLI.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from ..config import ConfigError, field_docs, suggest
from .parsing import Parser, check_device

TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
#: what --quiet means for every training command, deep or tabular
QUIET_HELP = "print nothing but errors: no progress bar, no summary lines (the run directory is written as usual)"


# ---------------------------------------------------------------------------------------------
# converters: their messages start with the value; Parser.error puts the flag in front
# ---------------------------------------------------------------------------------------------


def int_arg(raw: str) -> int:
    """An integer, also written like ``1e5`` or ``1.5e2`` when that is exactly a whole number."""
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        d = Decimal(raw.strip())
    except InvalidOperation:
        d = None
    if d is not None and d.is_finite() and d == d.to_integral_value():
        return int(d)
    raise argparse.ArgumentTypeError(f"{raw!r}: expected int (a whole number such as 64 or 1e5)")


def at_least(low: int) -> Callable[[str], int]:
    def convert(raw: str) -> int:
        n = int_arg(raw)
        if n < low:
            raise argparse.ArgumentTypeError(f"{n} is out of range: allowed [{low}, inf)")
        return n

    return convert


def float_arg(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r}: expected a number") from None


def bool_arg(raw: str) -> bool:
    low = raw.lower()
    if low in TRUE or low in FALSE:
        return low in TRUE
    raise argparse.ArgumentTypeError(f"{raw!r}: expected true or false")


def device_arg(raw: str) -> str:
    try:
        return check_device(raw)
    except ConfigError:  # check_device's message names the flag itself; here the parser adds it
        raise argparse.ArgumentTypeError(f"{raw!r} is not one of 'cpu', 'cuda' or 'cuda:N'") from None


def count_arg(low: int) -> Callable[[str], int]:
    """A whole number ≥ ``low`` (``1e3`` is taken; ``1.5``, ``inf`` and ``nan`` are not)."""
    def convert(raw: str) -> int:
        try:
            n = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r}: expected a whole number") from None
        if not math.isfinite(n) or n != int(n):
            raise argparse.ArgumentTypeError(f"{raw!r}: expected a whole number")
        if n < low:
            raise argparse.ArgumentTypeError(f"{int(n)} is out of range: allowed [{low}, inf)")
        return int(n)

    return convert


def choice_arg(choices: tuple[str, ...]) -> Callable[[str], str]:
    def convert(raw: str) -> str:
        if raw not in choices:
            raise argparse.ArgumentTypeError(f"{raw!r} is not one of {', '.join(map(repr, choices))}"
                                             f"{suggest(raw, choices)}")
        return raw

    return convert


# ---------------------------------------------------------------------------------------------
# actions for the two field types argparse has no natural form for
# ---------------------------------------------------------------------------------------------


class BoolAction(argparse.Action):
    """``--flag``, ``--flag true|false`` and ``--no-flag``."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string and option_string.startswith("--no-"):
            if values is not None:
                raise argparse.ArgumentError(self, f"{option_string} takes no value (got {values!r})")
            setattr(namespace, self.dest, False)
        else:
            setattr(namespace, self.dest, True if values is None else values)


class TupleAction(argparse.Action):
    """A tuple field: ``64,64``, ``64 64`` or ``64, 64``."""

    def __init__(self, *args, item: Callable[[str], Any], **kwargs) -> None:
        self.item = item
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        words = " ".join(values).replace(",", " ").split()
        try:
            setattr(namespace, self.dest, tuple(self.item(w) for w in words))
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's lines as written; shows ``--flag [BOOL], --no-flag`` for booleans."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if isinstance(action, BoolAction):
            return f"{action.option_strings[0]} [BOOL], {action.option_strings[1]}"
        return super()._format_action_invocation(action)


# ---------------------------------------------------------------------------------------------
# dataclass -> options
# ---------------------------------------------------------------------------------------------

SCALARS: dict[Any, tuple[Callable[[str], Any], str]] = {
    int: (int_arg, "N"), float: (float_arg, "X"), str: (str, "S"), bool: (bool_arg, "BOOL"),
}


def _unoptional(tp: Any) -> Any:
    """``T`` for ``T | None`` (None is then given as the default, never on the command line)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def kebab(name: str) -> str:
    return name.replace("_", "-")


def add_config_fields(group: Any, cls: type, shown: Any) -> None:
    """One option per field of ``cls``; values land under the field name, only when given.
    ``shown``: the config whose values the help lists as defaults."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        tp = _unoptional(hints[f.name])
        value = getattr(shown, f.name)
        shown_value = ",".join(map(str, value)) if isinstance(value, tuple) else value
        doc = docs.get(f.name, "").replace("%", "%%")  # argparse expands %-formats in help
        help_ = f"{doc} (default: {shown_value})".strip()
        flag = f"--{kebab(f.name)}"
        common = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_}
        if tp is bool:
            group.add_argument(flag, f"--no-{kebab(f.name)}", action=BoolAction, nargs="?", type=bool_arg, **common)
        elif typing.get_origin(tp) is tuple:
            item_tp = typing.get_args(tp)[0]
            item, metavar = SCALARS[item_tp]
            group.add_argument(flag, action=TupleAction, item=item, nargs="+", metavar=metavar,
                               **common)
        elif tp in SCALARS:
            convert, metavar = SCALARS[tp]
            group.add_argument(flag, type=convert, metavar=metavar, **common)
        else:  # a developer's error: a new field type needs a converter here
            raise TypeError(f"{cls.__name__}.{f.name}: no command-line form for type {tp!r}")


def given(namespace: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The config fields set on the command line."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(namespace).items() if k in names}


# ---------------------------------------------------------------------------------------------
# config files (--config FILE.toml) and --print-config
# ---------------------------------------------------------------------------------------------


def check_value(where: str, cls: type, name: str, value: Any) -> Any:
    """``value`` of field ``name`` as read from a TOML file, checked against the field's type."""
    tp = _unoptional(typing.get_type_hints(cls)[name])
    if typing.get_origin(tp) is tuple:
        item = typing.get_args(tp)[0]
        if isinstance(value, list) and all(is_type(v, item) for v in value):
            return tuple(float(v) if item is float else v for v in value)
        raise ConfigError(f"{where}: {name} = {value!r} is not a list of {item.__name__} (e.g. [64, 64])")
    if not is_type(value, tp):
        raise ConfigError(f"{where}: {name} = {value!r} is not {tp.__name__}")
    return float(value) if tp is float else value


def is_type(value: Any, tp: Any) -> bool:
    if tp is float:  # TOML writes 1 for 1.0; bool is an int subclass and is not a number here
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are valid in a TOML basic string
    return repr(value)  # ints, and floats including inf and nan, are spelled the same in TOML


# ---------------------------------------------------------------------------------------------
# rlworks eval: one parser for deep and tabular runs
# ---------------------------------------------------------------------------------------------

DEEP_EVAL_ONLY = ("video", "checkpoint", "num_threads", "device")


def eval_parser() -> Parser:
    p = Parser(prog="rlworks eval", usage="rlworks eval RUN_DIR [options]",
               description="Play a saved agent's greedy (deterministic) policy and print its mean return. RUN_DIR is "
                           "a run directory written by `rlworks train` (deep or tabular), or one of a deep run's "
                           "checkpoints/step-N folders, or a folder written by Agent.save.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run to evaluate")
    p.add_argument("--episodes", type=at_least(1), metavar="N",
                   help="episodes to play (default: 10 for deep runs, 100 for tabular)")
    p.add_argument("--seed", type=at_least(0), metavar="S",
                   help="seed of the first episode's reset, then seed+1, ... (default: unseeded for deep runs, "
                        "0 for tabular)")
    deep = p.add_argument_group("deep runs only")
    deep.add_argument("--checkpoint", metavar="step-N|best",
                      help="which checkpoint: step-N under RUN_DIR/checkpoints, or best (the best policy of a run "
                           "trained with --eval-every); default: the latest")
    deep.add_argument("--video", metavar="OUT.gif|OUT.mp4", help="record the episodes to a GIF or MP4 file")
    deep.add_argument("--env-kwargs", nargs="+", metavar="KEY=VALUE",
                      help="play on the agent's env made with these arguments on top of the run's, e.g. a TicTacToe "
                           "agent trained by self-play against the perfect player: --env-kwargs opponent=minimax "
                           "agent_plays=second")
    deep.add_argument("--show-search", metavar="OUT.png",
                      help="MuZero/AlphaZero: draw the search at the first observation (prior, visits and Q of each "
                           "action at the root) to a PNG")
    deep.add_argument("--device", type=device_arg, metavar="DEVICE",
                      help="torch device: cpu, cuda or cuda:N (default cpu)")
    deep.add_argument("--num-threads", type=at_least(1), metavar="N", help="torch CPU threads (default 1)")
    return p
