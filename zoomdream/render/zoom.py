"""``render_zoom``: the infinite zoom. A photo is dreamed, moved a little by the motion schedule,
and dreamed again, each frame fed back in as the start of the next.

Convention: frames are (H, W, 3) uint8 RGB; frame indices start at 0.
"""

from __future__ import annotations

import dataclasses
import logging
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from zoomdream import colour, motion
from zoomdream.checks import check_budget, check_dream_size, check_render
from zoomdream.dream import dream, octave_note, to_uint8, to_unit
from zoomdream.fileio import output_lock
from zoomdream.media.images import fit_size, load_image
from zoomdream.media.rates import fps_text
from zoomdream.media.write import AudioSource
from zoomdream.render.framecache import FrameCache, render_manifest, work_folder
from zoomdream.render.frameloop import (
    animation,
    audio_manifest,
    check_movie_output,
    discard_unless_begun,
    finish,
    load_backbone_and_objective,
    numeric,
    render_inputs,
    run_frames,
    soundtrack_file,
    streamed,
)
from zoomdream.render.job import Clip, Output
from zoomdream.settings import DEFAULT_CRF, Settings

__all__ = ["ZoomLoop", "render_zoom"]

log = logging.getLogger("zoomdream")


def render_zoom(input, output, *, settings: Settings, crf: int = DEFAULT_CRF, keep_frames: bool = False,
                restart: bool = False, overwrite: bool = False, audio=None, quiet: bool = False,
                on_frame: Callable[[int], None] | None = None) -> dict:
    """The infinite zoom: dream a photo, move it a little, dream again, feeding each frame back in.

    ``on_frame``: as ``frameloop.run_frames``.
    """
    settings = check_render(settings, input=input, audio=audio, crf=crf)
    out = Output(output, crf=crf, keep_frames=keep_frames, restart=restart, overwrite=overwrite, quiet=quiet)
    out = out.checked(check_movie_output(output, render_inputs(settings, input, audio), overwrite))
    with output_lock(out.path):
        return _render_zoom(Clip(input, audio=audio), out, settings=settings, on_frame=on_frame)


def _render_zoom(clip: Clip, output: Output, *, settings: Settings, on_frame) -> dict:
    z, input, out = settings.zoom, clip.source, output.path
    sound = None if clip.audio is None else soundtrack_file(clip.audio)  # probed before any frame: None when silent
    photo = load_image(input, max_size=settings.dream.max_size)
    size = tuple(z.size or photo.shape[1::-1])  # (w, h) of every frame
    check_dream_size(settings, size, "the frames are" if z.size else f"{Path(input).name} is")
    check_budget(out, frames=z.frames, size=size, work_frames=work_folder(out) / "frames")
    if z.size is not None:
        photo = fit_size(photo, tuple(z.size))
    n = z.frames
    track = None if sound is None else (sound, 0.0)
    anim = animation(settings, kind="zoom", n=n, fps=z.fps, audio=track)
    manifest = render_manifest("zoom", input, settings, {"size": [photo.shape[1], photo.shape[0]],
                                                        **audio_manifest(settings, "zoom", track, n)})
    cache = FrameCache(out, manifest, restart=output.restart)
    fps = Fraction(z.fps).limit_denominator(1001)
    sequence = list(range(n)) + list(range(n - 2, 0, -1)) if z.pingpong and n > 2 else range(n)
    total = len(sequence)
    track = None if sound is None else AudioSource(sound, 0.0, total / float(fps))
    with streamed(cache, output, sequence, fps=fps, audio=track) as encoder:  # an MP4 is encoded beside the dream
        with discard_unless_begun(cache):
            loop = ZoomLoop(photo, settings, animation=anim)
            run_frames(cache, n, loop.frame, quiet=output.quiet, desc="zooming", on_frame=on_frame, encoder=encoder)
        finish(cache, output, sequence, fps=fps, audio=track, settings=settings, encoder=encoder,
               extra={"input": str(Path(input).resolve()), "frames": total})
    if not output.quiet:
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
        extra = dict.fromkeys(animation.layer_keyframes, 0.0)
        self.dreams = settings.dream.iterations > 0  # --iterations 0: motion alone, no backbone at all
        self.backbone, self.objective = (load_backbone_and_objective(settings, extra) if self.dreams
                                         else (None, None))
        if self.dreams and (note := octave_note(photo.shape[:2], settings.dream, self.backbone.min_size)):
            log.info(note)  # frame 0's octaves (later frames use octaves_per_frame); once per render
        self.ref_stats = colour.colour_reference(photo)
        # Later frames dream at full size only: detail lost to magnification is re-grown every frame,
        # while the large structures come from the feedback itself (more octaves blur them into flat blobs).
        self.first_dream = settings.dream.frame()
        self.later_dream = settings.dream.frame(octaves=z.octaves_per_frame, iterations=z.iterations_per_frame)

    def frame(self, i: int, prev_out: np.ndarray | None) -> np.ndarray:
        z = self.settings.zoom
        h, w = self.photo.shape[:2]
        if prev_out is None:
            init, d = self.photo, self.first_dream
        else:
            m = motion.frame_matrix(self.anim.motion(i), fps=z.fps, size=(w, h))
            init, d = motion.warp_affine(prev_out, m), self.later_dream
        if i % z.dream_every or not self.dreams:
            out = init  # pure motion between dreamed frames (or everywhere, with --iterations 0)
        else:
            objective = self.objective
            layers = self.anim.layers(i)
            if layers is not None:
                objective = objective.with_weights(layers)
            d = dataclasses.replace(self.anim.dream(i, d), frame=i)
            out = to_uint8(dream(to_unit(init), objective, self.backbone, d))
        lock = self.anim.colour_lock(i)
        if lock > 0:
            out = colour.colour_lock(out, self.ref_stats, lock)
        return out
