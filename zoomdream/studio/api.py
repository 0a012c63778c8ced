"""The studio's JSON API under ``/api`` (the page uses nothing else; documented in the README).

Errors are JSON ``{"error": one line, "key": dotted setting key or null}``: 400 for bad input
(the command line's own message), 404 for a path or name that is not there (or is refused as
outside the root), 413 for a body over its cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import secrets
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from zoomdream import __version__
from zoomdream import settings as S
from zoomdream.errors import ZoomdreamError
from zoomdream.media.images import IMAGE_EXTENSIONS, image_header
from zoomdream.settings import presets
from zoomdream.studio.context import StudioContext, error_key, settings_catalogue
from zoomdream.studio.security import NotFound

__all__ = ["COMMAND_OPTIONS", "IMAGE_EXT", "VIDEO_EXT", "AUDIO_EXT", "routes"]

IMAGE_EXT = set(IMAGE_EXTENSIONS)  # what the photo reader takes
VIDEO_EXT = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"}
AUDIO_EXT = {".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".opus"}
MAX_MEDIA = 5000  # files listed at most
PREVIEW_SIDES = (16, 2048)
MAX_MOTION_FRAMES = 240

# The render options a job may pass, per command (flag names without dashes); paths are confined to the root.
COMMAND_OPTIONS = {
    "image": {},
    "sheet": {"cell": S.OPTIONS["cell"], "sheet-layers": None},
    "zoom": {"seconds": S.OPTIONS["seconds"], "crf": S.OPTIONS["crf"], "audio": "path", "keep-frames": "flag"},
    "video": {"start": S.OPTIONS["start"], "end": S.OPTIONS["end"], "preview": S.OPTIONS["preview"],
              "fps": S.OPTIONS["fps"], "crf": S.OPTIONS["crf"], "mask": "path", "audio": "path",
              "keep-frames": "flag"},
}


def _error(status: int, message: str, key: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "key": key}, status_code=status)


def endpoint(fn):
    """A route whose ZoomdreamError is 400 ``{error, key}`` and whose NotFound is 404."""

    @functools.wraps(fn)
    async def wrapped(request: Request):
        try:
            return await fn(request, request.app.state.ctx)
        except ZoomdreamError as e:
            return _error(400, str(e), error_key(str(e)))
        except NotFound as e:
            return _error(404, f"not found: {S.quote(str(e))}")

    return wrapped


async def body_json(request: Request) -> dict:
    try:
        data = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError) as e:
        raise ZoomdreamError(f"request: not JSON ({e})") from None
    except RecursionError:
        raise ZoomdreamError("request: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise ZoomdreamError("request: expected a JSON object")
    try:  # a lone surrogate (\ud800) is no text: it could not be written, echoed or answered
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ZoomdreamError("request: text with a lone surrogate escape (not Unicode)") from None
    except RecursionError:
        raise ZoomdreamError("request: JSON nested too deeply") from None
    return data


def _int(data: dict, name: str, default: int, lo: int, hi: int) -> int:
    value = data.get(name, default)
    if value is None:
        return default
    try:
        return S.Number(lo, hi, integer=True)(value)
    except S.Invalid as e:
        raise ZoomdreamError(f"{name}: {e}") from None


# ---------------------------------------------------------------- settings and presets
@endpoint
async def get_settings(request, ctx: StudioContext):
    return JSONResponse(_settings_answer())


@functools.lru_cache(maxsize=1)
def _settings_answer() -> dict:
    """The declarations do not change while the studio runs: built once."""
    options = {cmd: [{"name": name, "flag": f"--{name}",
                      "type": "path" if spec == "path" else "flag" if spec == "flag" else "text" if spec is None
                      else "number", "help": getattr(spec, "help", "")} for name, spec in opts.items()]
               for cmd, opts in COMMAND_OPTIONS.items()}
    return {"version": __version__, "settings": settings_catalogue(), "options": options}


@functools.lru_cache(maxsize=1024)
def _description(path: str, size: int, mtime_ns: int) -> str:
    return presets.describe(Path(path))


def describe(path: Path) -> str:
    """A preset's one-line description, read once per file version."""
    try:
        st = path.stat()
    except OSError:
        return "(unreadable)"
    return _description(str(path), st.st_size, st.st_mtime_ns)


@endpoint
async def list_presets(request, ctx: StudioContext):
    out = [{"name": name, "description": describe(path), "source": "bundled"}
           for name, path in presets.bundled_presets().items()]
    out += [{"name": name, "description": describe(path), "source": "saved"}
            for name, path in ctx.saved_presets().items()]
    return JSONResponse({"presets": out})


@endpoint
async def get_preset(request, ctx: StudioContext):
    name = request.path_params["name"]
    try:
        settings = ctx.load_preset(name)
    except ZoomdreamError as e:
        if str(e).startswith(("unknown preset", "extends:")):
            raise NotFound(name) from None
        raise
    return JSONResponse({"name": name, "settings": S.to_dict(settings)})


@endpoint
async def save_preset(request, ctx: StudioContext):
    data = await body_json(request)
    path = ctx.save_preset(data.get("name"), data.get("settings"))
    return JSONResponse({"name": path.stem, "path": ctx.relative(path)}, status_code=201)


@endpoint
async def check_settings(request, ctx: StudioContext):
    """POST /api/check {settings}: 200 ``{ok: true, settings}`` (resolved) or ``{ok: false, error, key}``.

    A validation endpoint: a wrong value is its answer, not a failed request (the page checks as you type).
    """
    data = await body_json(request)
    try:
        settings = ctx.settings_from_json(data.get("settings"))
    except ZoomdreamError as e:
        return JSONResponse({"ok": False, "error": str(e), "key": error_key(str(e))})
    return JSONResponse({"ok": True, "settings": S.to_dict(settings)})


# ---------------------------------------------------------------- media
def media_kind(path: Path) -> str | None:
    ext = path.suffix.lower()
    return "image" if ext in IMAGE_EXT else "video" if ext in VIDEO_EXT else "audio" if ext in AUDIO_EXT else None


@functools.lru_cache(maxsize=4096)
def _describe(path: str, size: int, mtime_ns: int) -> dict:
    """Width, height and duration of one media file (cached per file version); nulls when unreadable."""
    kind = media_kind(Path(path))
    info = {"width": None, "height": None, "duration": None}
    try:
        if kind == "image":
            info["width"], info["height"] = image_header(path)
        elif kind == "video":
            from zoomdream.media.probe import probe  # noqa: PLC0415

            v = probe(path)
            info.update(width=v.width, height=v.height, duration=round(v.duration, 3), fps=float(v.fps),
                        frames=v.n_frames, audio=v.has_audio)
        elif kind == "audio":
            from zoomdream.media.probe import probe_audio  # noqa: PLC0415

            stream = probe_audio(path)
            if stream is not None and stream.duration is not None:
                info["duration"] = round(stream.duration, 3)
    except Exception as e:  # noqa: BLE001  (a damaged file is listed, with its problem)
        info["problem"] = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
    return info


def _stat_key(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def list_media(ctx: StudioContext) -> list[dict]:
    """Media files under the root (hidden folders, work folders and the studio's state skipped)."""
    out = []
    root = str(ctx.root)
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            kind = media_kind(path)
            if kind is None:
                continue
            rel = path.relative_to(root).as_posix()
            try:
                real = ctx.path(rel)
                st = real.stat()
            except (NotFound, OSError):
                continue  # a symlink pointing out of the root, or a dangling one
            if not real.is_file():
                continue
            item = {"path": rel, "kind": kind, "size": st.st_size}
            item.update(_describe(str(real), st.st_size, st.st_mtime_ns))
            if (Path(folder) / f"{name}.yaml").is_file():
                item["sidecar"] = f"{rel}.yaml"
            out.append(item)
            if len(out) >= MAX_MEDIA:
                return out
    return out


@endpoint
async def get_media(request, ctx: StudioContext):
    items = await asyncio.to_thread(list_media, ctx)
    return JSONResponse({"media": items})


SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_upload_name(name: str) -> str:
    stem, ext = os.path.splitext(os.path.basename(name.replace("\\", "/")))
    stem = SAFE_NAME.sub("-", stem).strip(".-")[:80] or "upload"
    ext = SAFE_NAME.sub("", ext).lower()[:10]
    if media_kind(Path(f"x{ext}")) is None:
        raise ZoomdreamError(f"upload {S.quote(name)}: not a photo, clip or sound "
                             f"({', '.join(sorted(IMAGE_EXT | VIDEO_EXT | AUDIO_EXT))})")
    return stem + ext


def _claim(partial: Path, target: Path) -> None:
    """Give ``partial`` the name ``target`` unless that name exists (FileExistsError)."""
    try:
        os.link(partial, target)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: reserve the name, then move onto our own empty file
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        os.replace(partial, target)


@endpoint
async def upload(request, ctx: StudioContext):
    """POST /api/upload?name=FILE, the file as the body: saved under uploads/ with a safe, unique name."""
    name = request.query_params.get("name", "")
    safe = safe_upload_name(name)
    made = not (ctx.root / "uploads").is_dir()
    folder = ctx.folder("uploads")
    stem, ext = os.path.splitext(safe)
    partial = folder / f".{stem}.{secrets.token_hex(6)}.partial"
    written, saved = 0, None
    try:
        with open(partial, "xb") as f:
            async for chunk in request.stream():
                written += len(chunk)
                f.write(chunk)
        if written == 0:
            raise ZoomdreamError(f"upload {S.quote(name)}: empty body")
        for n in range(10000):
            target = folder / (safe if n == 0 else f"{stem}-{n}{ext}")
            try:
                _claim(partial, target)  # never replaces an existing file
                saved = target
                break
            except FileExistsError:
                continue
        else:
            raise ZoomdreamError(f"upload {S.quote(name)}: too many files of that name")
    finally:
        partial.unlink(missing_ok=True)
        if saved is None and made:  # refused (empty, over the cap, cut off): the folder goes as it came
            with contextlib.suppress(OSError):
                folder.rmdir()
    rel = ctx.relative(target)
    st = target.stat()
    item = {"path": rel, "kind": media_kind(target), "size": st.st_size}
    item.update(await asyncio.to_thread(_describe, str(target), st.st_size, st.st_mtime_ns))
    return JSONResponse(item, status_code=201)


@endpoint
async def gallery(request, ctx: StudioContext):
    """GET /api/gallery: finished renders under renders/ (newest first) with their sidecar's settings."""
    folder = ctx.root / "renders"
    items = []
    if folder.is_dir():
        for item in await asyncio.to_thread(list_media, ctx):
            if not item["path"].startswith("renders/") or "sidecar" not in item:
                continue
            try:
                sidecar = ctx.path(item["sidecar"])
                loaded = presets.load_preset(sidecar)
                item["settings"] = S.to_dict(loaded)
            except (NotFound, ZoomdreamError) as e:
                item["settings"], item["problem"] = None, str(e)
            item["mtime"] = ctx.path(item["path"]).stat().st_mtime
            items.append(item)
    items.sort(key=lambda x: -x["mtime"])
    return JSONResponse({"renders": items})


# ---------------------------------------------------------------- previews (in the worker process)
def _input(ctx: StudioContext, data: dict, kinds=("image", "video")) -> str:
    rel = data.get("input")
    if not isinstance(rel, str) or not rel:
        raise ZoomdreamError("input: expected a media path relative to the studio's folder")
    path = ctx.path(rel)
    if not path.is_file() or media_kind(path) not in kinds:
        raise ZoomdreamError(f"input: {S.quote(rel)} is not a {' or '.join(kinds)} file")
    return str(path)


def _animated_command(data: dict) -> str:
    command = data.get("command", "zoom")
    if command not in ("zoom", "video"):
        raise ZoomdreamError(f"command: expected zoom or video, got {S.quote(command)}")
    return command


@endpoint
async def preview(request, ctx: StudioContext):
    """POST /api/preview {input, settings, frame, size, command, audio, dream}: a PNG.

    The dream of the photo, or of source frame ``frame`` of a clip, with every schedule taken at
    frame ``frame`` of a ``command`` render (zoom by default; audio features from ``audio``).
    ``dream: false`` gives the source picture at that size. 409 when a newer preview superseded it.
    """
    data = await body_json(request)
    path = _input(ctx, data)
    settings = ctx.settings_from_json(data.get("settings"))
    size = _int(data, "size", 384, *PREVIEW_SIDES)
    frame = _int(data, "frame", 0, 0, S.MAX_FRAMES)
    command = "video" if data.get("command") == "video" else "zoom"
    audio = _input(ctx, {"input": data["audio"]}, ("audio", "video")) if data.get("audio") else None
    fps = None
    if media_kind(Path(path)) == "video":
        fps = (await asyncio.to_thread(_describe, path, *_stat_key(path))).get("fps")
    job = {"input": path, "settings": S.to_dict(settings), "size": size, "frame": frame, "command": command,
           "audio": audio, "fps": fps, "dream": data.get("dream", True) is not False}
    t0 = time.monotonic()
    reply = await ctx.worker.request("preview", job)
    return _worker_reply(reply, "image/png", t0)


@endpoint
async def motion(request, ctx: StudioContext):
    """POST /api/motion {input, command, settings, frames, size}: an MP4 of the camera alone (iterations 0)."""
    data = await body_json(request)
    command = _animated_command(data)
    path = _input(ctx, data, ("image",) if command == "zoom" else ("video",))
    settings = ctx.settings_from_json(data.get("settings"))
    job = {"input": path, "command": command, "settings": S.to_dict(settings),
           "frames": _int(data, "frames", 48, 1, MAX_MOTION_FRAMES), "size": _int(data, "size", 256, 16, 1024),
           "tmp": str(ctx.folder(f"{ctx.state_dir.name}/tmp"))}
    t0 = time.monotonic()
    reply = await ctx.worker.request("motion", job)
    return _worker_reply(reply, "video/mp4", t0)


def _worker_reply(reply: dict, media_type: str, t0: float) -> Response:
    if reply.get("superseded"):
        return _error(409, "superseded by a newer request")
    if "error" in reply:
        return _error(400, reply["error"], error_key(reply["error"]))
    return Response(reply["data"], media_type=media_type,
                    headers={"cache-control": "no-store", "x-seconds": f"{time.monotonic() - t0:.3f}"})


@endpoint
async def schedules(request, ctx: StudioContext):
    """POST /api/schedules {command, settings, frames, fps, audio}: every schedulable value per frame."""
    data = await body_json(request)
    command = _animated_command(data)
    settings = ctx.settings_from_json(data.get("settings"))
    n = _int(data, "frames", settings.zoom.frames if command == "zoom" else 72, 1, 100_000)
    fps = data.get("fps", settings.zoom.fps if command == "zoom" else 24.0)
    try:
        fps = S.Number(S.MIN_FPS, S.MAX_FPS)(fps)
    except S.Invalid as e:
        raise ZoomdreamError(f"fps: {e}") from None
    audio = None
    if data.get("audio"):
        audio = _input(ctx, {"input": data["audio"]}, ("audio", "video"))
    from zoomdream.settings.animation import Animation, features_used  # noqa: PLC0415

    features = None
    if audio is not None:
        reply = await ctx.worker.request("features", {"audio": audio, "fps": fps, "n": n})
        if "error" in reply:
            return _error(400, reply["error"])
        features = {k: v for k, v in reply["features"].items()}
    elif features_used(settings, command):
        pass  # Animation names the feature and the missing audio, as the command line does

    def evaluate():
        import numpy as np  # noqa: PLC0415

        anim = Animation(settings, kind=command, n=n, fps=fps,
                         features={k: np.asarray(v) for k, v in features.items()} if features else None)
        curves = {}
        for key, table in anim.tables.items():
            if table.ndim == 2:
                curves[f"{key}.x"] = table[:, 0].tolist()
                curves[f"{key}.y"] = table[:, 1].tolist()
            else:
                curves[key] = table.tolist()
        for name, table in anim.layer_tables.items():
            curves[f"layers.{name}"] = np.broadcast_to(table, (n,)).tolist()
        return curves, {k: anim.constant.get(k, False) for k in anim.tables}

    curves, constant = await asyncio.to_thread(evaluate)
    return JSONResponse({"frames": n, "fps": fps, "values": curves, "constant": constant,
                         "audio": features or {}})


# ---------------------------------------------------------------- jobs
@endpoint
async def create_job(request, ctx: StudioContext):
    data = await body_json(request)
    job = ctx.queue.create(data)
    return JSONResponse({"id": job.id, "job": job.public()}, status_code=201)


@endpoint
async def list_jobs(request, ctx: StudioContext):
    return JSONResponse({"jobs": [j.public() for j in ctx.queue.all()]})


@endpoint
async def get_job(request, ctx: StudioContext):
    return JSONResponse(ctx.queue.get(request.path_params["id"]).public())


@endpoint
async def cancel_job(request, ctx: StudioContext):
    job = ctx.queue.cancel(request.path_params["id"])
    return JSONResponse(job.public())


@endpoint
async def resume_job(request, ctx: StudioContext):
    job = ctx.queue.resume(request.path_params["id"])
    return JSONResponse(job.public())


@endpoint
async def job_events(request, ctx: StudioContext):
    """GET /api/jobs/ID/events: text/event-stream of ``progress`` events and a final ``state`` event."""
    job = ctx.queue.get(request.path_params["id"])

    async def stream():
        last = None
        while True:
            state = job.public()
            final = state["state"] in ("done", "failed", "cancelled")
            if state != last:
                kind = "state" if final else "progress"
                yield f"event: {kind}\ndata: {json.dumps(state)}\n\n"
                last = state
            if final:
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.2)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


@endpoint
async def info(request, ctx: StudioContext):
    from zoomdream.studio.server import live_module  # noqa: PLC0415

    return JSONResponse({"version": __version__, "root": ctx.root.name, "jobs": ctx.max_jobs,
                         "live": live_module() is not None, "max_upload": ctx.security.max_upload})


def routes() -> list[Route]:
    return [
        Route("/api/info", info),
        Route("/api/settings", get_settings),
        Route("/api/check", check_settings, methods=["POST"]),
        Route("/api/presets", list_presets),
        Route("/api/presets", save_preset, methods=["POST"]),
        Route("/api/presets/{name}", get_preset),
        Route("/api/media", get_media),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/gallery", gallery),
        Route("/api/preview", preview, methods=["POST"]),
        Route("/api/motion", motion, methods=["POST"]),
        Route("/api/schedules", schedules, methods=["POST"]),
        Route("/api/jobs", list_jobs),
        Route("/api/jobs", create_job, methods=["POST"]),
        Route("/api/jobs/{id}", get_job),
        Route("/api/jobs/{id}/events", job_events),
        Route("/api/jobs/{id}/cancel", cancel_job, methods=["POST"]),
        Route("/api/jobs/{id}/resume", resume_job, methods=["POST"]),
    ]
