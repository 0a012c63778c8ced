"""The studio's app factory, its static page, ``/files`` and ``serve`` (what ``zoomdream studio`` runs).

``create_app(ctx)`` builds the Starlette app: the JSON API (:mod:`zoomdream.studio.api`), the
Live panel's routes when ``zoomdream.studio.live`` exists (see :mod:`zoomdream.studio.context`),
the page and its static files, ``GET /files/PATH`` (files under the root only, Range requests
answered 206 so a ``<video>`` can seek), all behind :class:`~zoomdream.studio.security.SecurityMiddleware`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import importlib.util
import logging
import mimetypes
import os
import sys
import threading
import webbrowser
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from zoomdream.errors import Terminated
from zoomdream.studio.context import StudioContext
from zoomdream.studio.security import NotFound, Security, SecurityMiddleware, is_loopback, new_token

__all__ = ["STATIC", "create_app", "live_module", "serve", "shutdown"]

STATIC = Path(__file__).parent / "static"
LIVE_SCRIPT = '<script src="/static/live.js" defer></script>'

mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/css", ".css")
mimetypes.add_type("video/mp4", ".mp4")
mimetypes.add_type("image/webp", ".webp")
mimetypes.add_type("text/yaml", ".yaml")


async def index(request: Request) -> Response:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    if (STATIC / "live.js").is_file():
        html = html.replace("<!-- live -->", LIVE_SCRIPT)
    if (STATIC / "live.css").is_file():
        html = html.replace("<!-- live-css -->", '<link rel="stylesheet" href="/static/live.css">')
    return Response(html, media_type="text/html; charset=utf-8", headers={"cache-control": "no-store"})


# Files up to this size are answered from one read of the open file, so a file replaced meanwhile (a running
# render's latest frame is, every frame) is answered whole, old or new, never with the old length and new bytes.
SNAPSHOT_BYTES = 8 << 20


def _snapshot(path: Path) -> bytes | None:
    """The whole file from one read of the open file, or None when it is larger than ``SNAPSHOT_BYTES``."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size > SNAPSHOT_BYTES:
            return None
        body = f.read(SNAPSHOT_BYTES + 1)
    return body if len(body) <= SNAPSHOT_BYTES else None


async def files(request: Request) -> Response:
    """GET /files/PATH: a file under the root (symlinks followed and confined), with Range support."""
    ctx: StudioContext = request.app.state.ctx
    path = ctx.path(request.path_params["path"])
    if not path.is_file():
        raise NotFound(request.path_params["path"])
    headers = {"cache-control": "no-cache"}
    if "range" not in request.headers:
        try:
            body = await asyncio.to_thread(_snapshot, path)  # off the event loop: the live stream keeps going
        except OSError:
            raise NotFound(request.path_params["path"]) from None
        if body is not None:
            media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return Response(body, media_type=media, headers={**headers, "accept-ranges": "bytes"})
    return FileResponse(path, headers=headers)


async def not_found(request: Request, exc) -> Response:
    return JSONResponse({"error": "not found"}, status_code=404)


def live_module():
    """``zoomdream.studio.live`` when it exists (its own import errors are not hidden)."""
    if importlib.util.find_spec(f"{__package__}.live") is None:
        return None
    return importlib.import_module(f"{__package__}.live")


def create_app(ctx: StudioContext, *, start_queue: bool = True, warm: bool = False) -> Starlette:
    """The studio app for ``ctx``; ``start_queue``: run queued renders (tests may leave it off);
    ``warm``: start the preview worker at once and load the default look."""
    from zoomdream.studio import api  # noqa: PLC0415
    from zoomdream.studio.jobs import JobQueue  # noqa: PLC0415
    from zoomdream.studio.workers import PreviewWorker  # noqa: PLC0415

    ctx.queue = JobQueue(ctx)
    ctx.worker = PreviewWorker(ctx)
    routes = list(api.routes())
    live = live_module()
    if live is not None:
        routes += list(live.routes(ctx))
    routes += [
        Route("/", index),
        Route("/files/{path:path}", files),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if start_queue:
            ctx.queue.start()
        if warm:
            ctx.worker.warm()
        try:
            yield
        finally:
            shutdown(ctx)

    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(SecurityMiddleware, security=ctx.security)],
                    exception_handlers={NotFound: not_found, 404: not_found})
    app.state.ctx = ctx
    return app


def shutdown(ctx: StudioContext) -> None:
    """Stop everything the studio started: running renders (resumably), the worker, the Live panel's parts."""
    for fn in reversed(ctx.on_shutdown):
        with contextlib.suppress(Exception):
            fn()
    if ctx.queue is not None:
        ctx.queue.stop()
    if ctx.worker is not None:
        ctx.worker.stop()


def serve(folder: str, security: Security | None = None, *, open_browser: bool = True, jobs: int = 1,
          warm: bool = True) -> int:
    """Run the studio until Ctrl-C; prints ``zoomdream studio: URL`` once it listens.

    ``security``: where it listens, its token and its upload cap (default: ``Security()``, loopback
    port 8765); port 0 takes a free port.
    """
    import socket  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415

    security = security or Security()
    host, port, token = security.host, security.port, security.token
    if token is None and not is_loopback(host):
        token = new_token()  # off loopback a token is required: made here, printed in the URL
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        from zoomdream.errors import ZoomdreamError  # noqa: PLC0415

        raise ZoomdreamError(f"{host}:{port}: cannot listen ({e.strerror or e})") from None
    sock.listen(128)
    sec = dataclasses.replace(security, port=sock.getsockname()[1], token=token)
    ctx = StudioContext(folder, sec, jobs=jobs)
    app = create_app(ctx, warm=warm)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    url = sec.url()

    async def main():
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            print(f"zoomdream studio: {url}", flush=True)
            if open_browser:
                threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
        await task

    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    try:
        asyncio.run(main())
    except (KeyboardInterrupt, Terminated):
        pass  # Ctrl-C or SIGTERM: uvicorn has stopped serving; the renders stop below, resumably
    finally:
        shutdown(ctx)
        with contextlib.suppress(OSError):
            sock.close()
    if server.should_exit:
        print("zoomdream studio: stopped", file=sys.stderr, flush=True)
    return 0



