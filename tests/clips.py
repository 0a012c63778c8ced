"""Tiny fixture clips, made on the fly with the bundled ffmpeg.

    from clips import make_clip
    path = make_clip("rot90", tmp_path)      # -> tmp_path / "rot90.mp4"

Each clip takes a few tens of milliseconds; ``make_clip`` reuses a file already in ``folder``,
so a session-scoped folder builds every clip once. Clips that derive from another (rot90 from
basic, the truncated ones from faststart) build their parent first. Nothing here imports
zoomdream: fixtures must not depend on the code under test.
"""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import imageio_ffmpeg

ASSETS = Path(__file__).resolve().parent.parent / "assets"
_FF = imageio_ffmpeg.get_ffmpeg_exe()  # resolved once, so a test that fakes ffmpeg cannot break fixtures

_T = ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:duration=2"]  # 20 frames, 10 fps
_A = ["-f", "lavfi", "-i", "sine=frequency=440:duration=2"]  # 2 s mono 44.1 kHz
_H = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]

# kind -> (file name, ffmpeg arguments before the output path); "{name}" refers to another clip
_RECIPES: dict[str, tuple[str, list[str]]] = {
    "basic": ("basic.mp4", [*_T, *_H]),
    "audio": ("audio.mp4", [*_T, *_A, *_H, "-c:a", "aac", "-shortest"]),
    "faststart": ("faststart.mp4", [*_T, *_H, "-movflags", "+faststart"]),
    # a pan over a real photo: 3 px per frame to the right (content moves left), 12 frames at 12 fps, 1 s of sine
    "moving": ("moving.mp4", ["-loop", "1", "-framerate", "12", "-i", str(ASSETS / "coffee.jpg"),
                              "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                              "-vf", "scale=150:100,format=rgb24,crop=96:64:x='n*3':y=18", "-frames:v", "12", *_H,
                              "-c:a", "aac"]),
    "odd": ("odd_321x241.mp4", ["-f", "lavfi", "-i", "testsrc=size=321x241:rate=10:duration=1",
                                "-c:v", "libx264", "-pix_fmt", "yuv444p"]),
    # 26 frames in 2.0 s: ten at 30 fps, then every third (10 fps); 2 s of audio
    "vfr": ("vfr.mp4", ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=30:duration=2", *_A,
                        "-vf", "select='lt(n\\,10)+not(mod(n\\,3))'", "-fps_mode", "passthrough", *_H,
                        "-c:a", "aac"]),
    "rot90": ("rot90.mp4", ["-display_rotation", "90", "-i", "{basic}", "-c", "copy"]),
    "one_frame": ("one_frame.mp4", ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-frames:v", "1", *_H]),
    "no_streams": ("no_streams.mp4", ["-i", "{basic}", "-c", "copy", "-frames:v", "0"]),
    "audio_only": ("audio_only.m4a", [*_A, "-c:a", "aac"]),
    "audio_only_mp4": ("audio_only.mp4", [*_A, "-c:a", "aac", "-f", "mp4"]),
    "short_audio": ("short_audio.mp4", ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:duration=0.5",
                                        "-f", "lavfi", "-i", "sine=duration=0.5", *_H, "-c:a", "aac"]),
    "av_mismatch": ("av_mismatch.mp4", ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=10:duration=1",
                                        "-f", "lavfi", "-i", "sine=duration=3", *_H, "-c:a", "aac"]),
    # PNG in MOV with alpha = 128 everywhere, so compositing is visible
    "rgba": ("rgba.mov", [*_T, "-vf", "format=rgba,colorchannelmixer=aa=0.5", "-c:v", "png"]),
    "gray": ("gray.mp4", [*_T, "-c:v", "libx264", "-pix_fmt", "gray"]),
    "10bit": ("10bit.mp4", [*_T, "-c:v", "libx264", "-pix_fmt", "yuv420p10le"]),
    "pcm": ("pcm.avi", [*_T, *_A, "-c:v", "mpeg4", "-c:a", "pcm_s16le"]),
    "ntsc": ("ntsc.mp4", ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=30000/1001:duration=0.6", *_H]),
    "sar2": ("sar2.mp4", [*_T, "-vf", "setsar=2/1", *_H]),
}
_DERIVED = {"zero_decodable": "zero_decodable.mp4", "trunc_tail": "trunc_tail.mp4",
            "trunc_nomoov": "trunc_nomoov.mp4", "not_video": "not_video.mp4", "empty": "empty.mp4"}
KINDS = tuple(_RECIPES) + tuple(_DERIVED)


def _ffmpeg(args: list[str], out: Path) -> None:
    cmd = [_FF, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args, str(out)]
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, capture_output=True)


def _moov_end(data: bytes) -> int:
    """Offset just past the top-level moov box (walk the 8-byte box headers)."""
    off = 0
    while off + 8 <= len(data):
        size, box = struct.unpack(">I4s", data[off:off + 8])
        if box == b"moov":
            return off + size
        off += size
    raise ValueError("no moov box")


def make_clip(kind: str, folder) -> Path:
    """Create (or reuse) the fixture clip ``kind`` inside ``folder`` and return its path."""
    folder = Path(folder)
    name = _RECIPES[kind][0] if kind in _RECIPES else _DERIVED[kind]
    out = folder / name
    if out.exists():
        return out
    tmp = folder / f".{name}.tmp{out.suffix}"  # build beside, then rename: never a half clip
    if kind in _RECIPES:
        args = [str(make_clip(a[1:-1], folder)) if a.startswith("{") and a.endswith("}") else a
                for a in _RECIPES[kind][1]]
        _ffmpeg(args, tmp)
    elif kind == "zero_decodable":  # the moov (20 frames promised) and no media data at all
        data = make_clip("faststart", folder).read_bytes()
        tmp.write_bytes(data[:_moov_end(data)])
    elif kind == "trunc_tail":  # moov first, then 60 % of the file: 5 of 20 frames decode
        data = make_clip("faststart", folder).read_bytes()
        tmp.write_bytes(data[:len(data) * 6 // 10])
    elif kind == "trunc_nomoov":  # moov at the end, cut off
        data = make_clip("basic", folder).read_bytes()
        tmp.write_bytes(data[:len(data) * 6 // 10])
    elif kind == "not_video":
        tmp.write_text("hello, not a video\n")
    elif kind == "empty":
        tmp.write_bytes(b"")
    os.replace(tmp, out)
    return out


def make_all(folder) -> dict[str, Path]:
    """Every clip of KINDS in ``folder``, as {kind: path}."""
    return {kind: make_clip(kind, folder) for kind in KINDS}
