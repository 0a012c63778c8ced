"""The whole `zoomdream video` process against an earlier checkout, and the loop's time against the dream's.

(a) whole process: ``python -m zoomdream video CLIP --start S --preview N`` with the default
    preset, once with an earlier checkout on PYTHONPATH (--base, e.g. the commit before the
    pipeline) and once with this one, plus any --variant (extra flags for this checkout, e.g.
    ``--dream-size 0``... see below); each run is a fresh interpreter with an empty flow cache,
    timed from the parent (start-up, model build, tracing, decode, flow, dreaming, PNG cache,
    encode). Cases alternate round-robin (A B, B A, ...) so a change of load hits them alike.
    The frames each case rendered are compared byte for byte with the base's, and the added
    flicker each render prints is shown.
(b) the loop against the dream: in one process of this checkout, ``render_video`` with every
    ``dream()`` call timed, pipelined (the default) and with the look-ahead and the background
    writer switched off (the sequential loop), alternated; per frame (frames 1..N-1): the loop's
    wall time, the dream's own time, and their ratio (1.0 = nothing outside the dream waits).
(c) the tail: in one process each of --tail-base (e.g. the commit before the MP4 was encoded
    beside the dream) and this checkout, ``render_video`` to an MP4, timed from the moment the
    last frame is made to the moment the output is in place (waiting for the frame cache,
    encoding or finishing the encoder, muxing the soundtrack, publishing), alternated.

Ratios are what to compare; the load average is printed beside them.

    python benchmarks/bench_pipeline.py clip_640x360.mp4 --frames 24 --repeats 2
    python benchmarks/bench_pipeline.py clip_1280x720.mp4 --frames 12 --variant "full=--dream-size 100000"
    python benchmarks/bench_pipeline.py clip.mp4 --base /path/to/old/checkout --skip b
    python benchmarks/bench_pipeline.py clip_640x360.mp4 --frames 14 --skip ab --tail-base /path/to/old/checkout
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

FLICKER = re.compile(r"added flicker (-?[0-9.]+|n/a)")


def run_render(root: Path, clip: str, out: Path, args, flags: list[str]) -> dict:
    cache = Path(tempfile.mkdtemp(prefix="zoomdream-bench-cache-"))
    env = {**os.environ, "PYTHONPATH": str(root), "ZOOMDREAM_CACHE": str(cache)}
    # `python -m` puts the working folder first on sys.path: run from the output's folder, so the checkout on
    # PYTHONPATH is the one that runs (from inside a checkout, that checkout would shadow --base)
    cmd = [sys.executable, "-m", "zoomdream", "video", os.path.abspath(clip), "-o", str(out), "--start", str(args.start),
           "--preview", str(args.frames), "--keep-frames", "--overwrite", "--restart", *flags]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=out.parent, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r.returncode != 0:
        raise SystemExit(f"{root}: render failed ({r.returncode}):\n{r.stderr[-2000:]}")
    m = FLICKER.search(r.stderr)
    return {"wall": wall, "cpu": cpu, "flicker": m.group(1) if m else "?", "load": os.getloadavg()[0]}


def frames_of(out: Path) -> list[bytes]:
    folder = out.parent / f".{out.name}.zoomdream-work" / "frames"
    return [p.read_bytes() for p in sorted(folder.glob("*.png"))]


def whole_process(args) -> None:
    if args.base is None:
        raise SystemExit("--base OLD_CHECKOUT: the earlier checkout the whole process is compared with")
    work = Path(tempfile.mkdtemp(prefix="zoomdream-bench-pipeline-"))
    cases = {"base": (Path(args.base), [])}
    cases["new"] = (C.ROOT, [])
    for v in args.variant:
        name, _, flags = v.partition("=")
        cases[f"new {name}"] = (C.ROOT, shlex.split(flags))
    runs = {k: [] for k in cases}
    names = list(cases)
    print(f"(a) whole process, {args.frames} frames of {Path(args.clip).name} from {args.start} s; "
          f"base = {args.base}", flush=True)
    for r in range(args.repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            root, flags = cases[name]
            res = run_render(root, args.clip, work / f"{name.replace(' ', '_')}.mp4", args, flags)
            runs[name].append(res)
            print(f"    round {r + 1}: {name:<16} {res['wall']:7.1f} s (cpu {res['cpu']:6.1f} s)  "
                  f"flicker {res['flicker']:>6}  "
                  f"load {res['load']:.2f}", flush=True)
    base_frames = frames_of(work / "base.mp4")
    ref = C.median([x["wall"] for x in runs["base"]])
    print()
    print("| case | whole process, s (median) | s/frame | vs base | paired vs base | CPU s | added flicker | "
          "frames = base's |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        wall = C.median([x["wall"] for x in runs[name]])
        same = frames_of(work / f"{name.replace(' ', '_')}.mp4") == base_frames
        paired = [b["wall"] / x["wall"] for b, x in zip(runs["base"], runs[name])]  # same round: similar load
        cpu = C.median([x["cpu"] for x in runs[name]])
        print(f"| {name} | {wall:.1f} | {wall / args.frames:.2f} | {ref / wall:.2f}x | "
              f"{', '.join(f'{p:.2f}' for p in paired)} | {cpu:.1f} | {runs[name][-1]['flicker']} | "
              f"{'yes' if same else 'no'} |")
    print()


def loop_child(spec: dict) -> None:
    """In a fresh interpreter of this checkout: one render, dream() timed, pipelined or not."""
    C.tf()
    from zoomdream import render_video
    from zoomdream.render import (
        frameloop,
        video,
    )
    from zoomdream.settings import presets

    if not spec["pipelined"]:
        video.VideoLoop.__init__.__kwdefaults__["lookahead"] = 0
        video.streamed_video = lambda job, output: contextlib.nullcontext(None)  # encoded after the last frame

        class InLine:  # the writer, without its thread
            def submit(self, fn, *a):
                fn(*a)

            def close(self):
                pass

        frameloop.WriteBehind = InLine
    dreams, ticks = [], []
    real = video.dream

    def timed(*a, **k):
        t = time.perf_counter()
        out = real(*a, **k)
        dreams.append(time.perf_counter() - t)
        return out

    video.dream = timed
    render_video(spec["clip"], spec["out"], settings=presets.load_preset("default"), start=spec["start"],
                 preview=spec["frames"], quiet=True, overwrite=True, restart=True,
                 on_frame=lambda k: ticks.append(time.perf_counter()))
    ticks.append(time.perf_counter())
    loop = [b - a for a, b in zip(ticks[1:], ticks[2:])]  # frames 1..N-1
    print(json.dumps({"loop": loop, "dream": dreams[1:]}))


def loop_vs_dream(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="zoomdream-bench-loop-"))
    res = {True: [], False: []}
    print(f"(b) the loop against the dream, {args.frames} frames, this checkout", flush=True)
    for r in range(args.repeats):
        for pipelined in ((True, False) if r % 2 == 0 else (False, True)):
            spec = {"clip": args.clip, "out": str(work / f"o{int(pipelined)}.mp4"), "start": args.start,
                    "frames": args.frames, "pipelined": pipelined}
            env = {**os.environ, "PYTHONPATH": str(C.ROOT),
                   "ZOOMDREAM_CACHE": tempfile.mkdtemp(prefix="zoomdream-bench-cache-")}
            out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env,
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(out.stderr[-2000:])
            data = json.loads(out.stdout.strip().splitlines()[-1])
            res[pipelined].append(data)
            print(f"    round {r + 1}: {'pipelined' if pipelined else 'sequential':<10} loop "
                  f"{C.median(data['loop']):.3f} s/frame, dream {C.median(data['dream']):.3f} s/frame, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
    print()
    print("| loop | loop s/frame | dream s/frame | loop / dream |")
    print("| --- | --- | --- | --- |")
    for pipelined in (False, True):
        loop = C.median([x for d in res[pipelined] for x in d["loop"]])
        dream = C.median([x for d in res[pipelined] for x in d["dream"]])
        print(f"| {'pipelined' if pipelined else 'sequential'} | {loop:.3f} | {dream:.3f} | {loop / dream:.2f} |")
    print()


def tail_child(spec: dict) -> None:
    """In a fresh interpreter of the checkout on PYTHONPATH: seconds from the last frame made to the output."""
    root = Path(os.environ["PYTHONPATH"]).resolve()
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != C.ROOT or root == C.ROOT]  # _common's
    C.tf()
    from zoomdream import render_video
    from zoomdream.render import video
    from zoomdream.settings import presets

    made = []
    real = video.VideoLoop.frame

    def frame(self, *a, **k):
        out = real(self, *a, **k)
        made.append(time.perf_counter())
        return out

    video.VideoLoop.frame = frame
    render_video(spec["clip"], spec["out"], settings=presets.load_preset("default"), start=spec["start"],
                 preview=spec["frames"], quiet=True, overwrite=True, restart=True)
    print(json.dumps({"tail": time.perf_counter() - made[-1]}))


def tail(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="zoomdream-bench-tail-"))
    cases = {"before": Path(args.tail_base).resolve(), "this": C.ROOT}
    res = {name: [] for name in cases}
    outs = {}
    print(f"(c) from the last frame to the output, {args.frames} frames", flush=True)
    for r in range(args.repeats):
        for name in (("before", "this") if r % 2 == 0 else ("this", "before")):
            spec = {"clip": args.clip, "out": str(work / f"{name}.mp4"), "start": args.start, "frames": args.frames}
            env = {**os.environ, "PYTHONPATH": str(cases[name]),
                   "ZOOMDREAM_CACHE": tempfile.mkdtemp(prefix="zoomdream-bench-cache-")}
            out = subprocess.run([sys.executable, __file__, "--tail-child", json.dumps(spec)], env=env,
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(out.stderr[-2000:])
            res[name].append(json.loads(out.stdout.strip().splitlines()[-1])["tail"])
            outs[name] = Path(spec["out"]).read_bytes()
            print(f"    round {r + 1}: {name:<6} {res[name][-1]:.2f} s, load {os.getloadavg()[0]:.2f}", flush=True)
    same = "identical" if outs["before"] == outs["this"] else "DIFFERENT"
    print(f"tail: before {C.median(res['before']):.2f} s, this {C.median(res['this']):.2f} s; outputs {same}")
    print()


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        loop_child(json.loads(sys.argv[2]))
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--tail-child":
        tail_child(json.loads(sys.argv[2]))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("clip")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--start", type=float, default=0.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--base", default=None, help="an earlier checkout to compare with (e.g. `git worktree add`)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                   help="another case of this checkout with extra flags, e.g. 'full=--dream-size 100000'")
    p.add_argument("--skip", default="", help="a, b and/or c")
    p.add_argument("--tail-base", default=None, help="a checkout whose tail (c) to compare with; none: (c) skipped")
    args = p.parse_args()
    print(f"CPU: {C.cpu_name()}; load average at start {os.getloadavg()[0]:.2f}", flush=True)
    if "a" not in args.skip:
        whole_process(args)
    if "b" not in args.skip:
        loop_vs_dream(args)
    if "c" not in args.skip and args.tail_base:
        tail(args)
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
