"""The frame loop behind video and zoom, and the seam every render opens and closes through.

``run_frames`` is shared: for each frame index it asks the render for a frame (built from the
previous output), saves it losslessly into the frame cache and moves on; Ctrl-C and SIGTERM
stop it with a line that says how to continue. A video render, sequential or on Ray, opens
through ``check_video_output`` and ``open_video`` (output checks, probe, animated values, disk
budget, manifest, frame cache) and closes through ``finish_video`` (encode, soundtrack,
sidecar), so both write the same output from the same frames. An MP4 output is encoded while
the frames are made (``streamed``: ``media.write.Mp4Stream``, fed in order beside the dream, a
resumed run's cached frames first) and only finished and published at the end; a GIF, a folder
of frames, a ping-pong zoom and a Ray render are encoded from the cached frames after the last
one. Either way the output file appears only when complete, with the same bytes.

Convention: frames are (H, W, 3) uint8 RGB; frame indices start at 0; frame i of a video is
source time ``start + i / fps``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from zoomdream import __version__
from zoomdream.audio import ANALYSIS_VERSION, analysis_library_version, frame_features
from zoomdream.backbones import load_backbone
from zoomdream.checks import check_budget, check_dream_size, check_image_folder, check_mask, frame_size
from zoomdream.errors import Interrupted, Terminated, ZoomdreamError, check_interrupt, signals_to_exceptions
from zoomdream.fileio import (
    OutputKind,
    cache_dir,
    check_output_path,
    published_together,
    sidecar_path,
    write_text_atomic,
)
from zoomdream.media.images import load_image, png_size
from zoomdream.media.probe import NO_SAMPLES_NOTE, VideoInfo, probe, probe_audio
from zoomdream.media.rates import fps_text
from zoomdream.media.write import AudioSource, Mp4Stream, audio_source, encode, output_kind
from zoomdream.objectives import from_settings
from zoomdream.render.framecache import (
    FRAME_PATTERN,
    FrameCache,
    file_identity,
    render_manifest,
    versions,
    work_folder,
)
from zoomdream.render.job import Clip, Output
from zoomdream.render.pipeline import InOrder, WriteBehind
from zoomdream.settings import Settings, presets
from zoomdream.settings.animation import Animation, dream_at, features_used, uses_frame_count

__all__ = ["PROGRESS", "JsonProgress", "VideoJob", "animation", "audio_manifest", "check_movie_output",
           "check_video_output", "discard_unless_begun", "finish", "finish_video", "load_backbone_and_objective",
           "numeric", "open_video", "output_soundtrack", "progress", "render_inputs", "run_frames", "sidecar",
           "soundtrack_file", "still", "streamed", "streamed_video", "video_track"]

log = logging.getLogger("zoomdream")


# ---------------------------------------------------------------- small shared pieces
PROGRESS = {"format": "bar"}  # "json": ``--progress json`` (set by the command line)


class _Progress(tqdm):
    def update(self, n=1):
        check_interrupt()  # every step and frame is a safe point for a Ctrl-C
        return super().update(n)


class JsonProgress:
    """Machine-readable progress (``--progress json``): one JSON line per update on stdout,
    ``{"progress": desc, "unit": "frame", "done": 3, "total": 12, "left": 41.5, "file": ...}``.

    ``left`` is seconds, estimated from this run's pace (null before the first update);
    ``file`` is the latest saved frame when the loop sets ``latest`` (frame loops do).
    Each update is a safe point for Ctrl-C, as the bar's.
    """

    def __init__(self, total: int, *, unit: str, desc: str, initial: int = 0, stream=None):
        self.total, self.n, self.unit, self.desc = total, initial, unit, desc
        self.stream = stream or sys.stdout
        self.start, self.t0, self.latest = initial, time.monotonic(), None
        self._emit()

    def update(self, k: int = 1) -> None:
        check_interrupt()
        self.n += k
        self._emit()

    def _emit(self) -> None:
        made, spent = self.n - self.start, time.monotonic() - self.t0
        left = round(spent / made * max(0, self.total - self.n), 1) if made else None
        line = {"progress": self.desc, "unit": self.unit, "done": self.n, "total": self.total, "left": left}
        if self.latest is not None:
            line["file"] = str(self.latest)
        print(json.dumps(line), file=self.stream, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def progress(total: int, *, quiet: bool, unit: str, desc: str, initial: int = 0):
    """The progress bar of a render (none when ``quiet``; JSON lines with ``--progress json``); each update is a
    safe point for Ctrl-C."""
    if PROGRESS["format"] == "json":
        return JsonProgress(total, unit=unit, desc=desc, initial=initial)
    return _Progress(total=total, initial=initial, unit=unit, desc=desc, disable=quiet, dynamic_ncols=True,
                     leave=False, smoothing=0.1)


def sidecar(output: Path, settings: Settings, extra: dict) -> None:
    """The fully resolved settings beside the output (``out.png.yaml``): itself a valid preset."""
    meta = {"zoomdream": __version__, **extra}
    meta.update(versions())
    write_text_atomic(sidecar_path(output), presets.dump(settings, meta=meta))


def render_inputs(settings: Settings, *paths) -> tuple:
    """Every file a render reads: ``paths`` plus the settings' guide and weights files."""
    d = settings.dream
    return tuple(p for p in (*paths, d.guide, d.weights_file) if p is not None)


def animation(settings: Settings, *, kind: str, n: int, fps: float, audio: tuple[str, float] | None) -> Animation:
    """The render's animated values for frames 0..n-1 (``audio``: (file, seconds at frame 0) or None).

    Everything is evaluated and checked here, before any frame is rendered; the soundtrack is
    analysed only when a schedule uses an audio feature.
    """
    features = None
    if audio is not None and features_used(settings, kind):
        features = frame_features(audio[0], fps=float(fps), n=n, offset=audio[1])
    return Animation(settings, kind=kind, n=n, fps=float(fps), features=features)


def audio_manifest(settings: Settings, kind: str, audio: tuple[str, float] | None, n: int) -> dict:
    """What the frames depend on beyond the settings: the analysed soundtrack, and ``n`` when a schedule uses it."""
    out = {}
    if audio is not None and features_used(settings, kind):
        out["audio"] = {"file": file_identity(audio[0]), "offset": audio[1], "analysis": ANALYSIS_VERSION,
                        "librosa": analysis_library_version()}
    if uses_frame_count(settings, kind):
        out["n"] = n
    return out


def load_backbone_and_objective(settings: Settings, extra_layers: dict | None = None):
    """The backbone and the objective a render dreams with (TensorFlow is imported on first use)."""
    d = settings.dream
    guide = load_image(d.guide) if d.guide else None
    backbone = load_backbone(d.model, weights=d.weights, precision=d.precision)
    if extra_layers:  # keyframed layers: every layer any keyframe names is in the graph (weight 0 when absent)
        d = dataclasses.replace(d, layers={**{k: 0.0 for k in extra_layers}, **d.layers})
    return backbone, from_settings(d, backbone, guide)


def still(settings: Settings) -> Settings:
    """A still takes every schedule's value at frame 0 (with no audio)."""
    return dataclasses.replace(settings, dream=dream_at(settings.dream, 0))


def numeric(settings: Settings, anim: Animation) -> Settings:
    """Settings whose dream values are plain numbers (frame 0's): what the backbone and objective are built from."""
    d = dataclasses.replace(settings.dream, step=anim.step(0), layers=anim.constant_layers())
    return dataclasses.replace(settings, dream=d)


# ---------------------------------------------------------------- the loop
def run_frames(cache: FrameCache, n_frames: int, make_frame: Callable[[int, np.ndarray | None], np.ndarray], *,
               quiet: bool, desc: str, on_frame: Callable[[int], None] | None = None,
               encoder: Mp4Stream | None = None) -> None:
    """The shared frame loop: frame i = make_frame(i, previous output) for every i not yet in the cache.

    The previous output is always the saved (lossless) frame, in fresh and resumed runs
    alike, so both produce the same bytes. Frames are written to the cache on a background
    thread while the next one is made (``pipeline.WriteBehind``). Ctrl-C / SIGTERM become
    :class:`Interrupted` with a line that says how to continue. ``on_frame(k)`` is called before each new frame,
    with k the frames this call has made so far (a KeyboardInterrupt it raises stops the loop
    as a Ctrl-C would: a test's way to interrupt a render at a chosen frame).

    ``encoder`` (from ``streamed``): every frame, the cached ones of a resumed run first, is
    handed to it in order on its own thread (``pipeline.InOrder``) once saved; the loop returns
    when it has them all. If the loop stops, the encoder is aborted (no output, no temp).
    """
    start = cache.complete(n_frames)  # a damaged frame counts as missing: it and those after it are dreamed again
    prev = cache.load(start - 1) if start > 0 else None
    if 0 < start < n_frames:
        log.info("resuming after frame %d/%d", start, n_frames)
    done = start
    try:
        with signals_to_exceptions(), progress(n_frames, quiet=quiet, unit="frame", desc=desc,
                                               initial=start) as bar:
            writer = WriteBehind()  # PNG writes run beside the next frame's dream, in order
            feed = None if encoder is None else InOrder(n_frames, encoder.write, cache.load, first=start,
                                                        name="zoomdream-encoder")

            def save(i: int, frame: np.ndarray) -> None:
                cache.save(i, frame)
                bar.latest = cache.path(i)  # JSON progress names the latest frame once it is on disk
                if feed is not None:
                    feed.ready(i, frame)

            try:
                try:
                    for i in range(start, n_frames):
                        if on_frame is not None:
                            on_frame(i - start)
                        prev = make_frame(i, prev)
                        writer.submit(save, i, prev)
                        done = i + 1
                        bar.update(1)
                finally:
                    writer.close()  # every frame counted in `done` is on disk before the loop ends or stops
                if feed is not None:
                    feed.wait()  # the encoder has every frame: only its tail is left
            except BaseException:
                if encoder is not None:
                    encoder.abort()
                raise
            finally:
                if feed is not None:
                    feed.close()
    except KeyboardInterrupt:
        raise Interrupted(_stopped("interrupted", done, n_frames), 130) from None
    except Terminated:
        raise Interrupted(_stopped("terminated", done, n_frames), 143) from None


@contextlib.contextmanager
def discard_unless_begun(cache: FrameCache):
    """Around everything a render does once its work folder exists: if it stops (an error, Ctrl-C,
    SIGTERM) before its first frame is finished, the folder goes, so nothing is left behind and
    the same or a corrected command starts afresh. A folder with finished frames stays, to resume."""
    try:
        yield
    except BaseException:
        if not _any_frame(cache):
            cache.remove()
        raise


def _any_frame(cache: FrameCache) -> bool:
    """A finished frame is in the work folder (any index: chunked renders finish frames out of order)."""
    try:
        with os.scandir(cache.frames) as entries:
            return any(e.name.endswith(".png") and not e.name.startswith(".") for e in entries)
    except OSError:
        return False


def _stopped(verb: str, done: int, n_frames: int) -> str:
    if done == 0:
        return f"{verb} before the first frame was finished; nothing was written"
    return (f"{verb} after frame {done}/{n_frames}; run the same command again to resume "
            f"(or add --restart to start over)")


def streamed(cache: FrameCache, output: Output, sequence, *, fps: Fraction, audio) -> contextlib.AbstractContextManager:
    """The encoder to hand ``run_frames`` and ``finish`` for an output encoded while its frames are made.

    A ``with`` block yields an ``Mp4Stream`` (its temp in the work folder) for an MP4 whose
    ``sequence`` is the frames in order, else None (a GIF needs every frame for its palette, a
    folder is copied, a ping-pong plays frames again in reverse: those are encoded at the end).
    Leaving the block without ``finish`` aborts it.
    """
    if output_kind(output.path) != "mp4" or sequence != range(len(sequence)):
        return contextlib.nullcontext(None)
    return Mp4Stream(output.path, len(sequence), fps=fps, audio=audio, crf=output.crf, folder=cache.folder)


def finish(cache: FrameCache, output: Output, sequence, *, fps: Fraction, audio, settings: Settings,
           extra: dict, encoder: Mp4Stream | None = None) -> None:
    """Encode the cached frames into the output and write its sidecar (both appear, or neither), drop the work folder.

    ``sequence``: the frame indices in output order; ``range(n)`` is the cache's own numbering, anything
    else (e.g. ping-pong) becomes a second numbering made of hard links. ``encoder``: the ``streamed``
    one ``run_frames`` fed, which is only finished here.
    """
    frames_dir, count = cache.frames, len(sequence)
    if encoder is None and sequence != range(count):
        frames_dir = cache.folder / "sequence"
        shutil.rmtree(frames_dir, ignore_errors=True)
        frames_dir.mkdir()
        for k, i in enumerate(sequence):
            os.link(cache.path(i), frames_dir / (FRAME_PATTERN % k))
    try:
        with signals_to_exceptions(), published_together():  # the output and its sidecar, or neither
            if encoder is not None:
                encoder.finish()
            else:
                if not output.quiet:
                    log.info("encoding %d frames to %s", count, output.path.name)
                encode(frames_dir, FRAME_PATTERN, count, output.path, fps=fps, audio=audio, crf=output.crf)
            sidecar(output.path, settings, extra)
    except (KeyboardInterrupt, Terminated) as e:
        code = 143 if isinstance(e, Terminated) else 130
        raise Interrupted("interrupted while encoding; all frames are kept: run the same command again to "
                          "encode them", code) from None
    if output.keep_frames:
        log.info("frames kept in %s", cache.folder)
    else:
        cache.remove()


# ---------------------------------------------------------------- opening and closing a video render
def check_movie_output(output, inputs: tuple, overwrite: bool) -> Path:
    """An .mp4 / .gif output (or a folder of frames), checked against ``inputs`` before anything is written."""
    kind = output_kind(output) if os.fspath(output).strip() else "folder"  # an empty path is refused below
    return check_output_path(output, OutputKind(kinds=(".mp4", ".gif"), folder=kind == "folder"), inputs=inputs,
                             overwrite=overwrite)


def check_video_output(output: Output, *, settings: Settings, clip: Clip) -> Output:
    """The output of a video render, checked before anything is written (after ``check_render``)."""
    path = check_movie_output(output.path, render_inputs(settings, clip.source, clip.mask, clip.audio),
                              output.overwrite)
    start, end = clip.start, clip.end
    if start < 0 or (end is not None and end <= start):
        raise ZoomdreamError(f"--start {start} / --end {end}: expected 0 <= start < end")
    return output.checked(path)


@dataclass
class VideoJob:
    """An opened video render: the probed clip (with its frame counts), the animated values and the frame cache."""

    clip: Clip  # probed: clip.info, clip.frames (after --preview), clip.frames_all
    animation: Animation  # over the whole range: schedules see the same frames with --preview or not
    cache: FrameCache

    @property
    def info(self) -> VideoInfo:
        return self.clip.info

    @property
    def n(self) -> int:
        """Frames to render (after --preview)."""
        return self.clip.frames


def open_video(clip: Clip, output: Output, *, settings: Settings, render: dict | None = None) -> VideoJob:
    """Probe, evaluate the animated values, check the disk budget and open the frame cache.

    ``render``: more render options that decide frames (the chunking of a Ray render), for the manifest.
    """
    input, fps, mask, out = clip.source, clip.fps, clip.mask, output.path
    info = probe(input, fps=fps)
    for note in info.notes:  # VFR resampled, truncated file, alpha composited, HDR
        log.warning("%s: %s", Path(input).name, note)
    if fps is not None and not info.images:
        log.info("--fps %s has no effect on a video file (it is the rate of a folder of images): %s plays at "
                 "its own %s fps", fps_text(Fraction(fps)), Path(input).name, fps_text(info.fps))
    # Everything that can refuse this render is checked before the work folder is made.
    if info.images:
        check_image_folder(info)
    if mask is not None:
        check_mask(mask)
    clip = clip.probed(info)  # the frame counts, once: after --preview, and of the whole range
    d = settings.dream
    size = frame_size((info.width, info.height), d.max_size)
    check_dream_size(settings, size, f"{Path(input).name}: its frames are")
    track = video_track(info, start=clip.start, audio=clip.audio)
    anim = animation(settings, kind="video", n=clip.frames_all, fps=info.fps, audio=track)
    check_budget(out, frames=clip.frames, size=size, flow_cache=cache_dir() / "flow",
                 work_frames=work_folder(out) / "frames")
    manifest = render_manifest("video", input, settings, {"start": clip.start, "end": clip.end,
                                                         "fps": str(info.fps), "max_size": d.max_size,
                                                         **(render or {}),
                                                         **audio_manifest(settings, "video", track, clip.frames_all)},
                               files={"mask": mask})
    return VideoJob(clip, anim, FrameCache(out, manifest, restart=output.restart))


def streamed_video(job: VideoJob, output: Output) -> contextlib.AbstractContextManager:
    """``streamed`` for a video render: its frames in order, at the clip's rate, with the output's soundtrack."""
    return streamed(job.cache, output, range(job.n), fps=job.info.fps, audio=output_soundtrack(job.clip))


def finish_video(job: VideoJob, output: Output, *, settings: Settings,
                 encoder: Mp4Stream | None = None) -> tuple[int, int]:
    """Encode the finished frames with the soundtrack (or finish the ``streamed_video`` encoder) and write the
    sidecar; returns the frames' (w, h)."""
    clip, info, n = job.clip, job.info, job.n
    sound = output_soundtrack(clip)
    size = png_size(job.cache.path(n - 1))  # (w, h) of the dreamed frames, after max_size
    finish(job.cache, output, range(n), fps=info.fps, audio=sound, settings=settings, encoder=encoder,
           extra={"input": info.path, "start": clip.start, "end": clip.end, "frames": n, "fps": str(info.fps)})
    return size


def video_track(info, *, start: float, audio=None) -> tuple[str, float] | None:
    """Where a video's audio features come from: (file, seconds into it at output frame 0), or None.

    ``audio`` (a file) starts at output frame 0; otherwise the clip's own soundtrack at ``start``.
    """
    if audio is not None:
        sound = soundtrack_file(audio)
        return None if sound is None else (sound, 0.0)
    if info.has_audio and not info.images:
        return info.path, info.video_start + start
    return None


def soundtrack_file(audio) -> str | None:
    """The ``--audio`` file, probed before any frame is dreamed: its absolute path, or None (and a note) when
    its track holds no samples. A file without an audio stream is refused."""
    stream = probe_audio(audio)
    if stream is None:
        raise ZoomdreamError(f"{audio}: no audio stream found")
    if stream.empty:
        log.warning("%s: %s", Path(audio).name, NO_SAMPLES_NOTE)
        return None
    return os.path.abspath(audio)


def output_soundtrack(clip: Clip):
    """The output's soundtrack (an AudioSource or None): the ``--audio`` file from its start when given, else the
    clip's own; as long as the frames rendered (``clip`` is probed)."""
    info = clip.info
    if clip.audio is None:
        return audio_source(info, start=clip.start, end=clip.end, max_frames=clip.preview)
    return AudioSource(os.path.abspath(clip.audio), 0.0, float(clip.frames / info.fps))
