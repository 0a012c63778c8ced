"""The Live panel's routes: an infinite zoom steered in real time, its JPEG stream and its take.

Each session is a :class:`zoomdream.render.live.LiveWorker` (a worker process: the server never imports
TensorFlow). One loop runs at a time: starting one stops the one before (its take stays). The loop
pauses when nobody watches its stream (after ``IDLE_GRACE`` seconds) and resumes when someone
does; stopping the studio stops every loop.

- ``POST /api/live`` ``{input, settings, size, record}`` -> 201 ``{id}``
- ``GET /api/live`` (the sessions), ``GET /api/live/ID`` (state, frame count, fps, record folder)
- ``GET /api/live/ID/stream``: ``multipart/x-mixed-replace`` JPEG frames, newest first (a slow
  client skips frames; each part carries ``X-Frame: INDEX``)
- ``POST /api/live/ID/set`` ``{key: value, ...}`` -> ``{frame}``, the frame it takes effect on
- ``POST /api/live/ID/pause|resume|restart|stop``
- ``GET /api/live/ID/take``: the take as preset YAML (``?format=json``: ``{settings}`` for ``/api/jobs``)
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time

from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from zoomdream import settings as S
from zoomdream.errors import ZoomdreamError
from zoomdream.render.live import LiveWorker, check_live, check_set, live_size
from zoomdream.studio.api import body_json, endpoint, media_kind
from zoomdream.studio.context import StudioContext
from zoomdream.studio.security import NotFound

__all__ = ["IDLE_GRACE", "LiveSession", "LiveSessions", "routes", "stream_parts"]

IDLE_GRACE = 1.0  # seconds without a watcher before the loop pauses
MAX_SESSIONS = 20  # finished sessions kept (for their takes); older ones are forgotten
BOUNDARY = "zoomdreamframe"


class LiveSession:
    """One live loop: its worker, who watches it, and whether the user paused it."""

    def __init__(self, ctx: StudioContext, input_rel: str, settings: S.Settings, size, record: bool):
        self.id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        self.ctx, self.input, self.record = ctx, input_rel, record
        self.created = time.time()
        self.watchers = 0
        self.user_paused = False
        self.paused = False  # what the worker was last told
        self._lock = threading.Lock()
        self._subscribers: dict[asyncio.Event, asyncio.AbstractEventLoop] = {}
        self._idle: asyncio.TimerHandle | None = None
        self.worker = LiveWorker(ctx.path(input_rel), settings, size=size,
                                 renders=ctx.folder("renders") if record else None, on_frame=self._frame_arrived)

    # ---------------------------------------------------------------- frames to the stream clients
    def _frame_arrived(self) -> None:  # the worker's reader thread
        with self._lock:
            waiting = list(self._subscribers.items())
        for event, loop in waiting:
            loop.call_soon_threadsafe(event.set)

    def subscribe(self, event: asyncio.Event) -> None:
        with self._lock:
            self._subscribers[event] = asyncio.get_running_loop()
            self.watchers += 1
        self._apply()

    def unsubscribe(self, event: asyncio.Event) -> None:
        with self._lock:
            self._subscribers.pop(event, None)
            self.watchers -= 1
        if self.watchers == 0:  # nobody watches: pause after a grace (a reload reconnects at once)
            loop = asyncio.get_running_loop()
            if self._idle is not None:
                self._idle.cancel()
            self._idle = loop.call_later(IDLE_GRACE, self._apply)

    def _apply(self) -> None:
        """Tell the worker to pause or resume when that changed."""
        want = self.user_paused or self.watchers == 0
        if want != self.paused and self.worker.alive:
            self.paused = want
            (self.worker.pause if want else self.worker.resume)()

    def idle_check(self) -> None:
        """A new session with no watcher pauses after the grace too."""
        asyncio.get_running_loop().call_later(IDLE_GRACE, self._apply)

    def describe(self) -> dict:
        state = dict(self.worker.state)
        record = state.get("record")
        if record:
            try:
                record = self.ctx.relative(record)
            except ValueError:
                pass
        shown = state.get("state")
        if shown == "running" and self.paused:
            shown = "paused"
        return {"id": self.id, "input": self.input, "state": shown, "frame": state.get("frame", 0),
                "fps": round(state.get("fps") or 0.0, 2) if shown == "running" else 0.0, "size": state.get("size"), "record": record,
                "error": state.get("error"), "watchers": self.watchers, "paused": self.paused,
                "user_paused": self.user_paused,
                "times": {k: round(v * 1000, 2) for k, v in (state.get("times") or {}).items()},
                "created": self.created}


class LiveSessions:
    """Every live session of one studio (``ctx.live``)."""

    def __init__(self, ctx: StudioContext):
        self.ctx = ctx
        self.sessions: dict[str, LiveSession] = {}
        self.lock = threading.Lock()
        ctx.on_shutdown.append(self.stop_all)

    def start(self, input_rel: str, settings, size, record: bool) -> LiveSession:
        for s in list(self.sessions.values()):  # one loop at a time: the CPU has room for one
            if s.worker.alive:
                s.worker.stop()
        session = LiveSession(self.ctx, input_rel, settings, size, record)
        with self.lock:
            self.sessions[session.id] = session
            for old in sorted(self.sessions.values(), key=lambda s: s.created)[:-MAX_SESSIONS]:
                del self.sessions[old.id]
        return session

    def get(self, session_id: str) -> LiveSession:
        session = self.sessions.get(session_id)
        if session is None:
            raise NotFound(session_id)
        return session

    def stop_all(self) -> None:
        for s in list(self.sessions.values()):
            s.worker.stop()


def _sessions(ctx: StudioContext) -> LiveSessions:
    live = getattr(ctx, "live", None)
    if live is None:
        live = ctx.live = LiveSessions(ctx)
    return live


# ---------------------------------------------------------------- routes
def _photo(ctx: StudioContext, rel) -> str:
    if not isinstance(rel, str) or not rel:
        raise ZoomdreamError("input: expected a photo path relative to the studio's folder")
    path = ctx.path(rel)
    if not path.is_file() or media_kind(path) != "image":
        raise ZoomdreamError(f"input: {S.quote(rel)} is not a photo")
    return ctx.relative(path)


def _size(value):
    if value is None or isinstance(value, (int, list)):
        live_size((1000, 1000), value)  # the form is checked here; the photo's aspect in the worker
        return value
    raise ZoomdreamError(f"size: expected [width, height] or a long side in px, got {S.quote(value)}")


@endpoint
async def start(request, ctx: StudioContext):
    data = await body_json(request)
    rel = _photo(ctx, data.get("input"))
    from zoomdream.media.images import load_image  # noqa: PLC0415  (Pillow and OpenCV only)

    try:  # a photo that does not decode is refused here, in the command line's words, not in the worker
        await asyncio.to_thread(load_image, ctx.path(rel))
    except ZoomdreamError as e:
        raise ZoomdreamError(f"input: {rel}: {str(e).rpartition(': ')[2]}") from None
    settings = ctx.settings_from_json(data.get("settings") if data.get("settings") is not None
                                      else {"extends": "live"})
    check_live(settings)
    size = _size(data.get("size"))
    record = data.get("record", False)
    if not isinstance(record, bool):
        raise ZoomdreamError(f"record: expected true or false, got {S.quote(record)}")
    session = await asyncio.to_thread(_sessions(ctx).start, rel, settings, size, record)
    session.idle_check()
    return JSONResponse({"id": session.id}, status_code=201)


@endpoint
async def list_sessions(request, ctx: StudioContext):
    return JSONResponse({"sessions": [s.describe() for s in _sessions(ctx).sessions.values()]})


@endpoint
async def get_session(request, ctx: StudioContext):
    return JSONResponse(_sessions(ctx).get(request.path_params["id"]).describe())


@endpoint
async def set_values(request, ctx: StudioContext):
    session = _sessions(ctx).get(request.path_params["id"])
    updates = check_set(session.worker.settings, await body_json(request))  # checked once, here
    if not session.worker.alive:
        raise ZoomdreamError(f"live {session.id}: the loop has stopped")
    frame = await asyncio.to_thread(session.worker.set, updates)
    return JSONResponse({"frame": frame, "values": updates})


def _command(name: str):
    @endpoint
    async def command(request, ctx: StudioContext):
        session = _sessions(ctx).get(request.path_params["id"])
        if name == "stop":
            await asyncio.to_thread(session.worker.stop)
        elif name in ("pause", "resume"):
            session.user_paused = name == "pause"
            session._apply()
        else:
            session.worker.restart()
        return JSONResponse(session.describe())

    command.__name__ = f"live_{name}"
    return command


@endpoint
async def take(request, ctx: StudioContext):
    session = _sessions(ctx).get(request.path_params["id"])
    text = await asyncio.to_thread(session.worker.take)
    if text is None:
        raise ZoomdreamError(f"live {session.id}: no take yet (the loop is still starting)")
    if request.query_params.get("format") == "json":  # the page's "Render this take": settings for /api/jobs
        import yaml  # noqa: PLC0415

        from zoomdream.settings import presets  # noqa: PLC0415

        return JSONResponse({"settings": S.to_dict(presets.from_dict(yaml.safe_load(text), source="take"))})
    stem = ctx.path(session.input).stem
    return Response(text, media_type="text/yaml; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{stem}-take.yaml"',
                             "cache-control": "no-store"})


async def stream(request):
    ctx: StudioContext = request.app.state.ctx
    try:
        session = _sessions(ctx).get(request.path_params["id"])
    except NotFound:
        return JSONResponse({"error": "not found", "key": None}, status_code=404)

    async def parts():
        event = asyncio.Event()
        session.subscribe(event)
        seen = -1
        try:
            while True:
                event.clear()
                worker = session.worker
                latest, count = worker.latest, worker.frames_received
                if latest is not None and count != seen:
                    seen = count
                    index, jpeg = latest
                    yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
                           f"X-Frame: {index}\r\n\r\n").encode() + jpeg + b"\r\n"
                    continue
                if not worker.alive:
                    return
                try:
                    await asyncio.wait_for(event.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
        finally:
            session.unsubscribe(event)

    return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                             headers={"cache-control": "no-store"})


def stream_parts(chunks):
    """A client's reading of the stream: the byte ``chunks`` as they arrive -> ``(headers, jpeg)`` per part."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        while (head_end := buf.find(b"\r\n\r\n")) >= 0:
            lines = buf[:head_end].decode("latin-1").split("\r\n")
            head = dict(line.split(": ", 1) for line in lines if ": " in line)
            end = head_end + 4 + int(head["Content-Length"])
            if len(buf) < end + 2:
                break
            yield head, buf[head_end + 4:end]
            buf = buf[end + 2:]


def routes(ctx: StudioContext) -> list[Route]:
    _sessions(ctx)
    return [
        Route("/api/live", start, methods=["POST"]),
        Route("/api/live", list_sessions),
        Route("/api/live/{id}", get_session),
        Route("/api/live/{id}/stream", stream),
        Route("/api/live/{id}/set", set_values, methods=["POST"]),
        *(Route(f"/api/live/{{id}}/{name}", _command(name), methods=["POST"])
          for name in ("pause", "resume", "restart", "stop")),
        Route("/api/live/{id}/take", take),
    ]
