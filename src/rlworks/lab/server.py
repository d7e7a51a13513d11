"""The lab's web server: static page, one WebSocket per tab, and export downloads.

Each WebSocket is one ``LabSession`` with its own learner. Two coroutines share it: a ticker
that advances the learner and sends a frame ~30 times a second, and a reader that validates
every inbound message (``protocol.parse``) and applies it. Both run on the event loop thread,
so the session is never touched concurrently; a bad message gets an error frame and the
session carries on. Closing the tab ends both coroutines and frees the session.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import logging
import secrets
import socket
import time
from collections import OrderedDict
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from rlworks.config import ConfigError
from rlworks.lab import protocol
from rlworks.lab.labelling import label_routes
from rlworks.lab.session import FPS, MAX_SPEED_BUDGET_S, LabSession

STATIC_DIR = Path(__file__).parent / "static"
#: uvicorn closes a socket on a message above this (a protection, not the protocol's limit):
#: anything up to it reaches ``protocol.parse``, which answers "too big" with an error frame.
WS_MAX_BYTES = 16 * 1024 * 1024
MAX_EXPORTS_KEPT = 8
log = logging.getLogger("rlworks.lab")


class LabState:
    """Server-wide state: live session count and finished exports waiting to be downloaded."""

    def __init__(self) -> None:
        self.sessions = 0
        self.seeds = itertools.count()
        self.exports: OrderedDict[str, tuple[bytes, str, str]] = OrderedDict()

    def add_export(self, data: bytes, media_type: str, filename: str) -> str:
        token = secrets.token_urlsafe(12)
        self.exports[token] = (data, media_type, filename)
        while len(self.exports) > MAX_EXPORTS_KEPT:
            self.exports.popitem(last=False)
        return token


def _error(message: str) -> dict:
    return {"type": "error", "message": message}


async def _ticker(state: LabState, session: LabSession, send, wake: asyncio.Event) -> None:
    """Advance the learner and send frames at a steady rate while running (or when poked)."""
    period = 1.0 / FPS
    last = time.perf_counter()
    next_at = last
    while True:
        now = time.perf_counter()
        if session.running:
            # all tabs share one event loop: split the engine time of a frame between them so
            # that frames stay near 30/s however many tabs run at "max"
            session.advance(now - last, budget=MAX_SPEED_BUDGET_S / max(1, state.sessions))
        last = now
        if session.running or wake.is_set():
            wake.clear()
            await send(session.frame())
            next_at += period
            # behind schedule (slow client, busy CPU): drop frames rather than burst
            next_at = max(next_at, time.perf_counter())
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        else:
            # paused: sleep until a message pokes us
            await wake.wait()
            last = next_at = time.perf_counter()


async def _export(state: LabState, session: LabSession, msg: dict, send) -> None:
    from rlworks.lab import export

    fmt = msg.get("format", "gif")
    kwargs = export.session_kwargs(session, episodes=msg.get("episodes", 200))
    try:
        data = await asyncio.to_thread(export.render_bytes, fmt=fmt, **kwargs)
    except Exception as exc:  # noqa: BLE001 - reported to the page, the session lives on
        log.exception("export failed")
        await send(_error(f"export failed: {exc}"))
        return
    media = "image/gif" if fmt == "gif" else "image/png"
    token = state.add_export(data, media, f"rlworks-lab-flood.{fmt}")
    await send({"type": "export", "url": f"/export/{token}", "bytes": len(data)})


async def lab_socket(ws: WebSocket) -> None:
    """One tab: a session, its ticker, and the validating reader."""
    state: LabState = ws.app.state.lab
    await ws.accept()
    session = LabSession(seed=next(state.seeds))
    state.sessions += 1
    lock = asyncio.Lock()
    wake = asyncio.Event()
    exporting: list[asyncio.Task] = []

    async def send(obj: dict) -> None:
        text = json.dumps(obj, separators=(",", ":"))
        async with lock:
            await ws.send_text(text)

    ticker = asyncio.create_task(_ticker(state, session, send, wake))
    try:
        await send(session.state())
        wake.set()
        while True:
            event = await ws.receive()
            if event["type"] == "websocket.disconnect":
                break
            raw = event.get("text")
            if raw is None:
                raw = event.get("bytes") or b""
            try:
                msg = protocol.parse(raw)
                if msg["type"] == "export":
                    if session.world.kind != "gridworld":
                        raise protocol.ProtocolError("export draws grid-world maps only: pick a grid-world preset")
                    if any(not t.done() for t in exporting):
                        raise protocol.ProtocolError("an export is already running: wait for its download")
                    exporting[:] = [asyncio.create_task(_export(state, session, msg, send))]
                    continue
                replies = session.handle(msg)
            except protocol.ProtocolError as exc:
                await send(_error(str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - never let one message take the tab down
                log.exception("lab message failed")
                await send(_error(f"internal error handling {raw[:60]!r}: {type(exc).__name__}: {exc}"))
                continue
            for reply in replies:
                await send(reply)
            wake.set()
    except (WebSocketDisconnect, RuntimeError):
        pass  # the tab went away mid-send
    finally:
        ticker.cancel()
        for t in exporting:
            t.cancel()
        state.sessions -= 1
        # surface a crash of the ticker in the log instead of losing it
        try:
            await ticker
        except (asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            pass
        except Exception:  # noqa: BLE001
            log.exception("lab ticker failed")


async def index(request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def download(request) -> Response:
    item = request.app.state.lab.exports.get(request.path_params["token"])
    if item is None:
        return JSONResponse({"error": "no such export (they are kept for the last few only)"}, status_code=404)
    data, media, filename = item
    return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def health(request) -> Response:
    return JSONResponse({"ok": True, "sessions": request.app.state.lab.sessions})


def create_app(label_store=None) -> Starlette:
    """The lab's ASGI app; ``label_store`` (a ``labelling.LabelStore``) backs the ``/label`` page."""
    app = Starlette(
        routes=[
            Route("/", index),
            *label_routes(),
            Route("/health", health),
            Route("/export/{token}", download),
            WebSocketRoute("/ws", lab_socket),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]
    )
    app.state.lab = LabState()
    app.state.label_store = label_store
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or ConfigError with one clear line (port in use, bad host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} cannot be resolved: {exc.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use: pass --port with a free port") from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(64)
    sock.setblocking(False)
    return sock


def make_server(sock: socket.socket, log_level: str = "warning", label_store=None):
    """A uvicorn server for the lab app on an already-bound socket (``server.run(sockets=[sock])``)."""
    import uvicorn

    config = uvicorn.Config(create_app(label_store), log_level=log_level, ws_max_size=WS_MAX_BYTES, lifespan="off")
    return uvicorn.Server(config)
