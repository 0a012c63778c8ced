"""Video in and out through the bundled ffmpeg: probe, streaming decode, atomic encode.

Everything here drives the ffmpeg binary of imageio-ffmpeg directly (ffmpeg 9 as shipped; no
system ffmpeg, no ffprobe). The behaviours this module defends against are recorded in
RELIABILITY.md; the short version:

* ``probe`` counts frames for real (packets, and a decode when anything looks off), never from
  fps x duration; it detects truncation, variable frame rate, rotation and non-square pixels,
  and turns every unreadable input into a one-line ``ZoomdreamError``.
* ``iter_frames`` streams upright RGB uint8 frames one at a time from one ffmpeg process that
  is always killed and reaped in ``finally``. VFR input is resampled to a declared CFR rate.
* ``encode`` writes .mp4 / .gif / a PNG folder to a temporary name beside the target, checks
  ffmpeg's exit code, re-probes the result, fsyncs and renames. It muxes audio with an optional
  map and an input-side trim, so a silent or short source never shortens the video.

Every ffmpeg runs with ``-nostdin`` in its own session (a terminal Ctrl-C reaches only Python,
which then kills ffmpeg), and every path handed to ffmpeg is absolute and prefixed ``file:``
so names like ``-dash.mp4`` or ``file:odd.mp4`` are never read as options or protocols.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator

import cv2
import imageio_ffmpeg
import numpy as np

from .errors import ZoomdreamError
from .fileio import DIR_MODE, FOLDER_MARKER, FOLDER_MARKER_TEXT, atomic_path, is_own_folder, make_temp_dir

__all__ = [
    "VideoInfo",
    "AudioSource",
    "OutputProbe",
    "probe",
    "iter_frames",
    "frame_count",
    "encode",
    "output_kind",
    "has_audio",
    "audio_source",
    "decode_audio",
    "probe_output",
    "ffmpeg_version",
    "IMAGE_EXTENSIONS",
    "ALPHA_BACKGROUND",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
DEFAULT_FOLDER_FPS = Fraction(24)  # rate of an image-folder "video" when the caller gives none
ALPHA_BACKGROUND = (0, 0, 0)  # RGB that transparent pixels are composited onto (black)
VFR_MAX_FPS = Fraction(60)  # a VFR source is never resampled above this rate (each frame costs a dream)
STANDARD_RATES = tuple(Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "48", "50",
                                             "60000/1001", "60"))
CFR_SNAP = Fraction(3, 1000)  # a CFR rate measured from rounded timestamps snaps to a standard rate within 0.3 %
VFR_SNAP = Fraction(5, 100)  # a VFR base rate snaps to a standard rate within 5 %
VFR_JITTER = 4  # an interval off the median by more than median/4 (and > 1 tick) marks the stream VFR
COPY_AUDIO_CODECS = frozenset({"aac", "mp3", "opus"})  # copied into MP4 as is; anything else -> AAC
AAC_BITRATE = "192k"
STDERR_TAIL_CHARS = 400  # how much of ffmpeg's stderr a ZoomdreamError carries
_EPS = 1e-6  # slack (in frames) for float seconds -> frame index conversions
_DISCARD, _CORRUPT = 0x4, 0x2  # AVPacket flags as framecrc prints them (F=0x..)


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learned about a video file or a folder of numbered images.

    Convention: ``width``/``height`` are the size of the frames ``iter_frames`` yields without
    ``max_size``: upright (rotation applied) and with square pixels (non-square SAR is scaled).
    """

    path: str  # absolute path of the file or image folder
    width: int  # upright display width in pixels
    height: int  # upright display height in pixels
    fps: Fraction  # exact rate of the yielded frames (the source rate, or the declared CFR rate for VFR)
    n_frames: int  # frames iter_frames() yields for the whole clip (a real count)
    duration: float  # seconds of video: n_frames / fps
    has_audio: bool
    audio_codec: str | None  # ffmpeg codec name of the first audio stream ("aac", "pcm_s16le", ...)
    codec: str  # video codec name ("h264", "png"; "images" for a folder)
    rotation: int  # display-matrix rotation, counter-clockwise degrees (0/90/180/270); frames come upright
    vfr: bool  # True when the source is variable-frame-rate and is resampled to `fps`
    header_frames: int | None  # frame count the container header claims (None when unknown)
    truncated: bool = False  # header claims more than 1 frame beyond what decodes (file cut short?)
    notes: tuple[str, ...] = ()  # one-line notices for the user (VFR resampled, truncated, alpha, HDR)
    pix_fmt: str = ""  # decoder pixel format ("yuv420p", "rgba", ...)
    sar: Fraction = Fraction(1)  # sample aspect ratio of the stored pixels (scaled away on decode)
    video_start: float = 0.0  # seconds from the container start to the first video frame (seek offset)
    images: tuple[str, ...] = ()  # image-folder input: the files, in numeric order

    @property
    def truncation_note(self) -> str | None:
        """``"decoded 5 of 20 frames (file truncated?)"`` when truncated, else None."""
        if not self.truncated:
            return None
        return next(n for n in self.notes if n.startswith("decoded "))


@dataclass(frozen=True)
class AudioSource:
    """Where encode() takes its soundtrack from: ``duration`` seconds of ``path`` from ``start``.

    ``start`` is container time, like ffmpeg's input ``-ss``. For a clip whose video starts
    after its audio, frame 0 is at ``info.video_start``: build it with ``audio_source(info, ...)``.
    """

    path: str  # a video or audio file
    start: float  # seconds into it
    duration: float  # seconds to take; clipped to the encoded video's duration


@dataclass(frozen=True)
class OutputProbe:
    """Facts about an encoded file, from its packets (no decoding); used to verify outputs."""

    frames: int  # video packets (= frames for the formats encode() writes)
    seconds: float  # video stream duration
    has_audio: bool
    width: int  # stored (coded) width; no rotation applied
    height: int
    rotation: int  # display-matrix rotation (counter-clockwise degrees); 0 when there is none
    fps: Fraction | None = None
    audio_seconds: float | None = None  # audio stream duration
    codec: str = ""
    audio_codec: str | None = None
    pix_fmt: str = ""


# --------------------------------------------------------------------------- ffmpeg plumbing


def _ffmpeg() -> str:
    """Path of the ffmpeg binary (IMAGEIO_FFMPEG_EXE, else the one bundled with imageio-ffmpeg)."""
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        raise ZoomdreamError("ffmpeg: not found; reinstall imageio-ffmpeg or set IMAGEIO_FFMPEG_EXE") from None


def _url(path: str) -> str:
    # Absolute + explicit protocol: "-x.mp4" is not an option, "file:odd.mp4" not a protocol.
    return "file:" + os.path.abspath(path)


# Every ffmpeg this process started and has not reaped yet: stop_children() ends them all.
_LIVE: set[subprocess.Popen] = set()
_SPAWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _popen(cmd: list[str], **kwargs) -> subprocess.Popen:
    """Start ffmpeg; a Ctrl-C or SIGTERM at any moment, even mid-fork, still gets it stopped.

    While the child is created, SIGINT and SIGTERM only take note: were their handlers to
    raise between the fork and our holding the Popen object, the ffmpeg would be orphaned
    and go on writing after we exit. Once the child is registered (see ``stop_children``),
    the old handlers are back and a noted signal is handed to its handler, whose exception
    stops the new child before propagating. (Blocking the signals with pthread_sigmask is
    not enough: another thread may take the signal, and the handler still runs in ours.)
    """
    swap = threading.current_thread() is threading.main_thread()
    noted: list[int] = []
    old = {}
    if swap:
        for sig in _SPAWN_SIGNALS:
            old[sig] = signal.signal(sig, lambda signum, frame: noted.append(signum))
    proc, error = None, None
    try:
        # Own session: a terminal ^C hits only Python, which then kills ffmpeg itself.
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)
    except OSError as e:
        error = ZoomdreamError(f"{cmd[0]}: cannot run ffmpeg ({e.strerror or e})")
    finally:
        _LIVE.difference_update([p for p in _LIVE if p.returncode is not None])  # reaped elsewhere
        if proc is not None:
            _LIVE.add(proc)
        try:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            for sig in noted[:1]:  # deliver what arrived meanwhile, as the kernel would have
                handler = old[sig]
                if callable(handler):
                    handler(sig, None)
                elif handler == signal.SIG_DFL:
                    if proc is not None:
                        _stop(proc)
                    signal.raise_signal(sig)
        except BaseException:
            if proc is not None:  # nobody else holds it: stop it and close its pipes
                _stop(proc)
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
            raise
    if error is not None:
        raise error
    return proc


def stop_children() -> None:
    """Kill and reap every ffmpeg still running (the CLI's last word, whatever happened)."""
    for proc in list(_LIVE):
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """Kill ``proc`` (and its process group) if still running, then reap it. Never raises.

    Pipes are left open: a thread may still be draining one (it sees EOF once ffmpeg is dead).
    """
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: pgid == pid
        except OSError:
            with contextlib.suppress(OSError):
                proc.kill()
    with contextlib.suppress(Exception):
        proc.wait()
    _LIVE.discard(proc)


def _capture(cmd: list[str]) -> tuple[int, str, str]:
    """Run a short ffmpeg command to completion; return (rc, stdout, stderr)."""
    proc = _popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate()
    except BaseException:
        _stop(proc)
        for stream in (proc.stdout, proc.stderr):
            stream.close()
        raise
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _run(cmd: list[str], *, echo: bool = False) -> tuple[int, str]:
    """Run a long ffmpeg command; return (rc, tail of stderr). ``echo`` copies stderr to ours.

    stderr is drained by a thread (a full pipe would stall ffmpeg); on any exception, including
    KeyboardInterrupt while waiting, ffmpeg is killed before the exception propagates.
    """
    proc = _popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tail = bytearray()

    def drain() -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := proc.stderr.read1(65536):
                if echo:
                    sys.stderr.write(chunk.decode("utf-8", "replace"))
                    sys.stderr.flush()
                tail.extend(chunk)
                del tail[:-8192]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        rc = proc.wait()
        reader.join()
    except BaseException:
        _stop(proc)
        reader.join(timeout=5)
        raise
    finally:
        if not reader.is_alive():
            proc.stderr.close()
    return rc, tail.decode("utf-8", "replace")


def _tail(stderr: str, limit: int = STDERR_TAIL_CHARS) -> str:
    """The last few meaningful stderr lines as one line (progress/stats noise dropped)."""
    lines = [ln.strip() for ln in re.split(r"[\r\n]+", stderr) if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("frame=", "size=", "Press [q]"))]
    text = " | ".join(lines[-3:])
    return text[-limit:] if text else "(no message)"


def ffmpeg_version() -> str:
    """Version string of the ffmpeg in use, e.g. ``"n9.0.2-17-g2a571b6068-20260930"``."""
    return _version_of(_ffmpeg())


@functools.lru_cache(maxsize=4)
def _version_of(exe: str) -> str:
    rc, out, err = _capture([exe, "-hide_banner", "-version"])
    m = re.match(r"ffmpeg version (\S+)", out)
    if rc != 0 or not m:
        raise ZoomdreamError(f"{exe}: not a working ffmpeg (exit {rc}): {_tail(err or out)}")
    return m.group(1)


# --------------------------------------------------------------------------- parsing ffmpeg output


@dataclass
class _Stream:
    index: int
    kind: str  # "Video", "Audio", "Subtitle", "Data", ...
    codec: str
    pix_fmt: str = ""
    width: int = 0
    height: int = 0
    sar: Fraction = Fraction(1)
    fps: float | None = None  # the rounded "N fps" ffmpeg prints (fallback only)
    attached: bool = False  # cover art, not a video track
    rotation: float = 0.0
    hdr: bool = False


@dataclass
class _Scan:
    rc: int
    log: list[tuple[str, str]]  # (level, message) per stderr line
    found_input: bool = False
    demuxer: str = ""  # ffmpeg's input format name ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", ...)
    container_start: float = 0.0
    streams: list[_Stream] = field(default_factory=list)
    out_types: dict[int, str] = field(default_factory=dict)  # output stream -> "video"/"audio"
    out_tb: dict[int, Fraction] = field(default_factory=dict)
    out_dims: dict[int, tuple[int, int]] = field(default_factory=dict)
    packets: dict[int, list[tuple[int | None, int, int]]] = field(default_factory=dict)  # (pts, duration, flags)

    @property
    def text(self) -> str:
        return "\n".join(msg for _, msg in self.log)

    @property
    def damaged(self) -> bool:
        """Errors while reading packets (truncation, corrupt data) after the header was parsed."""
        return any(lvl in ("error", "fatal", "panic") or (lvl == "warning" and "corrupt" in msg.lower())
                   for lvl, msg in self.log)

    def out_stream(self, kind: str) -> int | None:
        return next((i for i, t in sorted(self.out_types.items()) if t == kind), None)


_LOG_LINE = re.compile(r"^(?:\[[^\]]*\] )?\[(trace|debug|verbose|info|warning|error|fatal|panic)\] ?(.*)$")
_STREAM_LINE = re.compile(r"^\s*Stream #0:(\d+)(?:\[[^\]]*\])?(?:\([^)]*\))?: (\w+): (.*)$")


def _split_top(s: str) -> list[str]:
    """Split an ffmpeg stream description at commas outside parentheses/brackets."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return parts


def _parse_stream(index: int, kind: str, desc: str) -> _Stream:
    parts = _split_top(desc)
    st = _Stream(index=index, kind=kind, codec=(parts[0].split() or ["?"])[0].rstrip(","))
    st.attached = "(attached pic)" in desc
    if kind != "Video":
        return st
    for part in parts[1:]:
        if m := re.match(r"^(\d+)x(\d+)\b", part):
            st.width, st.height = int(m.group(1)), int(m.group(2))
        elif m := re.match(r"^([\d.]+)(k?) fps\b", part):
            st.fps = float(m.group(1)) * (1000 if m.group(2) else 1)
        elif not st.pix_fmt and re.match(r"^[a-z][a-z0-9_]*(\(|$)", part) and part != "none":
            st.pix_fmt = part.split("(")[0]
            st.hdr = bool(re.search(r"smpte2084|arib-std-b67", part))
    if m := re.search(r"SAR (\d+):(\d+)", desc):
        num, den = int(m.group(1)), int(m.group(2))
        if num > 0 and den > 0:
            st.sar = Fraction(num, den)
    return st


def _scan(path: str, out_args: list[str] | None) -> _Scan:
    """Run ffmpeg on ``path`` and parse its input dump (and framecrc packets when ``out_args``)."""
    cmd = [_ffmpeg(), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info", "-i", _url(path)]
    cmd += out_args if out_args is not None else []
    rc, out, err = _capture(cmd)
    scan = _Scan(rc=rc, log=[])
    for raw in err.splitlines():
        m = _LOG_LINE.match(raw)
        scan.log.append((m.group(1), m.group(2)) if m else ("info", raw))
    section = False
    for lvl, msg in scan.log:
        if msg.startswith("Input #0"):
            section = scan.found_input = True
            scan.demuxer = msg.split(",", 1)[1].rsplit(", from ", 1)[0].strip() if "," in msg else ""
        elif msg.startswith(("Stream mapping", "Output #", "Press [q]")):
            section = False
        elif section:
            if m := re.search(r"start: (-?[\d.]+)", msg):
                scan.container_start = float(m.group(1))
            if m := _STREAM_LINE.match(msg):
                scan.streams.append(_parse_stream(int(m.group(1)), m.group(2), m.group(3)))
            elif (m := re.search(r"rotation of (-?[\d.]+) degrees", msg)) and scan.streams:
                scan.streams[-1].rotation = float(m.group(1))
    for line in out.splitlines():
        if line.startswith("#"):
            if m := re.match(r"#tb (\d+): (\d+)/(\d+)", line):
                scan.out_tb[int(m.group(1))] = Fraction(int(m.group(2)), int(m.group(3)))
            elif m := re.match(r"#media_type (\d+): (\w+)", line):
                scan.out_types[int(m.group(1))] = m.group(2)
            elif m := re.match(r"#dimensions (\d+): (\d+)x(\d+)", line):
                scan.out_dims[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
            continue
        cols = [c.strip() for c in line.split(",")]
        if len(cols) < 6 or not cols[0].isdigit():
            continue
        flags = 1  # framecrc omits F= for plain keyframes
        for c in cols[6:]:
            if c.startswith("F=0x"):
                flags = int(c[4:], 16)
        pts = int(cols[2])
        scan.packets.setdefault(int(cols[0]), []).append((None if pts < -(2**62) else pts, int(cols[3]), flags))
    return scan


# ffmpeg "opens" any .txt/.ans file as ANSI art and subtitles as streams; none is a video.
_TEXT_DEMUXERS = frozenset({"tty", "srt", "ass", "webvtt", "subviewer", "microdvd"})


def _open_error(path, scan: _Scan, what: str = "video") -> ZoomdreamError:
    """Map a failed open to one user-facing line (``what``: "video" or "media")."""
    text = scan.text
    if scan.demuxer in _TEXT_DEMUXERS:
        return ZoomdreamError(f"{path}: not a {what} file")
    if "Permission denied" in text:
        return ZoomdreamError(f"{path}: cannot read file (permission denied)")
    if "misdetection possible" in text:
        return ZoomdreamError(f"{path}: not a {what} file")
    if "moov atom not found" in text:
        return ZoomdreamError(f"{path}: file is truncated (moov atom missing)")
    if "Invalid data found when processing input" in text:
        return ZoomdreamError(f"{path}: not a {what} file")
    if "No such file" in text:
        return ZoomdreamError(f"{path}: no such file")
    return ZoomdreamError(f"{path}: ffmpeg could not read it (exit {scan.rc}): {_tail(text)}")


def _scan_media(path, out_args: list[str] | None, what: str = "video") -> tuple[str, _Scan]:
    """(absolute path, scan) of a readable media file, else the one-line ZoomdreamError."""
    p = _check_file(path)
    scan = _scan(p, out_args)
    if not scan.found_input or scan.demuxer in _TEXT_DEMUXERS:
        raise _open_error(path, scan, what)
    return p, scan


def _check_file(path) -> str:
    """Absolute path of an existing, non-empty regular file, else ZoomdreamError."""
    p = os.path.abspath(os.fspath(path))
    if not os.path.exists(p):
        raise ZoomdreamError(f"{path}: no such file")
    if not os.path.isfile(p):
        raise ZoomdreamError(f"{path}: not a regular file")
    if os.path.getsize(p) == 0:
        raise ZoomdreamError(f"{path}: empty file (0 bytes)")
    return p


# --------------------------------------------------------------------------- frame rates


def _snap(rate: Fraction, tolerance: Fraction) -> Fraction:
    """The nearest standard (or whole) rate within ``tolerance`` (relative), else a tidy fraction."""
    candidates = list(STANDARD_RATES)
    if round(rate) >= 1:
        candidates.append(Fraction(round(rate)))
    best = min(candidates, key=lambda c: abs(c - rate) / c)
    if abs(best - rate) / best <= tolerance:
        return best
    return rate.limit_denominator(1001) or Fraction(1)


def _fps_text(fps: Fraction) -> str:
    return f"{float(fps):.4g}"


def _measure_rate(pts: list[int], tb: Fraction | None, fallback: float | None) -> tuple[Fraction, bool]:
    """(rate, is_vfr) from packet timestamps (``tb`` seconds per tick).

    CFR: the exact rate when all intervals are equal, else the mean rate snapped to a standard
    one. VFR (intervals off the median by more than a quarter): the rate of the short intervals
    (10th percentile), snapped to a standard rate and capped at VFR_MAX_FPS, so no source frame
    is lost and the timing is kept.
    """
    ts = sorted(set(p for p in pts if p is not None))
    if tb is None or len(ts) < 2:
        return _snap(Fraction(fallback or 25).limit_denominator(1001), CFR_SNAP), False
    steps = [b - a for a, b in zip(ts, ts[1:])]
    median = sorted(steps)[len(steps) // 2]
    vfr = any(abs(s - median) > max(1, median / VFR_JITTER) for s in steps)
    if not vfr:
        if len(set(steps)) == 1:
            return 1 / (steps[0] * tb), False
        return _snap(len(steps) / ((ts[-1] - ts[0]) * tb), CFR_SNAP), False
    short = sorted(steps)[int(0.1 * (len(steps) - 1))]
    rate = min(_snap(1 / (short * tb), VFR_SNAP), VFR_MAX_FPS)
    return max(rate, Fraction(1)), True


# --------------------------------------------------------------------------- probe


def probe(path, fps: Fraction | int | str | None = None) -> VideoInfo:
    """Inspect a video file, or a folder of numbered images, and return its ``VideoInfo``.

    ``fps`` is the rate of an image folder (default 24); it is ignored for video files, whose
    rate comes from their timestamps. Every unreadable input raises ``ZoomdreamError`` with a
    one-line ``"<path>: <problem>"`` message. Notices the user should see (VFR resampling,
    truncation, alpha, HDR) are in ``info.notes``; the caller prints them.
    """
    p = os.path.abspath(os.fspath(path))
    if os.path.isdir(p):
        return _probe_folder(path, p, DEFAULT_FOLDER_FPS if fps is None else _as_rate(fps, path))
    p, scan = _scan_media(path, ["-map", "0:V:0?", "-c", "copy", "-f", "framecrc", "-"])
    videos = [s for s in scan.streams if s.kind == "Video" and not s.attached]
    audios = [s for s in scan.streams if s.kind == "Audio"]
    if not videos:
        raise ZoomdreamError(f"{path}: no video stream (audio only)" if audios else f"{path}: no video stream")
    v = videos[0]
    out = scan.out_stream("video")
    packets = [pk for pk in scan.packets.get(out, []) if not pk[2] & _DISCARD] if out is not None else []
    good_packets = sum(1 for pk in packets if not pk[2] & _CORRUPT)
    tb = scan.out_tb.get(out)
    # A corrupt packet's timestamp (a cut-off last frame) must not make the stream look VFR.
    rate, vfr = _measure_rate([pk[0] for pk in packets if not pk[2] & _CORRUPT], tb, v.fps)

    # 1) Count: packets are exact for a clean CFR stream whose header agrees; otherwise decode
    #    the same pipeline iter_frames runs (resampled for VFR), so n_frames is what it yields.
    #    OpenCV reads the header only once the file is known to be sane (it logs to stderr).
    damaged = scan.damaged or good_packets < len(packets) or not packets
    header = None if damaged else _header_frames(p)
    if vfr or damaged or (header is not None and abs(header - len(packets)) > 1):
        n = _decode_count(p, rate if vfr else None)
    else:
        n = len(packets)
    if n == 0:
        raise ZoomdreamError(f"{path}: no decodable frames")
    if damaged:
        header = _header_frames(p)

    # 2) Upright, square-pixel size: stored w*sar x h, then swapped for a quarter turn.
    w, h = scan.out_dims.get(out, (v.width, v.height))
    if w <= 0 or h <= 0:
        raise ZoomdreamError(f"{path}: no decodable frames (unknown frame size)")
    width, height = max(1, round(w * v.sar)), h
    rotation = (round(v.rotation / 90) * 90) % 360
    if rotation in (90, 270):
        width, height = height, width

    # 3) Truncation: the header promises more source frames than decode.
    decoded_source = good_packets if vfr else n
    truncated = header is not None and header - decoded_source > 1
    notes = []
    if truncated:
        notes.append(f"decoded {decoded_source} of {header} frames (file truncated?)")
    if vfr:
        notes.append(f"VFR input resampled to {_fps_text(rate)} fps ({n} frames)")
    if _has_alpha(v.pix_fmt):
        notes.append("alpha channel composited onto black")
    if v.hdr:
        notes.append("HDR video converted to 8-bit SDR without tone mapping (colours may look flat)")
    if v.sar != 1:
        notes.append(f"non-square pixels (SAR {v.sar.numerator}:{v.sar.denominator}) scaled to {width}x{height}")
    first_pts = min((pk[0] for pk in packets if pk[0] is not None), default=None)
    video_start = float(first_pts * tb) - scan.container_start if first_pts is not None and tb else 0.0
    return VideoInfo(
        path=p, width=width, height=height, fps=rate, n_frames=n, duration=float(n / rate),
        has_audio=bool(audios), audio_codec=audios[0].codec if audios else None, codec=v.codec,
        rotation=rotation, vfr=vfr, header_frames=header, truncated=truncated, notes=tuple(notes),
        pix_fmt=v.pix_fmt, sar=v.sar, video_start=max(0.0, video_start),
    )


def _header_frames(p: str) -> int | None:
    """The frame count the container header claims (OpenCV reads nb_frames / the duration tag)."""
    cap = cv2.VideoCapture(p, cv2.CAP_FFMPEG)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()
    return n if n > 0 else None


def _decode_filters(vfr_rate: Fraction | None) -> list[str]:
    """The frame-producing filters of a decode: resampling to ``vfr_rate`` (VFR input only)."""
    return [f"fps={vfr_rate.numerator}/{vfr_rate.denominator}"] if vfr_rate else []


def _decode_count(p: str, vfr_rate: Fraction | None) -> int:
    """Frames a full decode yields (after resampling to ``vfr_rate`` when given)."""
    cmd = [_ffmpeg(), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-i", _url(p),
           "-map", "0:V:0"]
    filters = _decode_filters(vfr_rate)
    if filters:
        cmd += ["-vf", ",".join(filters)]
    cmd += ["-fps_mode", "passthrough", "-f", "null", "-progress", "pipe:1", "-"]
    rc, out, err = _capture(cmd)
    counts = re.findall(r"^frame=(\d+)", out, flags=re.M)
    return int(counts[-1]) if counts else 0


def _has_alpha(pix_fmt: str) -> bool:
    return bool(re.match(r"(yuva|gbrap|ya\d|rgba|bgra|argb|abgr|pal8)", pix_fmt))


def _as_rate(fps, where) -> Fraction:
    try:
        rate = Fraction(fps).limit_denominator(100000) if isinstance(fps, float) else Fraction(fps)
    except (TypeError, ValueError, ZeroDivisionError):
        raise ZoomdreamError(f"{where}: frame rate must be a positive number (got {fps!r})") from None
    if rate <= 0:
        raise ZoomdreamError(f"{where}: frame rate must be a positive number (got {fps!r})")
    return rate


# --------------------------------------------------------------------------- image folders


def _natural_key(name: str) -> tuple:
    # "frame10" after "frame9": digit runs compare as numbers (tagged so int and str never meet).
    return tuple((0, int(t), t) if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name))


def _probe_folder(path, p: str, fps: Fraction) -> VideoInfo:
    names = [n for n in os.listdir(p)
             if not n.startswith(".") and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS
             and os.path.isfile(os.path.join(p, n))]
    if not names:
        raise ZoomdreamError(f"{path}: no images found (expected numbered .png/.jpg files)")
    files = tuple(os.path.join(p, n) for n in sorted(names, key=_natural_key))
    first = _read_image(files[0])
    height, width = first.shape[:2]
    n = len(files)
    return VideoInfo(
        path=p, width=width, height=height, fps=fps, n_frames=n, duration=float(n / fps), has_audio=False,
        audio_codec=None, codec="images", rotation=0, vfr=False, header_frames=None, images=files,
    )


def _read_image(file: str) -> np.ndarray:
    """Load one image file as RGB uint8.

    Convention: returns (H, W, 3) uint8 RGB in [0, 255]. 16-bit is scaled (>> 8, never clipped),
    gray is replicated, alpha is composited onto ALPHA_BACKGROUND. EXIF orientation is not
    applied (these are video frames, not photos).
    """
    try:
        data = np.fromfile(file, dtype=np.uint8)  # cv2.imread fails on some non-ASCII paths
    except OSError as e:
        raise ZoomdreamError(f"{file}: cannot read image ({e.strerror or e})") from None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ZoomdreamError(f"{file}: cannot decode image (corrupt or not an image)")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img.astype(np.float32) * 255.0, 0, 255).astype(np.uint8)  # float TIFF in [0, 1]
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)  # (h, w, 3)
    if img.shape[2] == 4:
        return _composite(cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA))
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _composite(rgba: np.ndarray) -> np.ndarray:
    """(h, w, 4) uint8 RGBA -> (h, w, 3) uint8 RGB over ALPHA_BACKGROUND."""
    rgb = rgba[:, :, :3].astype(np.uint16)  # (h, w, 3)
    alpha = rgba[:, :, 3:4].astype(np.uint16)  # (h, w, 1)
    bg = np.asarray(ALPHA_BACKGROUND, dtype=np.uint16)
    return ((rgb * alpha + bg * (255 - alpha) + 127) // 255).astype(np.uint8)


# --------------------------------------------------------------------------- decoding


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


def _fit(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    """(w, h) scaled so the longer side is at most ``max_size``; exact aspect, integers >= 1."""
    if max_size is None or max(width, height) <= max_size:
        return width, height
    scale = max_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


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
    size = _fit(info.width, info.height, max_size)
    if info.images:
        return _iter_images(info, first, count, size)
    return _iter_video(info, first, count, size)


def _iter_images(info: VideoInfo, first: int, count: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    for file in info.images[first:first + count]:
        frame = _read_image(file)  # (h, w, 3) uint8 RGB
        if frame.shape[:2] != (info.height, info.width):
            raise ZoomdreamError(f"{file}: image is {frame.shape[1]}x{frame.shape[0]}, expected "
                                 f"{info.width}x{info.height} like the first image of the folder")
        if size != (info.width, info.height):
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)  # (h', w', 3)
        yield frame


def _video_command(info: VideoInfo, first: int, count: int, alpha: bool) -> list[str]:
    cmd = [_ffmpeg(), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"]
    if first > 0 and not info.vfr:
        # Input seek is frame-exact for CFR: aim a quarter frame before frame `first`, so rounding
        # can neither drop it nor keep its predecessor.
        cmd += ["-ss", f"{info.video_start + float((first - Fraction(1, 4)) / info.fps):.6f}"]
    cmd += ["-i", _url(info.path), "-map", "0:V:0"]
    filters = []
    if info.sar != 1:
        filters.append(f"scale={info.width}:{info.height},setsar=1")  # to square pixels, already upright
    if info.vfr:
        filters += _decode_filters(info.fps)  # same resampling probe() counted
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


def _iter_video(info: VideoInfo, first: int, count: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    if count == 0:
        return
    alpha = _has_alpha(info.pix_fmt)
    channels = 4 if alpha else 3
    w, h = info.width, info.height
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: ffmpeg can never block on stderr
        proc = _popen(_video_command(info, first, count, alpha), stdout=subprocess.PIPE, stderr=err)
        done = 0
        try:
            while done < count:
                frame = np.empty((h, w, channels), dtype=np.uint8)  # (h, w, 3|4) fresh per frame
                if not _read_exact(proc.stdout, memoryview(frame).cast("B")):
                    break
                if alpha:
                    frame = _composite(frame)  # (h, w, 3)
                if size != (w, h):
                    frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)  # (h', w', 3)
                yield frame
                done += 1
            if done < count:
                rc = proc.wait()
                if rc != 0:
                    err.seek(0)
                    text = err.read().decode("utf-8", "replace")
                    raise ZoomdreamError(f"{info.path}: ffmpeg failed while decoding frame {first + done} "
                                         f"(exit {rc}): {_tail(text)}")
        finally:
            _stop(proc)
            proc.stdout.close()


# --------------------------------------------------------------------------- probing outputs


def has_audio(path) -> bool:
    """True when the media file at ``path`` has an audio stream (video or audio-only files)."""
    return any(s.kind == "Audio" for s in _scan_media(path, None, "media")[1].streams)


def audio_source(info: VideoInfo, *, start: float = 0.0, end: float | None = None,
                 max_frames: int | None = None) -> AudioSource | None:
    """The soundtrack matching ``iter_frames(info, start=, end=, max_frames=)``; None without audio.

    Starts at source time ``start`` (offset by ``info.video_start``) and lasts as long as the
    frames that call yields, at ``info.fps``.
    """
    if not info.has_audio or info.images:
        return None
    count = frame_count(info, start=start, end=end, max_frames=max_frames)
    return AudioSource(path=info.path, start=info.video_start + start, duration=float(count / info.fps))


def decode_audio(path, *, rate: int, start: float = 0.0) -> np.ndarray:
    """The first audio stream of ``path`` from ``start`` seconds on, as mono float32 samples at ``rate`` Hz.

    Convention: returns (samples,) float32, nominally in [-1, 1]; channels are averaged by ffmpeg
    (``-ac 1``). A file without audio is a ZoomdreamError. The whole track is held in memory
    (4 bytes a sample: 5 minutes at 22050 Hz is 26 MB).
    """
    p = _check_file(path)
    if not has_audio(p):
        raise ZoomdreamError(f"{p}: no audio stream found")
    cmd = [_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-ss", f"{max(0.0, start):.6f}",
           "-i", _url(p), "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(int(rate)), "-f", "f32le", "pipe:1"]
    proc = _popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate()
    except BaseException:
        _stop(proc)
        for stream in (proc.stdout, proc.stderr):
            stream.close()
        raise
    if proc.returncode != 0:
        raise ZoomdreamError(f"{p}: cannot decode the audio (exit {proc.returncode}): "
                             f"{_tail(err.decode('utf-8', 'replace'))}")
    return np.frombuffer(out[:len(out) // 4 * 4], dtype="<f4").astype(np.float32)  # (samples,)


def _audio_stream(path) -> _Stream | None:
    return next((s for s in _scan_media(path, None, "media")[1].streams if s.kind == "Audio"), None)


def _span(packets: list[tuple[int | None, int, int]], tb: Fraction | None) -> float | None:
    pts = [(p, d) for p, d, f in packets if p is not None and not f & _DISCARD]
    if not pts or tb is None:
        return None
    return float((max(p + d for p, d in pts) - min(p for p, _ in pts)) * tb)


def probe_output(path) -> OutputProbe:
    """Count and measure an encoded file from its packets (``-c copy -f framecrc``, no decode).

    Sizes are the stored ones (no rotation applied); ``rotation`` reports any display matrix.
    """
    _, scan = _scan_media(path, ["-map", "0:V:0?", "-map", "0:a:0?", "-c", "copy", "-f", "framecrc", "-"])
    videos = [s for s in scan.streams if s.kind == "Video" and not s.attached]
    audios = [s for s in scan.streams if s.kind == "Audio"]
    vout, aout = scan.out_stream("video"), scan.out_stream("audio")
    vpk = [pk for pk in scan.packets.get(vout, []) if not pk[2] & _DISCARD] if vout is not None else []
    v = videos[0] if videos else None
    w, h = scan.out_dims.get(vout, (v.width, v.height) if v else (0, 0))
    fps = _measure_rate([pk[0] for pk in vpk], scan.out_tb.get(vout), v.fps)[0] if v and vpk else None
    return OutputProbe(
        frames=len(vpk), seconds=_span(vpk, scan.out_tb.get(vout)) or 0.0, has_audio=bool(audios), width=w,
        height=h, rotation=(round(v.rotation / 90) * 90) % 360 if v else 0, fps=fps,
        audio_seconds=_span(scan.packets.get(aout, []), scan.out_tb.get(aout)) if aout is not None else None,
        codec=v.codec if v else "", audio_codec=audios[0].codec if audios else None,
        pix_fmt=v.pix_fmt if v else "",
    )


# --------------------------------------------------------------------------- encoding


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
    src = _url(os.path.join(frames_dir.replace("%", "%%"), pattern))
    return ["-f", "image2", "-framerate", f"{fps.numerator}/{fps.denominator}", "-start_number", "0", "-i", src]


def encode(frames_dir, pattern: str, n_frames: int, out, *, fps: Fraction, audio: AudioSource | None = None,
           crf: int = 18, quiet: bool = True) -> None:
    """Encode ``frames_dir/(pattern % i)`` for i in range(n_frames) into ``out``, atomically.

    Convention: the frames are image files (PNG) of one size, RGB(A) 8- or 16-bit; they are
    never resized. The format follows ``out``'s name:

    * ``.mp4``: H.264 (libx264, yuv420p, BT.709 tags, ``crf``), ``+faststart``; an odd width or
      height is padded by 1 px (black) to the next even number. Audio, when ``audio`` has any,
      is cut to the video's duration with an input-side trim (never ``-shortest``): aac/mp3/opus
      are copied, anything else is re-encoded to AAC 192k.
    * ``.gif``: two passes, a palette from the frames themselves, then paletteuse. No audio.
    * a folder (no extension or a trailing slash): PNG copies named 000000.png, ... No audio.

    The output appears only when complete: it is written to a ``.<name>.XXXX.partial.<ext>``
    temp beside it, ffmpeg's exit code is checked, the temp is re-probed (frame count, audio),
    fsynced and renamed. On any failure or interrupt ffmpeg is killed and the temp removed.
    The same frames give identical bytes (bitexact, no metadata). ``quiet=False`` shows ffmpeg's
    log and progress on stderr.
    """
    kind = output_kind(out)
    rate = _as_rate(fps, out)
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
            _encode_gif(out, frames_dir, pattern, n_frames, rate, quiet)
        else:
            _encode_mp4(out, frames_dir, pattern, n_frames, rate, audio, crf, quiet)
    except OSError as e:
        raise ZoomdreamError(f"{out}: cannot write output ({e.strerror or e})") from None


def _log_args(quiet: bool) -> list[str]:
    return ["-loglevel", "error", "-nostats"] if quiet else ["-loglevel", "info", "-stats"]


def _run_checked(cmd: list[str], out, quiet: bool) -> None:
    rc, err = _run(cmd, echo=not quiet)
    if rc != 0:
        raise ZoomdreamError(f"{out}: ffmpeg failed (exit {rc}): {_tail(err)}")


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
    stream = _audio_stream(audio.path)
    seconds = min(float(audio.duration), video_seconds)
    if stream is None or seconds <= 0:
        return [], [], False
    # Input-side -ss/-t: the audio is trimmed to the video, so the video is never cut.
    inp = ["-ss", f"{max(0.0, float(audio.start)):.6f}", "-t", f"{seconds:.6f}", "-i", _url(audio.path)]
    codec = ["-c:a", "copy"] if stream.codec in COPY_AUDIO_CODECS else ["-c:a", "aac", "-b:a", AAC_BITRATE]
    return inp, ["-map", "1:a:0?", *codec], True


def _encode_mp4(out, frames_dir, pattern, n_frames, rate, audio, crf, quiet) -> None:
    audio_in, audio_out, want_audio = _audio_args(audio, float(n_frames / rate))
    with atomic_path(out) as tmp:
        cmd = [_ffmpeg(), "-nostdin", "-hide_banner", *_log_args(quiet), "-y",
               *_image2_input(frames_dir, pattern, rate), *audio_in,
               "-map", "0:v:0", "-frames:v", str(n_frames),
               # pad, never resize: 321x241 -> 322x242; then BT.709 limited-range 4:2:0
               "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2,scale=out_color_matrix=bt709:out_range=tv,format=yuv420p",
               "-c:v", "libx264", "-preset", "medium", "-crf", str(int(crf)), "-pix_fmt", "yuv420p",
               "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
               *audio_out, "-fps_mode", "passthrough",
               "-movflags", "+faststart", "-fflags", "+bitexact", "-map_metadata", "-1", "-map_chapters", "-1",
               "-f", "mp4", _url(tmp)]
        _run_checked(cmd, out, quiet)
        _verify(tmp, out, n_frames, want_audio)


def _encode_gif(out, frames_dir, pattern, n_frames, rate, quiet) -> None:
    src = _image2_input(frames_dir, pattern, rate)
    with tempfile.TemporaryDirectory(prefix="zoomdream-palette-") as tmpdir, atomic_path(out) as tmp:
        palette = os.path.join(tmpdir, "palette.png")
        # 1) one 256-colour palette from all frames (streamed; nothing is buffered)
        _run_checked([_ffmpeg(), "-nostdin", "-hide_banner", *_log_args(quiet), "-y", *src,
                      "-vf", f"trim=end_frame={n_frames},palettegen=stats_mode=full:reserve_transparent=0",
                      "-frames:v", "1", "-update", "1", "-f", "image2", _url(palette)], out, quiet)
        # 2) map every frame onto it; frame delays follow from the input rate
        _run_checked([_ffmpeg(), "-nostdin", "-hide_banner", *_log_args(quiet), "-y", *src,
                      "-i", _url(palette), "-filter_complex", "[0:v][1:v]paletteuse=dither=sierra2_4a",
                      "-frames:v", str(n_frames), "-fps_mode", "passthrough", "-loop", "0",
                      "-fflags", "+bitexact", "-map_metadata", "-1", "-f", "gif", _url(tmp)], out, quiet)
        _verify(tmp, out, n_frames, want_audio=False)


def _write_folder(out, frames_dir: str, names: list[str]) -> None:
    """Copy the frames into a new folder ``out`` (with the marker that makes it zoomdream's own).

    An existing ``out`` is replaced only when zoomdream wrote it (``fileio.is_own_folder``):
    the new folder is complete beside it before the old one is moved aside and deleted.
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
    old = tmp + ".old"
    moved = False
    try:
        for i, name in enumerate(names):
            target = os.path.join(tmp, f"{i:06d}{os.path.splitext(name)[1].lower()}")
            shutil.copyfile(os.path.join(frames_dir, name), target)
            with open(target, "rb+") as f:
                os.fsync(f.fileno())
        with open(os.path.join(tmp, FOLDER_MARKER), "w") as f:
            f.write(FOLDER_MARKER_TEXT)
        os.chmod(tmp, DIR_MODE)  # mkdtemp's 0o700 -> an ordinary folder
        if os.path.isdir(dest):
            # A directory cannot be replaced in one step: move the old one aside first.
            os.rename(dest, old)
            moved = True
            os.rename(tmp, dest)
            moved = False
            if is_own_folder(old):  # still nothing but frames (checked again: it was a user's folder once)
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dest)
    except BaseException:
        if moved:  # the old output goes back where it was
            with contextlib.suppress(OSError):
                os.rename(old, dest)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
