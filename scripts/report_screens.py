"""Screenshots of the report for review (not part of the tests): the demo and a ~2,500-charge backfill, at
360 and 420 px (phones, as the browser test checks) and 1400 px, full page (and the HTML beside them), with headless Chromium (Debian's `chromium`) through Playwright.

    .venv/bin/python scripts/report_screens.py [OUT_DIR]      # default /work/screens
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from playwright.sync_api import sync_playwright  # noqa: E402
from report_pages import BACKFILL_COPIES, shop_report  # noqa: E402


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/screens")
    out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no chromium on PATH (apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        pages = {
            "demo": shop_report(Path(tmp) / "demo"),
            "backfill": shop_report(Path(tmp) / "backfill", copies=BACKFILL_COPIES),
        }
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium)
            for name, html in pages.items():
                print(f"{name}: {html.stat().st_size:,} bytes of HTML")
                shutil.copyfile(html, out / f"report-{name}.html")
                for width in (360, 420, 1400):
                    page = browser.new_page(viewport={"width": width, "height": 900})
                    page.goto(html.as_uri())
                    shot = out / f"report-{name}-{width}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    print(f"  {shot}")
                    page.close()
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
