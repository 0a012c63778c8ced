"""Writing: frames on disk encoded to .mp4, .gif or a PNG folder, atomically, with the soundtrack muxed in.

``Mp4Stream`` writes the same MP4 from frames handed to it one by one while they are made (a
frame loop feeds it beside the dream), so only ffmpeg's tail is left once the last frame is done.

``encode`` writes to a temporary name beside the target, checks ffmpeg's exit code, re-probes
the result, fsyncs and renames. It muxes audio with an optional map and an input-side trim,
so a silent or short source never shortens the video. The soundtrack is an ``AudioSource``;
``audio_source`` builds the one that matches ``iter_frames`` from the probe, codec and rate
included. A track the container cannot hold as it is (an MP3 at 8, 11.025 or 12 kHz in MP4,
which the muxer refuses; any codec but AAC, MP3 and Opus) is re-encoded to AAC; a track with
no samples is no audio.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from zoomdream.errors import ZoomdreamError
from zoomdream.fileio import (
    DIR_MODE,
    atomic_path,
    is_own_folder,
    make_temp_dir,
    mark_frame_folder,
    publish,
)
from zoomdream.media.probe import VideoInfo, probe_audio, probe_output
from zoomdream.media.process import ffmpeg_exe, popen, run, stop, tail, url
from zoomdream.media.rates import as_rate
from zoomdream.media.read import frame_count
from zoomdream.settings import DEFAULT_CRF

__all__ = ["AudioSource", "Mp4Stream", "audio_source", "encode", "output_kind", "copies_audio", "COPY_AUDIO_CODECS",
           "AAC_BITRATE", "AAC_RATES"]

COPY_AUDIO_CODECS = frozenset({"aac", "mp3", "opus"})  # copied into MP4 as is; anything else -> AAC
MP3_MP4_MIN_RATE = 16000  # MPEG-2.5 MP3 (8, 11.025, 12 kHz) is refused by the MP4 muxer: re-encoded
AAC_BITRATE = "192k"
AAC_RATES = frozenset({7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000})
AAC_FALLBACK_RATE = 48000  # a track at another rate is resampled to this when re-encoded


@dataclass(frozen=True)
class AudioSource:
    """Where encode() takes its soundtrack from: ``duration`` seconds of ``path`` from ``start``.

    ``start`` is container time, like ffmpeg's input ``-ss``. For a clip whose video starts
    after its audio, frame 0 is at ``info.video_start``: build it with ``audio_source(info, ...)``,
    which also carries the codec ``probe`` read, so encode() need not read the file's header again.
    """

    path: str  # a video or audio file
    start: float  # seconds into it
    duration: float  # seconds to take; clipped to the encoded video's duration
    codec: str | None = None  # codec of its first audio stream; None: encode() reads it (and the rate) from the file
    rate: int | None = None  # its sample rate in Hz; None: unknown


def audio_source(info: VideoInfo, *, start: float = 0.0, end: float | None = None,
                 max_frames: int | None = None) -> AudioSource | None:
    """The soundtrack matching ``iter_frames(info, start=, end=, max_frames=)``; None without audio.

    Starts at source time ``start`` (offset by ``info.video_start``) and lasts as long as the
    frames that call yields, at ``info.fps``.
    """
    if not info.has_audio or info.images:
        return None
    count = frame_count(info, start=start, end=end, max_frames=max_frames)
    return AudioSource(path=info.path, start=info.video_start + start, duration=float(count / info.fps),
                       codec=info.audio_codec, rate=info.audio_rate)


def copies_audio(codec: str, rate: int | None) -> bool:
    """True when a track of ``codec`` at ``rate`` Hz goes into MP4 as it is (else it is re-encoded to AAC)."""
    if codec not in COPY_AUDIO_CODECS:
        return False
    return codec != "mp3" or (rate or 0) >= MP3_MP4_MIN_RATE  # an MP3 of unknown rate: re-encoded, to be safe


def output_kind(out) -> str:
    """``"mp4"``, ``"gif"`` or ``"folder"`` (no extension, or a trailing slash), by ``out``'s name."""
    s = os.fspath(out)
    if s.endswith(("/", os.sep)) or os.path.isdir(s):
        return "folder"
    ext = os.path.splitext(s)[1].lower()
    if ext == "":
        return "folder"
    if ext in (".mp4", ".gif"):
        return ext[1:]
    raise ZoomdreamError(f"{out}: unsupported output format '{ext}' (use .mp4, .gif or a folder)")


def _image2_input(frames_dir: str, pattern: str, fps: Fraction) -> list[str]:
    # '%' in the folder name would be read as part of the sequence pattern.
    src = url(os.path.join(frames_dir.replace("%", "%%"), pattern))
    return ["-f", "image2", "-framerate", f"{fps.numerator}/{fps.denominator}", "-start_number", "0", "-i", src]


def encode(frames_dir, pattern: str, n_frames: int, out, *, fps: Fraction, audio: AudioSource | None = None,
           crf: int = DEFAULT_CRF) -> None:
    """Encode ``frames_dir/(pattern % i)`` for i in range(n_frames) into ``out``, atomically.

    Convention: the frames are image files (PNG) of one size, RGB(A) 8- or 16-bit; they are
    never resized. The format follows ``out``'s name:

    * ``.mp4``: H.264 (libx264, yuv420p, BT.709 tags, ``crf``), ``+faststart``; an odd width or
      height is padded by 1 px (black) to the next even number. Audio, when ``audio`` has any,
      is cut to the video's duration with an input-side trim (never ``-shortest``): aac/mp3/opus
      are copied (an MP3 only at 16 kHz or more), anything else is re-encoded to AAC 192k; a
      track without samples is left out.
    * ``.gif``: two passes, a palette from the frames themselves, then paletteuse. No audio.
    * a folder (no extension or a trailing slash): PNG copies named 000000.png, ... No audio.

    The output appears only when complete: it is written to a ``.<name>.XXXX.partial.<ext>``
    temp beside it, ffmpeg's exit code is checked, the temp is re-probed (frame count, audio),
    fsynced and renamed. On any failure or interrupt ffmpeg is killed and the temp removed.
    The same frames give identical bytes (bitexact, no metadata). ffmpeg logs errors only; a
    failure's last lines are in the error raised.
    """
    kind = output_kind(out)
    rate = as_rate(fps, out)
    if not re.fullmatch(r"[^%]*%0?\d*d[^%]*", pattern):
        raise ValueError(f"pattern must contain one %d-style field, like '%06d.png' (got {pattern!r})")
    if n_frames < 1:
        raise ZoomdreamError(f"{out}: nothing to encode (0 frames)")
    frames_dir = os.path.abspath(os.fspath(frames_dir))
    names = [pattern % i for i in range(n_frames)]
    for i, name in enumerate(names):
        if not os.path.isfile(os.path.join(frames_dir, name)):
            raise ZoomdreamError(f"{os.path.join(frames_dir, name)}: frame {i} of {n_frames} is missing")
    try:
        if kind == "folder":
            _write_folder(out, frames_dir, names)
        elif kind == "gif":
            _encode_gif(out, frames_dir, pattern, n_frames, rate)
        else:
            _encode_mp4(out, frames_dir, pattern, n_frames, rate, audio, crf)
    except OSError as e:
        raise ZoomdreamError(f"{out}: cannot write output ({e.strerror or e})") from None


_LOG_ARGS = ["-loglevel", "error", "-nostats"]  # ffmpeg says nothing unless it fails


def _run_checked(cmd: list[str], out) -> None:
    rc, err = run(cmd)
    if rc != 0:
        raise ZoomdreamError(f"{out}: ffmpeg failed (exit {rc}): {tail(err)}")


def _verify(tmp, out, n_frames: int, want_audio: bool) -> None:
    got = probe_output(tmp)
    if got.frames != n_frames:
        raise ZoomdreamError(f"{out}: ffmpeg wrote {got.frames} frames, expected {n_frames}")
    if want_audio and not got.has_audio:
        raise ZoomdreamError(f"{out}: ffmpeg wrote no audio stream although the audio source has one")


def _audio_args(audio: AudioSource | None, video_seconds: float) -> tuple[list[str], list[str], bool]:
    """(input args, output args, expect audio) for muxing ``audio``; empty when there is none."""
    if audio is None:
        return [], [], False
    seconds = min(float(audio.duration), video_seconds)
    if seconds <= 0:
        return [], [], False
    codec, rate = audio.codec, audio.rate
    if codec is None:  # a file of the user's: read its header once, here
        stream = probe_audio(audio.path)
        if stream is None or stream.empty:
            return [], [], False
        codec, rate = stream.codec, stream.rate
    # Input-side -ss/-t: the audio is trimmed to the video, so the video is never cut.
    inp = ["-ss", f"{max(0.0, float(audio.start)):.6f}", "-t", f"{seconds:.6f}", "-i", url(audio.path)]
    if copies_audio(codec, rate):
        how = ["-c:a", "copy"]
    else:
        how = ["-c:a", "aac", "-b:a", AAC_BITRATE, *([] if rate in AAC_RATES else ["-ar", str(AAC_FALLBACK_RATE)])]
    return inp, ["-map", "1:a:0?", *how], True


def _mp4_command(video_input: list[str], audio_in: list[str], audio_out: list[str], n_frames: int, crf: int,
                 tmp) -> list[str]:
    return [ffmpeg_exe(), "-nostdin", "-hide_banner", *_LOG_ARGS, "-y", *video_input, *audio_in,
            "-map", "0:v:0", "-frames:v", str(n_frames),
            # pad, never resize: 321x241 -> 322x242; then BT.709 limited-range 4:2:0
            "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2,scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
            "-c:v", "libx264", "-preset", "medium", "-crf", str(int(crf)), "-pix_fmt", "yuv420p",
            "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
            *audio_out, "-fps_mode", "passthrough",
            "-movflags", "+faststart", "-fflags", "+bitexact", "-map_metadata", "-1", "-map_chapters", "-1",
            "-f", "mp4", url(tmp)]


def _encode_mp4(out, frames_dir, pattern, n_frames, rate, audio, crf) -> None:
    audio_in, audio_out, want_audio = _audio_args(audio, float(n_frames / rate))
    with atomic_path(out) as tmp:
        _run_checked(_mp4_command(_image2_input(frames_dir, pattern, rate), audio_in, audio_out, n_frames, crf, tmp),
                     out)
        _verify(tmp, out, n_frames, want_audio)


class Mp4Stream:
    """An MP4 encoded while its frames are made: the bytes ``encode`` writes from the same frames as PNGs.

    ``write(frame)`` hands frames 0, 1, ... ((H, W, 3) uint8 RGB, all of one size) to ffmpeg as
    raw RGB over a pipe; the first one starts it, with the arguments, filters and soundtrack of
    ``encode`` (an image2 input of 8-bit RGB PNGs and a raw RGB pipe decode to the same pixels and
    timestamps, so libx264 and the muxer write the same bytes). ``finish()`` closes the pipe,
    waits, checks the exit code and the result (frame count, audio) and publishes it atomically
    (inside ``fileio.published_together`` with the other outputs). ``abort()`` (also on leaving
    a ``with`` block without ``finish``) kills ffmpeg and removes the temp; it may be called from
    another thread than ``write``'s, whose pending and later writes then do nothing.

    The temp is ``.<name>.XXXX.partial.mp4`` in ``folder`` (default: beside ``out``; on the same
    file system), so nothing appears at ``out`` before ``finish``.
    """

    def __init__(self, out, n_frames: int, *, fps: Fraction, audio: AudioSource | None = None, crf: int = DEFAULT_CRF,
                 folder=None):
        if output_kind(out) != "mp4":
            raise ValueError(f"{out}: Mp4Stream writes .mp4 files only")
        if n_frames < 1:
            raise ZoomdreamError(f"{out}: nothing to encode (0 frames)")
        self.out, self.n_frames, self.rate = out, n_frames, as_rate(fps, out)
        self.audio, self.crf, self.folder = audio, crf, folder
        self.written = 0
        self._lock = threading.Lock()
        self._aborted = self._finished = False
        self._proc = self._temp = self._tmp = self._reader = None
        self._want_audio = False
        self._stderr = bytearray()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.abort()
        return False

    def _start(self, shape) -> None:
        h, w = int(shape[0]), int(shape[1])
        audio_in, audio_out, self._want_audio = _audio_args(self.audio, float(self.n_frames / self.rate))
        video_input = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                       "-framerate", f"{self.rate.numerator}/{self.rate.denominator}", "-i", "pipe:0"]
        temp = atomic_path(self.out, folder=self.folder)
        self._tmp = temp.__enter__()
        self._temp = temp
        self._proc = popen(_mp4_command(video_input, audio_in, audio_out, self.n_frames, self.crf, self._tmp),
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def drain(stream=self._proc.stderr, last=self._stderr) -> None:
            with contextlib.suppress(OSError, ValueError):
                while chunk := stream.read1(65536):
                    last.extend(chunk)
                    del last[:-8192]

        self._reader = threading.Thread(target=drain, name="zoomdream-encoder-log", daemon=True)
        self._reader.start()

    def write(self, frame: np.ndarray) -> None:
        """Encode the next frame (blocks while ffmpeg's pipe is full)."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
        with self._lock:
            if self._aborted:
                return
            if self.written >= self.n_frames:
                raise ValueError(f"{self.out}: more than {self.n_frames} frames written")
            if self._proc is None:
                try:
                    self._start(frame.shape)
                except BaseException:
                    self._abort_locked()
                    raise
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).data)
        except (OSError, ValueError):
            if self._aborted:
                return
            rc = self._proc.wait()
            raise ZoomdreamError(f"{self.out}: ffmpeg failed (exit {rc}): {self._log()}") from None
        self.written += 1

    def _log(self) -> str:
        """The tail of ffmpeg's stderr, once it has ended (its pipe is closed when drained)."""
        if self._reader is not None:
            self._reader.join(timeout=5)
            if not self._reader.is_alive():
                with contextlib.suppress(Exception):
                    self._proc.stderr.close()
        return tail(self._stderr.decode("utf-8", "replace"))

    def finish(self) -> None:
        """Close the pipe, wait for ffmpeg, check the result and publish it; on any failure, ``abort()``."""
        try:
            if self._aborted:
                raise ZoomdreamError(f"{self.out}: the encoder was stopped")
            if self.written != self.n_frames:
                raise ZoomdreamError(f"{self.out}: {self.written} frames were encoded, expected {self.n_frames}")
            try:
                self._proc.stdin.close()
            except OSError:
                pass  # ffmpeg is gone: its exit code says why
            rc = self._proc.wait()
            log_tail = self._log()
            if rc != 0:
                raise ZoomdreamError(f"{self.out}: ffmpeg failed (exit {rc}): {log_tail}")
            stop(self._proc)  # reaped: off the list of live children
            _verify(self._tmp, self.out, self.n_frames, self._want_audio)
            with self._lock:
                self._finished = True
            temp, self._temp = self._temp, None
        except BaseException:
            self.abort()
            raise
        temp.__exit__(None, None, None)  # fsync, then rename onto out (or queue it with the outputs published together)

    def abort(self) -> None:
        """Kill ffmpeg and remove the temp (nothing is published); does nothing once finished. Never raises."""
        with self._lock:
            self._abort_locked()

    def _abort_locked(self) -> None:
        if self._aborted or self._finished:
            return
        self._aborted = True
        if self._proc is not None:
            stop(self._proc)
            with contextlib.suppress(Exception):
                self._proc.stdin.close()
            self._log()
        if self._temp is not None:
            temp, self._temp = self._temp, None
            stopped = ZoomdreamError(f"{self.out}: encoding stopped")
            with contextlib.suppress(BaseException):
                temp.__exit__(ZoomdreamError, stopped, None)  # removes the temp


def _encode_gif(out, frames_dir, pattern, n_frames, rate) -> None:
    src = _image2_input(frames_dir, pattern, rate)
    with tempfile.TemporaryDirectory(prefix="zoomdream-palette-") as tmpdir, atomic_path(out) as tmp:
        palette = os.path.join(tmpdir, "palette.png")
        # 1) one 256-colour palette from all frames (streamed; nothing is buffered)
        _run_checked([ffmpeg_exe(), "-nostdin", "-hide_banner", *_LOG_ARGS, "-y", *src,
                      "-vf", f"trim=end_frame={n_frames},palettegen=stats_mode=full:reserve_transparent=0",
                      "-frames:v", "1", "-update", "1", "-f", "image2", url(palette)], out)
        # 2) map every frame onto it; frame delays follow from the input rate
        _run_checked([ffmpeg_exe(), "-nostdin", "-hide_banner", *_LOG_ARGS, "-y", *src,
                      "-i", url(palette), "-filter_complex", "[0:v][1:v]paletteuse=dither=sierra2_4a",
                      "-frames:v", str(n_frames), "-fps_mode", "passthrough", "-loop", "0",
                      "-fflags", "+bitexact", "-map_metadata", "-1", "-f", "gif", url(tmp)], out)
        _verify(tmp, out, n_frames, want_audio=False)


def _write_folder(out, frames_dir: str, names: list[str]) -> None:
    """Copy the frames into a new folder ``out`` (with the marker that makes it zoomdream's own).

    An existing ``out`` is replaced only when zoomdream wrote it (``fileio.is_own_folder``):
    the new folder is complete beside it before the old one is moved aside and deleted
    (``fileio.publish``: with the sidecar, inside ``fileio.published_together``).
    """
    dest = os.path.abspath(os.fspath(out).rstrip("/" + os.sep) or os.fspath(out))
    parent = os.path.dirname(dest)
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise ZoomdreamError(f"{out}: output exists and is a file")
    if os.path.lexists(dest) and not is_own_folder(dest):
        raise ZoomdreamError(f"{out}: existing folder was not written by zoomdream; left untouched")
    if not os.path.isdir(parent):
        raise ZoomdreamError(f"{out}: output folder {parent} does not exist")
    tmp = str(make_temp_dir(dest))
    try:
        for i, name in enumerate(names):
            target = os.path.join(tmp, f"{i:06d}{os.path.splitext(name)[1].lower()}")
            shutil.copyfile(os.path.join(frames_dir, name), target)
            with open(target, "rb+") as f:
                os.fsync(f.fileno())
        mark_frame_folder(tmp)
        os.chmod(tmp, DIR_MODE)  # mkdtemp's 0o700 -> an ordinary folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish(tmp, dest)  # an existing folder is moved aside, then deleted once the new one is in place
