"""Screenshots of a rendered council report for the README, taken in headless Chromium.

Usage::

    .venv/bin/social311 demo --workdir /tmp/demo
    .venv/bin/python scripts/report_screenshots.py /tmp/demo/report docs/img --ward 42

Writes ``city-page.png`` and ``ward-page.png`` (the top of each page, 1200 px wide).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from social311.orchestration.report_html import ward_page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--ward", required=True, help="ward id of the ward page to show")
    parser.add_argument("--height", type=int, default=1400, help="pixels of each page shown")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None:
        print("error: Debian's chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    pages = {"city-page.png": args.report_dir / "index.html", "ward-page.png": args.report_dir / ward_page(args.ward)}
    for page in pages.values():
        if not page.is_file():
            print(f"error: {page} does not exist (render the report first)", file=sys.stderr)
            return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1200, "height": args.height})
        for name, page in pages.items():
            tab.goto(page.resolve().as_uri())
            tab.screenshot(path=str(args.out_dir / name))
            print(args.out_dir / name)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
