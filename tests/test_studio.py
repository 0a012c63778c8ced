"""The studio's JSON API and its defences, through an in-process client; the server as a process.

Every security rule gets a hostile request that must be refused with nothing written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import yaml

from zoomdream import settings as S
from zoomdream.settings import presets
from zoomdream.studio.context import StudioContext
from zoomdream.studio.security import Security
from zoomdream.studio.server import create_app

with warnings.catch_warnings():  # starlette's test client prefers httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
BASE = "http://127.0.0.1:8765"
TINY = {"extends": "default", "iterations": 2, "octaves": 1, "layers": {"block5c_expand_activation": 1.0},
        "zoom": {"frames": 4, "size": [64, 48], "iterations_per_frame": 1}}


@pytest.fixture()
def root(tmp_path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    shutil.copy(ROOT / "assets" / "coffee.jpg", folder / "coffee.jpg")
    return folder


def client(root: Path, *, start_queue: bool = False, **security) -> TestClient:
    sec = Security(**{"port": 8765, **security})
    return TestClient(create_app(StudioContext(root, sec), start_queue=start_queue), base_url=BASE)


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


# ---------------------------------------------------------------- settings and presets
def test_settings_are_generated_from_the_declarations(root):
    with client(root) as c:
        data = c.get("/api/settings").json()
    by_key = {s["key"]: s for s in data["settings"]}
    assert set(by_key) == set(S.declarations())
    step = by_key["step"]
    assert (step["type"], step["min"], step["max"], step["schedulable"], step["flag"]) == ("number", 0.0, 1.0, True,
                                                                                          "--step")
    assert step["default"] == S.DreamSettings().step and step["help"] == S.declarations()["step"].help
    assert by_key["grad_norm"]["choices"] == list(S.GRAD_NORMS)
    assert by_key["zoom.zoom"]["schedulable"] and by_key["zoom.zoom"]["keyframes"]
    assert by_key["zoom.size"]["type"] == "pair" and by_key["zoom.size"]["nullable"]
    assert {o["name"] for o in data["options"]["video"]} >= {"start", "end", "preview", "crf"}


def test_presets_list_and_resolve(root):
    with client(root) as c:
        names = {p["name"] for p in c.get("/api/presets").json()["presets"]}
        assert names == set(presets.bundled_presets())
        got = c.get("/api/presets/zoom-deep").json()
        assert got["settings"] == S.to_dict(presets.load_preset("zoom-deep"))
        assert c.get("/api/presets/nope").status_code == 404
        assert c.get("/api/presets/..%2F..%2Fetc%2Fpasswd").status_code == 404


def test_save_preset_validates_writes_and_never_replaces_a_foreign_file(root):
    with client(root) as c:
        r = c.post("/api/presets", json={"name": "mine", "settings": {"extends": "default", "step": 5}})
        assert r.status_code == 400 and r.json()["key"] == "step"
        assert r.json()["error"] == "settings: step: expected a number in 0..1, got 5"
        assert not (root / "presets").exists()
        for bad in ("../evil", "/tmp/x", "a b", "", "default", "x" * 65):
            assert c.post("/api/presets", json={"name": bad, "settings": {}}).status_code == 400, bad
        r = c.post("/api/presets", json={"name": "mine", "settings": {"extends": "zoom-deep", "step": 0.02,
                                                                       "zoom": {"zoom": "1.02+0.01*sin(t)"}}})
        assert r.status_code == 201 and r.json()["path"] == "presets/mine.yaml"
        got = c.get("/api/presets/mine").json()["settings"]
        assert got["step"] == 0.02 and got["zoom"]["zoom"] == "1.02+0.01*sin(t)"
        assert got["octaves"] == presets.load_preset("zoom-deep").dream.octaves  # extends resolved
        assert "mine" in {p["name"] for p in c.get("/api/presets").json()["presets"]}
        assert c.post("/api/presets", json={"name": "mine", "settings": {"step": 0.03}}).status_code == 201
        foreign = root / "presets" / "theirs.yaml"
        foreign.write_text("step: 0.5\n")
        r = c.post("/api/presets", json={"name": "theirs", "settings": {"step": 0.03}})
        assert r.status_code == 400 and "not written by the studio" in r.json()["error"]
        assert foreign.read_text() == "step: 0.5\n"
        # a saved preset is a preset the command line loads
        assert presets.load_preset(root / "presets" / "mine.yaml").dream.step == 0.03


def test_json_settings_get_the_preset_files_messages(root, tmp_path):
    cases = [{"step": 5}, {"zoom": {"zoom": 0}}, {"grad_norm": "l2"}, {"stepp": 1}, {"zoom": {"pan": [1]}},
             {"video": "x"}, {"layers": {"no_such_layer_": "1+"}}]
    with client(root) as c:
        for settings in cases:
            r = c.post("/api/check", json={"settings": settings}).json()
            path = tmp_path / "p.yaml"
            path.write_text(yaml.safe_dump(settings))
            with pytest.raises(Exception) as e:
                presets.load_preset(path)
            expected = re.sub(r"^\S+?:\d+: ", "", str(e.value))
            assert r["ok"] is False and r["error"].removeprefix("settings: ") == expected, settings
        assert c.post("/api/check", json={"settings": {"extends": "../../etc/passwd"}}).json()["ok"] is False
        assert c.post("/api/check", json={"settings": {"guide": "/etc/passwd"}}).json()["key"] == "guide"
        assert c.post("/api/check", content=b"{not json").status_code == 400


# ---------------------------------------------------------------- media, uploads, files
def test_media_lists_the_roots_files_only(root, tmp_path):
    (root / ".hidden").mkdir()
    shutil.copy(root / "coffee.jpg", root / ".hidden" / "secret.jpg")
    outside = tmp_path / "outside.jpg"
    shutil.copy(root / "coffee.jpg", outside)
    (root / "link.jpg").symlink_to(outside)
    (root / "notes.txt").write_text("hi")
    with client(root) as c:
        media = c.get("/api/media").json()["media"]
    assert [m["path"] for m in media] == ["coffee.jpg"]
    from PIL import Image

    with Image.open(root / "coffee.jpg") as im:
        size = im.size
    m = media[0]
    assert (m["kind"], m["size"], m["width"], m["height"]) == ("image", (root / "coffee.jpg").stat().st_size, *size)


def test_upload_gets_a_safe_unique_name(root):
    data = (root / "coffee.jpg").read_bytes()
    with client(root) as c:
        a = c.post("/api/upload?name=../../evil%20name.JPG", content=data)
        b = c.post("/api/upload?name=evil name.jpg", content=data)
        assert a.status_code == b.status_code == 201
        assert a.json()["path"] == "uploads/evil-name.jpg" and b.json()["path"] == "uploads/evil-name-1.jpg"
        assert (root / "uploads" / "evil-name.jpg").read_bytes() == data
        assert c.post("/api/upload?name=run.sh", content=b"#!/bin/sh").status_code == 400
        assert c.post("/api/upload?name=x.jpg", content=b"").status_code == 400
    assert files_under(root / "uploads") == {"evil-name.jpg", "evil-name-1.jpg"}
    assert not (root.parent / "evil-name.jpg").exists()


def test_oversized_uploads_are_413_with_nothing_written(root):
    with client(root, max_upload=1000) as c:
        r = c.post("/api/upload?name=big.jpg", content=b"x" * 1001)  # Content-Length says it: refused unread
        assert r.status_code == 413
        sent = []

        def chunks():  # no Content-Length: counted while streaming
            for _ in range(50):
                sent.append(1)
                yield b"y" * 100

        r = c.post("/api/upload?name=big2.jpg", content=chunks())
        assert r.status_code == 413
        assert c.post("/api/check", content=b" " * (2 << 20)).status_code == 413  # JSON bodies are capped too
        assert c.post("/api/upload?name=ok.jpg", content=b"z" * 1000).status_code == 201
    assert files_under(root / "uploads") == {"ok.jpg"}


def test_files_serve_ranges_and_refuse_paths_out_of_the_root(root, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (root / "link.txt").symlink_to(secret)
    (root / "sub").mkdir()
    (root / "sub" / "uplink").symlink_to(tmp_path)
    data = (root / "coffee.jpg").read_bytes()
    with client(root) as c:
        r = c.get("/files/coffee.jpg", headers={"range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == data[10:20]
        assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
        assert c.get("/files/coffee.jpg").content == data
        for bad in ("/files/../secret.txt", "/files/%2e%2e/secret.txt", "/files/..%2Fsecret.txt",
                    "/files/%2Fetc%2Fpasswd", "/files//etc/passwd", "/files/link.txt", "/files/sub/uplink/secret.txt",
                    "/files/sub", "/files/nope.jpg", "/files/coffee.jpg%00.txt"):
            r = c.get(bad)
            assert r.status_code == 404 and b"secret" not in r.content, bad


def test_a_file_replaced_while_it_is_served_comes_whole(root):
    """A running render replaces its latest frame every frame: each answer is one version, with its own length."""
    import threading

    versions = [b"\x89PNG small" * 10, b"\x89PNG large" * 5000]
    target = root / "latest.png"
    target.write_bytes(versions[0])
    stop = threading.Event()

    def replace():
        k = 0
        while not stop.is_set():
            k += 1
            (root / ".latest.tmp").write_bytes(versions[k % 2])
            os.replace(root / ".latest.tmp", target)

    writer = threading.Thread(target=replace)
    writer.start()
    try:
        with client(root) as c:
            for _ in range(300):
                r = c.get("/files/latest.png")
                assert r.status_code == 200 and r.content in versions
                assert int(r.headers["content-length"]) == len(r.content)
    finally:
        stop.set()
        writer.join()


# ---------------------------------------------------------------- the defences
def test_foreign_host_is_refused(root):
    with client(root) as c:
        for host in ("evil.example:8765", "evil.example", "127.0.0.1:9999", "127.0.0.1.evil.example:8765", ""):
            r = c.get("/api/settings", headers={"host": host})
            assert r.status_code == 403, host
            assert c.post("/api/presets", headers={"host": host},
                          json={"name": "x", "settings": {}}).status_code == 403
        assert c.get("/api/settings", headers={"host": "localhost:8765"}).status_code == 200
    assert not (root / "presets").exists()


def test_foreign_origin_is_refused_for_state_changes(root):
    with client(root) as c:
        for origin in ("http://evil.example", "null", "http://127.0.0.1:9999", "https://127.0.0.1:8765"):
            r = c.post("/api/presets", headers={"origin": origin}, json={"name": "x", "settings": {}})
            assert r.status_code == 403, origin
            r = c.post("/api/upload?name=a.jpg", headers={"origin": origin}, content=b"abc")
            assert r.status_code == 403, origin
            r = c.post("/api/jobs", headers={"origin": origin}, json={"command": "image", "input": "coffee.jpg"})
            assert r.status_code == 403, origin
        r = c.post("/api/presets", headers={"sec-fetch-site": "cross-site"}, json={"name": "x", "settings": {}})
        assert r.status_code == 403
        assert not (root / "presets").exists() and not (root / "uploads").exists() and not (root / "renders").exists()
        r = c.post("/api/presets", headers={"origin": BASE}, json={"name": "x", "settings": {}})
        assert r.status_code == 201


def test_another_sites_fetches_and_embeds_are_refused_and_repeated_headers_too(root):
    with client(root) as c:
        for site in ("cross-site", "same-site"):  # same-site: another server on this machine, another port
            for path in ("/api/media", "/files/coffee.jpg", "/api/settings"):
                assert c.get(path, headers={"sec-fetch-site": site, "sec-fetch-mode": "no-cors",
                                            "sec-fetch-dest": "image"}).status_code == 403, (site, path)
            r = c.get("/", headers={"sec-fetch-site": site, "sec-fetch-mode": "navigate", "sec-fetch-dest": "document"})
            assert r.status_code == 200  # following a link to the studio is a plain page load
        for site in ("same-origin", "none"):
            assert c.get("/api/media", headers={"sec-fetch-site": site}).status_code == 200
        r = c.post("/api/presets", headers=[("origin", "http://evil.example"), ("origin", BASE)],
                   json={"name": "x", "settings": {}})
        assert r.status_code == 400
        r = c.get("/api/media", headers=[("sec-fetch-site", "cross-site"), ("sec-fetch-site", "same-origin")])
        assert r.status_code == 400
    assert not (root / "presets").exists()


def test_no_cors_headers_and_a_strict_content_security_policy(root):
    with client(root) as c:
        for r in (c.get("/", headers={"origin": "http://evil.example"}),
                  c.options("/api/settings", headers={"origin": "http://evil.example",
                                                      "access-control-request-method": "POST"}),
                  c.get("/api/settings", headers={"origin": "http://evil.example"}),
                  c.get("/static/studio.js")):
            assert not [h for h in r.headers if h.lower().startswith("access-control-")]
            csp = r.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "script-src 'self';" in csp and "style-src 'self';" in csp
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        page = c.get("/").text
    assert "<script>" not in page and "style=" not in page and "http" not in page.replace("http-equiv", "")
    assert all('src="/static/' in tag for tag in re.findall(r"<script[^>]*>", page))


def test_a_token_is_required_off_loopback(root):
    with client(root, host="0.0.0.0", token="s3cret") as c:
        host = {"host": "192.168.1.5:8765"}
        assert c.get("/", headers=host).status_code == 403
        assert c.get("/api/settings?token=wrong", headers=host).status_code == 403
        assert c.get("/api/settings", headers={**host, "authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/api/settings?token=s3cret", headers={"host": "evil.example:8765"}).status_code == 403
        r = c.get("/?token=s3cret", headers=host)
        assert r.status_code == 200 and "HttpOnly" in r.headers["set-cookie"]
        assert c.get("/api/settings", headers=host).status_code == 200  # the cookie from then on
        c.cookies.clear()
        r = c.post("/api/presets", headers=host, json={"name": "x", "settings": {}})
        assert r.status_code == 403 and not (root / "presets").exists()


# ---------------------------------------------------------------- schedules, previews, motion
def test_schedules_give_per_frame_values_and_the_command_lines_errors(root, tmp_path):
    from conftest import lavfi_audio

    lavfi_audio(root / "beat.wav", "0.5*sin(2*PI*220*t)*lt(mod(t,0.5),0.1)", 2.0)
    with client(root) as c:
        r = c.post("/api/schedules", json={"command": "zoom", "frames": 24,
                                           "settings": {"step": "0.01+0.01*sin(t)", "zoom": {"rotate": 2}}})
        assert r.status_code == 200
        v = r.json()["values"]
        assert len(v["step"]) == 24 and v["step"][0] == pytest.approx(0.01) and len(set(v["step"])) > 10
        assert v["zoom.rotate"] == [2.0] * 24 and len(v["zoom.pan.x"]) == 24
        r = c.post("/api/schedules", json={"command": "zoom", "frames": 24, "settings": {"step": "0.5-t"}})
        assert r.status_code == 400 and r.json()["key"] == "step"
        assert r.json()["error"] == "step (--step): '0.5-t' is -0.5 at frame 1; expected a number in 0..1"
        r = c.post("/api/schedules", json={"command": "zoom", "frames": 24, "settings": {"step": "0.01*beat"}})
        assert r.status_code == 400 and "beat" in r.json()["error"]
        r = c.post("/api/schedules", json={"command": "zoom", "frames": 48, "audio": "beat.wav",
                                           "settings": {"step": "0.01+0.02*beat"}})
        assert r.status_code == 200, r.text
        data = r.json()
        assert set(data["audio"]) >= {"rms", "onset", "beat"} and len(data["audio"]["beat"]) == 48
        assert max(data["values"]["step"]) > 0.02
        assert c.post("/api/schedules", json={"audio": "../beat.wav"}).status_code == 404


def test_preview_is_a_png_and_a_newer_one_supersedes_it(root, clips):
    from clips import make_clip

    shutil.copy(make_clip("audio", clips), root / "clip.mp4")
    with client(root) as c:
        clip = next(m for m in c.get("/api/media").json()["media"] if m["path"] == "clip.mp4")
        assert (clip["kind"], clip["width"], clip["height"], clip["frames"], clip["duration"], clip["audio"]) == (
            "video", 320, 240, 20, 2.0, True)
        frames = [c.post("/api/preview", json={"input": "clip.mp4", "frame": i, "size": 64, "dream": False}).content
                  for i in (0, 0, 12)]
        assert frames[0] == frames[1] != frames[2]  # source frame 12 of the clip, not the first
        r = c.post("/api/motion", json={"input": "clip.mp4", "command": "video", "frames": 5, "size": 64,
                                        "settings": {"video": {"zoom": "1+0.1*t"}}})
        assert r.status_code == 200 and r.content[4:8] == b"ftyp", r.text
        r = c.post("/api/preview", json={"input": "coffee.jpg", "settings": TINY, "size": 64})
        assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
        import io

        from PIL import Image

        im = Image.open(io.BytesIO(r.content))
        assert max(im.size) == 64
        plain = c.post("/api/preview", json={"input": "coffee.jpg", "settings": TINY, "size": 64, "dream": False})
        assert plain.status_code == 200 and plain.content != r.content
        answers = {}

        def slow():
            answers["first"] = c.post("/api/preview", json={"input": "coffee.jpg", "size": 160, "settings": {
                **TINY, "iterations": 400, "octaves": 2}})

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(1.5)
        answers["second"] = c.post("/api/preview", json={"input": "coffee.jpg", "settings": TINY, "size": 64})
        t.join(120)
        assert answers["first"].status_code == 409 and answers["second"].status_code == 200
        r = c.post("/api/preview", json={"input": "coffee.jpg", "settings": {"step": 2}, "size": 64})
        assert r.status_code == 400 and r.json()["key"] == "step"
        assert c.post("/api/preview", json={"input": "../coffee.jpg", "settings": TINY}).status_code == 404
        assert c.post("/api/preview", json={"input": "coffee.jpg", "size": 99999}).status_code == 400
        r = c.post("/api/motion", json={"input": "coffee.jpg", "command": "zoom", "frames": 6, "size": 64,
                                        "settings": {"zoom": {"zoom": 1.1}}})
        assert r.status_code == 200 and r.content[4:8] == b"ftyp"
    assert files_under(root) == {"coffee.jpg", "clip.mp4", ".zoomdream-studio", ".zoomdream-studio/tmp"}


# ---------------------------------------------------------------- jobs
def test_bad_jobs_are_400_with_the_command_lines_message(root, tmp_path):
    (root / "renders").mkdir()
    (root / "renders" / "taken.mp4").write_bytes(b"mine")
    with client(root) as c:
        def post(**kw):
            return c.post("/api/jobs", json={"command": "zoom", "input": "coffee.jpg", **kw})

        assert post(command="rm").status_code == 400
        assert post(input="../x.jpg").status_code == 404
        assert post(output="../out.mp4").status_code == 400
        assert post(output="/tmp/out.mp4").status_code == 400
        assert post(output=".zoomdream-studio/jobs.json").status_code == 400
        r = post(output="renders/taken.mp4")
        assert r.status_code == 400 and "exists" in r.json()["error"]
        r = post(options={"crf": 99})
        assert r.status_code == 400 and r.json()["error"] == "--crf: expected an integer in 0..51, got 99"
        assert post(options={"overwrite": True}).status_code == 400
        assert post(options={"audio": "/etc/passwd"}).status_code == 400
        r = post(settings={"zoom": {"zoom": -1}})
        assert r.status_code == 400 and r.json()["key"] == "zoom.zoom"
        assert c.get("/api/jobs/nope").status_code == 404
        assert c.post("/api/jobs/nope/cancel").status_code == 404
        assert c.get("/api/jobs").json()["jobs"] == []
    assert (root / "renders" / "taken.mp4").read_bytes() == b"mine"
    assert files_under(root / "renders") == {"taken.mp4"}


def _wait(c, job_id, states, timeout=180, at_least=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/api/jobs/{job_id}").json()
        if job["state"] in states or (at_least is not None and job["done"] >= at_least):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job}")


def test_a_render_cancels_resumes_after_a_restart_and_matches_the_command_line(root, tmp_path):
    from zoomdream.cli import main

    settings = {**TINY, "zoom": {"frames": 60, "size": [96, 64], "iterations_per_frame": 2, "zoom": 1.05}}
    with client(root, start_queue=True) as c:
        r = c.post("/api/jobs", json={"command": "zoom", "input": "coffee.jpg", "settings": settings,
                                      "output": "renders/take.mp4", "options": {"crf": 20}})
        assert r.status_code == 201
        job_id = r.json()["id"]
        job = _wait(c, job_id, ("done", "failed"), at_least=3)
        assert job["state"] == "running" and job["total"] == 60 and job["left"] is not None
        assert job["latest"] == f".zoomdream-studio/jobs/{job_id}/latest.png" and (root / job["latest"]).is_file()
        assert c.post(f"/api/jobs/{job_id}/cancel").status_code == 200
        job = _wait(c, job_id, ("cancelled", "failed", "done"), timeout=60)
        assert job["state"] == "cancelled" and 3 <= job["done"] < 60
        assert not (root / "renders" / "take.mp4").exists()
        assert c.post(f"/api/jobs/{job_id}/cancel").status_code == 400
    with client(root, start_queue=True) as c:  # the studio restarted: the queue is still there
        jobs = c.get("/api/jobs").json()["jobs"]
        assert [(j["id"], j["state"]) for j in jobs] == [(job_id, "cancelled")]
        assert c.post(f"/api/jobs/{job_id}/resume").status_code == 200
        job = _wait(c, job_id, ("done", "failed", "cancelled"))
        assert job["state"] == "done" and job["done"] == 60 and job["runs"] == 2, job
        events = c.get(f"/api/jobs/{job_id}/events")
        assert events.headers["content-type"].startswith("text/event-stream")
        assert "event: state" in events.text and '"state": "done"' in events.text
        gallery = c.get("/api/gallery").json()["renders"]
        assert gallery[0]["path"] == "renders/take.mp4" and gallery[0]["settings"]["zoom"]["frames"] == 60
        assert c.post(f"/api/jobs/{job_id}/resume").status_code == 400
    preset = root / ".zoomdream-studio" / "jobs" / job_id / "preset.yaml"
    reference = tmp_path / "reference.mp4"
    assert main(["zoom", str(root / "coffee.jpg"), "-o", str(reference), "--preset", str(preset), "--crf", "20",
                 "-q"]) == 0
    assert (root / "renders" / "take.mp4").read_bytes() == reference.read_bytes()


def test_keyframe_maps_come_back_through_json(root):
    """JSON makes a YAML keyframe map's frames strings: a bundled preset and a long live take still go through."""
    import numpy as np

    from zoomdream.render.live import Take

    with client(root, start_queue=True) as c:
        spiral = c.get("/api/presets/zoom-spiral").json()["settings"]
        assert spiral["zoom"]["zoom"] == {"0": 1.01, "48": 1.03}
        r = c.post("/api/preview", json={"input": "coffee.jpg", "settings": {**spiral, "step": "x"}})
        assert r.status_code == 400 and r.json()["key"] == "step"  # checked past the keyframe maps
        r = c.post("/api/schedules", json={"command": "zoom", "settings": spiral, "frames": 96})
        assert r.status_code == 200
        for bad in ({"0": 1.01, "x": 1.03}, {"-1": 1.01}, {"01": 1.01}, {" 1": 1.01}):
            r = c.post("/api/schedules", json={"command": "zoom", "settings": {"zoom": {"zoom": bad}}})
            assert r.status_code == 400 and "frames must be integers" in r.json()["error"], bad

        start = S.merge(presets.load_preset("default"), {
            "iterations": 2, "octaves": 1, "zoom.size": [64, 48], "zoom.iterations_per_frame": 1,
            "layers": {"block5c_expand_activation": 1.0, "block4a_expand_activation": 0.5}})
        take, rng = Take(start, input_name="coffee.jpg"), np.random.default_rng(0)
        for f in range(1, 48):  # a long take: every schedule too long for a string
            take.record(f, {"zoom.zoom": float(rng.uniform(1, 1.05)), "layers.block4a_expand_activation":
                            float(rng.uniform(0, 1))})
        settings = json.loads(json.dumps(S.to_dict(take.settings(48))))
        assert isinstance(settings["zoom"]["zoom"], dict) and isinstance(settings["zoom"]["layers"], dict)
        for body in ({"command": "zoom", "input": "coffee.jpg", "settings": spiral},
                     {"command": "zoom", "input": "coffee.jpg", "settings": settings, "output": "renders/take"}):
            r = c.post("/api/jobs", json=body)
            assert r.status_code == 201, r.text
            job_id = r.json()["id"]
        c.post(f"/api/jobs/{c.get('/api/jobs').json()['jobs'][0]['id']}/cancel")  # the spiral: accepted is enough
        job = _wait(c, job_id, ("done", "failed", "cancelled"))
        assert job["state"] == "done" and job["done"] == 48, job
    assert len(list((root / "renders" / "take").glob("*.png"))) == 48


# ---------------------------------------------------------------- hostile requests leave the folder as it was
def snapshot(folder: Path) -> dict[str, object]:
    """Every entry under ``folder``, hidden ones included: file bytes, link targets, folders."""
    out: dict[str, object] = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        out[rel] = (("link", os.readlink(p)) if p.is_symlink() else ("dir",) if p.is_dir()
                    else p.read_bytes() if p.is_file() else ("special", p.stat().st_mode))
    return out


def test_a_refused_upload_leaves_no_uploads_folder(root):
    before = snapshot(root)
    with client(root, max_upload=1000) as c:
        assert c.post("/api/upload?name=x.jpg", content=b"").status_code == 400
        assert c.post("/api/upload?name=big.jpg", content=(b"y" * 100 for _ in range(50))).status_code == 413
    assert snapshot(root) == before


def test_a_file_where_a_studio_folder_goes_is_400_and_left_alone(root):
    (root / "uploads").write_text("mine")
    (root / "presets").write_text("mine too")
    before = snapshot(root)
    with client(root) as c:
        r = c.post("/api/upload?name=a.jpg", content=b"abc")
        assert r.status_code == 400 and r.json()["error"] == ("uploads: cannot make the studio's folder here "
                                                              "(a file has that name)")
        r = c.post("/api/presets", json={"name": "p", "settings": {}})
        assert r.status_code == 400 and r.json()["error"].startswith("presets: cannot make the studio's folder")
        assert c.get("/api/presets").status_code == 200
    assert snapshot(root) == before


def test_paths_a_render_reads_must_be_regular_files(root):
    os.mkfifo(root / "pipe.wav")  # opening it for reading would block the render (or the preview worker)
    os.mkfifo(root / "pipe.jpg")
    (root / "folder.jpg").mkdir()
    before = snapshot(root)
    with client(root) as c:
        for rel in ("pipe.wav", "folder.jpg"):
            r = c.post("/api/jobs", json={"command": "zoom", "input": "coffee.jpg", "options": {"audio": rel}})
            assert r.status_code == 400 and r.json()["error"] == f"--audio: '{rel}' is not a file in the studio's folder"
        for rel in ("pipe.jpg", "folder.jpg"):
            r = c.post("/api/check", json={"settings": {"guide": rel}}).json()
            assert r["ok"] is False and r["key"] == "guide", r
        assert c.get("/api/jobs").json()["jobs"] == []
    assert snapshot(root) == before


def test_preset_names_are_whole_names_and_a_saved_preset_loads_again(root):
    before = snapshot(root)
    with client(root) as c:
        r = c.post("/api/presets", json={"name": "mine\n", "settings": {}})  # "$" matched before the newline
        assert r.status_code == 400 and "use letters, digits" in r.json()["error"]
        big = {"zoom": {"zoom": {str(i): 1.01 for i in range(30000)}}}  # under the JSON cap, over a preset's
        r = c.post("/api/presets", json={"name": "big", "settings": big})
        assert r.status_code == 400 and r.json()["error"].startswith("presets/big.yaml: would be ")
        assert c.get("/api/presets").status_code == 200
    assert snapshot(root) == before


def test_deep_or_non_unicode_json_is_400_with_nothing_written(root):
    deep_list = b'{"settings":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    deep_map = b'{"name":"p","settings":{"meta":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}}"
    surrogates = [b'{"name":"p","settings":{"description":"\\ud800"}}',
                  b'{"command":"zoom","input":"coffee.jpg","settings":{"layers":{"\\udfff":1}}}']
    before = snapshot(root)
    with client(root) as c:
        for path, body in [("/api/check", deep_list), ("/api/presets", deep_map), ("/api/jobs", deep_list),
                           ("/api/presets", surrogates[0]), ("/api/jobs", surrogates[1]),
                           ("/api/schedules", surrogates[1])]:
            r = c.post(path, content=body, headers={"content-type": "application/json"})
            assert r.status_code == 400 and r.json()["error"].startswith("request: "), (path, r.text[:200])
        assert c.get("/api/presets").status_code == 200  # a saved description with a lone surrogate broke it
    assert snapshot(root) == before


def test_jobs_refuse_outputs_under_a_file_and_inputs_of_the_wrong_kind(root):
    (root / "renders").mkdir()
    (root / "renders" / "theirs.mp4").write_bytes(b"theirs")
    (root / "notes.txt").write_text("mine")
    (root / "presets").mkdir()
    (root / "presets" / "foreign.yaml").write_text("step: 0.5\n")
    (root / "renders" / "new.mp4.yaml").write_text("their notes")
    before = snapshot(root)
    with client(root) as c:
        def post(**kw):
            return c.post("/api/jobs", json={"command": "zoom", "input": "coffee.jpg", **kw})

        for output in ("renders/theirs.mp4/x.mp4", "coffee.jpg/a/b.mp4", "x" * 5000 + ".mp4",
                       "renders/" + "d" * 300 + "/x.mp4"):
            r = post(output=output)
            assert r.status_code == 400 and r.json()["error"].startswith("output: "), (output[:40], r.text[:200])
        r = post(output="renders/new.mp4")  # its settings sidecar would replace their file
        assert r.status_code == 400 and r.json()["error"].startswith("renders/new.mp4.yaml: exists; the studio never")
        for command, rel in [("zoom", "notes.txt"), ("zoom", "presets/foreign.yaml"), ("image", "renders/theirs.mp4"),
                             ("video", "coffee.jpg")]:
            r = post(command=command, input=rel)
            assert r.status_code == 400 and r.json()["error"].startswith(f"input: '{rel}' is not "), r.text
        assert c.get("/api/jobs").json()["jobs"] == []
    assert snapshot(root) == before


# ---------------------------------------------------------------- the server as a process
def test_the_studio_command_serves_without_tensorflow_and_stops_on_ctrl_c(root):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "zoomdream", "studio", str(root), "--port", "0", "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = re.fullmatch(r"zoomdream studio: (http://127\.0\.0\.1:(\d+)/)\n", line)
        assert m, line
        import httpx

        with httpx.Client(base_url=m.group(1), timeout=60) as h:
            assert h.get("/").status_code == 200
            for path in ("/api/settings", "/api/presets", "/api/media", "/api/jobs", "/api/gallery"):
                assert h.get(path).status_code == 200, path
            assert h.post("/api/schedules", json={"settings": {"step": "0.01*sin(t)+0.01"}}).status_code == 200
            assert h.post("/api/check", json={"settings": {"step": 3}}).json()["key"] == "step"
            assert h.get("/", headers={"host": f"evil.example:{m.group(2)}"}).status_code == 403
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "tensorflow" not in maps and "keras" not in maps  # the server never imports TensorFlow
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert proc.stdout.read() == ""  # exactly one line on stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_off_loopback_the_studio_makes_a_token_and_prints_it(root):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "zoomdream", "studio", str(root), "--host", "0.0.0.0", "--port",
                             "0", "--no-browser"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        m = re.fullmatch(r"zoomdream studio: http://127\.0\.0\.1:(\d+)/\?token=([\w-]{20,})\n", line)
        assert m, line
        import httpx

        url = f"http://127.0.0.1:{m.group(1)}"
        assert httpx.get(f"{url}/api/settings").status_code == 403
        assert httpx.get(f"{url}/api/settings?token={m.group(2)}").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        proc.stdout.close()


def test_studio_modules_import_no_tensorflow():
    code = ("import sys; import zoomdream.studio.server, zoomdream.studio.api, zoomdream.studio.jobs, "
            "zoomdream.studio.workers, zoomdream.cli; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True).stdout
    assert json.loads(out) == []


def test_a_live_module_adds_its_routes(root, monkeypatch):
    """The extension point: ``live.routes(ctx)`` is mounted, and the page loads static/live.js when it exists."""
    import types

    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from zoomdream.studio import server

    seen = {}

    def routes(ctx):
        seen["root"] = ctx.root
        return [Route("/api/live", lambda request: PlainTextResponse("live here"))]

    monkeypatch.setattr(server, "live_module", lambda: types.SimpleNamespace(routes=routes))
    with client(root) as c:
        assert c.get("/api/live").text == "live here"
        assert c.get("/api/live", headers={"host": "evil.example:8765"}).status_code == 403  # behind the defences
    assert seen["root"] == root.resolve()


def test_progress_json_is_one_line_per_frame(tmp_path, small_photo, capsys):
    from zoomdream.cli import main
    from zoomdream.render import frameloop

    out = tmp_path / "z.mp4"
    assert main(["zoom", str(small_photo), "-o", str(out), "--frames", "3", "--iterations", "1", "--octaves", "1",
                 "--iterations-per-frame", "1", "--progress", "json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    frames = [x for x in lines if x["unit"] == "frame"]
    assert [x["done"] for x in frames] == [0, 1, 2, 3] and {x["total"] for x in frames} == {3}
    assert frames[0]["left"] is None and all(x["left"] >= 0 for x in frames[1:])
    # the latest frame on disk (frames are written beside the next frame's dream): in order, never ahead
    named = [(x["done"], int(Path(x["file"]).stem)) for x in frames if "file" in x]
    assert named and all(k < done for done, k in named) and [k for _, k in named] == sorted(k for _, k in named)
    assert out.is_file() and frameloop.PROGRESS["format"] == "bar"  # the next command in this process has its bar
