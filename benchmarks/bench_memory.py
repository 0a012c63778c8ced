"""Memory of a 4K still dream, and how fast the command line answers when nothing is dreamed.

One run measures, and prints as tables plus a final ``SUMMARY:`` line:

(a) wall time of ``zoomdream --help`` and ``zoomdream presets`` (the installed console script,
    fresh process each time, interleaved round-robin with a bare ``python -c pass`` for the
    interpreter's own start-up), and whether TensorFlow / Keras get imported by them (checked in
    a child that runs ``zoomdream.cli.main`` and then looks at ``sys.modules``); plus the slowest
    imports of ``zoomdream presets`` from ``python -X importtime``.
(b) peak RSS of ``zoomdream image`` on a 3840x2160 picture (assets/coffee.jpg scaled to cover
    3840x2160 and centre-cropped, saved as PNG), default preset, each size in a fresh subprocess:
    ``wait4``'s ru_maxrss, plus the RSS sampled every 0.2 s. By default with ``--iterations 1``
    (10 would take ~30 min here): peak memory is set by the largest octave and the tile, not by
    how many steps are taken, so one step per octave reaches the same peak. A 1920x1080 run is
    made too, to show how the peak scales with the picture (the tile is the same).

Targets (reported, never asserted): 4K still peak RSS < 8 GB;
``--help`` / ``presets`` < 0.5 s with no TensorFlow import.

    python benchmarks/bench_memory.py                    # full run (~4-6 min on 2 busy cores)
    python benchmarks/bench_memory.py --quick            # sanity run: 1280x720 only
    python benchmarks/bench_memory.py --sizes 3840x2160 --iterations 2 --tile 512
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

PHOTO = C.ROOT / "assets" / "coffee.jpg"
HEAVY = ("tensorflow", "keras", "cv2", "numpy", "yaml", "PIL", "tqdm", "scipy")
GIB = 1024 ** 3


def log(msg: str = "") -> None:
    print(msg, flush=True)


def zoomdream_exe() -> list[str]:
    exe = Path(sys.executable).parent / "zoomdream"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "zoomdream"]


def run_wait4(cmd: list[str], interval: float = 0.2) -> dict:
    """Run ``cmd``: wall time, exit code, output, this child's own rusage (os.wait4: ru_maxrss in KiB),
    and its VmRSS sampled every ``interval`` s."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        peak = [0]
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.wait(interval):
                rss = C.vm_kib("VmRSS", proc.pid)
                if rss:
                    peak[0] = max(peak[0], rss)
                    samples.append((time.perf_counter() - t0, rss))

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        stop.set()
        th.join()
        out.seek(0)
        err.seek(0)
        return {"wall": wall, "rc": proc.returncode, "stdout": out.read(), "stderr": err.read(),
                "ru_maxrss_kib": usage.ru_maxrss, "sampled_kib": peak[0], "samples": samples}


# --------------------------------------------------------------------------- (a) start-up
CHECK_IMPORTS = """
import contextlib, io, json, sys
from zoomdream.cli import main
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    try:
        rc = main(sys.argv[1:])
    except SystemExit as e:
        rc = e.code
print("IMPORTS " + json.dumps({"rc": rc, "lines": buf.getvalue().count(chr(10)),
      "loaded": {m: m in sys.modules for m in %r}}))
""" % (HEAVY,)


def bench_startup(repeats: int) -> dict:
    exe = zoomdream_exe()
    cases = {"python -c pass": [sys.executable, "-c", "pass"],
             "zoomdream --help": exe + ["--help"],
             "zoomdream presets": exe + ["presets"]}
    times = {k: [] for k in cases}
    for r in range(repeats + 1):  # round 0 warms the page cache and is dropped
        for name, cmd in cases.items():
            t = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True)
            dt = time.perf_counter() - t
            if p.returncode != 0:
                raise RuntimeError(f"{cmd}: exit {p.returncode}: {p.stderr.strip()}")
            if r:
                times[name].append(dt)
    log(f"\n(a) start-up: {' '.join(exe)}; {repeats} fresh processes each, interleaved (a warm-up round dropped)")
    log(f"    {'command':<20} {'median s':>9} {'min s':>7}   times")
    for name, ts in times.items():
        log(f"    {name:<20} {C.median(ts):9.3f} {min(ts):7.3f}   {C.fmt_times(ts)}")
    imports = {}
    for argv in (["--help"], ["presets"]):
        p = subprocess.run([sys.executable, "-c", CHECK_IMPORTS, *argv], capture_output=True, text=True)
        line = next((x for x in p.stdout.splitlines() if x.startswith("IMPORTS ")), None)
        imports[argv[0]] = json.loads(line[8:]) if line else {"error": p.stderr.strip()[-300:]}
        loaded = imports[argv[0]].get("loaded", {})
        log(f"    modules loaded by `zoomdream {argv[0]}` (exit {imports[argv[0]].get('rc')}, "
            f"{imports[argv[0]].get('lines')} lines out): " + ", ".join(f"{m} {'YES' if v else 'no'}"
                                                                         for m, v in loaded.items()))
    p = subprocess.run([sys.executable, "-X", "importtime", "-c",
                        "from zoomdream.cli import main; import contextlib, io\n"
                        "with contextlib.redirect_stdout(io.StringIO()): main(['presets'])"],
                       capture_output=True, text=True)
    rows = []
    for line in p.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            parts = [x.strip() for x in line[len("import time:"):].split("|")]
            if parts[1].isdigit():
                rows.append((int(parts[1]), parts[2]))
    top_level = [(us, name) for us, name in rows if not name.startswith(" ")]
    top_level.sort(reverse=True)
    log("    slowest top-level imports of `zoomdream presets` (cumulative): " + ", ".join(
        f"{name} {us / 1000:.0f} ms" for us, name in top_level[:6]))
    return {"times": times, "imports": imports}


# --------------------------------------------------------------------------- (b) the still
def make_still(path: Path, size: tuple[int, int]) -> None:
    from PIL import Image

    with Image.open(PHOTO) as im:
        im = im.convert("RGB")
        w, h = size
        scale = max(w / im.width, h / im.height)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
        x0, y0 = (im.width - w) // 2, (im.height - h) // 2
        im.crop((x0, y0, x0 + w, y0 + h)).save(path, compress_level=1)


def tile_counts(size: tuple[int, int], d, min_size: int) -> list[str]:
    """Per octave: 'WxH: n tiles' as the dream core plans them."""
    from zoomdream.dream import TILE_OVERLAP_FRACTION, octave_shapes, tile_spans

    w, h = size
    overlap = max(8, int(d.tile * TILE_OVERLAP_FRACTION))
    out = []
    for oh, ow in octave_shapes((h, w), d.octaves, d.octave_scale, min_size):
        n = len(tile_spans(oh, d.tile, overlap)) * len(tile_spans(ow, d.tile, overlap)) \
            if max(oh, ow) > d.tile else 1
        out.append(f"{ow}x{oh}: {n}")
    return out


def bench_still(sizes: list[tuple[int, int]], iterations: int, tile: int | None, work: Path) -> dict:
    from zoomdream.settings import merge
    from zoomdream.settings.presets import load_preset

    d = merge(load_preset("default"), {"tile": tile}).dream
    log(f"\n(b) peak RSS of `zoomdream image` (default preset: {d.model}, layers {dict(d.layers)}, {d.octaves} octaves "
        f"x {d.octave_scale}, tile {d.tile} px with {int(d.tile * 0.25)} px overlap, precision {d.precision}), "
        f"--iterations {iterations} (preset: {load_preset('default').dream.iterations}); fresh process per size")
    res = {}
    for size in sizes:
        src = work / f"coffee_{size[0]}x{size[1]}.png"
        make_still(src, size)
        cmd = zoomdream_exe() + ["image", str(src), "-o", str(work / f"out_{size[0]}x{size[1]}.png"), "--overwrite",
                                 "-q", "--iterations", str(iterations)]
        if tile:
            cmd += ["--tile", str(tile)]
        r = run_wait4(cmd)
        res[size] = r
        one_frame = size[0] * size[1] * 3 * 4 / 2 ** 20
        log(f"    {size[0]}x{size[1]}: exit {r['rc']}, {r['wall']:.0f} s, peak RSS (ru_maxrss) "
            f"{r['ru_maxrss_kib'] / 2 ** 20:.2f} GiB, largest sampled {r['sampled_kib'] / 2 ** 20:.2f} GiB; one float32 "
            f"copy of the image = {one_frame:.0f} MiB; tiles per step by octave: {', '.join(tile_counts(size, d, 32))}")
        if r["rc"] != 0:
            log(f"      stderr: {r['stderr'].strip()[-400:]}")
        if r["samples"]:
            marks = [r["samples"][int(k * (len(r["samples"]) - 1) / 5)] for k in range(6)]
            log("      RSS over time: " + ", ".join(f"{t:.0f}s {kib / 2 ** 20:.2f}G" for t, kib in marks))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1920x1080,3840x2160", help="still sizes, smallest first")
    ap.add_argument("--iterations", type=int, default=1, help="steps per octave for the still (default 1)")
    ap.add_argument("--tile", type=int, default=None, help="tile override (default: the preset's)")
    ap.add_argument("--repeats", type=int, default=9, help="start-up repeats (default 9)")
    ap.add_argument("--skip", default="", help="comma list: startup,still")
    ap.add_argument("--quick", action="store_true", help="sanity run: 1280x720 still, 3 start-up repeats")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.repeats = "1280x720", 3
    skip = set(filter(None, args.skip.split(",")))
    work = Path(tempfile.mkdtemp(prefix="zdbench-mem-"))
    os.environ["ZOOMDREAM_CACHE"] = str(work / "cache")
    summary = {}
    log(f"bench_memory: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}, RAM {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / GIB:.0f} GiB")
    try:
        if "startup" not in skip:
            s = bench_startup(args.repeats)
            for key, name in (("help", "zoomdream --help"), ("presets", "zoomdream presets")):
                t = C.median(s["times"][name])
                tf_loaded = s["imports"][f"--{key}" if key == "help" else key].get("loaded", {}).get("tensorflow")
                summary[f"{key}_s"] = round(t, 3)
                summary[f"{key}_imports_tf"] = tf_loaded
                log(f"    {name}: {t:.3f} s (target < 0.5 s: {'MET' if t < 0.5 else 'MISSED'}), TensorFlow imported: "
                    f"{tf_loaded} (target: no -> {'MET' if tf_loaded is False else 'MISSED'})")
            summary["python_bare_s"] = round(C.median(s["times"]["python -c pass"]), 3)
        if "still" not in skip:
            sizes = [C.parse_size(x) for x in args.sizes.split(",")]
            res = bench_still(sizes, args.iterations, args.tile, work)
            for size, r in res.items():
                gib = r["ru_maxrss_kib"] / 2 ** 20
                summary[f"still_{size[0]}x{size[1]}_peak_gib"] = round(gib, 2)
                summary[f"still_{size[0]}x{size[1]}_s"] = round(r["wall"])
            big = sizes[-1]
            gib = res[big]["ru_maxrss_kib"] / 2 ** 20
            log(f"    {big[0]}x{big[1]} peak {gib:.2f} GiB = {gib * GIB / 1e9:.2f} GB (target < 8 GB: "
                f"{'MET' if gib * GIB / 1e9 < 8 and res[big]['rc'] == 0 else 'MISSED'})")
            summary["still_iterations"] = args.iterations
            summary["tile"] = args.tile or "preset"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log("\nSUMMARY: " + " ".join(f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
