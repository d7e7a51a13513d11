"""The lab's wire protocol: validation of every message a browser tab may send.

A message is one JSON object with a ``type`` and that type's fields, nothing else. ``parse``
turns raw text (or bytes) into a checked dict or raises ``ProtocolError`` whose one-line message
names the problem and what is allowed; the server answers it with an ``{"type": "error"}``
frame and the session keeps running.

Inbound types (fields in brackets are optional):
    run, pause, reset                           no fields
    step [n]                                    n: 1..1000 steps, then pause
    set  [epsilon alpha gamma slip speed algorithm planning_steps tie_break max_episode_steps
          bonus bonus_c q_init]                 q_init: Q's initial value; changing it resets Q
    map  layout                                 list of rows, e.g. ["S..", ".W.", "..G"]
    size rows cols                              a fresh empty map of that size
    preset name [size]                          one of presets.PRESETS; size for DeepSea (4..30)
    edit row col                                cycle the cell floor -> wall -> goal -> start
    optimal show                                overlay value iteration's V* and policy
    visits show                                 colour cells by visit count: frames carry "visits"
    export [episodes format]                    render the Q-value flood as GIF/PNG (grid worlds)
    search row col [simulations]                pUCT search from that cell (grid worlds); 1..512, default 32

Outbound: ``state`` (settings, the world: ``layout`` one character per cell, ``rows``, ``cols``,
``world`` {kind, editable, slip, size}, ``actions`` (n_actions) and ``action_dirs`` (per cell and
action, an index into ``directions``), choices, the optimal overlay); ``frame`` (``q`` for the
``rows * cols`` cells, row-major, ``n_actions`` per cell; the agent's cell; counters; the episodes
finished since the last frame; ``visits``, the number of times the agent acted in each cell, or
null while the visit view is off); ``error`` (one line); ``export`` (a download URL); ``search`` (the
root's children after a search: ``prior``, ``visits``, ``q`` per action, ``root_value``, the chosen
``action``, a ``note``; see ``search_view.py``).
"""

from __future__ import annotations

import json
import math
from typing import Any

from rlworks.lab.presets import DEEPSEA_SIZES, PRESETS
from rlworks.tabular.learner import ALGORITHMS, BONUSES, TIE_BREAKS

MAX_MESSAGE_BYTES = 64 * 1024
#: The largest map the lab accepts (the issue asks for at least 12x12).
MAX_SIDE = 16
MIN_SIDE = 2
#: Speed settings in agent steps per second; "max" runs as many as fit in each frame.
SPEEDS: dict[str, float | None] = {
    "1": 1, "3": 3, "10": 10, "30": 30, "100": 100, "1k": 1_000, "10k": 10_000, "max": None,
}  # fmt: skip
EXPORT_FORMATS = ("gif", "png")
MAX_EXPORT_EPISODES = 5_000
MAX_SEARCH_SIMULATIONS = 512


class ProtocolError(ValueError):
    """An inbound message that breaks the protocol; the message is safe to show to the user."""


def _number(name: str, low: float, high: float, *, low_open: bool = False):
    def check(value: Any) -> float:
        # bool is an int in Python; a checkbox value sent as a number is a client bug
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ProtocolError(f"{name} must be a number, got {json.dumps(value)[:40]}")
        if value < low or value > high or (low_open and value <= low):
            interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
            raise ProtocolError(f"{name}={value:g} is out of range: allowed {interval}")
        return float(value)

    return check


def _integer(name: str, low: int, high: int):
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
            raise ProtocolError(f"{name} must be a whole number, got {json.dumps(value)[:40]}")
        if not low <= value <= high:
            raise ProtocolError(f"{name}={int(value)} is out of range: allowed {low}..{high}")
        return int(value)

    return check


def _choice(name: str, choices):
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            allowed = ", ".join(choices)
            raise ProtocolError(f"{name}={json.dumps(value)[:40]} is not one of: {allowed}")
        return value

    return check


def _boolean(name: str):
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ProtocolError(f"{name} must be true or false, got {json.dumps(value)[:40]}")
        return value

    return check


def _layout(value: Any) -> list[str]:
    """Shape checks only; ``gridworld.parse_layout`` then checks the characters and the rules."""
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise ProtocolError('layout must be a list of row strings, e.g. ["S..", ".W.", "..G"]')
    rows, cols = len(value), max((len(r) for r in value), default=0)
    if not (MIN_SIDE <= rows <= MAX_SIDE and MIN_SIDE <= cols <= MAX_SIDE):
        raise ProtocolError(
            f"map is {rows}x{cols}; the lab allows {MIN_SIDE}x{MIN_SIDE} up to {MAX_SIDE}x{MAX_SIDE}"
        )
    return list(value)


SETTINGS = {
    "epsilon": _number("epsilon", 0.0, 1.0),
    "alpha": _number("alpha", 0.0, 1.0, low_open=True),
    "gamma": _number("gamma", 0.0, 1.0),
    "slip": _number("slip", 0.0, 1.0),
    "speed": _choice("speed", tuple(SPEEDS)),
    "algorithm": _choice("algorithm", ALGORITHMS),
    "planning_steps": _integer("planning_steps", 0, 200),
    "tie_break": _choice("tie_break", TIE_BREAKS),
    "max_episode_steps": _integer("max_episode_steps", 1, 10_000),
    "bonus": _choice("bonus", BONUSES),
    "bonus_c": _number("bonus_c", 0.0, 10.0),
    "q_init": _number("q_init", -100.0, 100.0),
}

#: type -> (required fields, optional fields), each field -> checker
MESSAGES: dict[str, tuple[dict, dict]] = {
    "run": ({}, {}),
    "pause": ({}, {}),
    "reset": ({}, {}),
    "step": ({}, {"n": _integer("n", 1, 1000)}),
    "set": ({}, SETTINGS),
    "map": ({"layout": _layout}, {}),
    "size": ({"rows": _integer("rows", MIN_SIDE, MAX_SIDE), "cols": _integer("cols", MIN_SIDE, MAX_SIDE)}, {}),
    "preset": ({"name": _choice("name", tuple(PRESETS))}, {"size": _integer("size", *DEEPSEA_SIZES)}),
    "edit": ({"row": _integer("row", 0, MAX_SIDE - 1), "col": _integer("col", 0, MAX_SIDE - 1)}, {}),
    "optimal": ({"show": _boolean("show")}, {}),
    "visits": ({"show": _boolean("show")}, {}),
    "export": (
        {},
        {"episodes": _integer("episodes", 1, MAX_EXPORT_EPISODES), "format": _choice("format", EXPORT_FORMATS)},
    ),
    "search": (
        {"row": _integer("row", 0, MAX_SIDE - 1), "col": _integer("col", 0, MAX_SIDE - 1)},
        {"simulations": _integer("simulations", 1, MAX_SEARCH_SIMULATIONS)},
    ),
}


def _reject_constant(name: str):
    raise ProtocolError(f"{name} is not valid JSON: use finite numbers")


def parse(raw: str | bytes) -> dict[str, Any]:
    """Decode and validate one inbound message; raise ProtocolError naming what is wrong."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message is {len(raw):,} bytes; the limit is {MAX_MESSAGE_BYTES:,}")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("message is not UTF-8 text: send JSON") from None
    if len(raw.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message is over {MAX_MESSAGE_BYTES:,} bytes")
    try:
        msg = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"malformed JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise ProtocolError("malformed JSON: nested too deeply") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"a message must be a JSON object with a type, got {type(msg).__name__}")
    kind = msg.get("type")
    if not isinstance(kind, str) or kind not in MESSAGES:
        shown = json.dumps(kind)[:40] if kind is not None else "missing"
        raise ProtocolError(f"unknown message type {shown}; known: {', '.join(MESSAGES)}")
    required, optional = MESSAGES[kind]
    out: dict[str, Any] = {"type": kind}
    for key, value in msg.items():
        if key == "type":
            continue
        check = required.get(key) or optional.get(key)
        if check is None:
            allowed = ", ".join([*required, *optional]) or "none"
            raise ProtocolError(f"{kind}: unknown field {json.dumps(key)[:40]}; allowed: {allowed}")
        out[key] = check(value)
    missing = [k for k in required if k not in out]
    if missing:
        raise ProtocolError(f"{kind}: missing field {', '.join(missing)}")
    return out
