"""Make docs/live.png: the studio's Live panel in headless Chromium, steering a zoom into the coffee sample.

    python docs/make_live_screenshot.py            # ~1 min on 2 busy cores; needs /usr/bin/chromium

It starts ``zoomdream studio`` on a temporary folder (assets/coffee.jpg), starts a live zoom at
384 px, turns the rotation and the zoom as a user would and takes the picture a few seconds later.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from pathlib import Path

from make_studio_screenshot import studio

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "live.png"


def main() -> None:
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="live-shot-"))
    shutil.copy(ROOT / "assets" / "coffee.jpg", folder / "coffee.jpg")
    with studio(folder) as url, sync_playwright() as pw:  # Ctrl-C'd after: the studio stops, and the live loop with it
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1440, "height": 860}, device_scale_factor=1)
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        page.click(".tab[data-tab=live]")
        page.select_option("#live-photo", "coffee.jpg")
        page.click("#live-start")
        frame = re.compile(r"frame (\d+)")

        def frames() -> int:
            m = frame.search(page.text_content("#live-status") or "")
            return int(m.group(1)) if m else 0

        for target, key, value in ((60, "zoom.rotate", "0.6"), (90, "zoom.zoom", "1.03"), (150, None, None)):
            deadline = time.time() + 300
            while frames() < target and time.time() < deadline:
                page.wait_for_timeout(200)
            if key:
                page.locator(f'#live input[name="{key}"]').fill(value)
        page.screenshot(path=str(OUT))
        browser.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
