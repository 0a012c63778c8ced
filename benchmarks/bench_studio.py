"""The studio: preview latency cold and warm, API latency while a render runs, the server's memory.

One run starts ``zoomdream studio`` as a user would (a process, on a free port, in a temporary
folder holding assets/chelsea.jpg) and measures through its HTTP API, printing tables and a final
``SUMMARY:`` line:

(a) preview latency at 384 px on the long side with the default preset: the first preview after the
    studio started with the worker NOT warmed (``cold``: TensorFlow import, network load, tracing and
    the dream), the first after a studio that warmed its worker at start (``first after warm-up``),
    and ``warm``: the median of --repeats previews of the same photo with the step changed each time
    (the page's case: a value was changed; the network is kept).
(b) API latency while a render runs: GET /api/jobs, /api/settings, /api/presets and POST
    /api/schedules, round-robin, --api-requests in all, during a zoom render of the default preset
    at 256x256 (p50, p95, max, ms).
(c) the server process's own memory (VmRSS and VmHWM from /proc) after all that; the worker and
    the render are other processes and are reported apart.

Goals (reported, never asserted): warm preview under 2 s on a 2-core CPU; API p95 under 100 ms.

    python benchmarks/bench_studio.py              # ~3 min on 2 busy cores
    python benchmarks/bench_studio.py --repeats 3 --api-requests 100
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start(folder: Path, *, warm: bool) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = ("import sys; from zoomdream.studio.security import Security; from zoomdream.studio.server import serve; "
            f"sys.exit(serve({str(folder)!r}, Security(port=0), open_browser=False, warm={warm}))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    m = re.fullmatch(r"zoomdream studio: (\S+)\n", line)
    if not m:
        proc.kill()
        raise SystemExit(f"the studio did not start: {line!r}")
    return proc, m.group(1)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(entry))
    return out


def memory(pid: int) -> dict[str, float] | None:
    """VmRSS and VmHWM in MiB; None for a process that is gone or a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = {k: re.search(rf"{k}:\s+(\d+) kB", status) for k in ("VmRSS", "VmHWM")}
    return None if None in found.values() else {k: int(m.group(1)) / 1024 for k, m in found.items()}


def preview(h, step: float, seconds: list[float]) -> None:
    t0 = time.perf_counter()
    r = h.post("/api/preview", json={"input": "chelsea.jpg", "size": 384,
                                     "settings": {"extends": "default", "step": step}})
    seconds.append(time.perf_counter() - t0)
    if r.status_code != 200:
        raise SystemExit(f"preview failed: {r.status_code} {r.text[:200]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="warm previews (default 5)")
    ap.add_argument("--api-requests", type=int, default=200, help="API requests during the render (default 200)")
    ap.add_argument("--render-frames", type=int, default=24, help="frames of the render (default 24)")
    args = ap.parse_args()
    import httpx

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at start")
    folder = Path(tempfile.mkdtemp(prefix="bench-studio-"))
    shutil.copy(ROOT / "assets" / "chelsea.jpg", folder / "chelsea.jpg")
    try:
        # (a) cold: a studio whose worker starts with the first preview
        proc, url = start(folder, warm=False)
        cold = []
        with httpx.Client(base_url=url, timeout=600) as h:
            preview(h, 0.01, cold)
        stop(proc)

        # (a) warm-up at start, then warm previews; (b) API latency during a render; (c) memory
        proc, url = start(folder, warm=True)
        after_warmup, warm = [], []
        with httpx.Client(base_url=url, timeout=600) as h:
            time.sleep(0.5)
            t_ready = time.perf_counter()
            preview(h, 0.011, after_warmup)
            first_since_start = time.perf_counter() - t_ready
            for i in range(args.repeats):
                preview(h, 0.012 + 0.001 * i, warm)
            server_mem_idle = memory(proc.pid)
            r = h.post("/api/jobs", json={"command": "zoom", "input": "chelsea.jpg", "settings": {
                "extends": "default", "zoom": {"size": [256, 256], "frames": args.render_frames}}})
            job = r.json()["id"]
            while h.get(f"/api/jobs/{job}").json()["state"] != "running":
                time.sleep(0.1)
            requests = [("GET", "/api/jobs", None), ("GET", "/api/settings", None), ("GET", "/api/presets", None),
                        ("POST", "/api/schedules", {"command": "zoom", "settings": {"step": "0.01+0.01*sin(t)"}})]
            lat: dict[str, list[float]] = {f"{m} {p}": [] for m, p, _ in requests}
            during = 0
            for i in range(args.api_requests):
                m, p, body = requests[i % len(requests)]
                t0 = time.perf_counter()
                r = h.request(m, p, json=body)
                lat[f"{m} {p}"].append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, (p, r.status_code)
                state = h.get(f"/api/jobs/{job}").json() if i % 20 == 0 else None
                if state and state["state"] == "running":
                    during += 20
                time.sleep(0.05)
            job_state = h.get(f"/api/jobs/{job}").json()
            h.post(f"/api/jobs/{job}/cancel")
            server_mem = memory(proc.pid)
            others = {pid: mem for pid in children(proc.pid) if (mem := memory(pid))}
    finally:
        for p in (locals().get("proc"),):
            if p is not None and p.poll() is None:
                stop(p)
        shutil.rmtree(folder, ignore_errors=True)

    print("\n(a) preview latency, 384 px, default preset, chelsea.jpg (451x300)")
    print(f"  cold (worker started by the first preview)      {cold[0]:7.2f} s")
    print(f"  first preview after a warm-up at start           {after_warmup[0]:7.2f} s "
          f"(asked 0.5 s after the URL was printed; {first_since_start:.2f} s)")
    print(f"  warm, median of {len(warm)} (step changed each time)   {statistics.median(warm):7.2f} s "
          f"(min {min(warm):.2f}, max {max(warm):.2f})")
    print(f"\n(b) API latency during a render (job state at the end: {job_state['state']}, "
          f"frame {job_state['done']} of {job_state['total']})")
    every = [x for v in lat.values() for x in v]
    for name, values in [*lat.items(), ("all", every)]:
        q = statistics.quantiles(values, n=20) if len(values) > 1 else values * 19
        print(f"  {name:<22} n={len(values):4d}  p50 {statistics.median(values):6.1f} ms  p95 {q[18]:6.1f} ms  "
              f"max {max(values):6.1f} ms")
    print("\n(c) memory (MiB)")
    print(f"  server after previews       RSS {server_mem_idle['VmRSS']:7.1f}  peak {server_mem_idle['VmHWM']:7.1f}")
    print(f"  server at the end           RSS {server_mem['VmRSS']:7.1f}  peak {server_mem['VmHWM']:7.1f}")
    for pid, mem in others.items():
        print(f"  child {pid:<8} (worker/render) RSS {mem['VmRSS']:7.1f}")
    q = statistics.quantiles(every, n=20)
    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"SUMMARY: preview cold {cold[0]:.1f} s, warm {statistics.median(warm):.2f} s (goal < 2 s); "
          f"API p95 during a render {q[18]:.0f} ms (goal < 100 ms); server RSS {server_mem['VmRSS']:.0f} MiB")


if __name__ == "__main__":
    main()
