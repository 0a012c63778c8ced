"""Reading: frames streamed from a video or an image folder, and a soundtrack decoded to samples.

``iter_frames`` streams upright RGB uint8 frames one at a time from one ffmpeg process that
is always killed and reaped in ``finally`` (or from the folder's images, read through
``images.load_frame``). VFR input is resampled to the CFR rate ``probe`` declared, and a
seek is frame-exact. ``decode_audio`` gives a track as mono float32 samples, ``stream_audio`` in blocks.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from fractions import Fraction
from typing import Iterator

import numpy as np

from zoomdream.errors import ZoomdreamError
from zoomdream.media.images import check_file, composite_alpha, load_frame, resize_max
from zoomdream.media.probe import VideoInfo, decode_filters, has_audio, pix_fmt_has_alpha
from zoomdream.media.process import ffmpeg_exe, popen, stop, tail, url

__all__ = ["iter_frames", "frame_count", "decode_audio", "stream_audio"]

_EPS = 1e-6  # slack (in frames) for float seconds -> frame index conversions


def _first_index(info: VideoInfo, start: float) -> int:
    # Output frame 0 is what is on screen at `start`: the frame whose interval contains it.
    return math.floor(start * info.fps + _EPS)


def frame_count(info: VideoInfo, *, start: float = 0.0, end: float | None = None,
                max_frames: int | None = None) -> int:
    """How many frames ``iter_frames(info, start=, end=, max_frames=)`` yields.

    Output frame i shows source time ``start + i / info.fps``; frames run while that time is
    before ``end`` (default: the end of the clip), and at most ``max_frames`` of them.
    """
    if start < 0 or not math.isfinite(start):
        raise ZoomdreamError(f"{info.path}: start must be >= 0 seconds (got {start})")
    if end is not None and end <= start:
        raise ZoomdreamError(f"{info.path}: end ({end} s) must be after start ({start} s)")
    if max_frames is not None and max_frames < 1:
        raise ZoomdreamError(f"{info.path}: max_frames must be >= 1 (got {max_frames})")
    first = _first_index(info, start)
    if first >= info.n_frames:
        raise ZoomdreamError(f"{info.path}: start {start} s is past the end of the video ({info.duration:.3f} s)")
    count = info.n_frames - first
    if end is not None:
        count = min(count, math.ceil((end - start) * info.fps - _EPS))
    if max_frames is not None:
        count = min(count, max_frames)
    return max(count, 0)


def iter_frames(info: VideoInfo, *, start: float = 0.0, end: float | None = None, max_size: int | None = None,
                max_frames: int | None = None, skip: int = 0) -> Iterator[np.ndarray]:
    """Stream the frames of ``info`` one at a time (never the whole clip in memory).

    Convention: each frame is a fresh, writable (H, W, 3) uint8 RGB array in [0, 255], upright
    (display rotation applied), square pixels, H x W = (info.height, info.width) or smaller with
    ``max_size`` (longer side <= max_size, exact aspect, cv2 INTER_AREA). 10-bit, 16-bit and gray
    sources are converted by ffmpeg; alpha is composited onto ALPHA_BACKGROUND.

    Yields exactly ``frame_count(info, start=, end=, max_frames=)`` frames, less the first
    ``skip`` of them, which are not decoded (frame-exact seek); argument errors are raised
    here, before any ffmpeg starts. VFR sources are resampled to ``info.fps``. The
    ffmpeg process is killed and reaped when the generator finishes, fails or is closed; close
    a half-read generator explicitly (``gen.close()``) rather than leaving it to the GC.
    Only if the file changed (or is damaged in a way probe() could not see) does it stop
    early; an ffmpeg failure then raises ZoomdreamError.
    """
    if max_size is not None and max_size < 1:
        raise ZoomdreamError(f"{info.path}: max_size must be >= 1 (got {max_size})")
    count = frame_count(info, start=start, end=end, max_frames=max_frames)
    if not 0 <= skip <= count:
        raise ZoomdreamError(f"{info.path}: cannot skip {skip} of {count} frames")
    first, count = _first_index(info, start) + skip, count - skip
    if info.images:
        return _iter_images(info, first, count, max_size)
    return _iter_video(info, first, count, max_size)


def _shrink(frame: np.ndarray, max_size: int | None) -> np.ndarray:
    return frame if max_size is None else resize_max(frame, max_size)  # (h', w', 3), longer side <= max_size


def _iter_images(info: VideoInfo, first: int, count: int, max_size: int | None) -> Iterator[np.ndarray]:
    for file in info.images[first:first + count]:
        frame = load_frame(file)  # (h, w, 3) uint8 RGB
        if frame.shape[:2] != (info.height, info.width):
            raise ZoomdreamError(f"{file}: image is {frame.shape[1]}x{frame.shape[0]}, expected "
                                 f"{info.width}x{info.height} like the first image of the folder")
        yield _shrink(frame, max_size)


def _video_command(info: VideoInfo, first: int, count: int, alpha: bool) -> list[str]:
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"]
    if first > 0 and not info.vfr:
        # Input seek is frame-exact for CFR: aim a quarter frame before frame `first`, so rounding
        # can neither drop it nor keep its predecessor.
        cmd += ["-ss", f"{info.video_start + float((first - Fraction(1, 4)) / info.fps):.6f}"]
    cmd += ["-i", url(info.path), "-map", "0:V:0"]
    filters = []
    if info.sar != 1:
        filters.append(f"scale={info.width}:{info.height},setsar=1")  # to square pixels, already upright
    if info.vfr:
        filters += decode_filters(info.fps)  # same resampling probe() counted
        if first > 0:
            filters.append(f"trim=start_frame={first}")  # index on the resampled timeline
    if filters:
        cmd += ["-vf", ",".join(filters)]
    cmd += ["-frames:v", str(count), "-fps_mode", "passthrough", "-pix_fmt", "rgba" if alpha else "rgb24",
            "-f", "rawvideo", "pipe:1"]
    return cmd


def _read_exact(stream, buf: memoryview) -> bool:
    got = 0
    while got < len(buf):
        n = stream.readinto(buf[got:])
        if not n:
            return False
        got += n
    return True


def _iter_video(info: VideoInfo, first: int, count: int, max_size: int | None) -> Iterator[np.ndarray]:
    if count == 0:
        return
    alpha = pix_fmt_has_alpha(info.pix_fmt)
    channels = 4 if alpha else 3
    w, h = info.width, info.height
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: ffmpeg can never block on stderr
        proc = popen(_video_command(info, first, count, alpha), stdout=subprocess.PIPE, stderr=err)
        done = 0
        try:
            while done < count:
                frame = np.empty((h, w, channels), dtype=np.uint8)  # (h, w, 3|4) fresh per frame
                if not _read_exact(proc.stdout, memoryview(frame).cast("B")):
                    break
                if alpha:
                    frame = composite_alpha(frame)  # (h, w, 3)
                yield _shrink(frame, max_size)
                done += 1
            if done < count:
                rc = proc.wait()
                if rc != 0:
                    err.seek(0)
                    text = err.read().decode("utf-8", "replace")
                    raise ZoomdreamError(f"{info.path}: ffmpeg failed while decoding frame {first + done} "
                                         f"(exit {rc}): {tail(text)}")
        finally:
            stop(proc)
            proc.stdout.close()


def _audio_command(p: str, rate: int, start: float) -> list[str]:
    # aresample's first_pts=0 puts sample 0 at the container's start (at `start` after a seek): a track that
    # begins after its video is padded with silence, encoder delay is trimmed. The muxer keeps the same
    # time zero, so a sound analysed at t seconds is heard at t in the output.
    return [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-ss", f"{max(0.0, start):.6f}",
            "-i", url(p), "-map", "0:a:0", "-vn", "-ac", "1", "-af", f"aresample={int(rate)}:first_pts=0",
            "-f", "f32le", "pipe:1"]


def decode_audio(path, *, rate: int, start: float = 0.0) -> np.ndarray:
    """The first audio stream of ``path`` from ``start`` seconds on, as mono float32 samples at ``rate`` Hz.

    Convention: returns (samples,) float32, nominally in [-1, 1]; channels are averaged by ffmpeg
    (``-ac 1``); sample 0 is at ``start`` seconds of container time (silence before a late track).
    A file without audio is a ZoomdreamError. The whole track is held in memory (4 bytes a
    sample: 5 minutes at 22050 Hz is 26 MB); ``stream_audio`` gives it in blocks.
    """
    blocks = list(stream_audio(path, rate=rate, block=1 << 20, start=start))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def stream_audio(path, *, rate: int, block: int, start: float = 0.0) -> Iterator[np.ndarray]:
    """``decode_audio``'s samples in blocks of ``block`` samples (the last one shorter), never all at once.

    Convention: yields fresh (block,) float32 arrays. ffmpeg is killed and reaped when the
    generator finishes, fails or is closed.
    """
    p = check_file(path, what="media")
    if not has_audio(p):
        raise ZoomdreamError(f"{p}: no audio stream found")
    if block < 1:
        raise ValueError(f"block must be >= 1 sample (got {block})")
    with tempfile.TemporaryFile() as err:
        proc = popen(_audio_command(p, rate, start), stdout=subprocess.PIPE, stderr=err)
        try:
            while True:
                data = proc.stdout.read(block * 4)
                if data:
                    yield np.frombuffer(data[:len(data) // 4 * 4], dtype="<f4").astype(np.float32)  # (<= block,)
                if len(data) < block * 4:
                    break
            rc = proc.wait()
            if rc != 0:
                err.seek(0)
                text = err.read().decode("utf-8", "replace")
                raise ZoomdreamError(f"{p}: cannot decode the audio (exit {rc}): {tail(text)}")
        finally:
            stop(proc)
            proc.stdout.close()
