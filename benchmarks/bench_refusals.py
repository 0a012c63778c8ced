"""How long zoomdream takes to say what a file is, or why it refuses it.

The tests assert the verdicts (the right one-line error, frames counted without a decode); this
prints how long they take, which a loaded machine would make flaky as asserts. Each case is timed
``--repeats`` times, interleaved with the others, and reported as the median, next to the median
of ``ffmpeg -version`` (the cost of starting the bundled ffmpeg at all) measured in the same run.

    python benchmarks/bench_refusals.py            # a few seconds
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the test clips
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a checkout, not installed

from zoomdream.errors import ZoomdreamError
from zoomdream.media.images import load_image
from zoomdream.media.probe import probe
from zoomdream.media.process import ffmpeg_exe

import _common as C
from clips import make_clip


def bad_images(folder: Path) -> dict[str, Path]:
    """Files load_image must refuse: a 400 MP PNG header, truncated and fake images, an empty file, a FIFO."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = folder / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    good = (C.ROOT / "assets" / "coffee.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "text.jpg").write_text("hello, not an image\n")
    (folder / "empty.png").touch()
    os.mkfifo(folder / "pipe.png")
    return {p.stem: p for p in sorted(folder.iterdir())}


def timed(call) -> float:
    t = time.perf_counter()
    try:
        call()
    except ZoomdreamError:
        pass
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "clips").mkdir()
        (tmp / "bad").mkdir()
        cases = {f"load_image {name}": (lambda p=p: load_image(p)) for name, p in bad_images(tmp / "bad").items()}
        for kind in ("basic", "audio", "vfr", "trunc_tail", "not_video"):
            path = make_clip(kind, tmp / "clips")
            cases[f"probe {kind}"] = lambda p=path: probe(p)
        exe = ffmpeg_exe()
        cases["ffmpeg -version"] = lambda: subprocess.run([exe, "-version"], capture_output=True, check=True)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeats):
            for name, call in cases.items():
                times[name].append(timed(call))
    base = C.median(times["ffmpeg -version"])
    print(f"median of {args.repeats} (load average {os.getloadavg()[0]:.1f}):")
    for name, ts in times.items():
        print(f"  {name:<28} {C.median(ts) * 1000:8.1f} ms  {C.median(ts) / base:6.1f}x ffmpeg -version")
    worst = max((C.median(ts), name) for name, ts in times.items())
    print(f"SUMMARY: slowest verdict {worst[1]} {worst[0] * 1000:.0f} ms = {worst[0] / base:.1f}x ffmpeg -version")


if __name__ == "__main__":
    main()
