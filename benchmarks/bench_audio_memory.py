"""Audio analysis in bounded memory: peak RSS of a 6-frame audio-reactive zoom with a one-hour track.

    python benchmarks/bench_audio_memory.py [--minutes 60] [--iterations 1]

Makes a one-hour MP3 (a 220 Hz tone beeping once a second, 8 kb/s: about 3.6 MB) and a
10-second one with the bundled ffmpeg, then runs the same 6-frame zoom (``--zoom`` driven by
``rms``, so the whole track is analysed) on each in a fresh process and prints the peak
resident memory of each (``ru_maxrss`` of the child), their ratio, the analysis budget
zoomdream checks up front for the long track, and the wall time. ``--iterations 0`` leaves
TensorFlow out (motion only), to see the analysis alone.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PEAK = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
        "print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def _track(path: Path, seconds: float) -> Path:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"sine=frequency=220:beep_factor=4:sample_rate=22050:duration={seconds}",
                    "-c:a", "libmp3lame", "-b:a", "8k", str(path)], check=True)
    return path


def _peak_zoom(photo: Path, track: Path, out: Path, iterations: int) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one zoom render in a fresh process."""
    cmd = [sys.executable, "-m", "zoomdream", "zoom", str(photo), "-o", str(out), "--audio", str(track),
           "--frames", "6", "--fps", "12", "--size", "64x48", "--zoom", "0:(1.01 + 0.02*rms)",
           "--model", "vgg16-hed", "--octaves", "1", "--iterations", str(iterations),
           "--layers", "block3_conv1=1", "--precision", "fp32", "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", PEAK, *cmd], capture_output=True, text=True, env=env, check=True)
    rc, kb = res.stdout.split()[-2:]
    if rc != "0":
        raise SystemExit(f"zoom failed (exit {rc}): {res.stderr.strip()}")
    return int(kb) / 1024, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--iterations", type=int, default=1)
    args = p.parse_args()
    import numpy as np

    from zoomdream import audio
    from zoomdream.media.images import save_image

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photo = tmp / "photo.png"
        save_image(photo, np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
        short = _track(tmp / "short.mp3", 10)
        long = _track(tmp / "long.mp3", args.minutes * 60)
        base, base_s = _peak_zoom(photo, short, tmp / "a.mp4", args.iterations)
        peak, peak_s = _peak_zoom(photo, long, tmp / "b.mp4", args.iterations)
        size = long.stat().st_size / 1e6
    print(f"6-frame zoom, --iterations {args.iterations}, analysis blocks of {audio.BLOCK_SECONDS:g} s")
    print(f"10 s track:            peak RSS {base:7.0f} MB   ({base_s:6.1f} s)")
    print(f"{args.minutes:g} min track ({size:.1f} MB): peak RSS {peak:7.0f} MB   ({peak_s:6.1f} s)")
    print(f"ratio long / short:    {peak / base:7.2f}x")
    print(f"budget checked up front for the long track: {audio.analysis_memory(args.minutes * 60) / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
