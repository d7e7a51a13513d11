"""Preference labelling for RLHF: a pairs file in, TRL-style preference rows out, and the lab's routes.

A person compares two completions of a prompt on ``/label`` and answers 1 (left better), 2 (right
better), t (tie) or s (skip). Files::

    PAIRS.jsonl          {"id": str (optional, default: the 0-based line index), "prompt": str, "a": str, "b": str}
    OUT.jsonl            {"prompt", "chosen", "rejected", "id", "tie", "shown": "ab"|"ba", "time"}  (one per decision)
    OUT.jsonl.skips      {"id", "time"}  (kept apart so that OUT stays rows TRL can load)

Which completion is shown on the left is random per pair but deterministic (a hash of the id), so
position bias is not systematic and a reload shows the same order; ``shown`` records it ("ab": a on
the left). A tie keeps the shown order in chosen/rejected.

Every record is one complete line written with a single ``os.write`` on an ``O_APPEND`` fd, then
``os.fsync``: a kill can at worst leave a partial last line, which ``LabelStore`` truncates away on
startup (with a warning). Pairs whose id is already in OUT or the skips file are not shown again,
so a restart continues where the last run stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from rlworks.config import ConfigError

log = logging.getLogger("rlworks.lab")

STATIC_DIR = Path(__file__).parent / "static"
MAX_BODY_BYTES = 64 * 1024
CHOICES = ("1", "2", "t", "s")
ANSWER_KEYS = {"id": str, "choice": str, "shown": str}
HOW_TO = "start the lab with `rlworks lab --label PAIRS.jsonl [--labels OUT.jsonl]`"


class AnswerError(ValueError):
    """A refused answer: ``status`` is the HTTP code (400 malformed, 409 already labelled)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def default_labels_path(pairs_path: str | os.PathLike) -> Path:
    """``pairs.jsonl`` -> ``pairs.labels.jsonl`` beside it."""
    return Path(pairs_path).with_suffix(".labels.jsonl")


def skips_path_for(labels_path: str | os.PathLike) -> Path:
    """The sidecar file that records skips: ``OUT.jsonl.skips``."""
    p = Path(labels_path)
    return p.with_name(p.name + ".skips")


def shown_order(pair_id: str) -> str:
    """Which completion goes left: "ab" (a on the left) or "ba", fixed per id so reloads agree."""
    return "ab" if hashlib.sha256(b"rlworks-label:" + pair_id.encode()).digest()[0] & 1 else "ba"


def load_pairs(path: str | os.PathLike) -> list[dict]:
    """Read and validate a pairs file: ``[{"id", "prompt", "a", "b"}, ...]`` in file order.

    Blank lines are ignored; other keys on a line are ignored. Raises ConfigError naming the file and
    line for a missing/empty file, a line that is not a JSON object, a missing or non-string field,
    or a duplicate id.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"pairs file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read pairs file {path}: {exc}") from None
    pairs: list[dict] = []
    seen: dict[str, int] = {}
    for index, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        where = f"{path}:{index + 1}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"{where}: expected a JSON object with prompt, a and b, got {type(obj).__name__}")
        for key in ("prompt", "a", "b"):
            if key not in obj:
                raise ConfigError(f"{where}: missing {key!r} (each line needs prompt, a, b and optionally id)")
            if not isinstance(obj[key], str):
                raise ConfigError(f"{where}: {key!r} must be a string, got {type(obj[key]).__name__}")
        pair_id = obj.get("id", str(index))
        if not isinstance(pair_id, str) or not pair_id:
            raise ConfigError(f"{where}: 'id' must be a non-empty string, got {pair_id!r}")
        if pair_id in seen:
            raise ConfigError(f"{where}: duplicate id {pair_id!r} (first on line {seen[pair_id]})")
        seen[pair_id] = index + 1
        pairs.append({"id": pair_id, "prompt": obj["prompt"], "a": obj["a"], "b": obj["b"]})
    if not pairs:
        raise ConfigError(f"pairs file {path} is empty: expected one JSON object per line")
    return pairs


def _read_jsonl(path: Path, *, repair: bool) -> list[dict]:
    """Rows of a JSONL file we wrote. A trailing partial line (a kill mid-write) is truncated away
    when ``repair`` is set, else skipped; both with a warning. A bad complete line is a ConfigError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        if repair:
            log.warning("%s ends with a partial line (%d bytes, an interrupted write): truncating it",
                        path, len(data) - keep)
            fd = os.open(path, os.O_WRONLY)
            try:
                os.ftruncate(fd, keep)
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            log.warning("%s ends with a partial line (%d bytes): skipping it", path, len(data) - keep)
        data = data[:keep]
    rows = []
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not valid JSON ({exc.msg}); fix or remove that line") from None
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise ConfigError(f"{path}:{number}: expected a JSON object with a string 'id'")
        rows.append(row)
    return rows


def read_preferences(labels_path: str | os.PathLike) -> list[dict]:
    """The preference rows of a labels file (each has prompt, chosen, rejected, tie, id, shown, time).

    Changes nothing on disk: a trailing partial line is skipped with a warning. A missing file gives [].
    """
    path = Path(labels_path)
    rows = _read_jsonl(path, repair=False)
    for number, row in enumerate(rows, start=1):
        if not all(isinstance(row.get(k), str) for k in ("prompt", "chosen", "rejected")) or not isinstance(
            row.get("tie"), bool
        ):
            raise ConfigError(f"{path}: row {number} is not a preference row (needs prompt, chosen, rejected, tie)")
    return rows


def _append_line(path: Path, record: dict) -> None:
    """Append one record as one line: a single write on an O_APPEND fd, then fsync."""
    line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {path} ({written} of {len(line)} bytes)")
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)  # never leave a partial line for the next append to glue onto
            raise
    finally:
        os.close(fd)
    if created:  # make the new directory entry durable too
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class LabelStore:
    """The pairs to label and the answers given so far; thread-safe.

    ``next()`` gives the first pair (in file order) with no answer yet, ``answer()`` records one,
    ``progress()`` counts. Startup repairs a torn last line in OUT and the skips file.
    """

    def __init__(self, pairs_path: str | os.PathLike, labels_path: str | os.PathLike | None = None) -> None:
        self.pairs_path = Path(pairs_path)
        self.labels_path = Path(labels_path) if labels_path is not None else default_labels_path(pairs_path)
        self.skips_path = skips_path_for(self.labels_path)
        if self.labels_path.resolve() == self.pairs_path.resolve():
            raise ConfigError(f"--labels {self.labels_path} is the pairs file itself: pick another output file")
        for path in (self.labels_path, self.skips_path):
            if path.exists() and not path.is_file():
                raise ConfigError(f"--labels {path} exists and is not a file: pick a file path")
        if not self.labels_path.parent.is_dir():
            raise ConfigError(f"--labels {self.labels_path}: directory {self.labels_path.parent} does not exist")
        self.pairs = load_pairs(self.pairs_path)
        self._by_id = {p["id"]: p for p in self.pairs}
        self._lock = threading.Lock()
        self.labelled: set[str] = set()
        self.skipped: set[str] = set()
        for target, path in ((self.labelled, self.labels_path), (self.skipped, self.skips_path)):
            ids = [row["id"] for row in _read_jsonl(path, repair=True)]
            unknown = [i for i in ids if i not in self._by_id]
            if unknown:
                log.warning("%s has %d id(s) not in %s (e.g. %r): ignored", path, len(unknown), self.pairs_path,
                            unknown[0])
            target.update(i for i in ids if i in self._by_id)
        self.skipped -= self.labelled

    def progress(self) -> dict:
        """``{"labelled", "skipped", "total"}``."""
        return {"labelled": len(self.labelled), "skipped": len(self.skipped), "total": len(self.pairs)}

    def next(self) -> dict:
        """The next unanswered pair as shown (``id, prompt, left, right, shown, progress``), or
        ``{"done": True, "progress"}`` when every pair is labelled or skipped."""
        with self._lock:
            for pair in self.pairs:
                if pair["id"] not in self.labelled and pair["id"] not in self.skipped:
                    shown = shown_order(pair["id"])
                    left, right = (pair["a"], pair["b"]) if shown == "ab" else (pair["b"], pair["a"])
                    return {"id": pair["id"], "prompt": pair["prompt"], "left": left, "right": right,
                            "shown": shown, "progress": self.progress()}
            return {"done": True, "progress": self.progress()}

    def answer(self, pair_id: str, choice: str, shown: str) -> dict:
        """Record ``choice`` ("1" left better, "2" right better, "t" tie, "s" skip) for a pair shown
        in order ``shown``; returns the progress. Raises AnswerError (400 bad input, 409 answered)."""
        if not isinstance(pair_id, str) or pair_id not in self._by_id:
            raise AnswerError(f"unknown pair id {pair_id!r}: not in {self.pairs_path.name}")
        if choice not in CHOICES:
            raise AnswerError(f"choice {choice!r} is not allowed: use '1' (left), '2' (right), 't' (tie), 's' (skip)")
        expected = shown_order(pair_id)
        if shown != expected:
            raise AnswerError(f"shown {shown!r} does not match how pair {pair_id!r} is shown ({expected!r})")
        pair = self._by_id[pair_id]
        left, right = (pair["a"], pair["b"]) if shown == "ab" else (pair["b"], pair["a"])
        with self._lock:
            if pair_id in self.labelled or pair_id in self.skipped:
                raise AnswerError(f"pair {pair_id!r} is already answered: not recorded twice", status=409)
            now = round(time.time(), 3)
            if choice == "s":
                _append_line(self.skips_path, {"id": pair_id, "time": now})
                self.skipped.add(pair_id)
            else:
                chosen, rejected = (right, left) if choice == "2" else (left, right)
                _append_line(self.labels_path, {"prompt": pair["prompt"], "chosen": chosen, "rejected": rejected,
                                                "id": pair_id, "tie": choice == "t", "shown": shown, "time": now})
                self.labelled.add(pair_id)
            return self.progress()


# ---------------------------------------------------------------------------------------------
# HTTP routes: the page and its JSON API. The store is ``app.state.label_store`` (None: no --label).

def _no_store() -> JSONResponse:
    return JSONResponse({"error": f"no pairs file was given: {HOW_TO}"}, status_code=404)


async def label_page(request: Request) -> Response:
    if getattr(request.app.state, "label_store", None) is None:
        return HTMLResponse(
            "<!doctype html><html lang=en><meta charset=utf-8><title>rlworks lab: labelling</title>"
            "<link rel=stylesheet href=/static/lab.css><link rel=stylesheet href=/static/label.css>"
            "<main class=label-empty data-testid=no-pairs><h1>No pairs file was given</h1>"
            "<p>To label preference pairs, " + HOW_TO.replace("`", "<code>", 1).replace("`", "</code>", 1)
            + ".</p><p>PAIRS.jsonl holds one JSON object per line: "
            '<code>{"id": "...", "prompt": "...", "a": "...", "b": "..."}</code>.</p>'
            "<p><a href=/>Back to the grid-world lab</a></p></main></html>"
        )
    return FileResponse(STATIC_DIR / "label.html", headers={"Cache-Control": "no-cache"})


async def api_next(request: Request) -> Response:
    store: LabelStore | None = getattr(request.app.state, "label_store", None)
    if store is None:
        return _no_store()
    return JSONResponse(store.next())


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise AnswerError(f"body is {int(declared):,} bytes: the limit is {MAX_BODY_BYTES:,}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise AnswerError(f"body is over the limit of {MAX_BODY_BYTES:,} bytes")
    return body


def parse_answer(body: bytes) -> dict:
    """Validate an answer body: a JSON object with exactly id, choice and shown, all strings."""
    try:
        msg = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise AnswerError('body is not JSON: send {"id": str, "choice": "1"|"2"|"t"|"s", "shown": "ab"|"ba"}') from None
    if not isinstance(msg, dict):
        raise AnswerError(f"body must be a JSON object, got {type(msg).__name__}")
    missing = sorted(set(ANSWER_KEYS) - set(msg))
    extra = sorted(set(msg) - set(ANSWER_KEYS))
    if missing or extra:
        raise AnswerError(f"answer needs exactly id, choice, shown (missing: {missing or 'none'}, "
                          f"unexpected: {extra or 'none'})")
    for key, kind in ANSWER_KEYS.items():
        if not isinstance(msg[key], kind):
            raise AnswerError(f"{key!r} must be a string, got {type(msg[key]).__name__}")
    return msg


async def api_answer(request: Request) -> Response:
    store: LabelStore | None = getattr(request.app.state, "label_store", None)
    if store is None:
        return _no_store()
    try:
        msg = parse_answer(await _read_body(request))
        # the store's lock serialises concurrent answers; fsync runs off the event loop
        progress = await asyncio.to_thread(store.answer, msg["id"], msg["choice"], msg["shown"])
    except AnswerError as exc:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)
    except OSError as exc:
        log.exception("writing a label failed")
        return JSONResponse({"error": f"could not write the answer: {exc}"}, status_code=500)
    return JSONResponse({"ok": True, "progress": progress})


def label_routes() -> list[Route]:
    """The labelling page and its API, for the lab app."""
    return [
        Route("/label", label_page),
        Route("/label/api/next", api_next),
        Route("/label/api/answer", api_answer, methods=["POST"]),
    ]
