"""``render_video``: a video (or a folder of numbered images) dreamed frame by frame.

Each frame starts from the source frame plus the flow-warped dream of the previous frame, so
the dream moves with the picture; a scene cut starts it afresh. ``dream_frames`` dreams a
range of frames on its own (a chunk of a Ray render) with the very same per-frame work.

Convention: frames are (H, W, 3) uint8 RGB; frame indices start at 0; frame i is source time
``start + i / fps``; flows are float32 (H, W, 2) in pixels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from zoomdream import colour, flow, motion
from zoomdream.checks import check_render, frame_size
from zoomdream.dream import dream, octave_note, to_uint8, to_unit
from zoomdream.errors import ZoomdreamError
from zoomdream.fileio import cache_dir, output_lock
from zoomdream.media.images import IMAGE_EXTENSIONS, load_image
from zoomdream.media.probe import probe
from zoomdream.media.rates import fps_text
from zoomdream.media.read import iter_frames
from zoomdream.render.framecache import file_identity
from zoomdream.render.frameloop import (
    animation,
    check_video_output,
    discard_unless_begun,
    finish_video,
    load_backbone_and_objective,
    numeric,
    open_video,
    run_frames,
    streamed_video,
    video_track,
)
from zoomdream.render.job import Clip, Output
from zoomdream.render.pipeline import LOOKAHEAD, Lookahead, WriteBehind
from zoomdream.settings import DEFAULT_CRF, Settings

__all__ = ["SourceFrame", "SourceStep", "VideoLoop", "WorkSize", "dream_frames", "flow_cache", "frame_flows",
           "render_video", "source_frame", "source_frames", "valid_pixels"]

log = logging.getLogger("zoomdream")


def render_video(input, output, *, settings: Settings, start: float = 0.0, end: float | None = None,
                 preview: int | None = None, fps: Fraction | None = None, crf: int = DEFAULT_CRF,
                 keep_frames: bool = False, restart: bool = False, overwrite: bool = False, mask=None,
                 audio=None, quiet: bool = False, on_frame: Callable[[int], None] | None = None) -> dict:
    """Dream a video (or a folder of numbered images) frame by frame into ``output``.

    ``audio``: a soundtrack file that replaces the clip's (from its start, at output frame 0) and
    feeds the audio features of schedules; without it they come from the clip's own soundtrack.
    ``on_frame``: as ``frameloop.run_frames``. Returns a summary: frames, fps, the mean added
    flicker and the dreamed frames' (width, height).
    """
    settings = check_render(settings, input=input, input_folder_ok=True, mask=mask, audio=audio, start=start,
                            end=end, preview=preview, fps=fps, crf=crf)
    clip = Clip(input, start=start, end=end, preview=preview, fps=fps, mask=mask, audio=audio)
    out = check_video_output(Output(output, crf=crf, keep_frames=keep_frames, restart=restart, overwrite=overwrite,
                                    quiet=quiet), settings=settings, clip=clip)
    with output_lock(out.path):
        job = open_video(clip, out, settings=settings)
        with streamed_video(job, out) as encoder:  # an MP4 is encoded beside the dream
            with discard_unless_begun(job.cache):
                loop = VideoLoop(job.clip, settings, animation=job.animation)
                try:
                    run_frames(job.cache, job.n, loop.frame, quiet=quiet, desc="dreaming", on_frame=on_frame,
                               encoder=encoder)
                finally:
                    loop.close()
            size = finish_video(job, out, settings=settings, encoder=encoder)
    n, info = job.n, job.info
    flicker = loop.flicker.mean if loop.flicker.count else float("nan")
    if not quiet:
        text = f"{flicker:.2f}" if loop.flicker.count else "n/a (fewer than 2 new frames)"
        log.info("wrote %s: %d frames at %s fps; added flicker %s", out.path.name, n, fps_text(info.fps), text)
    return {"frames": n, "fps": info.fps, "flicker": flicker, "size": size}


class _Mask:
    """``--mask``: a still image, or a video whose frame i masks frame i (its last frame holds after it ends).

    Convention: ``at(i, (w, h))`` returns float32 (H, W) in [0, 1]; 1 = dream fully there.
    """

    def __init__(self, path):
        self.still, self.frames, self.current, self.index = None, None, None, -1
        if Path(path).suffix.lower() in IMAGE_EXTENSIONS:
            self.still = self._grey(load_image(path))
        else:
            self.frames = iter_frames(probe(path))

    @staticmethod
    def _grey(rgb: np.ndarray) -> np.ndarray:
        return rgb.astype(np.float32).mean(axis=2) / 255.0  # (h, w)

    def at(self, i: int, size: tuple[int, int]) -> np.ndarray:
        if self.still is None:
            while self.index < i:
                nxt = next(self.frames, None)
                if nxt is None:
                    break
                self.current, self.index = self._grey(nxt), self.index + 1
            m = self.current
        else:
            m = self.still
        return m if m.shape[::-1] == size else cv2.resize(m, size, interpolation=cv2.INTER_AREA)

    def close(self):
        if self.frames is not None:
            self.frames.close()


# ---------------------------------------------------------------- source frames and their flows
def source_frames(info, anim, *, start: float, end: float | None, max_size: int | None, skip: int = 0,
                  max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Source frames ``skip, skip+1, ...`` as the camera shows them (one resample when the camera moves)."""
    frames = iter_frames(info, start=start, end=end, max_size=max_size, skip=skip, max_frames=max_frames)
    if not anim.camera_moves:
        return frames
    return _moved(frames, anim, skip)


def _moved(frames: Iterator[np.ndarray], anim, first: int) -> Iterator[np.ndarray]:
    try:
        for i, frame in enumerate(frames, first):  # the absolute camera of frame i: one resample of the source
            yield motion.warp_affine(frame, anim.camera_matrix(i, (frame.shape[1], frame.shape[0])))
    finally:
        frames.close()


def flow_cache(info, settings: Settings, anim, *, start: float) -> flow.FlowCache:
    """The per-clip flow cache: keyed by the input, the start, the frame rate, the size, the method and the camera.

    With a dream size, flows work at that smaller size, which is part of the key.
    """
    camera = [anim.camera_digest()] if anim.camera_moves else []  # flows of the moved frames
    work = WorkSize.of(info, settings)
    scaled = [list(work.size)] if work.scaled else []  # unchanged keys when flows work at the frame's size
    key = json.dumps([file_identity(info.path), start, str(info.fps), settings.dream.max_size,
                      settings.video.flow, *camera, *scaled], sort_keys=True)
    return flow.FlowCache(cache_dir() / "flow", hashlib.sha256(key.encode()).hexdigest()[:20])


def frame_flows(cache: flow.FlowCache, i: int, prev: np.ndarray, src: np.ndarray, method: str):
    """(backward, forward) flows between source frames i-1 and i, from ``cache`` or computed and cached.

    ``prev``, ``src``: RGB or, computed once per frame, grey. Fresh flows are rounded as the
    cache stores them (float16), so cold and warm runs, and every worker of a Ray render, see
    the same flows.
    """
    cached = cache.get(i, shape=src.shape[:2])
    if cached is not None:
        return cached
    bwd = flow.compute_flow(src, prev, method)  # (H, W, 2) frame i -> i-1
    fwd = flow.compute_flow(prev, src, method)  # (H, W, 2) frame i-1 -> i
    cache.put(i, bwd, fwd)
    return bwd.astype(np.float16).astype(np.float32), fwd.astype(np.float16).astype(np.float32)


def valid_pixels(bwd: np.ndarray, fwd: np.ndarray, occlusion: float) -> np.ndarray:
    """(H, W) float32: 1 where the flow explains the pixel (everywhere when the occlusion test is off)."""
    if occlusion > 0:
        return flow.occlusion_mask(bwd, fwd, threshold=occlusion)
    return np.ones(bwd.shape[:2], np.float32)


# ---------------------------------------------------------------- the dream size
# Back-projection steps that rebuild a carried dream delta at the dream size from the saved full-size frame.
# Measured on 720p and 1080p camera footage (benchmarks/bench_dream_size.py): added flicker per unit of dream
# strength about 1 % lower than a plain area average (2 and 3 steps alike; 3 is closest to carrying the
# unsaved delta itself), at 4.5 ms a 720p frame and 9 ms a 1080p one (1-2 % of its dream at the dream size).
CARRY_SHARPEN_STEPS = 3

@dataclass(frozen=True)
class WorkSize:
    """Where a video's flow, carried dream and dreaming work: the frame's (w, h), or at most ``dream_size``.

    With a dream size the dream is computed on the frame scaled down, and its delta (dreamed
    minus source, at that size) is scaled up and added to the full-size frame, so the
    footage's own detail stays sharp while the dream costs what a small frame costs.
    """

    full: tuple[int, int]  # (w, h) of the frames (after max_size)
    size: tuple[int, int]  # (w, h) the dream works at

    @classmethod
    def of(cls, info, settings: Settings) -> "WorkSize":
        full = frame_size((info.width, info.height), settings.dream.max_size)
        return cls(full, frame_size(full, settings.video.dream_size))

    @property
    def scaled(self) -> bool:
        return self.size != self.full

    def down(self, image: np.ndarray) -> np.ndarray:
        """(H, W[, C]) at the frame's size -> the working size (area average); itself when not scaled."""
        return cv2.resize(image, self.size, interpolation=cv2.INTER_AREA) if self.scaled else image

    def up(self, image: np.ndarray) -> np.ndarray:
        """(h, w[, C]) float32 at the working size -> the frame's size (bilinear)."""
        return cv2.resize(image, self.full, interpolation=cv2.INTER_LINEAR) if self.scaled else image

    def down_delta(self, delta: np.ndarray) -> np.ndarray:
        """(H, W, 3) float32 dream delta at the frame's size -> the (h, w, 3) delta whose ``up`` gives it back best.

        A plain area average of a bilinearly scaled-up delta is blurred (up, then down, is a
        small blur), and a dream carried from frame to frame would lose a little of its
        detail at every frame, for the next dream to paint it again: flicker. A few
        back-projection steps (``d += target - down(up(d))``) undo that blur.
        """
        if not self.scaled:
            return delta
        target = self.down(delta)
        d = target
        for _ in range(CARRY_SHARPEN_STEPS):
            d = d + (target - self.down(self.up(d)))
        return d

    def up_flow(self, flow_field: np.ndarray) -> np.ndarray:
        """(h, w, 2) px at the working size -> (H, W, 2) px at the frame's size."""
        if not self.scaled:
            return flow_field
        sx, sy = self.full[0] / self.size[0], self.full[1] / self.size[1]
        return self.up(flow_field) * np.array([sx, sy], np.float32)


# ---------------------------------------------------------------- source-side work, done ahead of the dream
@dataclass
class SourceFrame:
    """One source frame in every form the loop uses, each computed once."""

    index: int
    rgb: np.ndarray  # (H, W, 3) uint8, as the camera shows it, at the frame's size
    unit: np.ndarray  # (h, w, 3) float32 unit range, at the working size
    grey: np.ndarray  # (h, w) uint8, at the working size: what flow and the cut score read


@dataclass
class SourceStep:
    """What frame i takes from the source side: the frame, its predecessor, their cut score and flows."""

    src: SourceFrame
    prev: SourceFrame | None
    cut: float | None  # scene-cut score prev -> src (None without a predecessor)
    bwd: np.ndarray | None = None  # (h, w, 2) flows at the working size, None where not needed
    fwd: np.ndarray | None = None
    valid: np.ndarray | None = None  # (h, w) float32


def source_frame(index: int, rgb: np.ndarray, work: WorkSize) -> SourceFrame:
    small = work.down(rgb)  # (h, w, 3) uint8
    return SourceFrame(index, rgb, to_unit(small), cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))


# ---------------------------------------------------------------- the per-frame work
class VideoLoop:
    """Per-frame work for ``render_video``: flow, carry-over, dreaming, flicker bookkeeping.

    Decoding, the source frame's forms, the scene-cut score and the flows of the next frames
    are prepared on a background thread (``pipeline.Lookahead``) while the dream runs.
    """

    def __init__(self, clip: Clip, settings: Settings, *, skip: int = 0, animation=None, lookahead: int = LOOKAHEAD):
        """``clip``: the probed clip (``Clip.probed``). ``skip``: the first frame this loop will be asked for
        (earlier ones are never decoded).

        ``animation``: the render's animated values (built here from the clip's ``audio`` or its own soundtrack
        if None).
        ``lookahead``: source frames prepared ahead on a background thread (0: none, all work in line).
        """
        info, start = clip.info, clip.start
        if animation is None:
            animation = _animation(settings, clip)
        self.anim = animation
        self.settings = numeric(settings, animation)
        self.dreams = settings.dream.iterations > 0  # --iterations 0: motion alone, no backbone at all
        self.backbone, self.objective = (load_backbone_and_objective(self.settings) if self.dreams
                                         else (None, None))
        self.work = WorkSize.of(info, settings)
        if self.dreams and (note := octave_note(self.work.size[::-1], self.settings.dream, self.backbone.min_size)):
            log.info(note)  # once per render, not once per frame
        # decoding (and the flows the look-ahead prepares) stops at the clip's last rendered frame
        self.frames = source_frames(info, animation, start=start, end=clip.end, max_size=settings.dream.max_size,
                                    skip=skip, max_frames=clip.frames or None)
        self.skip, self.lookahead, self.steps = skip, lookahead, None
        self.mask = None if clip.mask is None else _Mask(clip.mask)
        self.flicker = flow.FlickerMeter()
        self.flow_cache = flow_cache(info, settings, animation, start=start)
        # frame 0's numbers (a fresh start, and a frame that carries a dream: fewer steps); each frame takes its
        # own step and index
        self.dream_base = self.settings.dream.frame()
        self.dream_carry = self.settings.dream.frame(iterations=self.settings.video.iterations_per_frame)
        # the added-flicker measure (at the output size) runs behind the loop, in frame order
        self.behind = WriteBehind(name="zoomdream-flicker") if lookahead > 0 else None
        self._flicker: dict[int, float] = {}
        self._last = -1

    def close(self):
        try:
            if self.behind is not None:
                self.behind.close()
        finally:
            if self.steps is not None and hasattr(self.steps, "close"):
                self.steps.close()
            self.frames.close()
            if self.mask is not None:
                self.mask.close()

    @property
    def last_flicker(self) -> float:
        """The added flicker of the last frame made (nan where it has no predecessor to compare with)."""
        if self.behind is not None:
            self.behind.flush()
        return self._flicker.get(self._last, float("nan"))

    def _measure(self, i: int, prev_out, out, src_prev, src, bwd, valid) -> None:
        value = self.flicker.add(prev_out, out, src_prev, src, self.work.up_flow(bwd), self.work.up(valid))
        self._flicker = {i: value}

    def _prepare(self, first: int, flows_at_first: bool) -> Iterator[SourceStep]:
        """Source steps ``first, first+1, ...``; flows wherever a frame will carry (all after ``first``)."""
        prev = None
        for index, rgb in enumerate(self.frames, self.skip):
            if index < first - 1:
                continue  # decoded only to reach `first` (a resumed render)
            src = source_frame(index, rgb, self.work)
            if index >= first:
                step = SourceStep(src, prev, None if prev is None else flow.scene_cut_score(prev.grey, src.grey))
                if prev is not None and (index > first or flows_at_first):
                    self._add_flows(step)
                yield step
            prev = src

    def _add_flows(self, step: SourceStep) -> None:
        v = self.settings.video
        step.bwd, step.fwd = frame_flows(self.flow_cache, step.src.index, step.prev.grey, step.src.grey, v.flow)
        step.valid = valid_pixels(step.bwd, step.fwd, v.occlusion)  # (h, w) 1 = flow explains the pixel

    def _step(self, i: int, prev_out) -> SourceStep:
        if self.steps is None:  # the first call says where the loop starts
            steps = self._prepare(i, prev_out is not None)
            self.steps = Lookahead(steps, self.lookahead) if self.lookahead > 0 else steps
        try:
            step = next(self.steps)
        except StopIteration:
            raise ZoomdreamError(f"source ended before frame {i + 1}") from None
        if step.src.index != i:
            raise ValueError(f"VideoLoop frames must be asked for in order: expected {step.src.index}, got {i}")
        if prev_out is not None and step.prev is not None and step.bwd is None:
            self._add_flows(step)
        return step

    def frame(self, i: int, prev_out: np.ndarray | None) -> np.ndarray:
        v = self.settings.video
        step = self._step(i, prev_out)
        src, sp = step.src, step.prev
        blend = self.anim.blend(i)
        carry = prev_out is not None and blend > 0 and sp is not None
        if carry and step.cut > v.scene_cut:
            log.info("scene cut at frame %d: starting the dream afresh", i)
            carry = False
        init = src.unit  # (h, w, 3) unit range, at the working size
        bwd = valid = None
        if prev_out is not None and sp is not None:
            bwd, valid = step.bwd, step.valid
        if carry:
            if self.work.scaled:  # the previous dream delta, from the saved frame (so a resume is identical)
                delta = self.work.down_delta((prev_out.astype(np.float32) - sp.rgb) / 127.5)  # (h, w, 3)
            else:
                delta = to_unit(prev_out) - sp.unit  # (H, W, 3) the previous dream delta
            init = init + blend * valid[..., None] * flow.warp(delta, bwd)
        if self.dreams:
            layers = self.anim.layers(i)
            objective = self.objective if layers is None else self.objective.with_weights(layers)
            d = dataclasses.replace(self.anim.dream(i, self.dream_carry if carry else self.dream_base), frame=i)
            mask = None if self.mask is None else self.mask.at(i, self.work.size)
            dreamed = dream(init, objective, self.backbone, d, mask=mask)
        else:
            dreamed = init
        if self.work.scaled:  # the dream's delta, scaled up, on the full-size source frame
            out = to_uint8(to_unit(src.rgb) + self.work.up(dreamed - src.unit))
        else:
            out = to_uint8(dreamed)
        lock = self.anim.colour_lock(i)
        if lock > 0:  # toward this source frame's own colours (as the camera shows it)
            out = colour.colour_lock(out, colour.colour_reference(src.rgb), lock)
        self._last = i
        if prev_out is not None and bwd is not None:
            measure = (i, prev_out, out, sp.rgb, src.rgb, bwd, valid)
            if self.behind is not None:
                self.behind.submit(self._measure, *measure)
            else:
                self._measure(*measure)
        return out


def _animation(settings: Settings, clip: Clip):
    """A video's animated values over its whole range (schedules see the same frames in every chunk)."""
    return animation(settings, kind="video", n=clip.frames_all, fps=clip.info.fps,
                     audio=video_track(clip.info, start=clip.start, audio=clip.audio))


def dream_frames(clip: Clip, settings: Settings, *, first: int, stop: int,
                 warmup: int = 0) -> Iterator[tuple[int, np.ndarray, float]]:
    """Dream video frames ``first <= i < stop`` of the probed ``clip`` on their own: a chunk of a longer render.

    The chunk starts afresh (no carried dream) at ``first - warmup``; the warm-up frames
    are dreamed and dropped, so the first kept frame already carries a settled dream.
    Yields ``(i, frame, added_flicker)`` for each kept frame (flicker is nan for a frame
    with no predecessor). Frame i is the same source frame and jitter as in a sequential
    run, so two runs with the same chunking give identical frames.
    """
    begin = max(0, first - warmup)
    # The chunk starts afresh at `begin`, which needs no earlier source frame: decoding seeks there.
    loop = VideoLoop(dataclasses.replace(clip, frames=stop), settings, skip=begin)  # nothing decoded past the chunk
    prev = None
    try:
        for i in range(begin, stop):
            prev = loop.frame(i, prev)
            if i >= first:
                yield i, prev, loop.last_flicker
    finally:
        loop.close()
