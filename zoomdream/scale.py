"""Scale-out: one video rendered by many worker processes or a Ray cluster, without seams.

Each video frame carries the previous frame's flow-warped dream, so frames cannot be
handed out one by one. The clip is planned into chunks instead:

1) scene cuts split it into shots (the carried dream is reset at a cut anyway);
2) each shot is split into the fewest chunks of at most ``chunk`` frames, of near-equal size;
3) a chunk that starts mid-shot starts dreaming ``warmup + fade`` frames early: the first
   ``warmup`` are dropped, so the dream has settled; the next ``fade`` are dreamed by both this
   chunk and the one before, and the output cross-fades from the earlier chunk's frames to this
   one's, so the seam is a short dissolve instead of a jump.

Why both: a dream carried frame to frame has a long memory. It keeps re-amplifying the patterns
it carries, so a chunk that starts afresh mid-shot converges to the sequential dream only slowly
(measured on a 24 fps pan with the default preset: still ~7 levels apart after 8 warm-up frames,
3.5x the frame-to-frame flicker at the seam). A few warm-up frames let the fresh start settle;
the cross-fade spreads the remaining difference over ``fade`` frames, below the flicker inside
a chunk (see README: Scale-out, and benchmarks/bench_scale.py).

Ray actors (one per worker process, each keeping the backbone and the compiled gradient step
for its lifetime) dream chunks with ``render.dream_frames`` and stream the frames back through
Ray's object store, one at a time. The driver owns the frame cache, the encoder and the audio
mux, so the output, resume and atomic-write guarantees of ``render_video`` hold unchanged. A
worker that dies is restarted by Ray and its chunk retried; a resumed run skips chunks already
complete.

Determinism: the plan depends on the clip, the settings, ``chunk``, ``warmup`` and ``fade``
only, never on the worker count, and every worker runs TensorFlow on ``WORKER_CPUS`` threads,
so the same command gives the same frames with 1, 2 or 64 workers (on nodes of one CPU type;
other kernels may round differently). The first chunk of each shot, and every chunk whose
warm-up reaches back to the start of its shot, is byte-identical to a sequential run. The other
chunk starts are *seams*; they are measured at the end with the same added-flicker metric as
the frames inside the chunks, and reported.

Convention: frames are (H, W, 3) uint8 RGB; frame indices start at 0 (frame i is source time
``start + i / fps``); ranges are half-open, ``first <= i < stop``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import socket
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .animation import carries
from .errors import Interrupted, Terminated, ZoomdreamError
from .settings import Settings

__all__ = ["DEFAULT_CHUNK", "DEFAULT_FADE", "DEFAULT_WARMUP", "Chunk", "find_cuts", "plan_segments",
           "render_video_ray"]

log = logging.getLogger("zoomdream")

DEFAULT_CHUNK = 48  # most frames one worker dreams in one go (2 s at 24 fps); smaller = more parallel, more overhead
DEFAULT_WARMUP = 2  # frames dreamed and dropped before a mid-shot chunk, so its fresh start settles
DEFAULT_FADE = 6  # frames over which the output cross-fades from one chunk's dream into the next one's
WORKER_CPUS = 1  # CPUs Ray reserves per worker = TensorFlow threads per worker; fixed so frames don't depend on it
MAX_RETRIES = 3  # a worker that dies is restarted, and its chunk retried, this many times before the run fails
CONNECT_SECONDS = 5.0  # how long a --ray-address host:port may take to accept a TCP connection
POLL_SECONDS = 0.5  # the driver wakes at least this often, so Ctrl-C and SIGTERM are handled promptly
ENV_PREFIX = "ZOOMDREAM_"  # driver environment variables forwarded to the workers (test hooks)
KILL_WORKER_ENV = "ZOOMDREAM_TEST_KILL_WORKER"  # tests: "FRAME:MARKER": a worker exits before yielding FRAME, once
RAY_INSTALL = "pip install 'zoomdream[ray]'"
RAY_NOTE_CHARS = 200  # a Ray notice (worker died, task retried) is cut to this length in our log
FADE_FOLDER = "fade"  # in the work folder: both chunks' versions of each cross-faded frame


# ---------------------------------------------------------------- the plan (pure)
@dataclass(frozen=True)
class Chunk:
    """Frames ``first <= i < stop`` of the output, dreamed by one worker in one pass.

    The worker dreams afresh from ``warmup_from``: frames before ``fade_from`` are dropped,
    frames ``fade_from <= i < first`` are cross-faded with the previous chunk's frames (which
    hold the output up to ``first``), and frames from ``first`` on are this chunk's alone.
    """

    first: int  # first frame that is this chunk's alone
    stop: int  # one past its last frame
    warmup_from: int  # first dreamed frame; == shot when dreaming from the shot start (exact, no seam)
    fade_from: int  # first frame handed back: first - fade, or first when there is no cross-fade
    shot: int  # first frame of the shot (0 or a scene cut); dreaming from there matches a sequential run exactly

    @property
    def warmup(self) -> int:
        """Frames dreamed and dropped."""
        return self.fade_from - self.warmup_from

    @property
    def fade(self) -> int:
        """Frames cross-faded with the previous chunk."""
        return self.first - self.fade_from

    @property
    def seam(self) -> bool:
        """True when the chunk starts from a fresh dream mid-shot, so it only approximates a sequential run."""
        return self.warmup_from > self.shot


def plan_segments(n_frames: int, cut_frames, *, chunk: int = DEFAULT_CHUNK, warmup: int = DEFAULT_WARMUP,
                  fade: int = DEFAULT_FADE) -> list[Chunk]:
    """Split frames ``0 <= i < n_frames`` into chunks that can be dreamed independently.

    Scene cuts (frame indices where a new shot starts) split the clip into shots; each shot
    becomes the fewest chunks of at most ``chunk`` frames, of near-equal size (sizes differ by
    at most one, so no tiny tail chunk pays a full warm-up). A chunk that starts mid-shot is
    dreamed from ``first - fade - warmup`` (the fade no longer than the previous chunk). When
    that reaches back to the shot start, it is dreamed from the shot start instead: before a cut
    the carried dream is reset anyway, so those frames come out exactly as in a sequential run,
    and there is no seam and no fade. The plan depends on nothing else (not on the worker count).

    Example: 10 frames, no cuts, chunk 4, warm-up 1, fade 1 -> [0, 3); [3, 6) dreamed from 1,
    frame 2 cross-faded; [6, 10) dreamed from 4, frame 5 cross-faded. With warm-up 2, [3, 6) is
    dreamed from 0 instead: exact, no seam.
    """
    if n_frames < 0 or chunk < 1 or warmup < 0 or fade < 0:
        raise ValueError(f"expected n_frames >= 0, chunk >= 1, warmup >= 0, fade >= 0. "
                         f"Got: {n_frames}, {chunk}, {warmup}, {fade}")
    cuts = sorted(set(int(c) for c in cut_frames))
    if cuts and not 0 <= cuts[0] <= cuts[-1] < n_frames:
        raise ValueError(f"cut frames must lie in 0..{n_frames - 1}. Got: {cuts}")
    starts = sorted({0, *cuts}) if n_frames else []
    plan = []
    for shot, end in zip(starts, starts[1:] + [n_frames]):
        pieces = -(-(end - shot) // chunk)  # ceil: the fewest chunks of <= chunk frames
        bounds = [shot + (end - shot) * k // pieces for k in range(pieces + 1)]
        for prev, a, b in zip([shot] + bounds, bounds, bounds[1:]):
            k = min(fade, a - prev)  # the cross-faded frames lie inside the previous chunk
            begin = a - k - warmup
            plan.append(Chunk(a, b, shot, a, shot) if begin <= shot else Chunk(a, b, begin, a - k, shot))
    return plan


def find_cuts(info, *, settings: Settings, start: float = 0.0, end: float | None = None,
              max_frames: int | None = None, progress=None) -> list[int]:
    """Frame indices where a sequential render would start the dream afresh (scene cuts).

    One decode pass at the render size, with the very test ``render_video`` applies
    (``flow.scene_cut_score(prev, cur) > settings.video.scene_cut``) to the very same
    frames, so both agree on every cut. None when nothing is carried (``blend`` 0) or cuts are
    off (``scene_cut`` >= 1). ``progress(1)`` is called per frame.
    """
    from . import flow, media  # noqa: PLC0415

    v = settings.video
    if not carries(settings) or v.scene_cut >= 1:
        return []
    cuts, prev = [], None
    frames = media.iter_frames(info, start=start, end=end, max_size=settings.dream.max_size, max_frames=max_frames)
    try:
        for i, src in enumerate(frames):
            if prev is not None and flow.scene_cut_score(prev, src) > v.scene_cut:
                cuts.append(i)
            prev = src
            if progress is not None:
                progress(1)
    finally:
        frames.close()
    return cuts


# ---------------------------------------------------------------- the worker (runs inside Ray)
class _DreamWorker:
    """The body of a Ray actor: one per worker process, so the backbone and the compiled step
    (cached per process by ``backbones`` and ``dream.GradientStep``) are built once, not per chunk."""

    def __init__(self, threads: int):
        from ._tf import tf  # noqa: PLC0415

        t = tf()
        # The env vars set by the driver already did this; set it again in case they are not read.
        with contextlib.suppress(RuntimeError):  # raised once TensorFlow has run an op: too late, harmless
            t.config.threading.set_intra_op_parallelism_threads(threads)
            t.config.threading.set_inter_op_parallelism_threads(threads)

    def dream(self, info, settings: Settings, chunk: Chunk, start: float, end: float | None, mask, audio=None):
        """Yield ``(i, frame, added_flicker)`` for ``chunk.fade_from <= i < chunk.stop`` (a Ray streaming generator).

        Convention: frame is (H, W, 3) uint8 RGB at the render size; added flicker is in 0..255
        levels against the frame before it in this chunk (nan for the first).
        """
        from .render import dream_frames  # noqa: PLC0415

        _check_reachable(info.path, mask, settings.dream.guide, settings.dream.weights, audio)
        kill_at, marker = _kill_hook()
        # Flows are shared through the per-clip flow cache: fresh and cached flows are rounded alike
        # (render._VideoLoop._flows), so a frame never depends on which worker cached a flow first.
        for i, frame, flicker in dream_frames(info, settings, first=chunk.fade_from, stop=chunk.stop,
                                              warmup=chunk.warmup, start=start, end=end, mask=mask,
                                              audio=audio):
            if i == kill_at and not os.path.exists(marker):
                Path(marker).touch()
                os._exit(1)  # a worker dying mid-chunk, as an OOM kill would: no cleanup, no exception
            yield i, frame, flicker


def _check_reachable(*paths) -> None:
    from .backbones import RANDOM  # noqa: PLC0415

    for p in paths:
        if p and p != RANDOM and not os.path.exists(p):
            raise ZoomdreamError(f"{p}: not found on Ray node {socket.gethostname()}; every node needs the input, "
                                 f"mask, guide and weights at the same path (a shared filesystem)")


def _kill_hook() -> tuple[int, str]:
    frame, _, marker = os.environ.get(KILL_WORKER_ENV, "").partition(":")
    return (int(frame), marker) if frame and marker else (-1, "")


def _absolute(settings: Settings) -> Settings:
    """Settings with file paths made absolute: workers may run in another folder (or on another node)."""
    from .backbones import RANDOM  # noqa: PLC0415

    d = settings.dream
    guide = d.guide and os.path.abspath(d.guide)
    weights = d.weights if d.weights in (None, RANDOM) else os.path.abspath(d.weights)
    return dataclasses.replace(settings, dream=dataclasses.replace(d, guide=guide, weights=weights))


# ---------------------------------------------------------------- Ray plumbing (driver side)
def _import_ray():
    try:
        import ray  # noqa: PLC0415  (optional dependency)
    except ImportError:
        raise ZoomdreamError(f"--workers and --ray-address need Ray: {RAY_INSTALL}") from None
    return ray


@contextlib.contextmanager
def _ray_session(ray, *, workers: int | None, address: str | None):
    """Connect to Ray and yield; start a quiet local Ray if none is running and no address is given.

    A Ray that was already initialised (by the caller) is used as is and left running; one
    started or connected here is shut down on the way out, which stops every worker process.
    """
    if ray.is_initialized():
        yield
        return
    if address:
        _check_listening(address)
    in_main = _in_main_thread()
    term = signal.getsignal(signal.SIGTERM) if in_main else None
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        else:
            ray.init(num_cpus=(workers or os.cpu_count() or 1) * WORKER_CPUS, include_dashboard=False,
                     log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError) as e:  # no cluster there, or one of another Ray version
        where = f"--ray-address {address}" if address else "local Ray"
        raise ZoomdreamError(f"{where}: cannot start or connect to Ray ({' '.join(str(e).split())}); start a "
                             f"cluster with `ray start --head`, or check the address") from None
    finally:
        if in_main and term is not None:  # ray.init installs its own SIGTERM handler; ours stops cleanly
            signal.signal(signal.SIGTERM, term)
    try:
        yield
    finally:
        ray.shutdown()


def _check_listening(address: str) -> None:
    """Fail fast on a ``host:port`` where nothing listens: Ray itself would retry for minutes, logging each try."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():  # "auto", "ray://...": Ray resolves those itself
        return
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as e:
        raise ZoomdreamError(f"--ray-address {address}: nothing answers there ({e.strerror or e}); start a cluster "
                             f"with `ray start --head` on that machine, or check the address") from None


def _in_main_thread() -> bool:
    import threading  # noqa: PLC0415

    return threading.current_thread() is threading.main_thread()


class _RayNotices:
    """Route Ray's driver-side notices (a worker died, a task is retried) to our logger.

    Ray prints them to stdout from a background thread, several lines each and with no switch
    to turn them off; we log each as one short note instead, and drop them once ``muted`` (set
    when we kill our own workers, which Ray would report as failures). This swaps a private Ray
    function while the context is open; on a Ray without it, Ray's own printing stays.
    """

    def __init__(self):
        self.muted = False
        self._module = self._original = None

    def __enter__(self):
        try:
            from ray._private import worker as ray_worker  # noqa: PLC0415

            self._module, self._original = ray_worker, ray_worker.print_to_stdstream
        except (ImportError, AttributeError):
            return self
        self._module.print_to_stdstream = self._to_log
        return self

    def __exit__(self, *exc):
        if self._module is not None:
            self._module.print_to_stdstream = self._original

    def _to_log(self, data, *args, **kwargs):
        if data.get("pid") != "raylet":
            return self._original(data, *args, **kwargs)
        for line in data.get("lines", ()) if not self.muted else ():
            text = " ".join(str(line).split())
            log.warning("ray: %s", text if len(text) <= RAY_NOTE_CHARS else text[:RAY_NOTE_CHARS - 3] + "...")
        return None


def _worker_env() -> dict:
    env = {"TF_NUM_INTRAOP_THREADS": str(WORKER_CPUS), "TF_NUM_INTEROP_THREADS": str(WORKER_CPUS),
           "OMP_NUM_THREADS": str(WORKER_CPUS), "TF_CPP_MIN_LOG_LEVEL": "3"}
    for key, value in os.environ.items():
        if key.startswith(ENV_PREFIX):
            env[key] = value
    return env


class _Workers:
    """The Ray actors of one render; all of them are killed on exit, however the render ends."""

    def __init__(self, ray):
        self.ray = ray
        self.idle: list = []  # actors ready for a chunk
        self.busy: list = []  # actors dreaming one

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for actor in self.idle + self.busy:
            with contextlib.suppress(Exception):  # already gone: nothing to stop
                self.ray.kill(actor, no_restart=True)
        self.idle, self.busy = [], []

    def grow(self, count: int) -> None:
        """Start actors until there are ``count`` (they boot in the background)."""
        missing = count - len(self.idle) - len(self.busy)
        if missing > 0:
            actor = self.ray.remote(num_cpus=WORKER_CPUS, max_restarts=MAX_RETRIES,
                                    max_task_retries=MAX_RETRIES)(_DreamWorker)
            env = {"env_vars": _worker_env()}
            self.idle += [actor.options(runtime_env=env).remote(WORKER_CPUS) for _ in range(missing)]

    def shrink(self, count: int) -> None:
        """Stop idle actors beyond ``count`` (a resume may need fewer than were started)."""
        while self.idle and len(self.idle) + len(self.busy) > count:
            self.ray.kill(self.idle.pop(), no_restart=True)

    def take(self):
        actor = self.idle.pop(0)
        self.busy.append(actor)
        return actor

    def give_back(self, actor) -> None:
        self.busy.remove(actor)
        self.idle.append(actor)


def _result(ray, ref, chunk: Chunk):
    """The worker's ``(i, frame, flicker)``; a worker's ZoomdreamError comes back as one line."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, ZoomdreamError):
            raise ZoomdreamError(str(e.cause)) from None
        raise
    except ray.exceptions.RayActorError as e:
        first_line = " ".join(str(e).split())[:RAY_NOTE_CHARS]
        raise ZoomdreamError(f"a Ray worker died {MAX_RETRIES + 1} times on frames {chunk.first}-{chunk.stop - 1} "
                             f"(out of memory? zoomdream not installed on a node?): {first_line}; finished "
                             f"frames are kept: run the same command again to resume") from None


# ---------------------------------------------------------------- where frames go (driver side)
class _Store:
    """Where each frame a worker hands back goes, and which chunks are already complete.

    A frame that is one chunk's alone goes straight into the frame cache. A cross-faded frame
    arrives twice, from the earlier chunk ("a") and from the later one ("b"); both versions wait
    in the work folder's ``fade/`` until the pair is complete, then the blend goes into the
    cache. So the cache keeps holding final frames only, and a resumed run knows what each
    chunk already delivered.
    """

    def __init__(self, cache, plan: list[Chunk]):
        from .fileio import PARTIAL_TAG  # noqa: PLC0415

        self.cache = cache
        self.faded = {i: c for c in plan for i in range(c.fade_from, c.first)}  # frame -> the later chunk
        self.folder = cache.folder / FADE_FOLDER
        if self.faded:
            try:
                self.folder.mkdir(exist_ok=True)
            except OSError as e:
                raise ZoomdreamError(f"{self.folder}: cannot create the fade folder ({e.strerror or e})") from None
            for leftover in self.folder.glob(f".*{PARTIAL_TAG}*"):  # temps of a killed run
                leftover.unlink(missing_ok=True)

    def _version(self, i: int, later: bool) -> Path:
        return self.folder / f"{i:06d}.{'b' if later else 'a'}.png"

    def _target(self, chunk: Chunk, i: int) -> Path:
        if i < chunk.first:
            return self._version(i, later=True)
        if i in self.faded:
            return self._version(i, later=False)
        return self.cache.path(i)

    def done(self, chunk: Chunk) -> bool:
        """Whether every frame the chunk hands back is already stored (a resume skips it)."""
        return all(self.cache.intact(i) or self._target(chunk, i).exists()
                   for i in range(chunk.fade_from, chunk.stop))

    def save(self, chunk: Chunk, i: int, frame: np.ndarray) -> None:
        from .images import save_png_fast  # noqa: PLC0415

        target = self._target(chunk, i)
        save_png_fast(target, frame)
        if target != self.cache.path(i):
            self.blend(i)

    def blend(self, i: int) -> None:
        """Write cross-faded frame i into the cache once both versions are in (idempotent).

        The weight of the later chunk rises linearly across the fade, 1/(fade+1) ... fade/(fade+1),
        so its first own frame (weight 1) continues the ramp.
        """
        from .images import load_png_fast  # noqa: PLC0415

        a, b = self._version(i, later=False), self._version(i, later=True)
        if self.cache.path(i).exists() or not (a.exists() and b.exists()):
            return
        c = self.faded[i]
        w = (i - c.fade_from + 1) / (c.fade + 1)
        mixed = (1 - w) * load_png_fast(a).astype(np.float32) + w * load_png_fast(b).astype(np.float32)  # (H, W, 3)
        self.cache.save(i, np.clip(np.rint(mixed), 0, 255).astype(np.uint8))


# ---------------------------------------------------------------- the render
def render_video_ray(input, output, *, settings: Settings, workers: int | None = None, address: str | None = None,
                     chunk: int = DEFAULT_CHUNK, warmup: int = DEFAULT_WARMUP, fade: int = DEFAULT_FADE,
                     start: float = 0.0, end: float | None = None, preview: int | None = None,
                     fps: Fraction | None = None, crf: int = 18, keep_frames: bool = False, restart: bool = False,
                     overwrite: bool = False, mask=None, audio=None, quiet: bool = False) -> dict:
    """``render_video``, with the frames dreamed in chunks by Ray workers.

    Args:
        workers: worker processes (each uses ``WORKER_CPUS`` CPUs); default: every CPU of the
            local machine, or of the cluster at ``address``. The frames do not depend on it.
        address: an existing Ray cluster (``"auto"`` for the one this machine belongs to, or
            ``"head-host:6379"``); None starts a local Ray for this call. A Ray already
            initialised by the caller is used as is.
        chunk: most frames per chunk; warmup: frames dreamed and dropped before a mid-shot
            chunk; fade: frames cross-faded into it (see ``plan_segments``). All three decide
            frames, so they are part of the frame cache's identity.
        the rest: as ``render_video``.

    Returns ``render_video``'s summary plus the seam report: ``flicker_inside`` (mean added
    flicker between consecutive frames of one chunk, for chunks dreamed by this call),
    ``flicker_seams`` and ``flicker_seams_max`` (mean and worst over the frames of every seam:
    the cross-fade and the chunk's first own frame; nan without seams), ``seams``, ``chunks``
    and ``workers``; ``seconds``: ``to_first_frame``, ``dreaming`` (first to last frame handed
    back; nan when nothing was dreamed) and ``total``.
    """
    from .checks import check_render  # noqa: PLC0415
    from .fileio import output_lock  # noqa: PLC0415
    from .render import _prepare_output, render_inputs  # noqa: PLC0415

    started = time.perf_counter()
    check_render(settings, input=input, input_folder_ok=True, mask=mask, audio=audio, start=start, end=end,
                 preview=preview, fps=fps, crf=crf, workers=workers, chunk=chunk, warmup=warmup, fade=fade)
    ray = _import_ray()
    # 1) output, input and the work folder, checked exactly as render_video checks them
    out = _prepare_output(output, render_inputs(settings, input, mask, audio), overwrite)
    if start < 0 or (end is not None and end <= start):
        raise ZoomdreamError(f"--start {start} / --end {end}: expected 0 <= start < end")
    with output_lock(out):
        return _render_chunked(ray, input, out, settings=settings, workers=workers, address=address, chunk=chunk,
                               warmup=warmup, fade=fade, start=start, end=end, preview=preview, fps=fps, crf=crf,
                               keep_frames=keep_frames, restart=restart, mask=mask, audio=audio, quiet=quiet,
                               started=started)


def _render_chunked(ray, input, out: Path, *, settings: Settings, workers, address, chunk, warmup, fade, start, end,
                    preview, fps, crf, keep_frames, restart, mask, audio, quiet, started) -> dict:
    from . import media  # noqa: PLC0415
    from .checks import check_budget, frame_size  # noqa: PLC0415
    from .render import (FrameCache, _animation, _audio_manifest, _cache_dir, _finish,  # noqa: PLC0415
                         _render_manifest, output_soundtrack, video_track, work_folder)

    info = media.probe(input, fps=fps)
    for note in info.notes:
        log.warning("%s: %s", Path(input).name, note)
    n = media.frame_count(info, start=start, end=end, max_frames=preview)
    d = settings.dream
    # Schedules are checked (and the soundtrack analysed) before any work: a bad value names its frame.
    track = video_track(info, start=start, audio=audio)
    n_all = media.frame_count(info, start=start, end=end)
    _animation(settings, kind="video", n=n_all, fps=info.fps, audio=track)
    check_budget(out, frames=n, size=frame_size((info.width, info.height), d.max_size),
                 flow_cache=_cache_dir() / "flow", work_frames=work_folder(out) / "frames")
    # The chunking decides the frames at seams, so it is part of the cache's identity: a sequential
    # run's frames (or another chunking's) are refused as "render options changed", never mixed in.
    manifest = _render_manifest("video", input, settings, {
        "start": start, "end": end, "fps": str(info.fps), "max_size": d.max_size,
        "chunk": chunk, "warmup": warmup, "fade": fade, **_audio_manifest(settings, "video", track, n_all)},
        files={"mask": mask})
    cache = FrameCache(out, manifest, restart=restart)

    def make_plan(cuts: list[int]) -> list[Chunk]:
        if carries(settings):
            return plan_segments(n, cuts, chunk=chunk, warmup=warmup, fade=fade)
        # nothing is carried from frame to frame: every chunk is exact from its first frame, no seams
        return [dataclasses.replace(c, warmup_from=c.first, fade_from=c.first, shot=c.first)
                for c in plan_segments(n, cuts, chunk=chunk, warmup=0, fade=0)]

    flicker: dict[int, float] = {}
    clock = {"start": started}  # perf_counter() at the first and the last frame handed back
    used = 0  # workers this call used
    # 2) dream the chunks not yet complete, on Ray
    missing = sum(not cache.intact(i) for i in range(n))
    if missing:
        try:
            plan, store, used = _dream_missing(ray, cache, flicker, clock, info=info, settings=settings,
                                               make_plan=make_plan, n=n, missing=missing, workers=workers,
                                               address=address, chunk=chunk, start=start, end=end, mask=mask,
                                               audio=audio, quiet=quiet)
        except ZoomdreamError:
            if not any(p.is_file() for p in cache.folder.rglob("*.png")):  # nothing dreamed: leave nothing behind
                cache.remove()
            raise
    else:  # every frame is there (the encoder was interrupted, say): no Ray needed; the plan is for the report
        plan = make_plan(find_cuts(info, settings=settings, start=start, end=end, max_frames=n))
        store = _Store(cache, plan)
    for i in store.faded:  # a run stopped between the two versions of a frame and its blend
        store.blend(i)
    # 3) the seam report, from the finished frames; 4) the output, exactly as render_video writes it
    seams = [c for c in plan if c.seam]
    at_seams = _added_flicker(info, settings, cache, [i for c in seams for i in range(c.fade_from, c.first + 1)],
                              start=start, end=end)
    inside = [v for v in flicker.values() if not math.isnan(v)]
    sound = output_soundtrack(info, start=start, end=end, preview=preview, audio=audio)
    size = cache.load(n - 1).shape[1::-1]  # (w, h) of the dreamed frames, after max_size
    _finish(cache, n, out, fps=info.fps, audio=sound, crf=crf, keep_frames=keep_frames, quiet=quiet,
            settings=settings, extra={"input": info.path, "start": start, "end": end, "frames": n,
                                      "fps": str(info.fps)})
    summary = {"frames": n, "fps": info.fps, "flicker": _mean(inside + at_seams), "size": size,
               "flicker_inside": _mean(inside), "flicker_seams": _mean(at_seams),
               "flicker_seams_max": max(at_seams, default=float("nan")), "seams": len(seams), "chunks": len(plan),
               "workers": used, "seconds": _seconds(clock)}
    if not quiet:
        _report(out, summary, fade=max((c.fade for c in seams), default=0))
    return summary


def _dream_missing(ray, cache, flicker: dict, clock: dict, *, info, settings: Settings, make_plan, n: int, missing: int,
                   workers: int | None, address: str | None, chunk: int, start: float, end: float | None, mask,
                   audio, quiet: bool) -> tuple[list[Chunk], _Store, int]:
    """Connect to Ray, plan, and dream every chunk not yet complete; returns (plan, store, workers used)."""
    from .render import _progress  # noqa: PLC0415

    with _RayNotices() as notices, _ray_session(ray, workers=workers, address=address), _Workers(ray) as pool:
        room = max(1, int(ray.cluster_resources().get("CPU", 1)) // WORKER_CPUS)
        if workers is not None and workers > room:  # more would wait for a CPU forever, holding their chunks
            log.warning("the Ray cluster has room for %d workers, not %d: using %d", room, workers, room)
        workers = room if workers is None else min(workers, room)
        # a) start the workers first, so their start-up (TensorFlow, the backbone) overlaps the cut scan
        pool.grow(min(workers, -(-missing // chunk)))
        with _progress(n, quiet=quiet, unit="frame", desc="finding scene cuts") as bar:
            cuts = find_cuts(info, settings=settings, start=start, end=end, max_frames=n, progress=bar.update)
        # b) plan, then dream the chunks not yet complete
        plan = make_plan(cuts)
        store = _Store(cache, plan)
        todo = [c for c in plan if not store.done(c)]
        if missing < n:
            log.info("resuming: %d of %d chunks already complete", len(plan) - len(todo), len(plan))
        used = min(workers, len(todo))
        pool.grow(used)
        pool.shrink(used)
        if not quiet:
            log.info("%d frames in %d chunks (%d scene cuts, %d seams); %d chunks to dream on %d Ray workers",
                     n, len(plan), len(cuts), sum(c.seam for c in plan), len(todo), used)
        try:
            _dream_chunks(ray, pool, todo, store, flicker, clock, n_frames=n, plan_size=len(plan), quiet=quiet,
                          call=(info, _absolute(settings), start, end, mask and os.path.abspath(mask),
                                audio and os.path.abspath(audio)))
        finally:
            notices.muted = True  # what follows is our own cleanup: killed workers are no news
    return plan, store, used


def _dream_chunks(ray, pool: _Workers, todo: list[Chunk], store: _Store, flicker: dict, clock: dict, *,
                  n_frames: int, plan_size: int, quiet: bool, call: tuple) -> None:
    """Hand chunks, in order, to idle workers; store each frame as it streams in.

    ``flicker`` collects the workers' added flicker of frames that follow another frame of the
    same chunk in the output (not cross-faded). Ctrl-C / SIGTERM become ``Interrupted``, like
    ``render.run_frames``: stored frames stay for a resume (the caller's ``_Workers`` kills the
    workers on the way out).
    """
    from .render import ABORT_AFTER_ENV, _progress, _signals_to_exceptions  # noqa: PLC0415

    info, settings, start, end, mask, audio = call
    pending = deque(todo)
    done_before = n_frames - sum(c.stop - c.first for c in todo)
    saved, complete = 0, plan_size - len(todo)
    abort_after = int(os.environ.get(ABORT_AFTER_ENV, "-1"))  # tests: a Ctrl-C after this many new frames
    running = {}  # streaming generator -> (worker, chunk)
    desc = f"dreaming ({len(pool.idle)} worker{'s' * (len(pool.idle) != 1)})"
    try:
        with _signals_to_exceptions(), _progress(n_frames, quiet=quiet, unit="frame", desc=desc,
                                                 initial=done_before) as bar:
            while pending or running:
                while pool.idle and pending:
                    worker, c = pool.take(), pending.popleft()
                    running[worker.dream.remote(info, settings, c, start, end, mask, audio)] = (worker, c)
                ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
                for gen in ready:
                    worker, c = running[gen]
                    try:
                        ref = next(gen)
                    except StopIteration:  # chunk finished: the worker takes the next one
                        del running[gen]
                        pool.give_back(worker)
                        complete += 1
                        continue
                    i, frame, value = _result(ray, ref, c)
                    clock.setdefault("first", time.perf_counter())
                    clock["last"] = time.perf_counter()
                    store.save(c, i, frame)
                    if i > c.first and i not in store.faded:
                        flicker[i] = value
                    if i >= c.first:  # progress counts output frames; a fade-in version is extra work
                        saved += 1
                        bar.update(1)
                    if 0 <= abort_after <= saved:
                        raise KeyboardInterrupt
    except (KeyboardInterrupt, Terminated) as e:
        code, verb = (143, "terminated") if isinstance(e, Terminated) else (130, "interrupted")
        raise Interrupted(f"{verb} after {done_before + saved}/{n_frames} frames ({complete}/{plan_size} chunks "
                          f"complete); run the same command again to resume (or add --restart to start over)",
                          code) from None


def _added_flicker(info, settings: Settings, cache, frames: list[int], *, start: float,
                   end: float | None) -> list[float]:
    """Added flicker from output frame i-1 to i for each i in ``frames``, measured as ``_VideoLoop`` does.

    One decode pass up to the last of them (source frames are not kept during the render);
    the dreamed frames come from the cache. Frames where no pixel is reliable are left out.
    """
    from . import flow, media  # noqa: PLC0415

    if not frames:
        return []
    v, wanted, values, prev = settings.video, set(frames), [], None
    sources = media.iter_frames(info, start=start, end=end, max_size=settings.dream.max_size,
                                max_frames=max(frames) + 1)
    try:
        for i, src in enumerate(sources):
            if i in wanted:
                bwd = flow.compute_flow(src, prev, v.flow)  # (H, W, 2) frame i -> i-1
                fwd = flow.compute_flow(prev, src, v.flow)  # (H, W, 2) frame i-1 -> i
                valid = (flow.occlusion_mask(bwd, fwd, threshold=v.occlusion) if v.occlusion > 0
                         else np.ones(src.shape[:2], np.float32))  # (H, W) 1 = flow explains the pixel
                values.append(flow.added_flicker(cache.load(i - 1), cache.load(i), prev, src, bwd, valid))
            prev = src
    finally:
        sources.close()
    return [x for x in values if not math.isnan(x)]


def _seconds(clock: dict) -> dict:
    """Where the time went: until the first frame came back (probe, cut scan, Ray and worker start-up),
    between the first and the last frame (dreaming), and in all."""
    now, nan = time.perf_counter(), float("nan")
    first, last = clock.get("first", nan), clock.get("last", nan)
    return {"to_first_frame": first - clock["start"], "dreaming": last - first, "total": now - clock["start"]}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _report(out: Path, s: dict, *, fade: int) -> None:
    from .render import _fps_text  # noqa: PLC0415

    text = f"{s['flicker']:.2f}" if not math.isnan(s["flicker"]) else "n/a"
    log.info("wrote %s: %d frames at %s fps; added flicker %s", out.name, s["frames"], _fps_text(s["fps"]), text)
    if not s["seams"]:
        log.info("no seams: every chunk starts at a scene cut or is dreamed from one")
        return
    how = f"{fade}-frame cross-fades" if fade else "no cross-fade"
    ratio = s["flicker_seams"] / s["flicker_inside"] if s["flicker_inside"] > 0 else float("nan")
    log.info("added flicker at %d chunk seams (%s) %.2f, worst frame %.2f; inside chunks %.2f (seams/inside %.2fx)",
             s["seams"], how, s["flicker_seams"], s["flicker_seams_max"], s["flicker_inside"], ratio)
