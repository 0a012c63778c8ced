"""Make docs/studio.png: the studio page in headless Chromium, tuning a zoom to a beat while a render runs.

    python docs/make_studio_screenshot.py            # ~2 min on 2 busy cores; needs /usr/bin/chromium

It starts ``zoomdream studio`` on a temporary folder (assets/chelsea.jpg and a synthetic beat),
sets a few values as a user would, starts a render and takes the picture once frames arrive.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "studio.png"


@contextlib.contextmanager
def studio(folder: Path):
    """``zoomdream studio FOLDER`` on a free port, yielding its URL; Ctrl-C'd and FOLDER removed after."""
    proc = subprocess.Popen([sys.executable, "-m", "zoomdream", "studio", str(folder), "--port", "0", "--no-browser"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        yield re.fullmatch(r"zoomdream studio: (\S+)\n", proc.stdout.readline()).group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        proc.stdout.close()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    import imageio_ffmpeg
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="studio-shot-"))
    shutil.copy(ROOT / "assets" / "chelsea.jpg", folder / "chelsea.jpg")
    beat = "0.6*sin(2*PI*55*t)*exp(-18*mod(t,0.5))+0.2*sin(2*PI*440*t)*exp(-30*mod(t+0.25,0.5))"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"aevalsrc='{beat}':s=44100:d=4", str(folder / "beat.wav")], check=True)
    with studio(folder) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        page.select_option("#media", "chelsea.jpg")
        page.select_option("#audio", "beat.wav")
        for key, value in (("step", "0.012+0.01*beat"), ("zoom.rotate", "0.4*sin(t*2)"),
                           ("zoom.zoom", "1.02+0.02*bass"), ("zoom.frames", "96"), ("zoom.size", "240, 160")):
            page.fill(f'[name="{key}"]', value)
        page.wait_for_selector("#after[data-version]", state="attached", timeout=300_000)
        page.fill("#output", "renders/chelsea-beat.mp4")
        page.click("#render")
        page.wait_for_selector(".job[data-state=running] img.thumb", timeout=300_000)
        page.wait_for_timeout(4000)
        page.locator('fieldset[data-section="zoom"]').evaluate("e => e.scrollIntoView()")
        page.screenshot(path=str(OUT))
        browser.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
