"""The studio in a real browser: Debian's Chromium driven by Playwright for Python.

One walk through the page as a user would: pick the sample photo, see a preview, change a value
and see the preview change, render a small zoom, watch its progress reach the end, play the result
in the page's <video> with seeking, and no console error on the way. Skipped when Chromium or
Playwright is missing (never `playwright install`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed at /usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")

PREVIEW_HASH = """() => {
  const img = document.querySelector('#after');
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let h = 0; for (let i = 0; i < d.length; i += 7) h = (h * 31 + d[i]) >>> 0;
  return [c.width, c.height, h];
}"""


@pytest.fixture()
def studio(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(ROOT / "assets" / "chelsea.jpg", root / "chelsea.jpg")
    proc = subprocess.Popen([sys.executable, "-m", "zoomdream", "studio", str(root), "--port", "0", "--no-browser"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = proc.stdout.readline()
        m = re.fullmatch(r"zoomdream studio: (\S+)\n", line)
        assert m, line
        yield m.group(1), root
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_preview_render_and_play_in_chromium(studio):
    url, root = studio
    problems = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]")
            page.select_option("#preview-size", "256")
            page.select_option("#media", "chelsea.jpg")
            for key, value in (("iterations", "3"), ("octaves", "2"), ("zoom.frames", "8"), ("zoom.size", "96, 64"),
                               ("zoom.iterations_per_frame", "1")):
                page.fill(f'[name="{key}"]', value)
            page.wait_for_selector('#after[data-version]', state="attached", timeout=120_000)
            version = page.get_attribute("#after", "data-version")
            page.wait_for_timeout(300)  # the new blob decodes
            first = page.evaluate(PREVIEW_HASH)
            assert max(first[:2]) == 256

            page.fill('[name="step"]', "0.06")  # a stronger dream: the preview must change
            page.wait_for_selector(f'#after:not([data-version="{version}"])', state="attached", timeout=60_000)
            page.wait_for_timeout(300)
            second = page.evaluate(PREVIEW_HASH)
            assert second != first
            assert page.get_attribute('[name="step"]', "value") is not None
            assert "--step 0.06" in page.inner_text("#cmdline")

            page.click("#render")
            page.wait_for_selector(".job[data-state=running], .job[data-state=done]", timeout=60_000)
            page.wait_for_selector(".job[data-state=done]", timeout=120_000)
            job = page.locator(".job[data-state=done]").first
            assert re.search(r"frame 8 of 8", job.inner_text())
            assert job.locator("progress").get_attribute("value") == job.locator("progress").get_attribute("max")

            job.locator("button.open").click()
            page.wait_for_selector("#viewer-video[src]")
            video = page.locator("#viewer-video")
            state = video.evaluate("""async v => {
                if (v.readyState < 1) await new Promise(r => v.addEventListener('loadedmetadata', r, {once: true}));
                v.muted = true;
                await v.play();
                v.currentTime = v.duration / 2;
                await new Promise(r => v.addEventListener('seeked', r, {once: true}));
                return [v.duration, v.currentTime, v.error];
            }""")
            assert state[0] == pytest.approx(8 / 24, abs=0.05) and state[1] > 0 and state[2] is None
            assert "step: 0.06" in page.inner_text("#viewer-settings")
        finally:
            browser.close()
    assert problems == []
    rendered = list((root / "renders").glob("*.mp4"))
    assert len(rendered) == 1 and (root / "renders" / f"{rendered[0].name}.yaml").is_file()
