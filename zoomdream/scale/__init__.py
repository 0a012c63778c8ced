"""Scale-out: one video rendered by many worker processes or a Ray cluster, without seams.

Each video frame carries the previous frame's flow-warped dream, so frames cannot be handed
out one by one. The clip is planned into chunks instead (``scale.plan``): scene cuts split it
into shots, shots into chunks, and a chunk that starts mid-shot starts dreaming a few frames
early (a warm-up that is dropped, then a cross-fade with the chunk before it).

Why both: a dream carried frame to frame has a long memory. It keeps re-amplifying the patterns
it carries, so a chunk that starts afresh mid-shot converges to the sequential dream only slowly
(measured on a 24 fps pan with the default preset: still ~7 levels apart after 8 warm-up frames,
3.5x the frame-to-frame flicker at the seam). A few warm-up frames let the fresh start settle;
the cross-fade spreads the remaining difference over ``fade`` frames, below the flicker inside
a chunk (see README: Scale-out, and benchmarks/bench_scale.py).

Ray workers (``scale.workers``) dream the chunks and stream the frames back one at a time. The driver
opens and finishes the render through the same seam as ``render_video`` (``frameloop``): it owns
the frame cache, the encoder and the audio mux, so the output, resume and atomic-write
guarantees hold unchanged. A resumed run skips chunks already complete. Chunks finish out of
order and seams are blended after their neighbours, so the output is encoded from the finished
frames after the last one (``finish_video`` without a streamed encoder), never while they arrive.

Determinism: the plan never depends on the worker count, and every worker runs TensorFlow on
``WORKER_CPUS`` threads, so the same command gives the same frames with 1, 2 or 64 workers (on
nodes of one CPU type; other kernels may round differently). The first chunk of each shot, and
every chunk whose warm-up reaches back to the start of its shot, is byte-identical to a
sequential run. The other chunk starts are *seams*; they are measured at the end with the same
added-flicker metric as the frames inside the chunks, and reported.

Convention: frames are (H, W, 3) uint8 RGB; frame indices start at 0; ranges are half-open.

The package: this module (``render_video_ray``), ``plan`` (the chunks, pure) and ``workers``
(the Ray actors). It is the top of the tree: it may import any other part of zoomdream, and only
the command line imports it. Ray is imported inside a function, when a render asks for it.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from zoomdream import flow
from zoomdream.checks import check_render
from zoomdream.errors import Interrupted, Terminated, ZoomdreamError, signals_to_exceptions
from zoomdream.fileio import PARTIAL_TAG, output_lock
from zoomdream.media.images import load_png_fast, save_png_fast
from zoomdream.media.rates import fps_text
from zoomdream.render.frameloop import (
    VideoJob,
    check_video_output,
    discard_unless_begun,
    finish_video,
    open_video,
    progress,
)
from zoomdream.render.job import Clip, Output
from zoomdream.render.video import WorkSize, flow_cache, frame_flows, source_frame, source_frames, valid_pixels
from zoomdream.scale.plan import (
    DEFAULT_CHUNK,
    DEFAULT_FADE,
    DEFAULT_WARMUP,
    Chunk,
    find_cuts,
    plan_chunks,
    plan_segments,
)
from zoomdream.scale.workers import (
    MAX_RETRIES,
    WORKER_CPUS,
    RayNotices,
    Workers,
    absolute,
    import_ray,
    ray_session,
    result,
)
from zoomdream.settings import DEFAULT_CRF, Settings

__all__ = ["Chunk", "DEFAULT_CHUNK", "DEFAULT_FADE", "DEFAULT_WARMUP", "FrameStore", "MAX_RETRIES", "WORKER_CPUS",
           "find_cuts", "plan_segments", "render_video_ray"]

log = logging.getLogger("zoomdream")

POLL_SECONDS = 0.5  # the driver wakes at least this often, so Ctrl-C and SIGTERM are handled promptly
FADE_FOLDER = "fade"  # in the work folder: both chunks' versions of each cross-faded frame


# ---------------------------------------------------------------- where frames go (driver side)
class FrameStore:
    """Where each frame a worker hands back goes, and which chunks are already complete.

    A frame that is one chunk's alone goes straight into the frame cache. A cross-faded frame
    arrives twice, from the earlier chunk ("a") and from the later one ("b"); both versions wait
    in the work folder's ``fade/`` until the pair is complete, then the blend goes into the
    cache. So the cache keeps holding final frames only, and a resumed run knows what each
    chunk already delivered.
    """

    def __init__(self, cache, plan: list[Chunk]):
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
        target = self._target(chunk, i)
        save_png_fast(target, frame)
        if target != self.cache.path(i):
            self.blend(i)

    def blend(self, i: int) -> None:
        """Write cross-faded frame i into the cache once both versions are in (idempotent).

        The weight of the later chunk rises linearly across the fade, 1/(fade+1) ... fade/(fade+1),
        so its first own frame (weight 1) continues the ramp.
        """
        a, b = self._version(i, later=False), self._version(i, later=True)
        if self.cache.path(i).exists() or not (a.exists() and b.exists()):
            return
        c = self.faded[i]
        w = (i - c.fade_from + 1) / (c.fade + 1)
        mixed = (1 - w) * load_png_fast(a).astype(np.float32) + w * load_png_fast(b).astype(np.float32)  # (H, W, 3)
        self.cache.save(i, np.clip(np.rint(mixed), 0, 255).astype(np.uint8))


# ---------------------------------------------------------------- the render


# ---------------------------------------------------------------- the render
def render_video_ray(input, output, *, settings: Settings, workers: int | None = None, address: str | None = None,
                     chunk: int = DEFAULT_CHUNK, warmup: int = DEFAULT_WARMUP, fade: int = DEFAULT_FADE,
                     start: float = 0.0, end: float | None = None, preview: int | None = None,
                     fps: Fraction | None = None, crf: int = DEFAULT_CRF, keep_frames: bool = False, restart: bool = False,
                     overwrite: bool = False, mask=None, audio=None, quiet: bool = False,
                     on_frame: Callable[[int], None] | None = None,
                     worker_fault: Callable[[int], None] | None = None) -> dict:
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
        on_frame: ``on_frame(k)`` after each output frame stored, with k the frames this call has
            stored so far (a KeyboardInterrupt it raises stops the render as a Ctrl-C would).
        worker_fault: ``worker_fault(i)`` runs inside a worker before it hands back frame i (it
            must pickle: Ray sends it to the workers); a way for tests to make a worker fail.
        the rest: as ``render_video``.

    Returns ``render_video``'s summary plus the seam report: ``flicker_inside`` (mean added
    flicker between consecutive frames of one chunk, for chunks dreamed by this call),
    ``flicker_seams`` and ``flicker_seams_max`` (mean and worst over the frames of every seam:
    the cross-fade and the chunk's first own frame; nan without seams), ``seams``, ``chunks``
    and ``workers``; ``seconds``: ``to_first_frame``, ``dreaming`` (first to last frame handed
    back; nan when nothing was dreamed) and ``total``.
    """
    started = time.perf_counter()
    settings = check_render(settings, input=input, input_folder_ok=True, mask=mask, audio=audio, start=start,
                            end=end, preview=preview, fps=fps, crf=crf, workers=workers, chunk=chunk, warmup=warmup,
                            fade=fade)
    ray = import_ray()
    clip = Clip(input, start=start, end=end, preview=preview, fps=fps, mask=mask, audio=audio)
    # output, input and the work folder, opened exactly as render_video opens them
    out = check_video_output(Output(output, crf=crf, keep_frames=keep_frames, restart=restart, overwrite=overwrite,
                                    quiet=quiet), settings=settings, clip=clip)
    with output_lock(out.path):
        # The chunking decides the frames at seams, so it is part of the cache's identity: a sequential
        # run's frames (or another chunking's) are refused as "render options changed", never mixed in.
        job = open_video(clip, out, settings=settings, render={"chunk": chunk, "warmup": warmup, "fade": fade})
        run = _Run(job, settings, chunk=chunk, warmup=warmup, fade=fade, quiet=quiet, on_frame=on_frame,
                   fault=worker_fault, clock={"start": started})
        with discard_unless_begun(job.cache):
            plan, store, used = _dream(ray, run, workers=workers, address=address)
        for i in store.faded:  # a run stopped between the two versions of a frame and its blend
            store.blend(i)
        # the seam report, from the finished frames; then the output, exactly as render_video writes it
        seams = [c for c in plan if c.seam]
        at_seams = _added_flicker(run, [i for c in seams for i in range(c.fade_from, c.first + 1)])
        size = finish_video(job, out, settings=settings)
    inside = [v for v in run.flicker.values() if not math.isnan(v)]
    summary = {"frames": job.n, "fps": job.info.fps, "flicker": _mean(inside + at_seams), "size": size,
               "flicker_inside": _mean(inside), "flicker_seams": _mean(at_seams),
               "flicker_seams_max": max(at_seams, default=float("nan")), "seams": len(seams), "chunks": len(plan),
               "workers": used, "seconds": _seconds(run.clock)}
    if not quiet:
        _report(out.path, summary, fade=max((c.fade for c in seams), default=0))
    return summary


@dataclass
class _Run:
    """One chunked render: the opened job, the options that decide its frames, and what it has measured."""

    job: VideoJob
    settings: Settings
    chunk: int
    warmup: int
    fade: int
    quiet: bool
    on_frame: Callable[[int], None] | None
    fault: Callable[[int], None] | None
    clock: dict  # perf_counter() at the start, and at the first and the last frame handed back
    flicker: dict = field(default_factory=dict)  # output frame -> the workers' added flicker (inside a chunk)

    def plan(self, cuts: list[int]) -> list[Chunk]:
        return plan_chunks(self.job.n, cuts, settings=self.settings, chunk=self.chunk, warmup=self.warmup,
                           fade=self.fade)

    def cuts(self, progress_bar=None) -> list[int]:
        clip = self.job.clip
        return find_cuts(clip.info, settings=self.settings, start=clip.start, end=clip.end, max_frames=clip.frames,
                         progress=progress_bar)


def _dream(ray, run: _Run, *, workers: int | None, address: str | None) -> tuple[list[Chunk], FrameStore, int]:
    """Dream every frame not yet in the cache; returns (plan, store, workers used)."""
    cache, n = run.job.cache, run.job.n
    missing = sum(not cache.intact(i) for i in range(n))
    if not missing:  # every frame is there (the encoder was interrupted, say): no Ray needed; the plan is for the report
        plan = run.plan(run.cuts())
        return plan, FrameStore(cache, plan), 0
    try:
        return _dream_missing(ray, run, missing, workers=workers, address=address)
    except ZoomdreamError:
        if not any(p.is_file() for p in cache.folder.rglob("*.png")):  # nothing dreamed: leave nothing behind
            cache.remove()
        raise


def _dream_missing(ray, run: _Run, missing: int, *, workers: int | None,
                   address: str | None) -> tuple[list[Chunk], FrameStore, int]:
    """Connect to Ray, plan, and dream every chunk not yet complete; returns (plan, store, workers used)."""
    n = run.job.n
    with RayNotices() as notices, ray_session(ray, workers=workers, address=address), Workers(ray) as pool:
        room = max(1, int(ray.cluster_resources().get("CPU", 1)) // WORKER_CPUS)
        if workers is not None and workers > room:  # more would wait for a CPU forever, holding their chunks
            log.warning("the Ray cluster has room for %d workers, not %d: using %d", room, workers, room)
        workers = room if workers is None else min(workers, room)
        # a) start the workers first, so their start-up (TensorFlow, the backbone) overlaps the cut scan
        pool.grow(min(workers, -(-missing // run.chunk)))
        with progress(n, quiet=run.quiet, unit="frame", desc="finding scene cuts") as bar:
            cuts = run.cuts(bar.update)
        # b) plan, then dream the chunks not yet complete
        plan = run.plan(cuts)
        store = FrameStore(run.job.cache, plan)
        todo = [c for c in plan if not store.done(c)]
        if missing < n:
            log.info("resuming: %d of %d chunks already complete", len(plan) - len(todo), len(plan))
        used = min(workers, len(todo))
        pool.grow(used)
        pool.shrink(used)
        if not run.quiet:
            log.info("%d frames in %d chunks (%d scene cuts, %d seams); %d chunks to dream on %d Ray workers",
                     n, len(plan), len(cuts), sum(c.seam for c in plan), len(todo), used)
        try:
            _dream_chunks(ray, pool, todo, store, run, plan_size=len(plan))
        finally:
            notices.muted = True  # what follows is our own cleanup: killed workers are no news
    return plan, store, used


def _dream_chunks(ray, pool: Workers, todo: list[Chunk], store: FrameStore, run: _Run, *, plan_size: int) -> None:
    """Hand chunks, in order, to idle workers; store each frame as it streams in.

    ``run.flicker`` collects the workers' added flicker of frames that follow another frame of
    the same chunk in the output (not cross-faded). Ctrl-C / SIGTERM become ``Interrupted``,
    like ``frameloop.run_frames``: stored frames stay for a resume (the caller's ``Workers``
    kills the workers on the way out).
    """
    n_frames, clock = run.job.n, run.clock
    # what every chunk's call carries: paths made absolute, as workers may run elsewhere
    clip, settings = run.job.clip.absolute(), absolute(run.settings)
    pending = deque(todo)
    done_before = n_frames - sum(c.stop - c.first for c in todo)
    saved, complete = 0, plan_size - len(todo)
    running = {}  # streaming generator -> (worker, chunk)
    desc = f"dreaming ({len(pool.idle)} worker{'s' * (len(pool.idle) != 1)})"
    try:
        with signals_to_exceptions(), progress(n_frames, quiet=run.quiet, unit="frame", desc=desc,
                                               initial=done_before) as bar:
            while pending or running:
                while pool.idle and pending:
                    worker, c = pool.take(), pending.popleft()
                    running[worker.dream.remote(clip, settings, c, run.fault)] = (worker, c)
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
                    i, frame, value = result(ray, ref, c)
                    clock.setdefault("first", time.perf_counter())
                    clock["last"] = time.perf_counter()
                    store.save(c, i, frame)
                    if i > c.first and i not in store.faded:
                        run.flicker[i] = value
                    if i >= c.first:  # progress counts output frames; a fade-in version is extra work
                        saved += 1
                        bar.update(1)
                        if run.on_frame is not None:
                            run.on_frame(saved)
    except (KeyboardInterrupt, Terminated) as e:
        code, verb = (143, "terminated") if isinstance(e, Terminated) else (130, "interrupted")
        if not any(store.cache.path(i).exists() for i in range(n_frames)):  # the work folder goes (discard_unless_begun)
            raise Interrupted(f"{verb} before the first frame was finished; nothing was written", code) from None
        raise Interrupted(f"{verb} after {done_before + saved}/{n_frames} frames ({complete}/{plan_size} chunks "
                          f"complete); run the same command again to resume (or add --restart to start over)",
                          code) from None


def _added_flicker(run: _Run, frames: list[int]) -> list[float]:
    """Added flicker from output frame i-1 to i for each i in ``frames``, measured as ``render_video`` does.

    One decode pass up to the last of them (source frames are not kept during the render),
    with the render's flows (``video.frame_flows``); the dreamed frames come from the cache.
    Frames where no pixel is reliable are left out.
    """
    if not frames:
        return []
    job, v = run.job, run.settings.video
    wanted, values, prev = set(frames), [], None
    clip = job.clip
    flows = flow_cache(job.info, run.settings, job.animation, start=clip.start)
    work = WorkSize.of(job.info, run.settings)  # flows at the dream's working size, as the render's
    sources = source_frames(job.info, job.animation, start=clip.start, end=clip.end,
                            max_size=run.settings.dream.max_size, max_frames=max(frames) + 1)
    try:
        for i, rgb in enumerate(sources):
            src = source_frame(i, rgb, work)
            if i in wanted:
                bwd, fwd = frame_flows(flows, i, prev.grey, src.grey, v.flow)
                valid = valid_pixels(bwd, fwd, v.occlusion)  # (h, w) 1 = flow explains the pixel
                values.append(flow.added_flicker(job.cache.load(i - 1), job.cache.load(i), prev.rgb, src.rgb,
                                                 work.up_flow(bwd), work.up(valid)))
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
    text = f"{s['flicker']:.2f}" if not math.isnan(s["flicker"]) else "n/a"
    log.info("wrote %s: %d frames at %s fps; added flicker %s", out.name, s["frames"], fps_text(s["fps"]), text)
    if not s["seams"]:
        log.info("no seams: every chunk starts at a scene cut or is dreamed from one")
        return
    how = f"{fade}-frame cross-fades" if fade else "no cross-fade"
    ratio = s["flicker_seams"] / s["flicker_inside"] if s["flicker_inside"] > 0 else float("nan")
    log.info("added flicker at %d chunk seams (%s) %.2f, worst frame %.2f; inside chunks %.2f (seams/inside %.2fx)",
             s["seams"], how, s["flicker_seams"], s["flicker_seams_max"], s["flicker_inside"], ratio)
