"""The lab's inbound-message validation: every kind of bad message is refused with one clear line."""

import json
import re

import pytest

from rlworks.lab.protocol import MAX_MESSAGE_BYTES, MESSAGES, ProtocolError, parse


def test_valid_messages_round_trip():
    assert parse('{"type": "run"}') == {"type": "run"}
    msg = parse(json.dumps({"type": "set", "epsilon": 0, "alpha": 1, "gamma": 0.9, "speed": "max",
                            "algorithm": "dyna-q", "planning_steps": 10, "tie_break": "first"}))
    assert msg["epsilon"] == 0.0 and msg["alpha"] == 1.0 and msg["speed"] == "max" and msg["planning_steps"] == 10
    assert parse(b'{"type":"map","layout":["S.","WG"]}')["layout"] == ["S.", "WG"]
    assert parse('{"type":"step","n":5}') == {"type": "step", "n": 5}
    assert parse('{"type":"export","episodes":50,"format":"png"}')["format"] == "png"
    assert parse('{"type":"search","row":2,"col":3}') == {"type": "search", "row": 2, "col": 3}
    assert parse('{"type":"search","row":0,"col":0,"simulations":512}')["simulations"] == 512


@pytest.mark.parametrize(
    "raw, words",
    [
        ("{not json", "malformed JSON"),
        ("", "malformed JSON"),
        ("[1, 2]", "JSON object"),
        ('{"epsilon": 0.1}', "unknown message type missing"),
        ('{"type": "fly"}', "unknown message type \"fly\""),
        ('{"type": 3}', "unknown message type"),
        ('{"type": "run", "now": true}', "unknown field \"now\""),
        ('{"type": "set", "epsilon": 1.5}', "epsilon=1.5 is out of range"),
        ('{"type": "set", "epsilon": -0.01}', "epsilon=-0.01 is out of range"),
        ('{"type": "set", "alpha": 0}', "alpha=0 is out of range: allowed (0, 1]"),
        ('{"type": "set", "gamma": 1.01}', "gamma=1.01 is out of range"),
        ('{"type": "set", "slip": 2}', "slip=2 is out of range"),
        ('{"type": "set", "epsilon": "0.1"}', "epsilon must be a number"),
        ('{"type": "set", "epsilon": true}', "epsilon must be a number"),
        ('{"type": "set", "epsilon": NaN}', "NaN is not valid JSON"),
        ('{"type": "set", "gamma": Infinity}', "Infinity is not valid JSON"),
        ('{"type": "set", "epsilon": 1e999}', "epsilon must be a number"),
        ('{"type": "set", "speed": "ludicrous"}', "speed=\"ludicrous\" is not one of"),
        ('{"type": "set", "algorithm": "ppo"}', "algorithm=\"ppo\" is not one of"),
        ('{"type": "set", "planning_steps": 2.5}', "planning_steps must be a whole number"),
        ('{"type": "set", "planning_steps": 100000}', "planning_steps=100000 is out of range"),
        ('{"type": "map"}', "missing field layout"),
        ('{"type": "map", "layout": "S.G"}', "list of row strings"),
        ('{"type": "map", "layout": ["S"]}', "map is 1x1"),
        ('{"type": "size", "rows": 17, "cols": 5}', "rows=17 is out of range: allowed 2..16"),
        ('{"type": "edit", "row": -1, "col": 0}', "row=-1 is out of range"),
        ('{"type": "preset", "name": "maze9000"}', "not one of"),
        ('{"type": "optimal", "show": 1}', "show must be true or false"),
        ('{"type": "export", "episodes": 0}', "episodes=0 is out of range"),
        ('{"type": "search", "row": "1", "col": 0}', "row must be a whole number"),
        ('{"type": "search", "row": 0, "col": 1.5}', "col must be a whole number"),
        ('{"type": "search", "row": true, "col": 0}', "row must be a whole number"),
        ('{"type": "search", "row": 0, "col": 16}', "col=16 is out of range: allowed 0..15"),
        ('{"type": "search", "row": 0}', "search: missing field col"),
        ('{"type": "search", "row": 0, "col": 0, "simulations": 0}', "simulations=0 is out of range: allowed 1..512"),
        ('{"type": "search", "row": 0, "col": 0, "simulations": 513}', "simulations=513 is out of range"),
        ('{"type": "search", "row": 0, "col": 0, "simulations": 8.5}', "simulations must be a whole number"),
        ('{"type": "search", "row": 0, "col": 0, "depth": 3}', 'search: unknown field "depth"; allowed: row, col, sim'),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_bad_messages_are_refused_with_a_clear_line(raw, words):
    with pytest.raises(ProtocolError) as err:
        parse(raw)
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_a_huge_map_is_refused_by_size_before_anything_else():
    layout = ["S" + "." * 999] + ["." * 1000] * 998 + ["." * 999 + "G"]
    raw = json.dumps({"type": "map", "layout": layout})
    assert len(raw) > MAX_MESSAGE_BYTES  # the size limit catches it first
    with pytest.raises(ProtocolError, match="limit is 65,536"):
        parse(raw)
    small_rows = json.dumps({"type": "map", "layout": ["S"] + ["."] * 998 + ["G"]})  # 1000 x 1 fits in 64 KB
    with pytest.raises(ProtocolError, match="map is 1000x1; the lab allows 2x2 up to 16x16"):
        parse(small_rows)


def test_a_ten_megabyte_message_is_refused():
    with pytest.raises(ProtocolError, match="message is 10,485,7"):
        parse('{"type":"run","x":"' + "a" * (10 * 1024 * 1024) + '"}')


def test_deep_nesting_is_refused():
    with pytest.raises(ProtocolError):
        parse("[" * 50_000 + "]" * 50_000)


def test_every_type_is_documented_in_the_module():
    import rlworks.lab.protocol as protocol

    table = protocol.__doc__.split("Inbound types")[1]
    for kind in MESSAGES:
        assert re.search(rf"\b{kind}\b", table), kind
