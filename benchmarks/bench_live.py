"""Live zoom: frames per second made by the loop and received by a stream client, control latency, memory.

One run measures, at --size (default 384x216) with the bundled ``live`` preset on assets/coffee.jpg,
and prints tables plus a final ``SUMMARY:`` line:

(a) the loop alone, in this process (:class:`zoomdream.render.live.LiveLoop`): the time per frame split
    into dream (the compiled gradient step and its update), motion (the affine warp), colour lock
    and the rest, plus JPEG encoding as the worker's sender thread does it (off the loop's path);
    means per frame over --frames frames after --warmup (the live preset dreams every second
    frame, so the mean is what sets the rate), and the median of the dreamed frames alone.
(b) end to end through the studio (a real local server, the loop in its worker process): frames
    made per second by the loop (its own count) and frames received per second by one stream
    client over --seconds; the worker's own encode and send times; then the latency of a control
    change in frames: ``set`` zoom and step, and count the frames between the newest frame the
    client had when it sent the change and the first frame it receives that was made with it.
    (send = the worker's hand-over of a JPEG to the web server; the HTTP write to the client is
    the server's and shows in received vs made.)
(c) memory: the worker's and this (server) process's resident memory (measured before (a) loads
    TensorFlow here, so the server's figure is the web server's own) every few seconds over
    --memory-seconds of streaming (a ten-minute session: --memory-seconds 600).

The machine is shared: the load average is printed with the figures. Nothing is asserted.

    python benchmarks/bench_live.py                        # ~2 min
    python benchmarks/bench_live.py --memory-seconds 600   # the 10-minute session
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

PHOTO = C.ROOT / "assets" / "coffee.jpg"


def log(msg: str = "") -> None:
    print(msg, flush=True)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# ---------------------------------------------------------------- (a) the loop alone
def loop_alone(size, frames: int, warmup: int) -> dict:
    import cv2

    import zoomdream.colour as colour_mod
    import zoomdream.motion as motion_mod
    import zoomdream.render.zoom as zoom_mod
    from zoomdream.render.live import LiveLoop
    from zoomdream.settings import presets

    spent = {"dream": 0.0, "motion": 0.0, "colour": 0.0}

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t
        return wrapper

    originals = (zoom_mod.dream, motion_mod.warp_affine, colour_mod.colour_lock)
    zoom_mod.dream = timed("dream", zoom_mod.dream)
    motion_mod.warp_affine = timed("motion", motion_mod.warp_affine)
    colour_mod.colour_lock = timed("colour", colour_mod.colour_lock)
    try:
        loop = LiveLoop(PHOTO, presets.load_preset("live"), size=list(size))
        rows = []
        for i in range(warmup + frames):
            for k in spent:
                spent[k] = 0.0
            t = time.perf_counter()
            frame = loop.next()
            total = time.perf_counter() - t
            t = time.perf_counter()
            cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
            encode = time.perf_counter() - t
            if i >= warmup:
                rows.append({**spent, "rest": total - sum(spent.values()), "frame": total, "encode": encode})
    finally:
        zoom_mod.dream, motion_mod.warp_affine, colour_mod.colour_lock = originals
    dreamed = [r["frame"] for r in rows if r["dream"] > 0]
    return {**{k: statistics.mean(r[k] for r in rows) for k in rows[0]},
            "dreamed_frame": statistics.median(dreamed) if dreamed else float("nan"),
            "dreamed_share": len(dreamed) / len(rows)}


# ---------------------------------------------------------------- (b), (c) through the studio
class Studio:
    def __init__(self, root: Path):
        import uvicorn

        from zoomdream.studio.context import StudioContext
        from zoomdream.studio.security import Security
        from zoomdream.studio.server import create_app

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        port = sock.getsockname()[1]
        self.ctx = StudioContext(root, Security(host="127.0.0.1", port=port))
        self.server = uvicorn.Server(uvicorn.Config(create_app(self.ctx, start_queue=False), log_level="warning"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[sock])), daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(60)


class StreamClient(threading.Thread):
    """Reads the multipart stream; ``received`` is [(arrival time, frame index)]."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.received, self.stop = url, [], False

    def run(self):
        import httpx

        from zoomdream.studio.live import stream_parts

        with httpx.stream("GET", self.url, timeout=None) as r:
            for head, _ in stream_parts(r.iter_raw()):
                self.received.append((time.perf_counter(), int(head["X-Frame"])))
                if self.stop:
                    return

    def newest(self) -> int:
        return self.received[-1][1] if self.received else -1


def through_studio(size, seconds: float, memory_seconds: float) -> dict:
    import httpx

    root = Path(tempfile.mkdtemp(prefix="bench-live-"))
    shutil.copy(PHOTO, root / PHOTO.name)
    studio = Studio(root)
    http = httpx.Client(base_url=studio.url, timeout=120)
    out = {}
    try:
        sid = http.post("/api/live", json={"input": PHOTO.name, "settings": {"extends": "live"},
                                           "size": list(size)}).json()["id"]
        client = StreamClient(f"{studio.url}/api/live/{sid}/stream")
        client.start()
        while len(client.received) < 10:  # start-up: network, compile, the first full dream
            time.sleep(0.1)
        worker = studio.ctx.live.get(sid).worker
        f0, n0, t0 = worker.state["frame"], len(client.received), time.perf_counter()
        samples = []  # the worker's per-frame times (make, record, encode, send), sampled while it streams
        while time.perf_counter() < t0 + seconds:
            samples.append(dict(worker.state.get("times") or {}))
            time.sleep(0.1)
        f1, n1, t1 = worker.state["frame"], len(client.received), time.perf_counter()
        out["made_fps"] = (f1 - f0) / (t1 - t0)
        out["load"] = loadavg()
        out["received_fps"] = (n1 - n0) / (t1 - t0)
        out["worker_times"] = {k: statistics.mean(x[k] for x in samples if k in x)
                               for k in ("make", "record", "encode", "send") if any(k in x for x in samples)}
        latencies = []
        for values in ({"zoom.zoom": 1.035}, {"step": 0.03}, {"zoom.zoom": 1.02, "step": 0.022},
                       {"zoom.rotate": 0.5}, {"zoom.rotate": 0.0}):
            shown = client.newest()
            at = http.post(f"/api/live/{sid}/set", json=values).json()["frame"]
            deadline = time.time() + 30
            while client.newest() < at and time.time() < deadline:
                time.sleep(0.002)
            latencies.append(at - shown)
            time.sleep(0.5)
        out["latency_frames"] = latencies
        samples = []
        start = time.perf_counter()
        while True:
            samples.append((time.perf_counter() - start, rss_mb(worker.proc.pid), rss_mb(os.getpid()),
                            worker.state["frame"]))
            if samples[-1][0] >= memory_seconds:
                break
            time.sleep(min(5.0, max(0.5, memory_seconds / 40)))
        out["memory"] = samples
        client.stop = True
        http.post(f"/api/live/{sid}/stop")
    finally:
        http.close()
        studio.stop()
        shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="384x216", type=C.parse_size)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--memory-seconds", type=float, default=60.0)
    args = p.parse_args()
    log(f"load average before: {loadavg()}  (2 cores, shared); CPU only, no GPU")
    b = through_studio(args.size, args.seconds, args.memory_seconds)  # first: this process has no TensorFlow yet
    C.tf()
    a = loop_alone(args.size, args.frames, args.warmup)
    log(f"\n(a) the loop alone at {args.size[0]}x{args.size[1]}, live preset, mean ms per frame "
        f"over {args.frames} frames (load {loadavg()}):")
    for k in ("dream", "motion", "colour", "rest", "frame", "encode"):
        log(f"  {k:<8} {1000 * a[k]:8.1f}")
    log(f"  a dreamed frame alone (median, {100 * a['dreamed_share']:.0f} % of the frames): "
        f"{1000 * a['dreamed_frame']:.1f}")
    log(f"  loop alone: {1 / a['frame']:.1f} fps (encoding runs in the sender thread, not in this figure)")
    w = b["worker_times"]
    log(f"\n(b) through the studio, {args.seconds:.0f} s of streaming (load {b['load']}):")
    log(f"  frames made by the loop:      {b['made_fps']:.1f} fps")
    log(f"  frames received by a client:  {b['received_fps']:.1f} fps")
    log("  the worker's times per frame (mean of samples), ms: " + ", ".join(f"{k} {1000 * v:.1f}" for k, v in w.items()))
    log(f"  control latency, frames after the newest shown frame: {b['latency_frames']}")
    mem = b["memory"]
    log(f"\n(c) memory over {mem[-1][0]:.0f} s (frames {mem[0][3]} -> {mem[-1][3]}):")
    for t, worker_mb, server_mb, frame in mem[:: max(1, len(mem) // 10)] + [mem[-1]]:
        log(f"  {t:6.0f} s  frame {frame:6d}  worker {worker_mb:7.1f} MB  server {server_mb:7.1f} MB")
    half = mem[len(mem) // 2:]
    growth = (half[-1][1] - half[0][1]) / max(1e-9, (half[-1][0] - half[0][0]) / 60)
    log(f"\nSUMMARY: {args.size[0]}x{args.size[1]} live preset: loop alone {1 / a['frame']:.1f} fps "
        f"(dream {1000 * a['dream']:.0f} ms, motion {1000 * a['motion']:.0f} ms, colour {1000 * a['colour']:.0f} ms, "
        f"encode {1000 * a['encode']:.1f} ms off the loop); studio: made {b['made_fps']:.1f} fps, received "
        f"{b['received_fps']:.1f} fps; latency {max(b['latency_frames'])} frames at most; worker memory "
        f"{mem[0][1]:.0f} -> {mem[-1][1]:.0f} MB over {mem[-1][0]:.0f} s ({growth:+.1f} MB/min in the second half); "
        f"load average {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
