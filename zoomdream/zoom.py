"""``render_zoom``: the infinite zoom. A photo is dreamed, moved a little by the motion schedule,
and dreamed again, each frame fed back in as the start of the next.

Convention: frames are (H, W, 3) uint8 RGB; frame indices start at 0.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from . import colour, media, motion
from .checks import check_budget, check_render
from .dream import dream, octave_note, to_uint8, to_unit
from .errors import ZoomdreamError
from .fileio import output_lock
from .frameloop import (StepSettings, animation, audio_manifest, check_movie_output, finish, fps_text,
                        load_backbone_and_objective, numeric, render_inputs, run_frames)
from .framecache import FrameCache, render_manifest, work_folder
from .images import fit_size, load_image
from .settings import Settings

__all__ = ["ZoomLoop", "render_zoom"]

log = logging.getLogger("zoomdream")


def render_zoom(input, output, *, settings: Settings, crf: int = 18, keep_frames: bool = False,
                restart: bool = False, overwrite: bool = False, audio=None, quiet: bool = False,
                on_frame: Callable[[int], None] | None = None) -> dict:
    """The infinite zoom: dream a photo, move it a little, dream again, feeding each frame back in.

    ``on_frame``: as ``frameloop.run_frames``.
    """
    check_render(settings, input=input, audio=audio, crf=crf)
    out = check_movie_output(output, render_inputs(settings, input, audio), overwrite)
    with output_lock(out):
        return _render_zoom(input, out, settings=settings, crf=crf, keep_frames=keep_frames, restart=restart,
                            audio=audio, quiet=quiet, on_frame=on_frame)


def _render_zoom(input, out: Path, *, settings: Settings, crf, keep_frames, restart, audio, quiet, on_frame) -> dict:
    z = settings.zoom
    if audio is not None and not media.has_audio(audio):
        raise ZoomdreamError(f"{audio}: no audio stream found")
    photo = load_image(input, max_size=settings.dream.max_size)
    check_budget(out, frames=z.frames, size=tuple(z.size or photo.shape[1::-1]),
                 work_frames=work_folder(out) / "frames")
    if z.size is not None:
        photo = fit_size(photo, tuple(z.size))
    n = z.frames
    track = None if audio is None else (os.path.abspath(audio), 0.0)
    anim = animation(settings, kind="zoom", n=n, fps=z.fps, audio=track)
    manifest = render_manifest("zoom", input, settings, {"size": [photo.shape[1], photo.shape[0]],
                                                        **audio_manifest(settings, "zoom", track, n)})
    cache = FrameCache(out, manifest, restart=restart)
    loop = ZoomLoop(photo, settings, animation=anim)
    run_frames(cache, n, loop.frame, quiet=quiet, desc="zooming", on_frame=on_frame)
    fps = Fraction(z.fps).limit_denominator(1001)
    order = list(range(n)) + list(range(n - 2, 0, -1)) if z.pingpong and n > 2 else None
    total = len(order) if order else n
    track = None if audio is None else media.AudioSource(str(Path(audio).resolve()), 0.0, total / float(fps))
    finish(cache, n, out, fps=fps, audio=track, crf=crf, keep_frames=keep_frames, quiet=quiet,
           settings=settings, extra={"input": str(Path(input).resolve()), "frames": total}, order=order)
    if not quiet:
        log.info("wrote %s: %d frames at %s fps", out.name, total, fps_text(fps))
    return {"frames": total, "fps": fps, "size": (photo.shape[1], photo.shape[0])}


class ZoomLoop:
    """Per-frame work for ``render_zoom``: one affine warp of the previous frame, then a dream."""

    def __init__(self, photo: np.ndarray, settings: Settings, *, animation):
        """``animation``: the render's animated values."""
        self.photo = photo
        z = settings.zoom
        self.anim = animation
        settings = self.settings = numeric(settings, animation)
        extra = {name: 0.0 for frame in (z.layers or {}).values() for name in frame}
        self.dreams = settings.dream.iterations > 0  # --iterations 0: motion alone, no backbone at all
        self.backbone, self.objective = (load_backbone_and_objective(settings, extra) if self.dreams
                                         else (None, None))
        if self.dreams and (note := octave_note(photo.shape[:2], settings.dream, self.backbone.min_size)):
            log.info(note)  # frame 0's octaves (later frames use octaves_per_frame); once per render
        self.ref_stats = colour.colour_reference(photo)
        # Later frames dream at full size only: detail lost to magnification is re-grown every frame,
        # while the large structures come from the feedback itself (more octaves blur them into flat blobs).
        self.frame_settings = dataclasses.replace(settings.dream, octaves=z.octaves_per_frame)
        self.first_at, self.later_at = StepSettings(settings.dream), StepSettings(self.frame_settings)

    def frame(self, i: int, prev_out: np.ndarray | None) -> np.ndarray:
        z, d = self.settings.zoom, self.settings.dream
        h, w = self.photo.shape[:2]
        if prev_out is None:
            init, iterations, dream_at = self.photo, d.iterations, self.first_at
        else:
            m = motion.frame_matrix(self.anim.motion(i), fps=z.fps, size=(w, h))
            init, iterations, dream_at = motion.warp_affine(prev_out, m), z.iterations_per_frame, self.later_at
        if i % z.dream_every or not self.dreams:
            out = init  # pure motion between dreamed frames (or everywhere, with --iterations 0)
        else:
            objective = self.objective
            layers = self.anim.layers(i)
            if layers is not None:
                objective = objective.with_weights(layers)
            out = to_uint8(dream(to_unit(init), objective, self.backbone, dream_at(self.anim.step(i)), frame=i,
                                 iterations=iterations))
        lock = self.anim.colour_lock(i)
        if lock > 0:
            out = colour.colour_lock(out, self.ref_stats, lock)
        return out
