"""Audio features: the cost of analysing a soundtrack, first call (librosa's numba JIT) vs warm.

    python benchmarks/bench_audio.py [--seconds 60]

Makes a synthetic track with the bundled ffmpeg (clicks at 120 bpm over a sine sweep), then times
``zoomdream.audio.frame_features`` in a fresh process state: the first call includes importing
librosa and compiling its numba kernels; the second analyses a different file (no cache hit)
with everything compiled. Prints both and their ratio; also the schedule evaluation of a
zoom over the same frames, for scale.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _track(path: Path, seconds: float, f1: float) -> Path:
    import imageio_ffmpeg

    expr = f"0.3*sin(2*PI*(60*t+({f1}-60)/(2*{seconds})*t*t))+0.8*(2*random(0)-1)*lt(mod(t,0.5),0.005)"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"aevalsrc='{expr}':s=44100:d={seconds}", str(path)], check=True)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--fps", type=float, default=24.0)
    args = p.parse_args()
    from zoomdream import audio
    from zoomdream.settings import schedule

    with tempfile.TemporaryDirectory() as tmp:
        a = _track(Path(tmp) / "a.wav", args.seconds, 6000)
        b = _track(Path(tmp) / "b.wav", args.seconds, 3000)
        n = int(args.seconds * args.fps)
        t0 = time.perf_counter()
        audio.frame_features(a, fps=args.fps, n=n)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        features = audio.frame_features(b, fps=args.fps, n=n)
        warm = time.perf_counter() - t0
    env = schedule.frame_variables(n, args.fps, features)
    curve = schedule.parse("0:(1.01), 240:(1.02 + 0.03*beat**4), 1000:(1 + 0.01*sin(2*pi*s/8) + 0.02*onset)")
    t0 = time.perf_counter()
    curve.values(env)
    evaluate = time.perf_counter() - t0
    print(f"track {args.seconds:g} s, {n} frames at {args.fps:g} fps")
    print(f"features, first call (import + JIT): {cold:7.2f} s")
    print(f"features, warm (another file):       {warm:7.2f} s   ({warm / args.seconds * 1000:.1f} ms per second of audio)")
    print(f"ratio first / warm:                  {cold / warm:7.1f}x")
    print(f"one keyframed schedule, all frames:  {evaluate * 1000:7.2f} ms")


if __name__ == "__main__":
    main()
