"""The studio's Live API through a real local server: start, stream, set, pause when unwatched, take, stop."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from zoomdream.cli import main
from zoomdream.fileio import is_own_folder
from zoomdream.media.images import load_png_fast

STUDIO = pytest.importorskip("zoomdream.studio.server")

SETTINGS = {"model": "vgg16-hed", "octaves": 1, "iterations": 1, "precision": "fp32", "jitter": 2,
            "layers": {"block3_conv1": 1.0}, "zoom": {"iterations_per_frame": 1}}


class Studio:
    """A studio on a free loopback port, in a thread; ``stop()`` shuts it down as Ctrl-C would."""

    def __init__(self, root: Path):
        import uvicorn

        from zoomdream.studio.context import StudioContext
        from zoomdream.studio.security import Security

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        port = self.sock.getsockname()[1]
        self.ctx = StudioContext(root, Security(host="127.0.0.1", port=port))
        app = STUDIO.create_app(self.ctx, start_queue=False)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])),
                                       daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=120)

    def stop(self):
        self.http.close()
        self.server.should_exit = True
        self.thread.join(60)


@pytest.fixture()
def studio(tmp_path, small_photo):
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(small_photo, root / "photo.png")
    (root / "notes.txt").write_text("not a photo")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    s = Studio(root)
    yield s
    s.stop()


def frames(http: httpx.Client, session: str, n: int) -> list[tuple[int, bytes]]:
    """The first ``n`` JPEG parts of the stream (index from X-Frame, the JPEG bytes); then the stream is closed."""
    from zoomdream.studio.live import stream_parts

    out = []
    with http.stream("GET", f"/api/live/{session}/stream") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("multipart/x-mixed-replace; boundary=")
        for head, jpeg in stream_parts(r.iter_raw()):
            assert head["Content-Type"] == "image/jpeg" and jpeg[:2] == b"\xff\xd8"
            out.append((int(head["X-Frame"]), jpeg))
            if len(out) >= n:
                break
    return out


def test_live_requests_are_checked_before_a_loop_starts(studio):
    http = studio.http
    cases = [({}, 400, "input: expected a photo path"),
             ({"input": "notes.txt"}, 400, "input: 'notes.txt' is not a photo"),
             ({"input": "../photo.png"}, 404, "not found"),
             ({"input": "broken.png"}, 400, "input: broken.png: "),
             ({"input": "photo.png", "settings": {"step": "fast"}}, 400, "settings: step: "),
             ({"input": "photo.png", "settings": {"step": "0.01*beat"}}, 400, "audio feature 'beat'"),
             ({"input": "photo.png", "size": "huge"}, 400, "size: "),
             ({"input": "photo.png", "record": "yes"}, 400, "record: expected true or false")]
    for body, status, message in cases:
        r = http.post("/api/live", json=body)
        assert r.status_code == status, (body, r.text)
        assert message in r.json()["error"]
    assert http.get("/api/live/nope").status_code == 404
    assert http.post("/api/live/nope/set", json={"step": 0.1}).status_code == 404
    assert http.get("/api/live/nope/stream").status_code == 404
    r = http.post("/api/live", json={"input": "photo.png"}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    assert http.get("/api/live").json() == {"sessions": []}
    assert not (studio.ctx.root / "renders").exists()


def test_live_session_streams_is_steered_restarts_pauses_unwatched_and_stops_with_the_studio(studio, tmp_path):
    http = studio.http
    r = http.post("/api/live", json={"input": "photo.png", "settings": SETTINGS, "size": [48, 32], "record": True})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    first = frames(http, sid, 3)
    assert [i for i, _ in first] == sorted(i for i, _ in first) and len({j for _, j in first}) == 3

    bad = http.post(f"/api/live/{sid}/set", json={"zoom.zoom": "fast"})
    assert bad.status_code == 400
    assert bad.json()["error"] == ("zoom.zoom: expected a number (a live control takes plain values), "
                                   "got 'fast'")
    assert http.post(f"/api/live/{sid}/set", json={"octaves": 3}).status_code == 400
    ok = http.post(f"/api/live/{sid}/set", json={"zoom.zoom": 1.2, "step": 0.05})
    assert ok.status_code == 200, ok.text
    at = ok.json()["frame"]
    later = frames(http, sid, 3)  # the loop went on after the refused values
    assert later[-1][0] >= at

    # nobody watches: the loop pauses (after the grace) and the frame count stands still
    time.sleep(2.5)
    state = http.get(f"/api/live/{sid}").json()
    assert state["state"] == "paused" and state["watchers"] == 0, state
    time.sleep(1.0)
    assert http.get(f"/api/live/{sid}").json()["frame"] == state["frame"]
    assert state["record"].startswith("renders/live-") and state["size"] == [48, 32]

    take = http.get(f"/api/live/{sid}/take")
    assert take.status_code == 200 and take.headers["content-type"].startswith("text/yaml")
    data = yaml.safe_load(take.text)
    assert at >= 3 and data["zoom"]["zoom"] == f"0:(1.02), {at - 1}:(1.02), {at}:(1.2)"
    assert data["zoom"]["frames"] == state["frame"] and data["zoom"]["size"] == [48, 32]

    # "Render this take": the page queues the zoom job with the take's settings, which are the take itself
    settings = http.get(f"/api/live/{sid}/take?format=json").json()["settings"]
    job = http.post("/api/jobs", json={"command": "zoom", "input": "photo.png", "settings": settings, "options": {}})
    assert job.status_code == 201, job.text
    queued = studio.ctx.state_dir / "jobs" / job.json()["id"] / "preset.yaml"
    assert yaml.safe_load(queued.read_text()) == yaml.safe_load(take.text)

    # restart: back at the photo with a new take and a new recording (the first part may still be the old frame)
    assert http.post(f"/api/live/{sid}/restart").status_code == 200
    assert frames(http, sid, 3)[-1][0] < state["frame"]
    restarted = http.get(f"/api/live/{sid}").json()
    assert restarted["record"] != state["record"] and restarted["record"].startswith("renders/live-")

    worker = studio.ctx.live.get(sid).worker
    studio.stop()  # stopping the studio stops the loop, and its recordings are complete
    assert not worker.proc.is_alive()
    assert np.isfinite(worker.state["fps"])
    new = studio.ctx.root / restarted["record"]
    assert len(list(new.glob("*.png"))) == worker.state["frame"] == yaml.safe_load(worker.take_text)["zoom"]["frames"]
    assert (new.parent / (new.name + ".take.yaml")).read_text() == worker.take_text
    folder = studio.ctx.root / state["record"]
    recorded = sorted(folder.glob("*.png"))
    assert is_own_folder(folder) and load_png_fast(recorded[0]).shape == (32, 48, 3)
    # the take beside the first recording (the one with the change) renders its frames again, byte for byte
    take_file = folder.parent / (folder.name + ".take.yaml")
    assert yaml.safe_load(take_file.read_text())["zoom"]["frames"] == len(recorded) >= state["frame"]
    assert yaml.safe_load(take_file.read_text())["zoom"]["zoom"] == f"0:(1.02), {at - 1}:(1.02), {at}:(1.2)"
    out = tmp_path / "again"
    assert main(["zoom", str(folder.parent.parent / "photo.png"), "--preset", str(take_file), "--size", "48x32",
                 "-o", str(out), "-q"]) == 0
    assert [p.read_bytes() for p in sorted(out.glob("*.png"))] == [p.read_bytes() for p in recorded]


def until(condition, seconds: float, state=lambda: "") -> None:
    """Poll ``condition`` (the page's CSP forbids the string evaluation wait_for_function uses)."""
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"timed out {state()}"
        time.sleep(0.1)


def test_live_panel_in_chromium_shows_the_zoom_moving_and_a_control_reaching_it(studio, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no Chromium at /usr/bin/chromium")
    (studio.ctx.root / "broken.png").unlink()  # the page's own preview of it would log its 400
    errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(studio.url + "/")

            def live_tab():  # the page binds its tabs once it has loaded its settings
                page.click(".tab[data-tab=live]")
                return "active" in page.get_attribute("#live", "class")

            until(live_tab, 60)
            page.wait_for_selector("#live-photo option[value='photo.png']", state="attached")
            page.select_option("#live-photo", "photo.png")
            page.select_option("#live-size", "256")
            page.click("#live-start")
            image = page.locator("#live-image")
            until(lambda: page.evaluate("() => document.querySelector('#live-image').naturalWidth") > 0, 180,
                  lambda: (page.text_content("#live-status"), page.text_content("#live-error"),
                           page.get_attribute("#live-image", "src"), studio.http.get("/api/live").json()))
            before = image.screenshot()
            page.wait_for_timeout(2000)
            assert image.screenshot() != before  # the zoom moves on its own
            page.locator("#live input[name='zoom.zoom']").fill("1.15")
            until(lambda: "from frame" in page.text_content("#live-take-info"), 60)
            at = int(page.text_content("#live-take-info").rpartition(" ")[2])
            sid = page.get_attribute("#live-take", "href").split("/")[3]
            deadline = time.time() + 60
            while studio.http.get(f"/api/live/{sid}").json()["frame"] < at + 3 and time.time() < deadline:
                time.sleep(0.2)
            shown = image.screenshot()
            page.wait_for_timeout(500)
            assert image.screenshot() != shown  # still streaming after the change
            take = yaml.safe_load(studio.http.get(f"/api/live/{sid}/take").text)
            assert f"{at}:(1.15)" in take["zoom"]["zoom"]
            page.screenshot(path=str(tmp_path / "live-panel.png"))
            shutil.copy(tmp_path / "live-panel.png", Path(__import__("tempfile").gettempdir()) / "live-panel.png")
            page.click("#live-stop")
            until(lambda: page.text_content("#live-status").startswith("stopped"), 60)
        finally:
            browser.close()
    assert errors == []
