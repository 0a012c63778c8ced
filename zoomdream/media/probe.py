"""Probing: what a video file or a folder of numbered images holds, and what an encode wrote.

``probe`` counts frames for real (packets, and a decode when anything looks off), never from
fps x duration; it detects truncation, variable frame rate, rotation and non-square pixels,
and turns every unreadable input into a one-line ``ZoomdreamError``. Everything it learns is
one ``VideoInfo``, including the audio codec, so nothing downstream reads the file's header
again. ``probe_output`` measures an encoded file from its packets, to verify it.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from fractions import Fraction

import cv2

from zoomdream.errors import ZoomdreamError
from zoomdream.media.ffmpeg_log import CORRUPT, DISCARD, scan_media
from zoomdream.media.images import IMAGE_EXTENSIONS, load_frame
from zoomdream.media.process import capture, ffmpeg_exe, url
from zoomdream.media.rates import as_rate, fps_text, measure_rate

__all__ = ["VideoInfo", "OutputProbe", "AudioInfo", "probe", "probe_output", "probe_audio", "has_audio", "audio_codec",
           "decode_filters", "pix_fmt_has_alpha", "DEFAULT_FOLDER_FPS", "NO_SAMPLES_NOTE"]

DEFAULT_FOLDER_FPS = Fraction(24)  # rate of an image-folder "video" when the caller gives none
NO_SAMPLES_NOTE = "its audio track holds no samples: counted as no audio (the output is silent)"


@dataclass(frozen=True)
class AudioInfo:
    """The first audio stream of a media file, as ``probe_audio`` found it.

    """

    codec: str  # ffmpeg codec name ("mp3", "aac", "pcm_s16le", ...)
    rate: int  # samples per second (0 when unknown)
    empty: bool  # the stream holds no samples (a WAV header and nothing else): no audio
    has_video: bool  # the file also holds a video track (not cover art)
    duration: float | None  # seconds the container says it lasts (None when it does not say)


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
    audio_codec: str | None  # ffmpeg codec name of the first audio stream ("aac", "pcm_s16le", ...); None: no audio
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
    audio_rate: int | None = None  # samples per second of the first audio stream (None: no audio, or unknown)

    @property
    def truncation_note(self) -> str | None:
        """``"decoded 5 of 20 frames (file truncated?)"`` when truncated, else None."""
        if not self.truncated:
            return None
        return next(n for n in self.notes if n.startswith("decoded "))


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


def probe(path, fps: Fraction | int | str | None = None) -> VideoInfo:
    """Inspect a video file, or a folder of numbered images, and return its ``VideoInfo``.

    ``fps`` is the rate of an image folder (default 24); it is ignored for video files, whose
    rate comes from their timestamps. Every unreadable input raises ``ZoomdreamError`` with a
    one-line ``"<path>: <problem>"`` message. Notices the user should see (VFR resampling,
    truncation, alpha, HDR) are in ``info.notes``; the caller prints them.
    """
    p = os.path.abspath(os.fspath(path))
    if os.path.isdir(p):
        return _probe_folder(path, p, DEFAULT_FOLDER_FPS if fps is None else as_rate(fps, path))
    p, scan = scan_media(path, ["-map", "0:V:0?", "-map", "0:a:0?", "-c", "copy", "-f", "framecrc", "-"])
    videos = [s for s in scan.streams if s.kind == "Video" and not s.attached]
    audios = [s for s in scan.streams if s.kind == "Audio"]
    if not videos:
        raise ZoomdreamError(f"{path}: no video stream (audio only)" if audios else f"{path}: no video stream")
    v = videos[0]
    out = scan.out_stream("video")
    packets = [pk for pk in scan.packets.get(out, []) if not pk[2] & DISCARD] if out is not None else []
    good_packets = sum(1 for pk in packets if not pk[2] & CORRUPT)
    tb = scan.out_tb.get(out)
    # A corrupt packet's timestamp (a cut-off last frame) must not make the stream look VFR.
    rate, vfr = measure_rate([pk[0] for pk in packets if not pk[2] & CORRUPT], tb, v.fps)

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
    # Only a damaged file is truncated: the header's count is the container's duration times the rate
    # (an intact MKV whose audio outlasts its video claims more frames than its video stream holds).
    decoded_source = good_packets if vfr else n
    truncated = damaged and header is not None and header - decoded_source > 1
    notes = []
    if truncated:
        notes.append(f"decoded {decoded_source} of {header} frames (file truncated?)")
    if vfr:
        notes.append(f"VFR input resampled to {fps_text(rate)} fps ({n} frames)")
    if pix_fmt_has_alpha(v.pix_fmt):
        notes.append("alpha channel composited onto black")
    if v.hdr:
        notes.append("HDR video converted to 8-bit SDR without tone mapping (colours may look flat)")
    if v.sar != 1:
        notes.append(f"non-square pixels (SAR {v.sar.numerator}:{v.sar.denominator}) scaled to {width}x{height}")
    video_start = _start(packets, tb, scan.container_start)
    aout = scan.out_stream("audio")
    apk = scan.packets.get(aout, []) if aout is not None else []
    sound = audios[0] if audios and apk else None
    if audios and not apk:
        notes.append(NO_SAMPLES_NOTE)
    return VideoInfo(
        path=p, width=width, height=height, fps=rate, n_frames=n, duration=float(n / rate),
        has_audio=sound is not None, audio_codec=sound.codec if sound else None, codec=v.codec,
        rotation=rotation, vfr=vfr, header_frames=header, truncated=truncated, notes=tuple(notes),
        pix_fmt=v.pix_fmt, sar=v.sar, video_start=video_start,
        audio_rate=(sound.sample_rate or None) if sound else None,
    )


def _start(packets, tb: Fraction | None, container_start: float) -> float:
    """Seconds from the container's start to the first of ``packets`` (>= 0)."""
    first = min((pk[0] for pk in packets if pk[0] is not None), default=None)
    return max(0.0, float(first * tb) - container_start) if first is not None and tb else 0.0


def _header_frames(p: str) -> int | None:
    """The frame count the container header claims (OpenCV reads nb_frames / the duration tag)."""
    cap = cv2.VideoCapture(p, cv2.CAP_FFMPEG)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()
    return n if n > 0 else None


def decode_filters(vfr_rate: Fraction | None) -> list[str]:
    """The frame-producing filters of a decode: resampling to ``vfr_rate`` (VFR input only)."""
    return [f"fps={vfr_rate.numerator}/{vfr_rate.denominator}"] if vfr_rate else []


def _decode_count(p: str, vfr_rate: Fraction | None) -> int:
    """Frames a full decode yields (after resampling to ``vfr_rate`` when given)."""
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-i", url(p),
           "-map", "0:V:0"]
    filters = decode_filters(vfr_rate)
    if filters:
        cmd += ["-vf", ",".join(filters)]
    cmd += ["-fps_mode", "passthrough", "-f", "null", "-progress", "pipe:1", "-"]
    rc, out, err = capture(cmd)
    counts = re.findall(r"^frame=(\d+)", out, flags=re.M)
    return int(counts[-1]) if counts else 0


def pix_fmt_has_alpha(pix_fmt: str) -> bool:
    """True for pixel formats with an alpha channel (or a palette, which may carry one)."""
    return bool(re.match(r"(yuva|gbrap|ya\d|rgba|bgra|argb|abgr|pal8)", pix_fmt))


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
    first = load_frame(files[0])  # (h, w, 3): the size every image must have
    height, width = first.shape[:2]
    n = len(files)
    return VideoInfo(
        path=p, width=width, height=height, fps=fps, n_frames=n, duration=float(n / fps), has_audio=False,
        audio_codec=None, codec="images", rotation=0, vfr=False, header_frames=None, images=files,
    )


def has_audio(path) -> bool:
    """True when the media file at ``path`` has an audio stream (video or audio-only files)."""
    return audio_codec(path) is not None


def audio_codec(path) -> str | None:
    """ffmpeg's codec name of the first audio stream of the media file at ``path``; None without audio."""
    return next((s.codec for s in scan_media(path, None, "media")[1].streams if s.kind == "Audio"), None)


def probe_audio(path) -> AudioInfo | None:
    """The first audio stream of the media file at ``path`` (codec, rate, samples); None without one.

    Reads the header and the first audio packet only (a stream copy), so an hour of sound costs
    no more than a second. An unreadable file is a one-line ``ZoomdreamError``. A render asks
    about its soundtrack more than once (checks, analysis, the encoder): the answer is kept
    while the file's size and modification time stay the same.
    """
    try:
        st = os.stat(path)
    except OSError:
        return _probe_audio(path)  # its one-line error
    return _probe_audio_kept(os.path.abspath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _probe_audio_kept(path: str, size: int, mtime_ns: int) -> AudioInfo | None:
    return _probe_audio(path)


def _probe_audio(path) -> AudioInfo | None:
    _, scan = scan_media(path, ["-map", "0:a:0?", "-c", "copy", "-frames:a", "1", "-f", "framecrc", "-"], "media")
    audios = [s for s in scan.streams if s.kind == "Audio"]
    if not audios:
        return None
    out = scan.out_stream("audio")
    return AudioInfo(codec=audios[0].codec, rate=audios[0].sample_rate,
                     empty=out is None or not scan.packets.get(out),  # not even one packet
                     has_video=any(s.kind == "Video" and not s.attached for s in scan.streams),
                     duration=scan.container_duration)


def _span(packets: list[tuple[int | None, int, int]], tb: Fraction | None) -> float | None:
    pts = [(p, d) for p, d, f in packets if p is not None and not f & DISCARD]
    if not pts or tb is None:
        return None
    return float((max(p + d for p, d in pts) - min(p for p, _ in pts)) * tb)


def probe_output(path) -> OutputProbe:
    """Count and measure an encoded file from its packets (``-c copy -f framecrc``, no decode).

    Sizes are the stored ones (no rotation applied); ``rotation`` reports any display matrix.
    """
    _, scan = scan_media(path, ["-map", "0:V:0?", "-map", "0:a:0?", "-c", "copy", "-f", "framecrc", "-"])
    videos = [s for s in scan.streams if s.kind == "Video" and not s.attached]
    audios = [s for s in scan.streams if s.kind == "Audio"]
    vout, aout = scan.out_stream("video"), scan.out_stream("audio")
    vpk = [pk for pk in scan.packets.get(vout, []) if not pk[2] & DISCARD] if vout is not None else []
    v = videos[0] if videos else None
    w, h = scan.out_dims.get(vout, (v.width, v.height) if v else (0, 0))
    fps = measure_rate([pk[0] for pk in vpk], scan.out_tb.get(vout), v.fps)[0] if v and vpk else None
    return OutputProbe(
        frames=len(vpk), seconds=_span(vpk, scan.out_tb.get(vout)) or 0.0, has_audio=bool(audios), width=w,
        height=h, rotation=(round(v.rotation / 90) * 90) % 360 if v else 0, fps=fps,
        audio_seconds=_span(scan.packets.get(aout, []), scan.out_tb.get(aout)) if aout is not None else None,
        codec=v.codec if v else "", audio_codec=audios[0].codec if audios else None,
        pix_fmt=v.pix_fmt if v else "",
    )
