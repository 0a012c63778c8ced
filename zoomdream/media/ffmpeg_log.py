"""Reading ffmpeg's log: the input dump (container, streams, rotation) and framecrc packet lines.

ffmpeg 9 has no machine-readable probe without ffprobe, so ``scan_ffmpeg`` runs
``ffmpeg -loglevel level+info -i FILE`` (optionally with output args such as ``-f framecrc -``)
and parses what it prints into a ``Scan``: one ``Stream`` per input stream, the output streams'
time bases and sizes, and every packet's (pts, duration, flags). ``scan_media`` adds the
one-line ``ZoomdreamError`` for a file ffmpeg cannot open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

from zoomdream.errors import ZoomdreamError
from zoomdream.media.images import check_file
from zoomdream.media.process import capture, ffmpeg_exe, tail, url

__all__ = ["Stream", "Scan", "scan_ffmpeg", "scan_media", "DISCARD", "CORRUPT"]

DISCARD, CORRUPT = 0x4, 0x2  # AVPacket flags as framecrc prints them (F=0x..)


@dataclass
class Stream:
    """One input stream as ffmpeg's dump describes it (``Stream #0:1: Video: h264 ..., 64x48 ...``)."""

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
    sample_rate: int = 0  # audio: samples per second (0 when not printed)


@dataclass
class Scan:
    """What one ffmpeg run printed: its log lines, the input's streams and the output's packets."""

    rc: int
    log: list[tuple[str, str]]  # (level, message) per stderr line
    found_input: bool = False
    demuxer: str = ""  # ffmpeg's input format name ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", ...)
    container_start: float = 0.0
    container_duration: float | None = None  # the dump's "Duration:" (None for N/A); an estimate for some formats
    streams: list[Stream] = field(default_factory=list)
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


LOG_LINE = re.compile(r"^(?:\[[^\]]*\] )?\[(trace|debug|verbose|info|warning|error|fatal|panic)\] ?(.*)$")
STREAM_LINE = re.compile(r"^\s*Stream #0:(\d+)(?:\[[^\]]*\])?(?:\([^)]*\))?: (\w+): (.*)$")


def split_top(s: str) -> list[str]:
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


def parse_stream(index: int, kind: str, desc: str) -> Stream:
    parts = split_top(desc)
    st = Stream(index=index, kind=kind, codec=(parts[0].split() or ["?"])[0].rstrip(","))
    st.attached = "(attached pic)" in desc
    if kind == "Audio" and (m := re.search(r"\b(\d+) Hz\b", desc)):
        st.sample_rate = int(m.group(1))
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


def scan_ffmpeg(path: str, out_args: list[str] | None) -> Scan:
    """Run ffmpeg on ``path`` and parse its input dump (and framecrc packets when ``out_args``)."""
    cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info", "-i", url(path)]
    cmd += out_args if out_args is not None else []
    rc, out, err = capture(cmd)
    scan = Scan(rc=rc, log=[])
    for raw in err.splitlines():
        m = LOG_LINE.match(raw)
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
            if m := re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", msg):
                scan.container_duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
            if m := STREAM_LINE.match(msg):
                scan.streams.append(parse_stream(int(m.group(1)), m.group(2), m.group(3)))
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
TEXT_DEMUXERS = frozenset({"tty", "srt", "ass", "webvtt", "subviewer", "microdvd"})


def open_error(path, scan: Scan, what: str = "video") -> ZoomdreamError:
    """Map a failed open to one user-facing line (``what``: "video" or "media")."""
    text = scan.text
    if scan.demuxer in TEXT_DEMUXERS:
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
    return ZoomdreamError(f"{path}: ffmpeg could not read it (exit {scan.rc}): {tail(text)}")


def scan_media(path, out_args: list[str] | None, what: str = "video") -> tuple[str, Scan]:
    """(absolute path, scan) of a readable media file, else the one-line ZoomdreamError."""
    p = check_file(path, what="media")
    scan = scan_ffmpeg(p, out_args)
    if not scan.found_input or scan.demuxer in TEXT_DEMUXERS:
        raise open_error(path, scan, what)
    return p, scan
