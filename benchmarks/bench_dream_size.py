"""The dream size: seconds per frame, added flicker per unit of dream strength, and a frame strip to look at.

For each clip (a path; 720p and 1080p camera footage is what this is for) and each dream size
(``none`` = dream at the frame's full size, as before the setting existed), the default video
preset dreams ``--frames`` consecutive frames through ``video.dream_frames`` (the frame loop of
``render_video`` without the PNG cache and the encoder). The cases are advanced round-robin,
frame by frame (A B C, A B C, ...), so a change of machine load hits them alike.

Per case it prints:
  s/frame    median over frames 1..N-1 (frame 0 is the full first dream plus tracing);
  strength   mean |dreamed - source| in pixel levels (how much the dream changes the footage);
  flicker    added flicker (flow.added_flicker) measured the same way for every case: at the
             output size, with DIS flows of the full-size source frames (not the render's own
             flows, which work at the dream size), over pairs that are not a scene cut;
  flicker/strength  the figure to compare: a weaker dream flickers less for no merit.
A strip PNG (--out-dir) shows, per clip, the source and each case's last frame, whole and as a
1:1 crop of the centre, so detail and pattern scale can be judged side by side.

    python benchmarks/bench_dream_size.py CLIP.mp4 [CLIP2.mp4 ...] --sizes none,640,768,1024 --frames 8
    python benchmarks/bench_dream_size.py clip720.mp4 --start 1.0 --frames 6 --out-dir /tmp/zoomdream-bench
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C


def parse_sizes(text: str) -> list[int | None]:
    return [None if s.strip() in ("none", "0", "full") else int(s) for s in text.split(",")]


def label(size: int | None) -> str:
    return "full" if size is None else f"dream {size}"


def measured_flicker(src: list[np.ndarray], out: list[np.ndarray], flow) -> float:
    """Mean added flicker over consecutive pairs (scene cuts skipped), full-size DIS flows of the source."""
    values = []
    for i in range(1, len(out)):
        if flow.scene_cut_score(src[i - 1], src[i]) > flow.SCENE_CUT:
            continue
        bwd = flow.compute_flow(src[i], src[i - 1])
        fwd = flow.compute_flow(src[i - 1], src[i])
        mask = flow.occlusion_mask(bwd, fwd)
        v = flow.added_flicker(out[i - 1], out[i], src[i - 1], src[i], bwd, mask)
        if not np.isnan(v):
            values.append(v)
    return float(np.mean(values)) if values else float("nan")


def bench_clip(path: str, sizes: list[int | None], args) -> tuple[list[dict], np.ndarray]:
    C.tf()
    from zoomdream import flow
    from zoomdream.media.probe import probe
    from zoomdream.media.read import iter_frames
    from zoomdream.render import video
    from zoomdream.render.job import Clip
    from zoomdream.settings import presets

    info = probe(path)
    fps = float(info.fps)
    first = int(round(args.start * fps))
    stop = first + args.frames
    base = presets.load_preset(args.preset)
    loops = {}
    for size in sizes:
        settings = dataclasses.replace(base, video=dataclasses.replace(base.video, dream_size=size))
        loops[size] = video.dream_frames(Clip(info.path).probed(info), settings, first=first, stop=stop)
    outs = {size: [] for size in sizes}
    times = {size: [] for size in sizes}
    for _ in range(args.frames):
        for size, gen in loops.items():
            t = time.perf_counter()
            _, frame, _ = next(gen)
            times[size].append(time.perf_counter() - t)
            outs[size].append(frame)
    for gen in loops.values():
        gen.close()
    frames = iter_frames(info, skip=first, max_frames=stop)
    src = [f for f, _ in zip(frames, range(args.frames))]
    frames.close()
    rows = []
    for size in sizes:
        strength = float(np.mean([np.abs(o.astype(np.float32) - s).mean() for o, s in zip(outs[size], src)]))
        fl = measured_flicker(src, outs[size], flow)
        rows.append({"clip": Path(path).name, "size": f"{info.width}x{info.height}", "case": label(size),
                     "first": times[size][0], "s_frame": C.median(times[size][1:]), "strength": strength,
                     "flicker": fl, "ratio": fl / strength if strength > 0 else float("nan")})
    return rows, strip(src[-1], [outs[s][-1] for s in sizes], ["source", *map(label, sizes)])


def strip(src: np.ndarray, outs: list[np.ndarray], names: list[str], width: int = 480, crop: int = 240) -> np.ndarray:
    """Per case: the whole frame scaled to ``width`` over a 1:1 centre crop of ``crop`` px (labelled)."""
    cols = []
    for img, name in zip([src, *outs], names):
        h, w = img.shape[:2]
        small = cv2.resize(img, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
        y, x = h // 2 - crop // 2, w // 2 - crop
        detail = img[y:y + crop, x:x + 2 * crop]  # (crop, 2 crop): 1:1 pixels
        detail = cv2.resize(detail, (width, width // 2), interpolation=cv2.INTER_NEAREST)
        col = np.concatenate([small, detail], axis=0)
        col = col.copy()
        cv2.putText(col, name, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(col, name, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
        cols.append(col)
    return C.grid([cols])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("clips", nargs="+")
    p.add_argument("--sizes", default="none,640,768,1024", help="dream sizes, 'none' = full size")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--start", type=float, default=0.0, help="seconds into each clip")
    p.add_argument("--preset", default="default")
    p.add_argument("--out-dir", default=None)
    args = p.parse_args()
    os.environ.setdefault("ZOOMDREAM_CACHE", tempfile.mkdtemp(prefix="zoomdream-bench-cache-"))
    out_dir = Path(args.out_dir or tempfile.mkdtemp(prefix="zoomdream-bench-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = parse_sizes(args.sizes)
    print(f"CPU: {C.cpu_name()}; load average at start {os.getloadavg()[0]:.2f}", flush=True)
    all_rows, strips = [], []
    for clip in args.clips:
        rows, img = bench_clip(clip, sizes, args)
        all_rows += rows
        strips.append(img)
        C.save_image(out_dir / f"dream_size_{Path(clip).stem}.png", img)
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    print()
    print("| clip | frame | case | s/frame | vs full | strength | added flicker | flicker/strength |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    full = {r["clip"]: r for r in all_rows if r["case"] == "full"}
    for r in all_rows:
        ref = full.get(r["clip"])
        speed = f"{ref['s_frame'] / r['s_frame']:.2f}x" if ref else "-"
        print(f"| {r['clip']} | {r['size']} | {r['case']} | {r['s_frame']:.2f} | {speed} | {r['strength']:.1f} | "
              f"{r['flicker']:.2f} | {r['ratio']:.3f} |")
    print(f"\nstrips: {out_dir}")


if __name__ == "__main__":
    main()
