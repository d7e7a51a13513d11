"""The lab server: bad input never kills a session or the server, tabs are independent, the
engine is fast at "max" speed, exports download, and the CLI refuses bad flags."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from websockets.sync.client import connect

from rlworks.config import ConfigError
from rlworks.lab.server import bind, make_server


class Tab:
    """A browser tab's side of the socket: JSON in, JSON out."""

    def __init__(self, port: int) -> None:
        self._conn = connect(f"ws://127.0.0.1:{port}/ws", max_size=None)
        self.ws = self._conn.__enter__()

    def send_text(self, text: str) -> None:
        self.ws.send(text)

    def send_bytes(self, data: bytes) -> None:
        self.ws.send(data)

    def receive_json(self) -> dict:
        return json.loads(self.ws.recv(timeout=20))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._conn.__exit__(*exc)


class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    def websocket_connect(self, path: str) -> Tab:
        return Tab(self.port)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""


def until(ws, kind: str, limit: int = 500) -> dict:
    """Read messages until one of ``kind`` arrives (frames stream in between)."""
    for _ in range(limit):
        msg = ws.receive_json()
        if msg["type"] == kind:
            return msg
    raise AssertionError(f"no {kind!r} message in {limit} messages")


def start_server():
    sock = bind("127.0.0.1", 0)
    server = make_server(sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    return server, thread, sock.getsockname()[1]


@pytest.fixture(scope="module")
def client():
    """A real uvicorn server on a free loopback port, in a thread."""
    server, thread, port = start_server()
    yield Client(port)
    server.should_exit = True
    thread.join(5)


BAD = [
    ("{not json", "malformed JSON"),
    ('{"type": "teleport"}', "unknown message type"),
    ('{"type": "set", "epsilon": 1.5}', "epsilon=1.5 is out of range"),
    ('{"type": "set", "alpha": 0}', "alpha=0 is out of range"),
    ('{"type": "set", "alpha": 7}', "alpha=7 is out of range"),
    ('{"type": "set", "gamma": -0.5}', "gamma=-0.5 is out of range"),
    (json.dumps({"type": "map", "layout": ["S"] + ["."] * 998 + ["G"]}), "map is 1000x1"),
    (json.dumps({"type": "map", "layout": ["." * 1000] * 1000}), "limit is 65,536"),
    ('{"type":"run","pad":"' + "x" * (10 * 1024 * 1024) + '"}', "message is 10,485,"),
    ('{"type": "edit", "row": 0, "col": 0}', "the start stays"),
    ('{"type": "edit", "row": 9, "col": 9}', "outside the 5x5 map"),
    ('{"type": "map", "layout": ["S.", "WW", ".G"]}', "unreachable"),
]


def test_every_bad_message_gets_an_error_frame_and_the_session_lives(client):
    with client.websocket_connect("/ws") as ws:
        first = until(ws, "state")
        assert first["settings"]["epsilon"] == 0.2 and first["layout"][0] == "S...."
        for raw, words in BAD:
            ws.send_text(raw)
            err = until(ws, "error")
            assert words in err["message"], (raw[:60], err)
        ws.send_bytes(b"\xff\x00")
        assert "UTF-8" in until(ws, "error")["message"]
        # still alive and still applying good messages; the map is unchanged by refused edits
        ws.send_text('{"type": "set", "epsilon": 0.05, "speed": "10k"}')
        state = until(ws, "state")
        assert state["settings"]["epsilon"] == 0.05 and state["layout"][0] == "S...."
        before = until(ws, "frame")["steps"]
        time.sleep(0.2)
        assert until(ws, "frame")["steps"] > before


def test_two_tabs_are_independent(client):
    with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b:
        until(a, "state"), until(b, "state")
        a.send_text('{"type": "pause"}')
        a.send_text('{"type": "set", "epsilon": 0.0, "gamma": 0.5}')
        a.send_text('{"type": "preset", "name": "cliff"}')
        state_a = until(a, "state")
        while state_a["rows"] != 4:
            state_a = until(a, "state")
        b.send_text('{"type": "set", "speed": "10k"}')
        state_b = until(b, "state")
        assert state_b["settings"]["epsilon"] == 0.2 and state_b["settings"]["gamma"] == 0.95
        assert state_b["rows"] == 5 and state_a["settings"]["gamma"] == 0.5
        a.send_text("{garbage")  # an error in one tab is not seen by the other
        until(a, "error")
        steps_b = until(b, "frame")["steps"]
        time.sleep(0.2)
        assert until(b, "frame")["steps"] > steps_b
        a.send_text('{"type": "step"}')
        # a frame the ticker sent for an earlier message (steps 0) may still be in flight
        f = until(a, "frame")
        while f["steps"] == 0:
            f = until(a, "frame")
        assert f["steps"] == 1 and len(f["q"]) == 4 * 12 * 4 and not f["running"]


def test_engine_throughput_at_max_speed(client):
    """Measures (and prints) engine steps/s and frames/s seen by a client at "max"; the
    assertions are not timing thresholds (CI machines vary), only that it runs and streams."""
    with client.websocket_connect("/ws") as ws:
        until(ws, "state")
        ws.send_text('{"type": "set", "speed": "max"}')
        until(ws, "state")
        f0 = until(ws, "frame")
        t0, frames = time.perf_counter(), 0
        while time.perf_counter() - t0 < 2.0:
            f = ws.receive_json()
            frames += f["type"] == "frame"
        elapsed = time.perf_counter() - t0
        steps = f["steps"] - f0["steps"]
        print(f"\nlab at max speed: {steps / elapsed:,.0f} agent steps/s, {frames / elapsed:.1f} frames/s")
        assert steps > 0 and f["episode"] > f0["episode"] and frames > 1


def test_deepsea_and_visit_counts_over_the_socket(client):
    """The DeepSea preset, the visit view and the refusals that only make sense on a fixed map."""
    with client.websocket_connect("/ws") as ws:
        until(ws, "state")
        ws.send_text('{"type": "preset", "name": "deepsea-ucb", "size": 40}')
        assert "size=40 is out of range" in until(ws, "error")["message"]
        ws.send_text('{"type": "preset", "name": "deepsea-ucb", "size": 9}')
        state = until(ws, "state")
        assert state["rows"] == 9 and state["settings"]["bonus"] == "ucb" and state["settings"]["q_init"] == 1.0
        ws.send_text('{"type": "visits", "show": true}')
        assert until(ws, "state")["show_visits"] is True
        ws.send_text('{"type": "set", "speed": "1k"}')
        until(ws, "state")
        time.sleep(0.3)
        frame = until(ws, "frame")
        assert len(frame["visits"]) == 81 and len(frame["q"]) == 162
        assert sum(frame["visits"]) == frame["steps"] > 0
        ws.send_text('{"type": "edit", "row": 1, "col": 0}')
        assert "map is fixed" in until(ws, "error")["message"]
        ws.send_text('{"type": "export", "episodes": 5}')
        assert "grid-world maps only" in until(ws, "error")["message"]
        later = until(ws, "frame")
        assert later["steps"] > frame["steps"]  # the session lives on


def test_search_over_the_socket(client):
    """A search from a floor cell comes back as a "search" frame; a wall is refused and the tab lives on."""
    with client.websocket_connect("/ws") as ws:
        until(ws, "state")
        ws.send_text('{"type": "pause"}')
        until(ws, "state")
        ws.send_text('{"type": "search", "row": 3, "col": 4, "simulations": 16}')
        msg = until(ws, "search")
        assert (msg["row"], msg["col"], msg["simulations"]) == (3, 4, 16) and sum(msg["visits"]) == 16
        assert len(msg["prior"]) == len(msg["q"]) == 4 and sum(msg["prior"]) == pytest.approx(1.0)
        assert msg["epsilon"] == 0.2 and msg["note"] is None
        ws.send_text('{"type": "search", "row": 1, "col": 1}')
        assert "is a wall" in until(ws, "error")["message"]
        ws.send_text('{"type": "search", "row": 0, "col": 0, "simulations": 1000}')
        assert "simulations=1000 is out of range" in until(ws, "error")["message"]
        ws.send_text('{"type": "set", "slip": 0.25}')
        until(ws, "state")
        ws.send_text('{"type": "search", "row": 0, "col": 0}')
        msg = until(ws, "search")
        assert sum(msg["visits"]) == 32 and "intended moves only" in msg["note"]


def test_export_downloads_a_png(client):
    with client.websocket_connect("/ws") as ws:
        until(ws, "state")
        ws.send_text('{"type": "export", "episodes": 20, "format": "png"}')
        msg = until(ws, "export", limit=5000)
    status, body = client.get(msg["url"])
    assert status == 200 and body[:4] == b"\x89PNG"
    assert client.get("/export/nope")[0] == 404


def test_page_and_static_files_are_served(client):
    status, page = client.get("/")
    assert status == 200 and b'data-testid="grid"' in page
    for name in ("lab.js", "chart.js", "lab.css"):
        assert client.get(f"/static/{name}")[0] == 200
    status, health = client.get("/health")
    assert json.loads(health)["ok"] is True


def test_a_busy_port_is_one_clear_line(client):
    with pytest.raises(ConfigError, match=f"port {client.port} on 127.0.0.1 is already in use"):
        bind("127.0.0.1", client.port)


def test_a_closed_tab_frees_its_session(client):
    with client.websocket_connect("/ws") as ws:
        until(ws, "state")
        assert json.loads(client.get("/health")[1])["sessions"] >= 1
    for _ in range(100):
        if json.loads(client.get("/health")[1])["sessions"] == 0:
            break
        time.sleep(0.05)
    assert json.loads(client.get("/health")[1])["sessions"] == 0


def test_cli_export_and_bad_flags(tmp_path, capsys):
    from rlworks.commands.lab import main

    out = tmp_path / "flood.gif"
    assert main(["--export", str(out), "--episodes", "15", "--preset", "dyna-maze"]) == 0
    assert out.read_bytes()[:6] == b"GIF89a" and "wrote" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="must end in .gif or .png"):
        main(["--export", str(tmp_path / "x.mp4")])
    with pytest.raises(ConfigError, match="--episodes"):
        main(["--export", str(out), "--episodes", "0"])
    with pytest.raises(ConfigError):
        main(["--bogus"])
    with pytest.raises(ConfigError, match="--port 70000 is out of range"):
        main(["--port", "70000", "--no-browser"])


# ------------------------------------------------------------------ the session, without sockets


def test_session_settings_map_edits_and_overlay():
    from rlworks.envs.gridworld import GridWorld
    from rlworks.lab.protocol import ProtocolError, parse
    from rlworks.lab.session import LabSession
    from rlworks.tabular.planning import value_iteration

    s = LabSession(seed=1)
    s.handle(parse('{"type": "pause"}'))
    s.advance(1.0)
    assert s.learner.steps == 0  # paused: nothing runs
    s.handle(parse('{"type": "set", "algorithm": "dyna-q", "planning_steps": 7, "slip": 0.2, "gamma": 0.9}'))
    assert s.learner.algo == "dyna-q" and s.learner.planning_steps == 7 and s.env.slip == 0.2
    s.handle(parse('{"type": "step", "n": 50}'))
    assert s.learner.steps == 50 and not s.running
    state = s.handle(parse('{"type": "optimal", "show": true}'))[0]
    truth = value_iteration(GridWorld(s.layout, slip=0.2), 0.9)
    assert state["optimal"]["v"] == np.round(truth.v, 4).tolist()
    assert state["scale"] == pytest.approx(np.abs(truth.v).max())
    s.handle(parse('{"type": "set", "algorithm": "sarsa"}'))
    assert s.learner.planning_steps == 0  # planning only for Dyna-Q
    # an edit keeps Q (the agent must unlearn); a resize starts over
    q_before = s.learner.q.copy()
    s.handle(parse('{"type": "edit", "row": 0, "col": 2}'))
    assert s.layout[0] == "S.W.." and np.array_equal(s.learner.q[:2], q_before[:2])
    assert s.handle(parse('{"type": "edit", "row": 0, "col": 2}'))[0]["layout"][0] == "S.G.."
    assert s.handle(parse('{"type": "edit", "row": 0, "col": 2}'))[0]["layout"][0] == "..S.."  # start moved
    epoch = s.epoch
    st = s.handle(parse('{"type": "size", "rows": 12, "cols": 7}'))[0]
    assert (st["rows"], st["cols"]) == (12, 7) and st["epoch"] > epoch and s.learner.steps == 0
    assert st["preset"] == "custom" and s.learner.q.shape == (84, 4)
    with pytest.raises(ProtocolError, match="outside the 12x7 map"):
        s.handle(parse('{"type": "edit", "row": 0, "col": 9}'))
    st = s.handle(parse('{"type": "preset", "name": "four-rooms"}'))[0]
    assert st["preset"] == "four-rooms" and st["rows"] == 11


def speed_frames(s, speed: str, seconds: float) -> list[dict]:
    from rlworks.lab.protocol import parse

    s.handle(parse(json.dumps({"type": "set", "speed": speed})))
    frames = []
    for _ in range(int(seconds * 30)):
        s.advance(1 / 30)
        frames.append(s.frame())
    return frames


def test_slow_speeds_take_the_right_number_of_steps():
    from rlworks.lab.session import LabSession

    s = LabSession()
    speed_frames(s, "3", 2.0)
    assert s.learner.steps == 6  # 3 steps/s for 2 s of frames, carried across frames
    speed_frames(s, "100", 1.0)
    assert s.learner.steps == 6 + 100


def test_frames_carry_the_finished_episodes_once():
    from rlworks.lab.session import RECENT_EPISODES, LabSession

    s = LabSession()
    frames = speed_frames(s, "1k", 1.0)
    finished = sum(len(f["lengths"]) for f in frames)
    assert finished == frames[-1]["episode"] > 0  # every episode reported exactly once at 1k steps/s
    assert all(len(f["returns"]) == len(f["lengths"]) <= RECENT_EPISODES for f in frames)
