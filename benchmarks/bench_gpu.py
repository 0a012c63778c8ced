"""GPU vs CPU: a 1080p still, a 720p and a 1080p video frame, and zoom frames per second at 512x512.

One short command; every case runs on each device TensorFlow sees (the GPU, if any, and the
CPU beside it, through ``tf.device``), with the default preset:
  still   ``dream_image`` of a --still image (after a warm-up dream of a small one, so tracing
          is not counted): seconds;
  video   ``video.VideoLoop`` on a short pan over assets/coffee.jpg at each --video size, made
          with the bundled ffmpeg: seconds per carrying frame (median of frames 1..N-1), at full
          size and with the default dream size;
  zoom    ``zoom.ZoomLoop`` at --zoom px square: frames per second over frames 1..N-1.
Precision is the preset's (``auto``: on a GPU it is measured once per backbone and remembered).
Without a GPU it prints the CPU column only, so it can be tried anywhere; ``--small`` shrinks
every size for a quick sanity run.

    python benchmarks/bench_gpu.py                 # the full set (on a 2-core CPU alone: ~15 min)
    python benchmarks/bench_gpu.py --small         # 320x180 still, 256x144 and 320x180 video (dream size 160), zoom 128
    python benchmarks/bench_gpu.py --no-cpu        # GPU figures only
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C


def make_clip(path: Path, size: tuple[int, int], frames: int) -> None:
    """A pan with a sway over the sample photo, ``frames`` frames at 24 fps."""
    import imageio_ffmpeg

    w, h = size
    vf = (f"scale={int(w * 1.5)}:{int(h * 1.5)},format=rgb24,"
          f"crop={w}:{h}:x='n*{max(1, w // 160)}':y='{h // 4}+{max(1, h // 60)}*sin(n/3)'")
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-loop", "1", "-framerate", "24", "-i",
                    str(C.DEFAULT_IMAGE), "-vf", vf, "-frames:v", str(frames), "-c:v", "libx264", "-crf", "12",
                    "-pix_fmt", "yuv420p", str(path)], check=True)


def devices(tf, no_cpu: bool) -> list[tuple[str, str]]:
    out = [("/GPU:0", "GPU: " + tf.config.experimental.get_device_details(g).get("device_name", g.name))
           for g in tf.config.list_physical_devices("GPU")[:1]]
    if not no_cpu or not out:
        out.append(("/CPU:0", "CPU: " + C.cpu_name()))
    return out


def time_still(size, settings) -> float:
    from zoomdream.dream import dream_image

    dream_image(C.load_image(size=(128, 96)), settings=settings.dream)  # warm-up: build, trace
    img = C.load_image(size=size)
    t = time.perf_counter()
    dream_image(img, settings=settings.dream)
    return time.perf_counter() - t


def time_video(clip: Path, settings, frames: int) -> float:
    from zoomdream.media.probe import probe
    from zoomdream.render import video
    from zoomdream.render.job import Clip

    info = probe(clip)
    loop = video.VideoLoop(Clip(info.path).probed(info), settings)
    prev, times = None, []
    try:
        for i in range(frames):
            t = time.perf_counter()
            prev = loop.frame(i, prev)
            times.append(time.perf_counter() - t)
    finally:
        loop.close()
    return C.median(times[1:])


def time_zoom(side: int, settings, frames: int) -> float:
    from zoomdream.render import zoom
    from zoomdream.settings import animation

    photo = C.load_image(size=(side, side))
    anim = animation.Animation(settings, kind="zoom", n=frames, fps=settings.zoom.fps)
    loop = zoom.ZoomLoop(photo, settings, animation=anim)
    prev = loop.frame(0, None)
    t = time.perf_counter()
    for i in range(1, frames):
        prev = loop.frame(i, prev)
    return (frames - 1) / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--still", default="1920x1080", type=C.parse_size)
    p.add_argument("--video", default="1280x720,1920x1080")
    p.add_argument("--zoom", default=512, type=int)
    p.add_argument("--frames", default=4, type=int, help="video frames per case (and zoom frames x4)")
    p.add_argument("--small", action="store_true", help="small sizes: a sanity run")
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU column when a GPU is there")
    p.add_argument("--preset", default="default")
    p.add_argument("--dream-size", type=int, default=None, help="the dream size case (default: the preset's)")
    args = p.parse_args()
    if args.small:
        args.still, args.video, args.zoom = (320, 180), "256x144,320x180", 128
        args.dream_size = args.dream_size or 160
    tf = C.tf()
    from zoomdream.settings import presets

    base = presets.load_preset(args.preset)
    full = dataclasses.replace(base, video=dataclasses.replace(base.video, dream_size=None))
    small_side = args.dream_size or base.video.dream_size
    small = dataclasses.replace(base, video=dataclasses.replace(base.video, dream_size=small_side))
    os.environ.setdefault("ZOOMDREAM_CACHE", tempfile.mkdtemp(prefix="zoomdream-bench-cache-"))
    work = Path(tempfile.mkdtemp(prefix="zoomdream-bench-gpu-"))
    sizes = [C.parse_size(s) for s in args.video.split(",")]
    clips = {}
    for size in sizes:
        clips[size] = work / f"pan_{size[0]}x{size[1]}.mp4"
        make_clip(clips[size], size, args.frames)
    devs = devices(tf, args.no_cpu)
    print(f"TensorFlow {tf.__version__}; preset {args.preset}; dream size {small_side}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    cases = [(f"still {args.still[0]}x{args.still[1]}", "s", lambda: time_still(args.still, base))]
    for size in sizes:
        cases.append((f"video frame {size[0]}x{size[1]}, full size", "s/frame",
                      lambda size=size: time_video(clips[size], full, args.frames)))
        if small_side and max(size) > small_side:
            cases.append((f"video frame {size[0]}x{size[1]}, dream size {small_side}", "s/frame",
                          lambda size=size: time_video(clips[size], small, args.frames)))
    cases.append((f"zoom {args.zoom}x{args.zoom}", "frames/s", lambda: time_zoom(args.zoom, base, args.frames * 4)))
    results = {}
    for name, unit, fn in cases:
        for dev, label in devs:
            with tf.device(dev):
                results[(name, label)] = fn()
            print(f"  {name:<42} {label:<40} {results[(name, label)]:8.3f} {unit}", flush=True)
    labels = [label for _, label in devs]
    print()
    print("| case | unit | " + " | ".join(labels) + (" | GPU vs CPU |" if len(labels) > 1 else " |"))
    print("| --- | --- | " + " | ".join("---" for _ in labels) + (" | --- |" if len(labels) > 1 else " |"))
    for name, unit, _ in cases:
        vals = [results[(name, label)] for label in labels]
        row = f"| {name} | {unit} | " + " | ".join(f"{v:.3f}" for v in vals)
        if len(vals) > 1:
            gain = vals[0] / vals[1] if unit == "frames/s" else vals[1] / vals[0]
            row += f" | {gain:.1f}x"
        print(row + " |")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
