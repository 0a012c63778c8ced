"""The preview worker: one spawned process that keeps the network loaded between previews.

The server sends ``(id, kind, payload)`` over a pipe and awaits the reply with the same id.
Kinds: ``preview`` (a PNG of the dream of a photo or of one frame of a clip), ``motion`` (an
MP4 of the camera alone, ``--iterations 0``) and ``features`` (a soundtrack's audio features
per frame). A newer ``preview`` supersedes one still running: the worker looks at its pipe
between gradient steps and drops the older request, which is answered ``{"superseded": True}``.

TensorFlow is imported in the worker only (the server process never imports it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import itertools
import logging
import shutil
import tempfile
import threading
from pathlib import Path

__all__ = ["PreviewWorker", "worker_main"]

SUPERSEDING = ("preview", "motion")


class PreviewWorker:
    """The server's handle on the worker process (started on first use, restarted if it died)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.proc = None
        self.conn = None
        self.lock = threading.Lock()
        self.pending: dict[int, tuple] = {}
        self.ids = itertools.count(1)

    def _ensure(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            return
        import multiprocessing  # noqa: PLC0415

        mp = multiprocessing.get_context("spawn")
        parent, child = mp.Pipe()
        self.proc = self.ctx.start_process(worker_main, child)
        child.close()
        self.conn = parent
        threading.Thread(target=self._read, args=(parent,), daemon=True, name="studio-worker-reader").start()

    def _read(self, conn) -> None:
        while True:
            try:
                rid, reply = conn.recv()
            except (EOFError, OSError, TypeError, ValueError):  # the worker ended, or stop() closed our end
                break
            with self.lock:
                waiter = self.pending.pop(rid, None)
            if waiter is not None:
                loop, fut = waiter
                loop.call_soon_threadsafe(_settle, fut, reply)
        with self.lock:  # the worker died: every waiting request gets an answer
            waiting, self.pending = self.pending, {}
        for loop, fut in waiting.values():
            loop.call_soon_threadsafe(_settle, fut, {"error": "the preview worker stopped; try again"})

    async def request(self, kind: str, payload: dict) -> dict:
        """Send one request and await its reply (``preview`` and ``motion`` supersede older ones of their kind)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self.lock:
            self._ensure()
            rid = next(self.ids)
            self.pending[rid] = (loop, fut)
            self.conn.send((rid, kind, payload))
        return await fut

    def warm(self) -> None:
        """Start the worker now and have it load the default look while the page opens."""
        with self.lock:
            self._ensure()
            self.conn.send((next(self.ids), "warm", {}))  # its reply has no waiter: dropped

    def stop(self) -> None:
        with self.lock:
            proc, conn, self.proc, self.conn = self.proc, self.conn, None, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send((0, "stop", {}))
            conn.close()
        if proc is not None:
            proc.join(3)
            if proc.is_alive():
                proc.terminate()
                proc.join(3)


def _settle(fut, reply) -> None:
    if not fut.done():
        fut.set_result(reply)


# ---------------------------------------------------------------- in the worker process
class Superseded(Exception):
    pass


class _Inbox:
    """The worker's pipe with a look-ahead queue, so a running preview can see a newer one waiting."""

    def __init__(self, conn):
        self.conn, self.waiting = conn, collections.deque()

    def get(self):
        return self.waiting.popleft() if self.waiting else self.conn.recv()

    def drain(self) -> None:
        while self.conn.poll():
            self.waiting.append(self.conn.recv())

    def newer(self, kind: str) -> bool:
        self.drain()
        return any(k == kind for _, k, _ in self.waiting)


def worker_main(conn) -> None:
    """The worker's loop: answer requests one at a time until told to stop or the pipe closes."""
    import signal  # noqa: PLC0415

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which stops us
    log = logging.getLogger("zoomdream")
    log.handlers[:] = [logging.NullHandler()]
    log.propagate = False
    inbox = _Inbox(conn)
    models: dict = {}
    while True:
        try:
            rid, kind, payload = inbox.get()
        except (EOFError, OSError):
            return
        if kind == "stop":
            return
        if kind in SUPERSEDING and inbox.newer(kind):
            conn.send((rid, {"superseded": True}))
            continue
        try:
            reply = HANDLERS[kind](payload, inbox=inbox, kind=kind, models=models)
        except Superseded:
            reply = {"superseded": True}
        except Exception as e:  # noqa: BLE001  (ZoomdreamError and anything else: one line back to the page)
            from zoomdream.errors import ZoomdreamError  # noqa: PLC0415

            reply = {"error": str(e) if isinstance(e, ZoomdreamError) else f"internal error: {type(e).__name__}: {e}"}
        try:
            conn.send((rid, reply))
        except (OSError, BrokenPipeError):
            return


def _source(payload: dict):
    """The photo, or frame ``frame`` of a clip, at ``size`` px on the long side (uint8 RGB)."""
    from zoomdream.media import images  # noqa: PLC0415
    from zoomdream.media.probe import probe  # noqa: PLC0415
    from zoomdream.media.read import iter_frames  # noqa: PLC0415

    path, size = payload["input"], payload["size"]
    if Path(path).suffix.lower() in images.IMAGE_EXTENSIONS:
        image = images.load_image(path)
    else:
        info = probe(path)
        frame = min(payload.get("frame", 0), max(0, info.n_frames - 1))
        image = next(iter(iter_frames(info, start=frame / float(info.fps), end=None)))
    h, w = image.shape[:2]
    if max(h, w) != size:
        import cv2  # noqa: PLC0415

        scale = size / max(h, w)
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    return image


def _png(image) -> bytes:
    from PIL import Image  # noqa: PLC0415

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _preview(payload: dict, *, inbox: _Inbox, kind: str, models: dict) -> dict:
    """The dream of one picture with every schedule taken at frame ``frame`` (audio features too, given a sound)."""
    import dataclasses  # noqa: PLC0415

    from zoomdream.dream import dream_image  # noqa: PLC0415
    from zoomdream.render.frameloop import animation, load_backbone_and_objective  # noqa: PLC0415
    from zoomdream.settings import presets  # noqa: PLC0415

    image = _source(payload)
    if not payload.get("dream", True):
        return {"data": _png(image)}
    settings = presets.from_dict(payload["settings"], source="settings")
    frame, command = payload.get("frame", 0), payload.get("command", "zoom")
    if command == "video":
        n, fps = frame + 1, payload.get("fps") or 24.0
    else:
        n, fps = max(frame + 1, settings.zoom.frames), settings.zoom.fps
    audio = payload.get("audio")
    anim = animation(settings, kind=command, n=n, fps=fps, audio=(audio, 0.0) if audio else None)
    d = dataclasses.replace(settings.dream, step=anim.step(frame), layers=anim.constant_layers())
    key = _model_key(d)
    if key not in models:
        models.clear()  # one look at a time: memory stays flat
        models[key] = load_backbone_and_objective(dataclasses.replace(settings, dream=d))
    backbone, objective = models[key]
    weights = anim.layers(frame)
    if weights is not None:
        objective = objective.with_weights(weights)

    def check(_steps: int) -> None:
        if inbox.newer(kind):
            raise Superseded()

    result = dream_image(image, settings=d, backbone=backbone, objective=objective, progress=check)
    return {"data": _png(result)}


def _motion(payload: dict, *, inbox: _Inbox, kind: str, models: dict) -> dict:
    import dataclasses  # noqa: PLC0415

    from zoomdream import settings as S  # noqa: PLC0415
    from zoomdream.settings import presets  # noqa: PLC0415

    settings = presets.from_dict(payload["settings"], source="settings")
    settings = S.merge(settings, {"iterations": 0})
    size, frames = payload["size"], payload["frames"]
    tmp = Path(tempfile.mkdtemp(prefix="motion-", dir=payload["tmp"]))
    out = tmp / "motion.mp4"

    def check(_k: int) -> None:
        if inbox.newer(kind):
            raise Superseded()

    try:
        if payload["command"] == "zoom":
            from PIL import Image  # noqa: PLC0415

            from zoomdream.render.zoom import render_zoom  # noqa: PLC0415

            with Image.open(payload["input"]) as im:
                w, h = im.size
            scale = size / max(w, h)
            dims = (max(16, round(w * scale / 2) * 2), max(16, round(h * scale / 2) * 2))
            settings = dataclasses.replace(settings, zoom=dataclasses.replace(
                settings.zoom, frames=frames, size=dims, pingpong=False))
            render_zoom(payload["input"], out, settings=settings, quiet=True, crf=23, on_frame=check)
        else:
            from zoomdream.render.video import render_video  # noqa: PLC0415

            settings = S.merge(settings, {"max_size": size})
            render_video(payload["input"], out, settings=settings, preview=frames, quiet=True, crf=23,
                         on_frame=check)
        return {"data": out.read_bytes()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # our own temporary folder


def _features(payload: dict, **_) -> dict:
    from zoomdream.audio import frame_features  # noqa: PLC0415

    feats = frame_features(payload["audio"], fps=float(payload["fps"]), n=int(payload["n"]))
    return {"features": {k: [round(float(x), 4) for x in v] for k, v in feats.items()}}


def _warm(payload: dict, *, models: dict, **_) -> dict:
    """Import TensorFlow and load the default look's network, so the first real preview is quicker."""
    import dataclasses  # noqa: PLC0415

    from zoomdream.render.frameloop import load_backbone_and_objective  # noqa: PLC0415
    from zoomdream.settings import presets  # noqa: PLC0415
    from zoomdream.settings.animation import still_dream  # noqa: PLC0415

    settings = presets.load_preset("default")
    settings = dataclasses.replace(settings, dream=still_dream(settings.dream))
    models[_model_key(settings.dream)] = load_backbone_and_objective(settings)
    return {"ok": True}


def _model_key(d) -> tuple:
    """What the network and objective of a preview depend on (the worker keeps one at a time);
    layer weights are not in it: a weight that changes is given to the objective per preview."""
    return (d.model, d.weights, d.precision, tuple(sorted(d.layers)), repr(d.channels), d.guide, d.guide_weight)


HANDLERS = {"preview": _preview, "motion": _motion, "features": _features, "warm": _warm}

