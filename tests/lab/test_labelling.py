"""Preference labelling: pairs-file validation, the store (answer/next/progress, restart, double
submit, torn last line), the HTTP API's refusals, a SIGKILLed real server, and the default host."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rlworks.config import ConfigError
from rlworks.lab.labelling import (
    AnswerError,
    LabelStore,
    default_labels_path,
    load_pairs,
    read_preferences,
    shown_order,
    skips_path_for,
)
from rlworks.lab.server import bind, make_server

ROOT = Path(__file__).resolve().parents[2]


def write_pairs(path: Path, n: int = 6) -> Path:
    rows = [{"id": f"p{i}", "prompt": f"prompt {i}", "a": f"A{i}", "b": f"B{i}"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def jsonl(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


# ---------------------------------------------------------------- pairs file


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "is empty"),
        ("\n  \n", "is empty"),
        ('{"prompt": "p", "a": "x", "b": "y"}\n{"prompt": "p", "a": "x"\n', ":2: not valid JSON"),
        ('["prompt", "a", "b"]\n', ":1: expected a JSON object"),
        ('{"prompt": "p", "a": "x"}\n', ":1: missing 'b'"),
        ('{"prompt": 3, "a": "x", "b": "y"}\n', ":1: 'prompt' must be a string"),
        ('{"id": 7, "prompt": "p", "a": "x", "b": "y"}\n', ":1: 'id' must be a non-empty string"),
        ('{"id": "x", "prompt": "p", "a": "x", "b": "y"}\n{"id": "x", "prompt": "q", "a": "x", "b": "y"}\n',
         ":2: duplicate id 'x' (first on line 1)"),
    ],
)
def test_bad_pairs_files_name_the_file_and_line(tmp_path, text, words):
    path = tmp_path / "pairs.jsonl"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_pairs(path)
    assert words in str(exc.value) and "pairs.jsonl" in str(exc.value)


def test_pairs_defaults_and_missing_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"prompt": "p", "a": "x", "b": "y"}\n\n{"id": "k", "prompt": "q", "a": "1", "b": "2"}\n')
    assert [p["id"] for p in load_pairs(path)] == ["0", "k"]
    assert default_labels_path(path) == tmp_path / "pairs.labels.jsonl"
    assert skips_path_for(tmp_path / "o.jsonl") == tmp_path / "o.jsonl.skips"
    with pytest.raises(ConfigError, match="not found"):
        load_pairs(tmp_path / "nope.jsonl")


# ---------------------------------------------------------------- the store


def test_answer_next_progress_and_trl_rows(tmp_path):
    store = LabelStore(write_pairs(tmp_path / "pairs.jsonl", 5))
    orders = {shown_order(f"p{i}") for i in range(40)}
    assert orders == {"ab", "ba"}  # both orders occur, so position bias is not systematic
    first = store.next()
    assert first["id"] == "p0" and first["progress"] == {"labelled": 0, "skipped": 0, "total": 5}
    assert (first["left"], first["right"]) == (("A0", "B0") if first["shown"] == "ab" else ("B0", "A0"))
    answers = {"p0": "1", "p1": "2", "p2": "t", "p3": "s"}
    for pid, choice in answers.items():
        nxt = store.next()
        assert nxt["id"] == pid
        store.answer(pid, choice, nxt["shown"])
    assert store.progress() == {"labelled": 3, "skipped": 1, "total": 5}
    assert store.next()["id"] == "p4"
    rows = jsonl(tmp_path / "pairs.labels.jsonl")
    assert [r["id"] for r in rows] == ["p0", "p1", "p2"]
    for r in rows:
        assert set(r) == {"prompt", "chosen", "rejected", "id", "tie", "shown", "time"}
        i = r["id"][1:]
        left, right = (f"A{i}", f"B{i}") if r["shown"] == "ab" else (f"B{i}", f"A{i}")
        want = {"1": (left, right), "2": (right, left), "t": (left, right)}[answers[r["id"]]]
        assert (r["chosen"], r["rejected"]) == want and r["tie"] == (answers[r["id"]] == "t")
        assert r["prompt"] == f"prompt {i}" and abs(r["time"] - time.time()) < 60
    assert [s["id"] for s in jsonl(tmp_path / "pairs.labels.jsonl.skips")] == ["p3"]
    assert [r["id"] for r in read_preferences(tmp_path / "pairs.labels.jsonl")] == ["p0", "p1", "p2"]
    store.answer("p4", "1", shown_order("p4"))
    assert store.next() == {"done": True, "progress": {"labelled": 4, "skipped": 1, "total": 5}}


def test_refusals_write_nothing(tmp_path):
    out = tmp_path / "out.jsonl"
    store = LabelStore(write_pairs(tmp_path / "pairs.jsonl"), out)
    shown = shown_order("p0")
    store.answer("p0", "1", shown)
    before = out.read_bytes()
    for args, status, words in [
        (("p0", "2", shown), 409, "already answered"),
        (("p9", "1", "ab"), 400, "unknown pair id"),
        (("p1", "x", shown_order("p1")), 400, "choice 'x'"),
        (("p1", "1", "ba" if shown_order("p1") == "ab" else "ab"), 400, "does not match"),
    ]:
        with pytest.raises(AnswerError, match=words) as exc:
            store.answer(*args)
        assert exc.value.status == status
    assert out.read_bytes() == before
    assert not skips_path_for(out).exists()


def test_restart_continues_and_repairs_a_torn_line(tmp_path, caplog):
    pairs, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "out.jsonl"
    store = LabelStore(pairs, out)
    store.answer("p0", "1", shown_order("p0"))
    store.answer("p1", "s", shown_order("p1"))
    good = out.read_bytes()
    with open(out, "ab") as f:
        f.write(b'{"prompt":"prompt 2","chosen":"A')  # a kill mid-write
    with open(skips_path_for(out), "ab") as f:
        f.write(b'{"id":"p')
    with caplog.at_level("WARNING", logger="rlworks.lab"):
        # read_preferences repairs nothing: it skips the partial line with a warning
        assert [r["id"] for r in read_preferences(out)] == ["p0"]
        assert out.read_bytes().endswith(b'"A')
        again = LabelStore(pairs, out)
    assert "partial line" in caplog.text
    assert out.read_bytes() == good and skips_path_for(out).read_text().count("\n") == 1
    assert again.progress() == {"labelled": 1, "skipped": 1, "total": 6} and again.next()["id"] == "p2"
    with pytest.raises(AnswerError) as exc:
        again.answer("p1", "1", shown_order("p1"))  # skipped before the restart: still answered
    assert exc.value.status == 409


def test_corrupt_complete_line_is_an_error_not_a_repair(tmp_path):
    pairs, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "out.jsonl"
    out.write_text("garbage\n")
    with pytest.raises(ConfigError, match="out.jsonl:1: not valid JSON"):
        LabelStore(pairs, out)
    assert out.read_text() == "garbage\n"
    with pytest.raises(ConfigError, match="pairs file itself"):
        LabelStore(pairs, pairs)
    with pytest.raises(ConfigError, match="is not a file"):
        LabelStore(pairs, tmp_path)


def test_concurrent_answers_for_one_pair_write_one_line(tmp_path):
    out = tmp_path / "out.jsonl"
    store = LabelStore(write_pairs(tmp_path / "pairs.jsonl"), out)

    def go(choice):
        try:
            store.answer("p0", choice, shown_order("p0"))
            return "ok"
        except AnswerError as exc:
            return exc.status

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(go, ["1", "2", "t", "s"] * 4))
    assert results.count("ok") == 1 and results.count(409) == 15
    skips = jsonl(skips_path_for(out)) if skips_path_for(out).exists() else []
    assert len(jsonl(out)) + len(skips) == 1


# ---------------------------------------------------------------- the HTTP API


def request(port: int, path: str, body: bytes | None = None, method: str | None = None) -> tuple[int, dict | str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except json.JSONDecodeError:
        return status, raw.decode()


def post(port: int, obj) -> tuple[int, dict]:
    return request(port, "/label/api/answer", obj if isinstance(obj, bytes) else json.dumps(obj).encode())


@pytest.fixture
def served(tmp_path):
    """A real uvicorn server (in a thread) labelling a 6-pair file into tmp_path/out.jsonl."""
    store = LabelStore(write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "out.jsonl")
    sock = bind("127.0.0.1", 0)
    server = make_server(sock, label_store=store)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    yield sock.getsockname()[1], tmp_path / "out.jsonl"
    server.should_exit = True
    thread.join(5)


def test_api_round_trip_and_malformed_posts(served):
    port, out = served
    status, page = request(port, "/label")
    assert status == 200 and "label.js" in page
    status, nxt = request(port, "/label/api/next")
    assert status == 200 and nxt["id"] == "p0"
    status, body = post(port, {"id": "p0", "choice": "2", "shown": nxt["shown"]})
    assert status == 200 and body == {"ok": True, "progress": {"labelled": 1, "skipped": 0, "total": 6}}
    before = out.read_bytes()
    good = {"id": "p1", "choice": "1", "shown": shown_order("p1")}
    bad = [
        (b"{not json", 400, "not JSON"),
        (b"\xff\xfe", 400, "not JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        ({"id": "p1", "choice": "1"}, 400, "missing: ['shown']"),
        ({**good, "extra": 1}, 400, "unexpected: ['extra']"),
        ({**good, "choice": 1}, 400, "'choice' must be a string"),
        ({**good, "id": ["p1"]}, 400, "'id' must be a string"),
        ({**good, "id": "nope"}, 400, "unknown pair id"),
        ({**good, "choice": "left"}, 400, "choice 'left'"),
        ({**good, "shown": "xx"}, 400, "does not match"),
        (json.dumps({**good, "id": "x" * 70_000}).encode(), 400, "limit"),
        ({"id": "p0", "choice": "1", "shown": shown_order("p0")}, 409, "already answered"),
    ]
    for obj, want, words in bad:
        status, body = post(port, obj)
        assert status == want and words in body["error"], (obj if isinstance(obj, dict) else obj[:40], body)
    assert out.read_bytes() == before and not skips_path_for(out).exists()
    status, _ = request(port, "/label/api/answer", method="GET")
    assert status == 405
    status, nxt = request(port, "/label/api/next")
    assert nxt["id"] == "p1" and nxt["progress"]["labelled"] == 1
    assert request(port, "/")[0] == 200  # the grid-world lab is still there


def test_label_page_without_pairs_says_how():
    sock = bind("127.0.0.1", 0)
    server = make_server(sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.02)
        port = sock.getsockname()[1]
        status, page = request(port, "/label")
        assert status == 200 and "No pairs file was given" in page and "--label PAIRS.jsonl" in page
        status, body = request(port, "/label/api/next")
        assert status == 404 and "rlworks lab --label PAIRS.jsonl" in body["error"]
        assert post(port, {"id": "0", "choice": "1", "shown": "ab"})[0] == 404
    finally:
        server.should_exit = True
        thread.join(5)


# ---------------------------------------------------------------- CLI: real process, SIGKILL, host


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cli(pairs: Path, out: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlworks.cli", "lab", "--label", str(pairs), "--labels", str(out), "--no-browser",
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            if request(port, "/health")[0] == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the lab did not start in 20 s")


def test_sigkill_torn_write_restart_continues(tmp_path):
    pairs, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "out.jsonl"
    proc, port = start_cli(pairs, out)
    try:
        for choice in ("1", "s", "t"):
            nxt = request(port, "/label/api/next")[1]
            assert post(port, {"id": nxt["id"], "choice": choice, "shown": nxt["shown"]})[0] == 200
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    kept = jsonl(out)
    assert [r["id"] for r in kept] == ["p0", "p2"] and [r["tie"] for r in kept] == [False, True]
    with open(out, "ab") as f:
        f.write(b'{"prompt":"prompt 3","chosen":"B3","rej')  # the torn write of a kill mid-append
    proc, port = start_cli(pairs, out)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert "partial line" in lines[0] and "truncating" in lines[0], lines  # the repair is logged
        assert "6 pairs" in lines[1] and "2 labelled, 1 skipped" in lines[1], lines
        assert jsonl(out) == kept  # repaired: valid JSONL, earlier answers intact
        nxt = request(port, "/label/api/next")[1]
        assert nxt["id"] == "p3" and nxt["progress"] == {"labelled": 2, "skipped": 1, "total": 6}
        assert post(port, {"id": "p3", "choice": "2", "shown": nxt["shown"]})[0] == 200
        assert post(port, {"id": "p0", "choice": "2", "shown": shown_order("p0")})[0] == 409
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert [r["id"] for r in jsonl(out)] == ["p0", "p2", "p3"]
    assert [r["id"] for r in jsonl(skips_path_for(out))] == ["p1"]


def test_labelling_binds_loopback_by_default(tmp_path, monkeypatch, capsys):
    from rlworks.commands import lab
    from rlworks.lab import server

    pairs = write_pairs(tmp_path / "pairs.jsonl")
    seen = {}

    def fake_bind(host, port):
        seen["host"] = host
        raise ConfigError("stop here")

    monkeypatch.setattr(server, "bind", fake_bind)
    with pytest.raises(ConfigError, match="stop here"):
        lab.main(["--label", str(pairs), "--no-browser"])
    assert seen["host"] == "127.0.0.1"
    assert "into " + str(default_labels_path(pairs)) in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--labels", "x.jsonl"], "--labels needs --label"),
        (["--label", "missing.jsonl", "--no-browser"], "not found"),
        (["--label", "p.jsonl", "--export", "x.gif"], "do not go together"),
    ],
)
def test_cli_refuses_bad_label_flags(argv, words):
    from rlworks.commands import lab

    with pytest.raises(ConfigError, match=words):
        lab.main(argv)


def test_cli_exit_code_2_for_a_bad_pairs_file(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"prompt": "p", "a": "x", "b": "y"}\nnot json\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([sys.executable, "-m", "rlworks.cli", "lab", "--label", str(pairs), "--no-browser"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 2 and "pairs.jsonl:2: not valid JSON" in r.stderr and "Traceback" not in r.stderr
