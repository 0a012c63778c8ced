"""Live: an infinite zoom that runs continuously and is steered while it runs, and its take.

The loop is the zoom render's own frame step (:class:`zoomdream.render.zoom.ZoomLoop`), fed by values that
can change between frames: a ``set`` (``{"zoom.zoom": 1.035}``) is checked once when it arrives
(:func:`check_set`) and takes effect on the next frame the loop starts. Every change is written
into the take (:class:`Take`): a preset whose changed settings are keyframe schedules holding
each value from the frame it took effect, so ``zoomdream zoom PHOTO --preset take.yaml`` renders
the same performance; at the live size its frames are byte-identical to the live ones.

Two layers, so the studio's web server never imports TensorFlow:

- :class:`LiveLoop` makes frames in the calling thread (headless: tests, benchmarks).
- :class:`LiveWorker` runs a LiveLoop in a worker process: commands go in through a queue, JPEG
  frames and state come out through a pipe. In the worker, the loop thread only makes frames;
  JPEG encoding and sending run in another thread that takes the newest frame and drops the
  others, and the lossless recording (every frame, a PNG frame folder like ``zoomdream zoom -o
  folder`` writes) runs in a third through a small bounded queue.

Convention: frames are (H, W, 3) uint8 RGB; frame indices start at 0 at the photo (and again at
each restart, which begins a new take).
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import os
import queue
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from zoomdream import settings as S
from zoomdream.errors import ZoomdreamError
from zoomdream.settings import schedule
from zoomdream.settings.values import LAYER_WEIGHT

__all__ = ["LIVE_KEYS", "LIVE_SIZE", "LiveLoop", "LiveValues", "LiveWorker", "Take", "check_live", "check_set",
           "live_size", "record_folder"]

log = logging.getLogger("zoomdream")

LIVE_SIZE = 384  # px on the long side, unless a size is given
LIVE_KEYS = ("step", "zoom.zoom", "zoom.rotate", "zoom.pan", "zoom.center", "zoom.colour_lock")  # + layers.NAME
LAYERS = "layers"
PAIRS = ("zoom.pan", "zoom.center")
JPEG_QUALITY = 85
RECORD_QUEUE = 8  # frames waiting for their PNG; the loop waits when the disk falls this far behind
FPS_WINDOW = 2.0  # seconds of frames the reported rate is measured over


# ---------------------------------------------------------------- checks (no TensorFlow: the server uses them)
def live_size(photo_size: tuple[int, int], size=None) -> tuple[int, int]:
    """The live frame size (width, height): ``size`` as given, or the photo's aspect with ``size`` (default
    LIVE_SIZE) px on the long side; even sides."""
    if isinstance(size, (list, tuple)):
        try:
            return S.declarations()["zoom.size"].validate(list(size))
        except S.Invalid as e:
            raise ZoomdreamError(f"size: {e}") from None
    long = LIVE_SIZE if size is None else size
    if isinstance(long, bool) or not isinstance(long, int) or not 16 <= long <= S.MAX_SIDE:
        raise ZoomdreamError(f"size: expected [width, height] or a long side in 16..{S.MAX_SIDE} px, got {S.quote(size)}")
    w, h = photo_size
    scale = long / max(w, h)
    return max(16, 2 * round(w * scale / 2)), max(16, 2 * round(h * scale / 2))


def _schedules(settings: S.Settings) -> dict[str, Any]:
    """Every live setting's value in ``settings``: LIVE_KEYS and ``layers.NAME``."""
    out = {k: getattr(settings.dream if "." not in k else settings.zoom, k.rpartition(".")[2]) for k in LIVE_KEYS}
    out.update({f"{LAYERS}.{name}": w for name, w in settings.dream.layers.items()})
    return out


def check_live(settings: S.Settings) -> None:
    """Refuse settings a live loop cannot run: schedules of the soundtrack or of the frame count."""
    from zoomdream.settings.animation import check_settings, features_used, uses_frame_count  # noqa: PLC0415

    check_settings(settings)
    used = features_used(settings, "zoom")
    if used:
        raise ZoomdreamError(f"live: a schedule uses the audio feature '{min(used)}'; a live zoom has no "
                             f"soundtrack")
    if uses_frame_count(settings, "zoom"):
        raise ZoomdreamError("live: a schedule uses the frame count 'n'; a live zoom has no end")


def _single_expression(value, pair: bool) -> bool:
    """True when ``value`` is a number (pair) or one expression each, not keyframes: a live control may change it."""
    try:
        curves = schedule.parse_pair(value) if pair else (schedule.parse(value),)
    except ZoomdreamError:
        return False
    return all(len(c.keys) == 1 for c in curves)


def check_set(settings: S.Settings, updates) -> dict[str, Any]:
    """A ``set`` request checked once, against the take's start ``settings``: {key: normalised value}.

    Keys are LIVE_KEYS and ``layers.NAME`` (nested ``layers: {NAME: w}`` and ``zoom: {...}`` too); values are plain
    numbers (pairs for pan and centre). Raises ZoomdreamError with the command line's one-line message.
    """
    if not isinstance(updates, Mapping) or not updates:
        raise ZoomdreamError(f"set: expected a mapping of settings to values, got {S.quote(updates)}")
    flat = {}
    for key, value in updates.items():
        if key in (LAYERS, "zoom") and isinstance(value, Mapping):  # nested as in a preset: layers: {NAME: w}
            flat.update({f"{key}.{name}": w for name, w in value.items()})
        else:
            flat[key] = value
    current = _schedules(settings)
    out = {}
    for key, value in flat.items():
        if not isinstance(key, str):
            raise ZoomdreamError(f"set: keys are setting names, got {S.quote(key)}")
        if key.startswith(LAYERS + "."):
            name = key[len(LAYERS) + 1:]
            if settings.zoom.layers:
                raise ZoomdreamError(f"{key}: zoom.layers keyframes decide the layer weights of this take")
            if key not in current:
                raise ZoomdreamError(f"{key}: not a layer of this take (its layers: {', '.join(settings.dream.layers)})")
            try:
                value = LAYER_WEIGHT(value)
            except S.Invalid as e:
                raise ZoomdreamError(f"{key}: layer {name}: {e}") from None
        elif key in LIVE_KEYS:
            pair = key in PAIRS
            if isinstance(value, str) or (pair and isinstance(value, (list, tuple))
                                          and any(isinstance(v, str) for v in value)):
                raise ZoomdreamError(f"{key}: expected a number{' pair [x, y]' if pair else ''} (a live control "
                                     f"takes plain values), got {S.quote(value)}")
            try:
                value = S.check_value(key, value)
            except S.Invalid as e:
                raise ZoomdreamError(f"{key}: {e}") from None
            if isinstance(value, Mapping):
                raise ZoomdreamError(f"{key}: expected a number (a live control takes plain values), got keyframes")
        else:
            try:
                S.check_value(key, value)
            except S.Invalid as e:
                raise ZoomdreamError(f"{key}: {e}") from None
            raise ZoomdreamError(f"{key}: not a live control; live controls: {', '.join(LIVE_KEYS)}, layers.NAME")
        if not _single_expression(current[key], key in PAIRS):
            raise ZoomdreamError(f"{key}: this take's value is keyframed ({S.quote(current[key])}); "
                                 f"a live control changes a constant or a single expression")
        out[key] = tuple(float(v) for v in value) if key in PAIRS else float(value)
    return out


# ---------------------------------------------------------------- the take
def _text(v) -> str:
    return repr(float(v))


def _start_texts(value, pair: bool) -> tuple[str, ...]:
    """A constant or single-expression schedule as keyframe expression text, one per component."""
    if pair:
        if isinstance(value, str):
            return tuple(h.strip() for h in value.split("|"))
        return tuple(v.strip() if isinstance(v, str) else _text(v) for v in value)
    return (value.strip() if isinstance(value, str) else _text(value),)


def _number_or_text(text: str):
    try:
        return float(text)
    except ValueError:
        return text  # an expression


class Take:
    """A live performance: the settings at its start and every change from the frame it took effect.

    ``settings(frames)`` is the take as a preset: each changed setting becomes a keyframe schedule
    that holds every value exactly (two keys per change, ``f-1`` with the old value and ``f`` with the
    new one: linear between equal values is that value); ``zoom.frames`` is the frame count. Layer
    weights have no keyframe map of their own: when one is too long for a schedule string, every weight
    is written as ``zoom.layers`` keyframes instead.
    """

    def __init__(self, settings: S.Settings, *, input_name: str = ""):
        self.start = settings
        self.input_name = input_name
        self.changes: dict[str, list[tuple[int, Any]]] = {}
        self._start = _schedules(settings)

    def record(self, frame: int, updates: Mapping[str, Any]) -> None:
        """Changes (already checked) taking effect at ``frame``; a later change at the same frame wins."""
        for k, v in updates.items():
            self.changes.setdefault(k, []).append((frame, v))

    def current(self) -> dict[str, Any]:
        """The latest value of every changed setting."""
        return {k: c[-1][1] for k, c in self.changes.items()}

    def _keys(self, key: str, changes) -> list[dict[int, str]]:
        """Per component: {frame: expression text}, holding each value from its frame on."""
        pair = key in PAIRS
        starts = _start_texts(self._start[key], pair)
        out = []
        for c, start in enumerate(starts):
            keys, cur = {0: start}, start
            for f, v in changes:
                new = _text(v[c] if pair else v)
                if f > 0 and (f - 1) not in keys:
                    keys[f - 1] = cur  # the old value holds up to the frame before the change
                keys[f] = cur = new
            out.append(keys)
        return out

    def _schedule(self, key: str, changes) -> str:
        parts = [", ".join(f"{f}:({t})" for f, t in sorted(keys.items())) for keys in self._keys(key, changes)]
        return " | ".join(parts)

    def _value(self, key: str, changes):
        text = self._schedule(key, changes)
        if len(text) <= schedule.MAX_CHARS:
            return text
        keys = self._keys(key, changes)  # a long performance: the YAML keyframe map (no length limit)
        if key in PAIRS:
            return {f: [keys[0][f], keys[1][f]] for f in sorted(keys[0])}
        return {f: t for f, t in sorted(keys[0].items())}

    def _layer_keyframes(self) -> dict[int, dict[str, Any]]:
        """Every layer weight as ``zoom.layers`` keyframes (no length limit; each value held exactly: between
        equal keyframes the smoothstep is that value), the layers in the dream's order (the objective's)."""
        per = {}
        for name, start in self.start.dream.layers.items():
            key = f"{LAYERS}.{name}"
            per[name] = self._keys(key, self.changes[key])[0] if key in self.changes else {0: _start_texts(start, False)[0]}
        frames = {name: sorted(keys) for name, keys in per.items()}
        return {f: {name: _number_or_text(keys[frames[name][bisect.bisect_right(frames[name], f) - 1]])
                    for name, keys in per.items()}
                for f in sorted(set().union(*per.values()))}

    def settings(self, frames: int) -> S.Settings:
        """The take as settings for ``frames`` frames."""
        over: dict[str, Any] = {"zoom.frames": max(1, frames)}
        layers = dict(self.start.dream.layers)
        for key, changes in self.changes.items():
            if key.startswith(LAYERS + "."):
                layers[key[len(LAYERS) + 1:]] = self._schedule(key, changes)
            else:
                over[key] = self._value(key, changes)
        if any(len(v) > schedule.MAX_CHARS for v in layers.values() if isinstance(v, str)):
            over["zoom.layers"] = self._layer_keyframes()  # a long performance: the keyframes win over the layers
            layers = dict(self.start.dream.layers)
        over[LAYERS] = layers
        size = self.start.zoom.size
        over["description"] = (f"live take: {max(1, frames)} frames"
                               + (f" of {self.input_name}" if self.input_name else "")
                               + (f" at {size[0]}x{size[1]}" if size else ""))
        return S.merge(self.start, over)

    def yaml(self, frames: int) -> str:
        from zoomdream.settings import presets  # noqa: PLC0415

        return presets.dump(self.settings(frames))


# ---------------------------------------------------------------- the values a live frame is made with
class LiveValues:
    """The animated values of a live zoom: the start settings' schedules, with live changes held from their frame.

    Duck-types :class:`zoomdream.settings.animation.Animation` for :class:`zoomdream.render.zoom.ZoomLoop`. The start
    settings are evaluated in blocks (doubling) by an Animation, so every value the loop reads is the
    number the take's schedules give at that frame.
    """

    BLOCK = 256

    def __init__(self, settings: S.Settings):
        self.settings = settings
        self.fixed: dict[str, Any] = {}
        self.n = 0
        self._grow(self.BLOCK)

    def _grow(self, n: int) -> None:
        from zoomdream.settings.animation import Animation  # noqa: PLC0415

        self.base = Animation(self.settings, kind="zoom", n=n, fps=float(self.settings.zoom.fps))
        self.n = n

    def _anim(self, i: int):
        if i >= self.n:
            self._grow(max(2 * self.n, i + 1))
        return self.base

    def fix(self, updates: Mapping[str, Any]) -> None:
        """Hold these (checked) values from now on."""
        self.fixed.update(updates)

    def step(self, i: int) -> float:
        return self.fixed["step"] if "step" in self.fixed else self._anim(i).step(i)

    def colour_lock(self, i: int) -> float:
        fixed = self.fixed.get("zoom.colour_lock")
        return fixed if fixed is not None else self._anim(i).colour_lock(i)

    def motion(self, i: int):
        m = self._anim(i).motion(i)
        if not any(k in self.fixed for k in ("zoom.zoom", "zoom.rotate", "zoom.pan", "zoom.center")):
            return m
        f = self.fixed
        return dataclasses.replace(m, zoom=f.get("zoom.zoom", m.zoom), rotate=f.get("zoom.rotate", m.rotate),
                                   pan=f.get("zoom.pan", m.pan), center=f.get("zoom.center", m.center))

    @property
    def layer_keyframes(self) -> dict[str, np.ndarray]:
        return self.base.layer_keyframes

    def dream(self, i: int, base: S.DreamFrame) -> S.DreamFrame:
        return dataclasses.replace(base, step=self.step(i))

    def layers(self, i: int) -> dict[str, float] | None:
        anim = self._anim(i)
        fixed = {k[len(LAYERS) + 1:]: v for k, v in self.fixed.items() if k.startswith(LAYERS + ".")}
        if not fixed:
            return anim.layers(i)
        now = anim.layers(i)
        if now is None:
            now = anim.constant_layers()
        return {name: fixed.get(name, v) for name, v in now.items()}

    def constant_layers(self) -> dict[str, float]:
        return self.base.constant_layers()


# ---------------------------------------------------------------- the loop, in the calling thread
def record_folder(renders: Path) -> Path:
    """A new, empty frame folder ``renders/live-DATE-TIME[-k]`` with zoomdream's marker."""
    from zoomdream.fileio import DIR_MODE, mark_frame_folder  # noqa: PLC0415

    renders.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    stamp = datetime.now().strftime("live-%Y%m%d-%H%M%S")
    for k in range(1000):
        path = renders / (stamp if k == 0 else f"{stamp}-{k}")
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        mark_frame_folder(path)
        return path
    raise ZoomdreamError(f"{renders}: no free name for a recording")


class LiveLoop:
    """A live infinite zoom made frame by frame in the calling thread.

    ``next()`` makes the next frame with :class:`ZoomLoop`'s frame step; ``set(updates)`` holds
    checked values from the next frame on and returns that frame's index; ``restart()`` goes back
    to the photo with the current values as a new take's start.
    """

    def __init__(self, input, settings: S.Settings, *, size=None):
        from zoomdream.media.images import fit_size, load_image  # noqa: PLC0415

        check_live(settings)
        photo = load_image(input, max_size=settings.dream.max_size)
        self.size = live_size(photo.shape[1::-1], size)
        self.photo = fit_size(photo, self.size)  # exactly what `zoomdream zoom --size WxH` starts from
        self.input_name = Path(input).name
        self._begin(S.merge(settings, {"zoom.size": self.size, "zoom.pingpong": False}))

    def _begin(self, settings: S.Settings) -> None:
        from zoomdream.render.zoom import ZoomLoop  # noqa: PLC0415  (TensorFlow: in the worker only)

        self.take = Take(settings, input_name=self.input_name)
        self.values = LiveValues(settings)
        self.zoom = ZoomLoop(self.photo, settings, animation=self.values)
        self.frame = 0  # the index of the next frame
        self.prev: np.ndarray | None = None

    @property
    def settings(self) -> S.Settings:
        return self.take.start

    def set(self, updates: Mapping[str, Any]) -> int:
        """Hold ``updates`` (from :func:`check_set`) from the next frame on; returns that frame's index."""
        self.take.record(self.frame, updates)
        self.values.fix(updates)
        return self.frame

    def next(self) -> np.ndarray:
        """Make the next frame (uint8 (H, W, 3))."""
        out = self.zoom.frame(self.frame, self.prev)
        self.prev = out
        self.frame += 1
        return out

    def restart(self) -> None:
        """Back to the photo; the current values are the new take's start."""
        over = {k: v for k, v in self.take.current().items() if not k.startswith(LAYERS + ".")}
        layers = {**self.settings.dream.layers, **{k[len(LAYERS) + 1:]: v for k, v in self.take.current().items()
                                                    if k.startswith(LAYERS + ".")}}
        self._begin(S.merge(self.settings, {**over, LAYERS: layers}))

    def take_yaml(self) -> str:
        return self.take.yaml(self.frame)


# ---------------------------------------------------------------- the loop in a worker process
class _Latest:
    """A one-frame slot: a newer frame replaces one not yet taken (frames are dropped, never queued)."""

    def __init__(self):
        self.cond = threading.Condition()
        self.item = None
        self.closed = False

    def put(self, item) -> None:
        with self.cond:
            self.item = item
            self.cond.notify()

    def take(self):
        with self.cond:
            while self.item is None and not self.closed:
                self.cond.wait()
            item, self.item = self.item, None
            return item

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


def _encode_jpeg(frame: np.ndarray) -> bytes:
    import cv2  # noqa: PLC0415

    _, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return buf.tobytes()


def _worker_main(conn, commands, input, settings, size, renders) -> None:
    """The worker process: the loop thread here, the sender and the recorder in threads of their own."""
    from zoomdream.render.frameloop import signals_to_exceptions  # noqa: PLC0415

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    send_lock = threading.Lock()

    def send(msg) -> bool:
        try:
            with send_lock:
                conn.send(msg)
            return True
        except (OSError, EOFError, BrokenPipeError):
            return False

    state = {"frame": 0, "fps": 0.0, "state": "starting", "record": None, "size": None, "error": None,
             "times": {}}
    latest = _Latest()
    records: queue.Queue = queue.Queue(RECORD_QUEUE)

    def sender() -> None:
        sent = 0.0  # seconds the previous frame took to hand to the server
        while True:
            item = latest.take()
            if item is None:
                return
            i, frame, times = item
            t0 = time.perf_counter()
            jpeg = _encode_jpeg(frame)
            t1 = time.perf_counter()
            state["times"] = {**times, "encode": t1 - t0, "send": sent}
            if not send(("frame", i, jpeg, dict(state))):
                return
            sent = time.perf_counter() - t1

    def recorder() -> None:
        from zoomdream.media.images import save_png_fast  # noqa: PLC0415
        from zoomdream.render.framecache import FRAME_PATTERN  # noqa: PLC0415

        while True:
            item = records.get()
            if item is None:
                return
            folder, i, frame = item
            try:
                save_png_fast(folder / (FRAME_PATTERN % i), frame)
            except ZoomdreamError as e:
                state["error"] = str(e)

    threads = [threading.Thread(target=sender, daemon=True, name="live-send"),
               threading.Thread(target=recorder, daemon=True, name="live-record")]
    for t in threads:
        t.start()
    loop = folder = None
    try:
        with signals_to_exceptions():
            loop = LiveLoop(input, settings, size=size)
            state["size"] = list(loop.size)
            if renders is not None:
                folder = record_folder(Path(renders))
                state["record"] = str(folder)
            paused, made = False, []
            send(("state", dict(state, state="running")))
            while True:
                # commands: drained before each frame, so a set lands on the next frame the loop starts
                try:
                    cmd = commands.get() if paused else commands.get_nowait()
                except queue.Empty:
                    cmd = None
                if cmd is not None:
                    kind = cmd[0]
                    if kind == "stop":
                        break
                    if kind == "set":
                        try:
                            send(("ack", cmd[1], loop.set(cmd[2]), None))
                        except ZoomdreamError as e:
                            send(("ack", cmd[1], None, str(e)))
                    elif kind == "pause":
                        paused = True
                    elif kind == "resume":
                        paused = False
                    elif kind == "restart":
                        if folder is not None:
                            _write_take(folder, loop)
                            folder = record_folder(Path(renders))
                            state["record"] = str(folder)
                        loop.restart()
                    elif kind == "take":
                        send(("take", cmd[1], loop.take_yaml(), loop.frame))
                    state["state"] = "paused" if paused else "running"
                    send(("state", dict(state, frame=loop.frame)))
                    continue  # drain every waiting command before the next frame
                t0 = time.perf_counter()
                i = loop.frame
                frame = loop.next()
                t1 = time.perf_counter()
                if folder is not None:
                    records.put((folder, i, frame))  # blocks only when the disk is RECORD_QUEUE frames behind
                now = time.perf_counter()
                made.append(now)
                while made and made[0] < now - FPS_WINDOW:
                    made.pop(0)
                state["frame"] = loop.frame
                state["fps"] = (len(made) - 1) / (made[-1] - made[0]) if len(made) > 1 and made[-1] > made[0] else 0.0
                latest.put((i, frame, {"make": t1 - t0, "record": now - t1}))
    except (KeyboardInterrupt, Exception) as e:
        msg = str(e) if isinstance(e, ZoomdreamError) else f"{type(e).__name__}: {e}"
        if not isinstance(e, KeyboardInterrupt):
            state["error"] = msg
            log.debug("live worker failed", exc_info=True)
    except BaseException as e:  # noqa: BLE001  (Terminated: SIGTERM stops the loop as asked)
        log.debug("live worker: %s", type(e).__name__)
    finally:
        latest.close()
        records.put(None)
        for t in threads:
            t.join(timeout=30)
        final = {**state, "state": "failed" if state["error"] else "stopped"}
        if loop is not None:
            final["frame"] = loop.frame
            if folder is not None:
                _write_take(folder, loop)
            send(("take", None, loop.take_yaml(), loop.frame))
        send(("state", final))
        conn.close()


def _write_take(folder: Path, loop: LiveLoop) -> None:
    """The take beside its recording: ``FOLDER.take.yaml``."""
    from zoomdream.fileio import write_text_atomic  # noqa: PLC0415

    write_text_atomic(folder.with_name(folder.name + ".take.yaml"), loop.take_yaml())


class LiveWorker:
    """A live loop in a worker process (the caller never imports TensorFlow).

    Commands: :meth:`set` (checked with :func:`check_set` first), :meth:`pause`, :meth:`resume`,
    :meth:`restart`, :meth:`stop`. Frames and state arrive in a reader thread: ``latest`` is
    ``(index, jpeg bytes)`` of the newest frame, ``state`` the loop's state; ``on_frame()`` is
    called (in the reader thread) after each frame arrives.
    """

    def __init__(self, input, settings: S.Settings, *, size=None, renders: Path | None = None, on_frame=None):
        import multiprocessing as mp  # noqa: PLC0415

        check_live(settings)
        self.settings = settings
        ctx = mp.get_context("spawn")
        self.commands = ctx.Queue()
        receive, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_worker_main, name="zoomdream-live", daemon=True,
                                args=(send, self.commands, os.fspath(input), settings, size,
                                      None if renders is None else os.fspath(renders)))
        self.proc.start()
        send.close()
        self._conn = receive
        self.on_frame = on_frame
        self.latest: tuple[int, bytes] | None = None
        self.frames_received = 0
        self.state: dict = {"state": "starting", "frame": 0, "fps": 0.0, "record": None, "size": None,
                            "error": None, "times": {}}
        self.take_text: str | None = None
        self._replies: dict[int, Any] = {}
        self._cond = threading.Condition()
        self._token = 0
        self._reader = threading.Thread(target=self._read, daemon=True, name="live-read")
        self._reader.start()

    # -------------------------------------------------------- the reader thread
    def _read(self) -> None:
        while True:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                break
            kind = msg[0]
            with self._cond:
                if kind == "frame":
                    _, i, jpeg, state = msg
                    self.latest = (i, jpeg)
                    self.frames_received += 1
                    self.state.update({k: v for k, v in state.items() if k != "state"})
                elif kind == "state":
                    self.state.update(msg[1])
                elif kind == "ack":
                    self._replies[msg[1]] = (msg[2], msg[3])
                elif kind == "take":
                    self.take_text = msg[2]
                    if msg[1] is not None:
                        self._replies[msg[1]] = (msg[2], msg[3])
                self._cond.notify_all()
            if kind == "frame" and self.on_frame is not None:
                self.on_frame()
        with self._cond:
            if self.state.get("state") not in ("stopped", "failed"):
                self.state["state"] = "failed"
                self.state["error"] = self.state.get("error") or "the live worker ended unexpectedly"
            self._cond.notify_all()

    # -------------------------------------------------------- commands
    @property
    def alive(self) -> bool:
        return self._reader.is_alive()

    def _ask(self, kind: str, *args, timeout: float):
        with self._cond:
            self._token += 1
            token = self._token
        self.commands.put((kind, token, *args))
        with self._cond:
            self._cond.wait_for(lambda: token in self._replies or not self.alive, timeout=timeout)
            return self._replies.pop(token, None)

    def set(self, updates: Mapping[str, Any], *, timeout: float = 60.0) -> int | None:
        """Send checked ``updates``; returns the frame they take effect on (None if no answer in time).
        Raises ZoomdreamError when the take cannot hold them."""
        reply = self._ask("set", dict(updates), timeout=timeout)
        if reply is None:
            return None
        frame, error = reply
        if error:
            raise ZoomdreamError(error)
        return frame

    def take(self, *, timeout: float = 60.0) -> str | None:
        """The take as preset YAML (the last one when the loop has ended)."""
        if self.alive:
            reply = self._ask("take", timeout=timeout)
            if reply is not None:
                return reply[0]
        return self.take_text

    def pause(self) -> None:
        self.commands.put(("pause",))

    def resume(self) -> None:
        self.commands.put(("resume",))

    def restart(self) -> None:
        self.commands.put(("restart",))

    def wait_frame(self, after: int, timeout: float) -> bool:
        """Wait until more than ``after`` frames have arrived (or the loop ended)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.frames_received > after or not self.alive, timeout=timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop (its recording and take are finished first); the process is ended if it does not stop."""
        if self.proc.is_alive():
            self.commands.put(("stop",))
            self.proc.join(timeout)
            if self.proc.is_alive():
                self.proc.terminate()
                self.proc.join(5)
        self._reader.join(timeout=5)
