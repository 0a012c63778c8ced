"""Video dreaming: seconds per frame, added flicker and peak memory, against dreaming every frame.

One run measures, and prints as tables plus a final ``SUMMARY:`` line:

(a) a 640x360, 24 fps test clip that MOVES (a pan with a gentle vertical sway over an
    upscaled assets/coffee.jpg, made with the bundled ffmpeg), so flow and flicker mean something;
(b) the per-frame cost of the flow bookkeeping alone (two DIS flows, the occlusion mask,
    the flicker metric) at 640x360;
(c) seconds per frame and added flicker at 640x360, full settings, three loops advanced
    round-robin frame by frame (A B C, A B C, ...) through ``video.dream_frames`` (the
    frame loop of ``render_video`` without the PNG save and encode):
      video    the default preset's ``video:`` section (blend 0.55, 3 steps/octave after frame 0);
      still    "dream every frame": blend 0 and iterations_per_frame = iterations, so every
               frame gets the full still dream of the default preset (the classic approach);
      ipf2     a candidate: the video preset with iterations_per_frame 2.
    Steady state = median over frames 1..N-1 (frame 0 is the full first dream plus tracing). The
    still case is ~4x slower, so it makes fewer frames (--still-frames), its turns spread evenly.
    Flow fields are computed by whichever loop reaches a frame first (``video``, which runs first
    each round) and read from the flow cache by the others; a dream-every-frame render would
    not compute flow at all, so this charges the flow to the video preset only.
(d) peak RSS of ``render_video`` (the whole pipeline: decode, flow, dream, PNG cache, encode)
    for 30 and for 300 frames, each in a fresh subprocess (VmHWM of that process, read at its end;
    ``wait4``'s ru_maxrss is printed too but includes the forking parent's image, see the output). These runs use CHEAP settings (default ``--max-size 320 --octaves 1
    --iterations 1 --iterations-per-frame 1``, i.e. 320x180) because what is measured is how memory
    grows with the frame count; 300 frames at the full default settings would take ~1 h here.
(e) PNG contact strips in --out-dir: consecutive frames (source / still / video) and their
    flicker maps (|frame - previous frame warped by the source flow|, x4).
(f) the whole process against the previous default look: ``zoomdream video`` on --whole-frames
    frames of the clip with the default preset and with ``vgg-edges`` (the previous default:
    vgg16-hed, its layers, steps and blending), each in a fresh interpreter, timed from the
    parent (start-up, model build, tracing, flow, dreaming, PNG cache, encode), run one after
    the other; the ratio is vgg-edges' time over the default's.

Flicker per unit of dream strength: (c) also reports each case's dream strength, the mean
|dreamed frame - source frame| in pixel levels, and its added flicker divided by it, since
a weaker dream flickers less for no merit; the target compares the video preset's
flicker per unit strength to the still case's (dreaming every frame independently).

Targets (reported, never asserted): video s/frame <= 1/4 of still s/frame; video added flicker
(per unit of dream strength) at least 50% lower than blend 0; peak RSS(300 frames) within 10%
of RSS(30); the default preset's whole process at least 2x faster than vgg-edges'.

    python benchmarks/bench_video.py                      # full run (~12-16 min on 2 busy cores)
    python benchmarks/bench_video.py --quick              # sanity run (~5 min: a still frame is ~50 s)
    python benchmarks/bench_video.py --frames 12 --still-frames 6 --mem-frames 30,300 --out-dir /tmp/zoomdream-bench
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

CLIP_SIZE = (640, 360)
CLIP_FPS = 24
CLIP_SECONDS = 13.0  # 312 frames: enough for the 300-frame memory run
CLIP_SOURCE = C.ROOT / "assets" / "coffee.jpg"
PREVIOUS_DEFAULT = "vgg-edges"  # the preset that holds the previous default look (vgg16-hed)
CHEAP = "--max-size 320 --octaves 1 --iterations 1 --iterations-per-frame 1"


def log(msg: str = "") -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- memory helpers
def mib(kib: float | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.0f} MiB"


# --------------------------------------------------------------------------- (a) the clip
def make_clip(path: Path, size=CLIP_SIZE, fps=CLIP_FPS, seconds=CLIP_SECONDS, source=CLIP_SOURCE) -> None:
    """A moving 640x360 clip: the photo upscaled to 3.5x the frame width, a window of twice the frame
    size (57% of the photo's width) panned across it (x linear, y a slow sine), then halved, so the
    motion has half-pixel precision. For coffee.jpg (600x400) that is a 1.9x upscale of the photo.

    Pan speed in output pixels per frame: x 1.5, y up to 3.1 (peak) - a steady hand-held pan.
    """
    import imageio_ffmpeg

    w, h = size
    big_w = int(w * 3.5)  # 2240 for 640
    cw, ch = 2 * w, 2 * h
    vf = (f"scale={big_w}:-2:flags=lanczos,"
          f"crop={cw}:{ch}:x='min(40+72*t,iw-{cw})':y='(ih-{ch})/2+300*sin(0.5*t)',"
          f"scale={w}:{h}:flags=area,setsar=1,format=yuv420p")
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
           "-loop", "1", "-framerate", str(fps), "-i", str(source), "-t", f"{seconds}", "-vf", vf,
           "-r", str(fps), "-c:v", "libx264", "-preset", "veryfast", "-crf", "14", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True)


def source_motion(info, n: int = 24) -> tuple[float, float]:
    """Mean and max flow magnitude (px/frame) over the first n frames: proof the clip moves."""
    from zoomdream import flow
    from zoomdream.media.read import iter_frames

    mags, prev = [], None
    for f in iter_frames(info, max_frames=n):
        if prev is not None:
            mags.append(float(np.linalg.norm(flow.compute_flow(f, prev), axis=2).mean()))
        prev = f
    return float(np.mean(mags)), float(np.max(mags))


# --------------------------------------------------------------------------- (b) flow overhead
def bench_flow_overhead(info, repeats: int = 5) -> float:
    from zoomdream import flow
    from zoomdream.media.read import iter_frames

    frames = list(iter_frames(info, max_frames=repeats + 1))
    times = []
    for i in range(1, len(frames)):
        a, b = frames[i], frames[i - 1]
        t = C.now()
        bwd = flow.compute_flow(a, b)
        fwd = flow.compute_flow(b, a)
        valid = flow.occlusion_mask(bwd, fwd)
        flow.added_flicker(b, a, b, a, bwd, valid)
        times.append(C.now() - t)
    return C.median(times)


# --------------------------------------------------------------------------- (c) interleaved timing
def settings_cases(candidate_ipf: int | None, seed: int) -> dict:
    from zoomdream.settings import merge
    from zoomdream.settings.presets import load_preset

    base = merge(load_preset("default"), {"seed": seed})
    cases = {
        "video": base,
        "still": merge(base, {"video.blend": 0.0, "video.iterations_per_frame": base.dream.iterations}),
    }
    if candidate_ipf:
        cases[f"ipf{candidate_ipf}"] = merge(base, {"video.iterations_per_frame": candidate_ipf})
    return cases


def bench_interleaved(info, cases: dict, n: int, still_n: int) -> dict:
    """Advance one ``dream_frames`` generator per case round-robin; time every frame.

    The slow ``still`` case makes ``still_n`` frames, its turns spread evenly over the ``n`` rounds.
    """
    from zoomdream.render.job import Clip
    from zoomdream.render.video import dream_frames

    counts = {k: (still_n if k == "still" else n) for k in cases}
    clip = Clip(info.path).probed(info)
    gens = {k: dream_frames(clip, s, first=0, stop=counts[k]) for k, s in cases.items()}
    res = {k: {"times": [], "flicker": [], "frames": [], "rounds": []} for k in cases}
    for i in range(n):
        for name, gen in gens.items():
            done = len(res[name]["times"])
            if done >= counts[name] or done > i * counts[name] / n:
                continue
            t = C.now()
            idx, frame, flick = next(gen)
            dt = C.now() - t
            r = res[name]
            r["times"].append(dt)
            r["flicker"].append(flick)
            r["frames"].append(frame)
            r["rounds"].append(i)
            log(f"    frame {idx:3d}  {name:<6} {dt:7.2f} s   added flicker {flick:6.2f}")
    for gen in gens.values():
        gen.close()
    return res


def paired_ratios(res: dict) -> dict:
    """For each steady still frame, every other case's time in the same round divided by the still's."""
    still = res["still"]
    out = {}
    for k, r in res.items():
        if k == "still":
            continue
        by_round = dict(zip(r["rounds"], r["times"]))
        out[k] = [by_round[rd] / t for rd, t in zip(still["rounds"][1:], still["times"][1:]) if rd in by_round]
    return out


# --------------------------------------------------------------------------- (d) memory in a subprocess
def child_main(spec: dict) -> None:
    """Runs in the subprocess: one render_video, then a RESULT line."""
    os.environ["ZOOMDREAM_CACHE"] = spec["cache"]
    from zoomdream.render.video import render_video
    from zoomdream.settings import merge
    from zoomdream.settings.presets import load_preset

    settings = merge(load_preset(spec.get("preset", "default")), spec["overrides"])
    t = time.perf_counter()
    out = render_video(spec["clip"], spec["output"], settings=settings, preview=spec["frames"], overwrite=True,
                       quiet=True)
    wall = time.perf_counter() - t
    print("RESULT " + json.dumps({"frames": out["frames"], "flicker": out["flicker"], "size": out["size"],
                                  "wall": wall, "vmhwm_kib": C.vm_kib("VmHWM"), "vmrss_kib": C.vm_kib("VmRSS")}),
          flush=True)


def parse_overrides(text: str) -> dict:
    """``--max-size 320 --octaves 1`` style flags -> settings.merge keys."""
    keys = {"max-size": "max_size", "octaves": "octaves", "iterations": "iterations", "tile": "tile",
            "iterations-per-frame": "video.iterations_per_frame", "blend": "video.blend", "seed": "seed"}
    parts, out = text.split(), {}
    for flag, value in zip(parts[::2], parts[1::2]):
        key = keys[flag.lstrip("-")]
        out[key] = float(value) if key == "video.blend" else int(value)
    return out


def run_child(clip: Path, output: Path, frames: int, overrides: dict, cache: Path, preset: str = "default") -> dict:
    """One render in a fresh interpreter; samples its RSS against frames done while it runs.

    ``process_wall`` is timed here, from the fork to the child's exit: the whole process.
    """
    spec = {"clip": str(clip), "output": str(output), "frames": frames, "overrides": overrides, "cache": str(cache),
            "preset": preset}
    proc = subprocess.Popen([sys.executable, __file__, "--_child", json.dumps(spec)], stdout=subprocess.PIPE,
                            text=True)
    frames_dir = output.parent / f".{output.name}.zoomdream-work" / "frames"
    samples = []  # (seconds, frames done, VmRSS KiB)
    stop = threading.Event()
    t0 = time.perf_counter()

    def sample():
        while not stop.wait(0.5):
            rss = C.vm_kib("VmRSS", proc.pid)
            try:
                done = sum(1 for p in frames_dir.iterdir() if p.suffix == ".png")
            except OSError:
                done = 0
            if rss is not None:
                samples.append((time.perf_counter() - t0, done, rss))

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    process_wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    th.join()
    result = {"rc": proc.returncode, "ru_maxrss_kib": usage.ru_maxrss, "samples": samples,
              "process_wall": process_wall}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            result.update(json.loads(line[7:]))
    return result


def rss_at(samples, frames_done: int) -> int | None:
    """Largest RSS sampled while at most ``frames_done`` frames were finished."""
    vals = [rss for _, done, rss in samples if done <= frames_done]
    return max(vals) if vals else None


# --------------------------------------------------------------------------- (e) strips
def _label(img: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = img.copy()
    cv2.putText(out, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def flicker_map(prev: np.ndarray, cur: np.ndarray, src_prev: np.ndarray, src_cur: np.ndarray) -> np.ndarray:
    """|cur - warp(prev, source flow)| x4, grey, occluded pixels shown blue."""
    from zoomdream import flow

    bwd = flow.compute_flow(src_cur, src_prev)
    fwd = flow.compute_flow(src_prev, src_cur)
    valid = flow.occlusion_mask(bwd, fwd) > flow.FLICKER_RELIABLE
    diff = np.abs(cur.astype(np.float32) - flow.warp(prev.astype(np.float32), bwd)).mean(axis=2)
    g = np.clip(diff * 4, 0, 255).astype(np.uint8)
    out = np.stack([g, g, g], axis=2)
    out[~valid] = (40, 40, 160)
    return out


def save_strips(out_dir: Path, src: list, res: dict, picks: list[int]) -> list[Path]:
    rows = [[_label(src[i], f"source {i}") for i in picks]]
    maps = [[_label(flicker_map(src[i - 1], src[i], src[i - 1], src[i]), f"source residual {i}") for i in picks]]
    for name in res:
        fr = res[name]["frames"]
        rows.append([_label(fr[i], f"{name} {i}") for i in picks])
        maps.append([_label(flicker_map(fr[i - 1], fr[i], src[i - 1], src[i]),
                            f"{name} {i}: flicker {res[name]['flicker'][i]:.1f}") for i in picks])
    paths = [out_dir / "video_frames_strip.png", out_dir / "video_flicker_maps.png"]
    C.save_image(paths[0], C.grid(rows))
    C.save_image(paths[1], C.grid(maps))
    return paths


# --------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=10, help="frames of the video cases in the timing (default 10)")
    ap.add_argument("--still-frames", type=int, default=5, help="frames of the (4x slower) still case (default 5)")
    ap.add_argument("--candidate-ipf", type=int, default=2, help="also time the video preset with this "
                    "iterations_per_frame (0 = skip; default 2)")
    ap.add_argument("--mem-frames", default="30,300", help="frame counts of the memory runs (default 30,300)")
    ap.add_argument("--mem-settings", default=CHEAP, help=f"overrides of the memory runs (default '{CHEAP}')")
    ap.add_argument("--whole-frames", type=int, default=48, help="frames of each whole-process run in (f) (default 48)")
    ap.add_argument("--skip", default="", help="comma list of sections to skip: timing,memory,whole")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="sanity run: 4 timing frames, memory 10,40 frames")
    ap.add_argument("--out-dir", default="/tmp/zoomdream-bench")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        child_main(json.loads(args._child))
        return
    if args.quick:
        args.frames, args.still_frames, args.mem_frames, args.whole_frames = 4, 3, "10,40", 8
    skip = set(filter(None, args.skip.split(",")))
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="zdbench-video-"))
    os.environ["ZOOMDREAM_CACHE"] = str(work / "cache")  # flow caches stay out of ~/.cache
    summary = {}
    try:
        log(f"bench_video: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
            f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; work dir {work}")
        # (a) the clip
        clip = work / "pan_640x360.mp4"
        t = C.now()
        make_clip(clip)
        from zoomdream.media.probe import probe
        from zoomdream.media.read import frame_count, iter_frames

        info = probe(clip)
        n_clip = frame_count(info)
        mean_px, max_px = source_motion(info)
        log(f"\n(a) clip: {clip.name} {info.width}x{info.height} @ {info.fps} fps, {n_clip} frames, made in "
            f"{C.now() - t:.1f} s from {CLIP_SOURCE.name} (pan + vertical sway); source flow over 24 frames: "
            f"mean {mean_px:.2f} px/frame, max {max_px:.2f}")

        if "timing" not in skip:
            from zoomdream.backbones import load_backbone

            cases = settings_cases(args.candidate_ipf, args.seed)
            d, v = cases["video"].dream, cases["video"].video
            bb = load_backbone(d.model, weights=d.weights, precision=d.precision)
            # (b)
            flow_s = bench_flow_overhead(info)
            log(f"\n(b) flow bookkeeping per frame at 640x360 (2x DIS flow + occlusion mask + flicker metric): "
                f"{flow_s * 1000:.0f} ms")
            # (c)
            log(f"\n(c) interleaved timing at {info.width}x{info.height}, {args.frames} frames per video case, "
                f"{args.still_frames} for the still case, full "
                f"settings ({d.model} {bb.precision}, layers {dict(d.layers)}, {d.octaves} octaves x "
                f"{d.octave_scale}, {d.iterations} steps, step {d.step}, tile {d.tile}, seed {d.seed})")
            for name, s in cases.items():
                log(f"    {name:<6} blend {s.video.blend}, iterations_per_frame {s.video.iterations_per_frame} "
                    f"(frame 0: {s.dream.iterations})")
            res = bench_interleaved(info, cases, args.frames, args.still_frames)
            src = list(iter_frames(info, max_frames=args.frames))
            steady = {k: C.median(r["times"][1:]) for k, r in res.items()}
            flick = {k: float(np.nanmean(r["flicker"][1:])) for k, r in res.items()}
            strength = {k: float(np.mean([np.abs(f.astype(np.float32) - src[i].astype(np.float32)).mean()
                                          for i, f in enumerate(r["frames"]) if i >= 1]))
                        for k, r in res.items()}  # mean |dream - source|, pixel levels, frames 1..
            per_unit = {k: flick[k] / strength[k] for k in res}
            log(f"\n    {'case':<6} {'frame 0 s':>9} {'steady s/frame':>14} {'vs still':>8} {'added flicker':>13} "
                f"{'vs still':>8}   steady times")
            for k, r in res.items():
                log(f"    {k:<6} {r['times'][0]:9.2f} {steady[k]:14.2f} {steady[k] / steady['still']:8.3f} "
                    f"{flick[k]:13.2f} {flick[k] / flick['still']:8.3f}   {C.fmt_times(r['times'][1:])}")
            paired = paired_ratios(res)
            for k, ratios in paired.items():
                log(f"    {k} / still, paired within each round (same moment on the machine): median "
                    f"{C.median(ratios):.3f} of {C.fmt_times(ratios)}")
            log("    dream strength (mean |dream - source|, levels) and added flicker per unit of it: " + ", ".join(
                f"{k} {strength[k]:.2f} -> {per_unit[k]:.3f}" for k in res))
            common = len(res["still"]["flicker"])
            log(f"    like for like, added flicker over frames 1..{common - 1} only: " + ", ".join(
                f"{k} {np.nanmean(r['flicker'][1:common]):.2f}" for k, r in res.items()))
            speed = steady["video"] / steady["still"]
            reduction = 1 - flick["video"] / flick["still"]
            unit_reduction = 1 - per_unit["video"] / per_unit["still"]
            log(f"\n    video preset: {speed:.3f} x the still time per frame (target <= 0.25: "
                f"{'MET' if speed <= 0.25 else 'MISSED'}); flicker {100 * reduction:.0f}% lower than blend 0, "
                f"per unit of dream strength {100 * unit_reduction:.0f}% lower "
                f"(target >= 50%: {'MET' if unit_reduction >= 0.5 else 'MISSED'})")
            log(f"    gradient steps per frame: still {d.iterations}/octave, video {v.iterations_per_frame}/octave "
                f"-> step ratio {v.iterations_per_frame / d.iterations:.3f} before any overhead; flow adds "
                f"{flow_s / steady['still']:.3f} of a still frame")
            log(f"    peak RSS of this process (3 loops, full settings, 640x360): {mib(C.vm_kib('VmHWM'))}")
            summary["video_vs_still_paired"] = round(C.median(paired["video"]), 3)
            summary.update({"video_s_per_frame": round(steady["video"], 2), "still_s_per_frame":
                            round(steady["still"], 2), "video_vs_still_time": round(speed, 3),
                            "flicker_video": round(flick["video"], 2), "flicker_still": round(flick["still"], 2),
                            "flicker_reduction": round(reduction, 3),
                            "strength_video": round(strength["video"], 2), "strength_still": round(strength["still"], 2),
                            "flicker_per_strength_reduction": round(unit_reduction, 3)})
            cand = f"ipf{args.candidate_ipf}"
            if cand in res:
                summary[f"{cand}_vs_still_time"] = round(steady[cand] / steady["still"], 3)
                summary[f"{cand}_flicker_reduction"] = round(1 - flick[cand] / flick["still"], 3)
            picks = list(range(max(1, args.still_frames - 4), args.still_frames))
            paths = save_strips(out_dir, src, res, picks)
            log(f"\n(e) strips: {', '.join(map(str, paths))} (frames {picks})")

        if "memory" not in skip:
            overrides = {"seed": args.seed, **parse_overrides(args.mem_settings)}
            counts = [int(x) for x in args.mem_frames.split(",")]
            log(f"\n(d) peak RSS of render_video in a fresh subprocess per run; CHEAP settings: default preset + "
                f"{args.mem_settings} (frames {info.width}x{info.height} -> max side "
                f"{overrides.get('max_size', 'full')}); flow cache cold (fresh dir per run)")
            mem = {}
            for n in counts:
                out = work / f"mem_{n}.mp4"
                r = run_child(clip, out, n, overrides, work / f"cache_mem_{n}")
                mem[n] = r
                if r["rc"] != 0 or "vmhwm_kib" not in r:
                    log(f"    {n} frames: child failed (rc {r['rc']})")
                    continue
                log(f"    {n:4d} frames: {r['wall']:7.1f} s ({r['wall'] / n:.2f} s/frame end to end incl. start-up "
                    f"and encode), peak RSS (VmHWM) {mib(r['vmhwm_kib'])}, wait4 ru_maxrss {mib(r['ru_maxrss_kib'])}*, "
                    f"final VmRSS {mib(r['vmrss_kib'])}, added flicker {r['flicker']:.2f}, render_video's 'size' {r['size']} "
                    f"(the source's; frames are dreamed at max side {overrides.get('max_size', 'full')})")
                marks = sorted({m for m in (1, 10, 30, 100, 200, 300, n) if m <= n})
                log("          RSS sampled after k frames: " + ", ".join(
                    f"k<={m}: {mib(rss_at(r['samples'], m))}" for m in marks))
            log("    * ru_maxrss also counts the memory image of the process that forked the child before its exec; "
                "with TensorFlow loaded in this parent (section c) that is this parent's ~1 GB, so VmHWM, read by "
                "the child itself at its end, is the figure compared here")
            ok = [n for n in counts if "vmhwm_kib" in mem[n]]
            if len(ok) >= 2:
                lo, hi = ok[0], ok[-1]
                growth = mem[hi]["vmhwm_kib"] / mem[lo]["vmhwm_kib"] - 1
                log(f"    peak RSS (VmHWM) {hi} vs {lo} frames: {100 * growth:+.1f}% (target within 10%: "
                    f"{'MET' if abs(growth) <= 0.10 else 'MISSED'})")
                summary.update({f"rss_{lo}_mib": round(mem[lo]["vmhwm_kib"] / 1024),
                                f"rss_{hi}_mib": round(mem[hi]["vmhwm_kib"] / 1024),
                                "rss_growth": round(growth, 3)})
        if "whole" not in skip:
            log(f"\n(f) whole process, `zoomdream video` on {args.whole_frames} frames of the "
                f"{info.width}x{info.height} clip, fresh interpreter each, full settings, one after the other")
            walls = {}
            for preset in ("default", PREVIOUS_DEFAULT):
                r = run_child(clip, work / f"whole_{preset}.mp4", args.whole_frames, {"seed": args.seed},
                              work / f"cache_whole_{preset}", preset=preset)
                if r["rc"] != 0 or "wall" not in r:
                    log(f"    {preset}: child failed (rc {r['rc']})")
                    continue
                walls[preset] = r["process_wall"]
                log(f"    {preset:<10} {r['process_wall']:7.1f} s whole process ({r['wall']:.1f} s inside "
                    f"render_video), {r['process_wall'] / args.whole_frames:.2f} s/frame, added flicker "
                    f"{r['flicker']:.2f}")
            if len(walls) == 2:
                ratio = walls[PREVIOUS_DEFAULT] / walls["default"]
                log(f"    the default preset is {ratio:.2f}x faster than {PREVIOUS_DEFAULT}, whole process "
                    f"(target >= 2x: {'MET' if ratio >= 2 else 'MISSED'})")
                summary.update({"whole_default_s": round(walls["default"], 1),
                                f"whole_{PREVIOUS_DEFAULT}_s": round(walls[PREVIOUS_DEFAULT], 1),
                                "whole_speedup": round(ratio, 2)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log("\nSUMMARY: " + " ".join(f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
