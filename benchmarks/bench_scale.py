"""Scale-out: wall time with 1 vs 2 Ray workers against a sequential render, and the seams.

One run makes a 640x360 moving clip (a pan over assets/chelsea.jpg with a sine soundtrack),
then renders it, each case in a fresh process (so each pays its own start-up, as a user would):

  seq       ``render_video``: the sequential frame loop, TensorFlow on every core
  ray1      ``render_video_ray`` with 1 worker (1 TensorFlow thread)
  ray2      ``render_video_ray`` with 2 workers
  ray2-cut  (optional) 2 workers with warm-up 8 and no cross-fade: why the fade exists

and prints, per case: wall and CPU seconds, frames dreamed (kept + warm-up + fade), for the Ray
cases the seconds until the first frame came back (start-up) and the dreaming phase after it,
and the added flicker
(``flow.added_flicker``, 0..255 levels) at the seams (each seam = its cross-faded frames plus the
chunk's first own frame; mean and worst frame) next to the flicker inside chunks. It also checks
that 1 and 2 workers gave byte-identical frames, and how far the chunked frames are from the
sequential ones. A final ``SUMMARY:`` line holds the ratios.

Each case is minutes long here, so there is one repeat per case, in a fixed order. The machine
is shared, so next to wall time each case reports the CPU seconds of its whole process tree
(driver, Ray, workers; sampled from /proc), which other people's jobs disturb far less: wall
time shows the speed-up you would get, CPU time the extra work the chunking costs. The load
average at the end of each case is printed; distrust wall times taken above ~2. Nothing here
asserts.

    python benchmarks/bench_scale.py                 # 96 frames at 256 px, chunk 24 (~5 min on 2 cores)
    python benchmarks/bench_scale.py --quick         # 24 frames at 160 px, chunk 8 (~3 min)
    python benchmarks/bench_scale.py --cases seq,ray1,ray2,ray2-cut --max-size 320
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

CASES = ("seq", "ray1", "ray2", "ray2-cut")


def log(msg: str = "") -> None:
    print(msg, flush=True)


def make_clip(path: Path, *, size: tuple[int, int], frames: int, fps: int) -> Path:
    """A pan over chelsea.jpg: 4 px per frame to the right at 640 wide, with a sine soundtrack."""
    import imageio_ffmpeg

    w, h = size
    scale = (w * 3 // 2, h * 16 // 9)  # room to pan: (960, 640) for 640x360
    step = max(1, w // 160)
    vf = (f"scale={scale[0]}:{scale[1]},setsar=1,format=rgb24,"
          f"crop={w}:{h}:x='min(n*{step},{scale[0] - w})':y={(scale[1] - h) // 2}")
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
           "-loop", "1", "-framerate", str(fps), "-i", str(C.ROOT / "assets" / "chelsea.jpg"),
           "-f", "lavfi", "-i", f"sine=frequency=440:duration={frames / fps}",
           "-vf", vf, "-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)]
    subprocess.run(cmd, check=True)
    return path


class SessionCPU:
    """CPU seconds of every process in one session (a case and the Ray processes it starts), by polling /proc.

    Wall time on a shared machine says little; CPU time says how much work a case did. Each
    process's own user+system time is sampled every ``interval`` s and its last value kept, so a
    process that lives less than one interval is missed (ffmpeg probes: noise).
    """

    def __init__(self, session: int, interval: float = 0.25):
        import threading

        self.session, self.interval, self.seen = session, interval, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.is_set():
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
                if int(fields[3]) == self.session:  # fields: state ppid pgrp session ... utime(11) stime(12)
                    self.seen[stat.parent.name] = (int(fields[11]) + int(fields[12])) / tick
            self._stop.wait(self.interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self.seen.values())


def run_case(job: dict) -> dict:
    """In the child process: one render; returns its summary (JSON-able)."""
    from zoomdream import settings as S
    from zoomdream.settings import presets

    settings = S.merge(presets.load_preset(job["preset"]), {"max_size": job["max_size"]})
    common = {"settings": settings, "keep_frames": True, "quiet": True}
    if job["case"] == "seq":
        from zoomdream.render.video import render_video

        out = render_video(job["input"], job["output"], **common)
    else:
        from zoomdream.scale import render_video_ray

        out = render_video_ray(job["input"], job["output"], workers=job["workers"], chunk=job["chunk"],
                               warmup=job["warmup"], fade=job["fade"], **common)
    return {k: (str(v) if k == "fps" else v) for k, v in out.items()}


def frames_of(out: Path) -> list[Path]:
    return sorted((out.parent / f".{out.name}.zoomdream-work" / "frames").glob("*.png"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="640x360", help="clip size WxH (default 640x360)")
    p.add_argument("--frames", type=int, default=96, help="clip length in frames (default 96, at 24 fps)")
    p.add_argument("--max-size", type=int, default=256, help="dream size, longer side (default 256: see the README)")
    p.add_argument("--preset", default="default")
    p.add_argument("--chunk", type=int, default=24, help="frames per chunk (default 24: 4 chunks, 3 seams)")
    p.add_argument("--warmup", type=int, default=None, help="default: zoomdream.scale.DEFAULT_WARMUP")
    p.add_argument("--fade", type=int, default=None, help="default: zoomdream.scale.DEFAULT_FADE")
    p.add_argument("--cases", default="seq,ray1,ray2", help=f"comma-separated, from {','.join(CASES)}")
    p.add_argument("--quick", action="store_true", help="24 frames at 160 px, chunk 8")
    p.add_argument("--out-dir", help="keep clip and renders here (default: a temp folder, removed)")
    p.add_argument("--case-json", help=argparse.SUPPRESS)  # internal: run one case in this process
    args = p.parse_args(argv)
    if args.case_json:
        print("RESULT " + json.dumps(run_case(json.loads(args.case_json))), flush=True)
        return 0

    from zoomdream import scale

    if args.quick:
        args.frames, args.max_size, args.chunk = 24, 160, 8
    warmup = scale.DEFAULT_WARMUP if args.warmup is None else args.warmup
    fade = scale.DEFAULT_FADE if args.fade is None else args.fade
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        p.error(f"unknown case(s) {sorted(unknown)}; choose from {CASES}")
    work = Path(args.out_dir or tempfile.mkdtemp(prefix="zoomdream-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    size = C.parse_size(args.size)
    clip = make_clip(work / "pan.mp4", size=size, frames=args.frames, fps=24)
    plan = scale.plan_segments(args.frames, [], chunk=args.chunk, warmup=warmup, fade=fade)
    log(f"# zoomdream scale-out benchmark: {platform.node()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}")
    log(f"clip {size[0]}x{size[1]}, {args.frames} frames at 24 fps, dreamed at max {args.max_size} px, preset "
        f"{args.preset}; chunk {args.chunk}, warm-up {warmup}, fade {fade}: {len(plan)} chunks, "
        f"{sum(c.seam for c in plan)} seams")

    results = {}
    for case in cases:
        cw, cf = (8, 0) if case == "ray2-cut" else (warmup, fade)
        job = {"case": case, "input": str(clip), "output": str(work / f"{case}.mp4"), "preset": args.preset,
               "max_size": args.max_size, "workers": 1 if case == "ray1" else 2, "chunk": args.chunk,
               "warmup": cw, "fade": cf}
        env = {**os.environ, "ZOOMDREAM_CACHE": str(work / f"cache-{case}")}  # cold flow cache for every case
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, __file__, "--case-json", json.dumps(job)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
        meter = SessionCPU(proc.pid)
        stdout, stderr = proc.communicate()
        wall, cpu = time.perf_counter() - t, meter.stop()
        r = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        if r.returncode != 0:
            log(f"{case}: failed (exit {r.returncode}): {r.stderr[-2000:]}")
            return 1
        summary = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("RESULT "))[7:])
        dreamed = args.frames if case == "seq" else sum(
            c.stop - c.warmup_from for c in scale.plan_segments(args.frames, [], chunk=args.chunk, warmup=cw,
                                                                fade=cf))
        results[case] = {**summary, "wall": wall, "cpu": cpu, "dreamed": dreamed,
                         "frames_dir": frames_of(Path(job["output"]))}
        noisy = f" stderr: {r.stderr.strip()[:200]!r}" if r.stderr.strip() else ""
        log(f"  {case:<9} {wall:7.1f} s wall, {cpu:7.1f} s CPU  (dreamed {dreamed} frames for {args.frames}; "
            f"load average {os.getloadavg()[0]:.1f}){noisy}")

    log("")
    for case, s in results.items():
        if case != "seq":
            t = s["seconds"]
            log(f"{case:<9} start-up {t['to_first_frame']:5.1f} s, dreaming {t['dreaming']:6.1f} s "
                f"({s['dreamed'] / t['dreaming']:.2f} frames/s incl. warm-up and fade), total {t['total']:6.1f} s")
    log(f"{'case':<9} {'wall s':>7} {'CPU s':>7} {'dreamed':>8} {'flicker inside':>15} {'at seams':>9} "
        f"{'worst':>7} {'ratio':>6}")
    for case, s in results.items():
        if case == "seq":
            log(f"{case:<9} {s['wall']:7.1f} {s['cpu']:7.1f} {s['dreamed']:8d} {s['flicker']:15.3f} {'-':>9} {'-':>7} "
                f"{'-':>6}")
            continue
        ratio = s["flicker_seams"] / s["flicker_inside"]
        log(f"{case:<9} {s['wall']:7.1f} {s['cpu']:7.1f} {s['dreamed']:8d} {s['flicker_inside']:15.3f} "
            f"{s['flicker_seams']:9.3f} {s['flicker_seams_max']:7.3f} {ratio:6.2f}")

    parts = [f"clip={size[0]}x{size[1]}x{args.frames}@{args.max_size}px", f"chunk={args.chunk}",
             f"warmup={warmup}", f"fade={fade}"]
    from zoomdream.media.images import load_png_fast

    if "ray1" in results and "ray2" in results:
        same = [a.read_bytes() for a in results["ray1"]["frames_dir"]] == \
               [b.read_bytes() for b in results["ray2"]["frames_dir"]]
        log(f"1 and 2 workers gave byte-identical frames: {same}")
        d1, d2 = results["ray1"]["seconds"]["dreaming"], results["ray2"]["seconds"]["dreaming"]
        parts += [f"ray2_vs_ray1_speedup={results['ray1']['wall'] / results['ray2']['wall']:.2f}x",
                  f"ray2_vs_ray1_dreaming_phase={d1 / d2:.2f}x",
                  f"ray2_vs_ray1_cpu={results['ray2']['cpu'] / results['ray1']['cpu']:.2f}x",
                  f"identical_1_vs_2_workers={same}"]
    if "seq" in results:
        for case in ("ray1", "ray2"):
            if case in results:
                parts.append(f"{case}_vs_seq_speedup={results['seq']['wall'] / results[case]['wall']:.2f}x")
                parts.append(f"{case}_vs_seq_cpu={results[case]['cpu'] / results['seq']['cpu']:.2f}x")
        if "ray2" in results:
            seq_frames, ray_frames = results["seq"]["frames_dir"], results["ray2"]["frames_dir"]
            seam_at = {c.first for c in plan if c.seam}
            diffs = [np.abs(load_png_fast(a).astype(np.float32) - load_png_fast(b)).mean()
                     for a, b in zip(seq_frames, ray_frames)]
            log("mean |ray2 - seq| per frame (levels): " + " ".join(
                f"{'|' if i in seam_at else ''}{d:.1f}" for i, d in enumerate(diffs)) + "   ('|' = chunk start)")
        parts.append(f"seq_flicker={results['seq']['flicker']:.3f}")
    for case in ("ray2", "ray2-cut"):
        if case in results:
            s = results[case]
            parts.append(f"{case}_seams/inside={s['flicker_seams']:.3f}/{s['flicker_inside']:.3f}="
                         f"{s['flicker_seams'] / s['flicker_inside']:.2f}x(worst {s['flicker_seams_max']:.3f})")
    log("SUMMARY: " + "; ".join(parts))
    if not args.out_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
