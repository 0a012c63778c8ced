"""Remake the README's pictures with the tool itself and the default presets.

    python docs/make_pictures.py                 # all four, into docs/
    python docs/make_pictures.py --only zoom     # one of: before_after, sheet, video, zoom

Each picture is made by the ``zoomdream`` command line exactly as the README shows it
(in a subprocess, so it is the installed behaviour), then put together with Pillow:

- ``before_after.jpg``: assets/chelsea.jpg beside ``zoomdream image assets/chelsea.jpg``.
- ``sheet.jpg``: ``zoomdream sheet assets/chelsea.jpg --cell 224`` (the default model's layers).
- ``video_strip.jpg``: a 320x180 pan over assets/chelsea.jpg (made with the bundled ffmpeg, as
  benchmarks/bench_video.py makes its clip), 48 frames, and ``zoomdream video`` of it with the
  default preset; frames 0, 15, 31, 47 of the source (top) and the dream (bottom).
- ``zoom.gif``: ``zoomdream zoom assets/coffee.jpg -o zoom.gif --size 180x120 --fps 12 --seconds 3``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CHELSEA, COFFEE = ROOT / "assets" / "chelsea.jpg", ROOT / "assets" / "coffee.jpg"
STRIP_FRAMES = (0, 15, 31, 47)
JPEG_QUALITY = 88
GAP = 4  # px of white between the pictures of a strip
ZOOM_ARGS = ("--size", "180x120", "--fps", "12", "--seconds", "3")  # 36 frames: a GIF of a few hundred KB


def zoomdream(*args: str) -> None:
    cmd = [sys.executable, "-m", "zoomdream", *args, "--overwrite", "-q"]
    print("$ zoomdream " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def side_by_side(images: list[np.ndarray], gap: int = GAP) -> np.ndarray:
    h = max(im.shape[0] for im in images)
    out = np.full((h, sum(im.shape[1] for im in images) + gap * (len(images) - 1), 3), 255, np.uint8)
    x = 0
    for im in images:
        out[:im.shape[0], x:x + im.shape[1]] = im
        x += im.shape[1] + gap
    return out


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def save_jpeg(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, quality=JPEG_QUALITY, optimize=True)
    print(f"  -> {path.relative_to(ROOT)} {array.shape[1]}x{array.shape[0]}, {path.stat().st_size // 1024} KB")


def before_after(work: Path) -> None:
    out = work / "dream.png"
    zoomdream("image", str(CHELSEA), "-o", str(out))
    save_jpeg(np.concatenate([rgb(CHELSEA), rgb(out)], axis=1), DOCS / "before_after.jpg")


def sheet(work: Path) -> None:
    out = work / "sheet.png"
    zoomdream("sheet", str(CHELSEA), "-o", str(out), "--cell", "224")
    save_jpeg(rgb(out), DOCS / "sheet.jpg")


def video(work: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_video  # its moving test clip

    clip = work / "pan.mp4"
    bench_video.make_clip(clip, size=(320, 180), seconds=2.0, source=CHELSEA)
    frames = work / "dream_frames"
    zoomdream("video", str(clip), "-o", str(frames))
    src = work / "src_frames"
    src.mkdir(exist_ok=True)
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-i", str(clip),
                    str(src / "%06d.png")], check=True)
    top = side_by_side([rgb(src / f"{i + 1:06d}.png") for i in STRIP_FRAMES])  # ffmpeg numbers from 1
    bottom = side_by_side([rgb(sorted(frames.glob("*.png"))[i]) for i in STRIP_FRAMES])
    white = np.full((GAP, top.shape[1], 3), 255, np.uint8)
    save_jpeg(np.concatenate([top, white, bottom], axis=0), DOCS / "video_strip.jpg")


def zoom(work: Path) -> None:
    made, out = work / "zoom.gif", DOCS / "zoom.gif"
    zoomdream("zoom", str(COFFEE), "-o", str(made), *ZOOM_ARGS)
    out.write_bytes(made.read_bytes())  # the GIF only, not its settings sidecar
    print(f"  -> {out.relative_to(ROOT)}, {out.stat().st_size // 1024} KB")


PICTURES = {"before_after": before_after, "sheet": sheet, "video": video, "zoom": zoom}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=list(PICTURES), action="append", help="make only this picture (repeatable)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="zoomdream-docs-") as tmp:
        for name in args.only or PICTURES:
            PICTURES[name](Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
