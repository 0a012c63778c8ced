"""Infinite zoom: seconds per frame at 512x512, and how well colour lock holds colours over 240 frames.

One run measures, and prints as tables plus a final ``SUMMARY:`` line:

(a) seconds per frame of ``render_zoom`` at 512x512 (``zoom.size``) with the default preset
    (its zoom motion: x1.02 per frame at 24 fps; 3 steps/octave after frame 0; colour lock 0.7),
    --frames frames (default 24) of assets/coffee.jpg. Per-frame times are read from the frame
    cache: the work folder is kept (``keep_frames=True``) and frame i's time is the gap between the
    modification times of PNG i-1 and PNG i (dream + colour lock + lossless save); frame 0 is
    counted from the call (start-up, tracing and the full first dream). Steady = median of 1..N-1.
(b) colour stability over --colour-frames frames (default 240): per-channel (RGB) mean and std of
    every frame against the source photo's (the photo cropped to the frame size, which is what the
    zoom starts from and what colour lock pulls toward), with colour lock at the preset's strength
    and with colour lock 0. Deviation = |frame - photo| / photo per channel and statistic; the
    worst over all frames and channels is reported, and the first frame past 10%.
    240 frames at 512x512 would take ~1 h on 2 cores, so these runs are SMALLER: by default
    --colour-size 128x128 with every dream setting left at the default preset (its step, and 3 steps
    per octave per frame: the per-pixel push per frame does not depend on the size, since the
    step is applied to the mean-|g|-normalised gradient). The 512x512 run's frames are measured too.
(c) PNG contact strips in --out-dir: the 512x512 frames, and colour lock vs none over 240 frames.

Target (reported, never asserted): with colour lock, every frame's per-channel
mean and std stay within 10% of the source photo's.

    python benchmarks/bench_zoom.py                  # full run (~10-13 min on 2 busy cores)
    python benchmarks/bench_zoom.py --quick          # sanity run (~2 min)
    python benchmarks/bench_zoom.py --frames 24 --colour-frames 240 --colour-size 128x128
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

PHOTO = C.ROOT / "assets" / "coffee.jpg"
CHANNELS = "RGB"


def log(msg: str = "") -> None:
    print(msg, flush=True)


def render(photo: Path, out: Path, overrides: dict) -> tuple[float, list[Path], dict]:
    """render_zoom with the default preset + overrides, frames kept; returns (start time, frame paths, result)."""
    from zoomdream.render.zoom import render_zoom
    from zoomdream.settings import merge
    from zoomdream.settings.presets import load_preset

    settings = merge(load_preset("default"), overrides)
    t0 = time.time()
    res = render_zoom(photo, out, settings=settings, keep_frames=True, overwrite=True, quiet=True)
    frames = sorted((out.parent / f".{out.name}.zoomdream-work" / "frames").glob("*.png"))
    return t0, frames, {**res, "settings": settings, "wall": time.time() - t0}


def frame_times(t0: float, frames: list[Path]) -> list[float]:
    mt = [p.stat().st_mtime_ns / 1e9 for p in frames]
    return [mt[0] - t0] + [b - a for a, b in zip(mt, mt[1:])]


def reference_stats(photo: Path, size: tuple[int, int]):
    from zoomdream.colour import colour_stats
    from zoomdream.media.images import fit_size, load_image

    fitted = fit_size(load_image(photo), size)
    return fitted, colour_stats(fitted)


def deviations(frames: list[Path], ref) -> np.ndarray:
    """(n, 2, 3): per frame, [mean, std] relative deviation per channel from the reference."""
    from zoomdream.colour import colour_stats
    from zoomdream.media.images import load_png_fast

    ref_mean, ref_std = ref
    out = []
    for p in frames:
        mean, std = colour_stats(load_png_fast(p))
        out.append([(mean - ref_mean) / ref_mean, (std - ref_std) / ref_std])
    return np.asarray(out)  # signed


def worst(dev: np.ndarray) -> tuple[float, int, str]:
    """Largest |deviation|, its frame and which statistic/channel."""
    a = np.abs(dev)
    i, s, c = np.unravel_index(np.argmax(a), a.shape)
    return float(a[i, s, c]), int(i), f"{('mean', 'std')[s]} {CHANNELS[c]}"


def first_past(dev: np.ndarray, limit: float = 0.10) -> int | None:
    over = np.nonzero(np.abs(dev).reshape(len(dev), -1).max(axis=1) > limit)[0]
    return int(over[0]) if len(over) else None


def fmt_dev(d: np.ndarray) -> str:
    """One frame's [mean, std] x RGB deviations as signed percentages."""
    return (" ".join(f"{100 * v:+5.1f}" for v in d[0]) + " | " + " ".join(f"{100 * v:+5.1f}" for v in d[1]))


def _label(img: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = img.copy()
    scale = max(0.4, img.shape[1] / 700)
    cv2.putText(out, text, (5, int(22 * scale / 0.55)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (5, int(22 * scale / 0.55)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=24, help="frames of the 512x512 timing run (default 24)")
    ap.add_argument("--size", default="512x512", help="size of the timing run (default 512x512)")
    ap.add_argument("--colour-frames", type=int, default=240, help="frames of the colour runs (default 240)")
    ap.add_argument("--colour-size", default="128x128", help="size of the colour runs (default 128x128)")
    ap.add_argument("--colour-settings", default="", help="extra dream overrides for the colour runs, e.g. "
                    "'octaves=1,iterations=1' (default: none, the default preset)")
    ap.add_argument("--photo", default=str(PHOTO))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip", default="", help="comma list: timing,colour")
    ap.add_argument("--quick", action="store_true", help="sanity run: 6 timing frames at 256x256, 48 colour frames")
    ap.add_argument("--out-dir", default="/tmp/zoomdream-bench")
    args = ap.parse_args()
    if args.quick:
        args.frames, args.size, args.colour_frames = 6, "256x256", 48
    skip = set(filter(None, args.skip.split(",")))
    photo = Path(args.photo)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="zdbench-zoom-"))
    os.environ["ZOOMDREAM_CACHE"] = str(work / "cache")
    from zoomdream.media.images import load_png_fast
    from zoomdream.settings.presets import load_preset

    preset = load_preset("default")
    z, d = preset.zoom, preset.dream
    summary = {}
    log(f"bench_zoom: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; photo {photo.name}; default preset: {d.model}, layers "
        f"{dict(d.layers)}, {d.octaves} octaves x {d.octave_scale}, {d.iterations} steps (frame 0) then "
        f"{z.iterations_per_frame}/octave, step {d.step}, tile {d.tile}; zoom {z.zoom}/frame at {z.fps} fps, rotate "
        f"{z.rotate}, pan {z.pan}, colour_lock {z.colour_lock}")
    try:
        if "timing" not in skip:
            size = C.parse_size(args.size)
            out = work / "zoom_timing.mp4"
            t0, frames, res = render(photo, out, {"seed": args.seed, "zoom.size": size, "zoom.frames": args.frames})
            times = frame_times(t0, frames)
            steady = C.median(times[1:])
            log(f"\n(a) render_zoom {size[0]}x{size[1]}, {len(frames)} frames (precision "
                f"{res['settings'].dream.precision}): total {res['wall']:.1f} s incl. encode")
            log(f"    frame 0 (start-up + tracing + full {d.iterations}-step dream): {times[0]:.2f} s")
            log(f"    steady s/frame (median of frames 1..{len(frames) - 1}): {steady:.2f} s   "
                f"(min {min(times[1:]):.2f}, max {max(times[1:]):.2f})")
            log(f"    per-frame times: {C.fmt_times(times[1:])}")
            _, ref = reference_stats(photo, size)
            dev = deviations(frames, ref)
            w, wi, what = worst(dev)
            log(f"    colour vs photo over these {len(frames)} frames (lock {z.colour_lock}): worst {100 * w:.1f}% "
                f"({what}, frame {wi}); last frame mean R G B | std R G B (%): {fmt_dev(dev[-1])}")
            picks = sorted({round(k * (len(frames) - 1) / 4) for k in range(5)})
            strip = C.grid([[_label(load_png_fast(frames[i]), f"frame {i}") for i in picks]])
            path = out_dir / "zoom_512_strip.png"
            C.save_image(path, strip)
            log(f"    strip: {path} (frames {picks})")
            summary.update({"zoom_size": f"{size[0]}x{size[1]}", "zoom_s_per_frame": round(steady, 2),
                            "zoom_first_frame_s": round(times[0], 1), "zoom_timing_worst_colour": round(w, 3)})

        if "colour" not in skip:
            size = C.parse_size(args.colour_size)
            extra = {}
            for part in filter(None, args.colour_settings.split(",")):
                k, _, v = part.partition("=")
                extra[k.strip()] = int(v) if v.strip().isdigit() else float(v)
            fitted, ref = reference_stats(photo, size)
            log(f"\n(b) colour stability: {args.colour_frames} frames at {size[0]}x{size[1]} (SMALLER than 512x512 "
                f"to fit the time; dream settings: default preset{' + ' + str(extra) if extra else ''}), "
                f"zoom {z.zoom}/frame -> x{z.zoom ** (args.colour_frames - 1):.0f} in total")
            log(f"    photo (cropped to {size[0]}x{size[1]}): mean RGB {np.round(ref[0], 1).tolist()}, "
                f"std RGB {np.round(ref[1], 1).tolist()}")
            runs = {}
            for name, lock in (("lock", z.colour_lock), ("nolock", 0.0)):
                out = work / f"zoom_colour_{name}.mp4"
                t0, frames, res = render(photo, out, {"seed": args.seed, "zoom.size": size, "zoom.frames":
                                                      args.colour_frames, "zoom.colour_lock": lock, **extra})
                times = frame_times(t0, frames)
                dev = deviations(frames, ref)
                runs[name] = (frames, dev)
                w, wi, what = worst(dev)
                fp = first_past(dev)
                log(f"    colour_lock {lock}: {res['wall']:.0f} s ({C.median(times[1:]):.2f} s/frame steady); worst "
                    f"deviation {100 * w:.1f}% ({what}, frame {wi}); first frame past 10%: "
                    f"{'none' if fp is None else fp}")
            log(f"\n    {'frame':>5}   {'lock: mean R G B | std R G B (%)':<44}   nolock: mean R G B | std R G B (%)")
            n = args.colour_frames
            for i in sorted({*range(0, n, max(1, n // 10)), n - 1}):
                log(f"    {i:5d}   {fmt_dev(runs['lock'][1][i]):<44}   {fmt_dev(runs['nolock'][1][i])}")
            wl, _, _ = worst(runs["lock"][1])
            wn, _, _ = worst(runs["nolock"][1])
            log(f"\n    colour lock {z.colour_lock}: worst {100 * wl:.1f}% (target <= 10%: "
                f"{'MET' if wl <= 0.10 else 'MISSED'}); without lock: worst {100 * wn:.1f}%")
            summary.update({"colour_size": f"{size[0]}x{size[1]}", "colour_frames": n,
                            "colour_lock_worst": round(wl, 3), "no_lock_worst": round(wn, 3),
                            "no_lock_first_past_10pct": first_past(runs["nolock"][1])})
            picks = sorted({round(k * (n - 1) / 8) for k in range(9)})
            scale = max(1, 256 // size[1])

            def big(img):
                return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)

            rows = [[_label(big(fitted), "photo")] + [_label(big(load_png_fast(runs[k][0][i])), f"{k} {i}")
                                                      for i in picks] for k in ("lock", "nolock")]
            path = out_dir / "zoom_colour_strip.png"
            C.save_image(path, C.grid(rows))
            log(f"    strip: {path} (frames {picks}, {scale}x nearest-neighbour)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log("\nSUMMARY: " + " ".join(f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
