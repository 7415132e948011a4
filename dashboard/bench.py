"""Time to first render of each dashboard page in Debian's Chromium, and the dashboard's
resident memory: `python -m dashboard.bench [--runs N]` against the dashboard `up` started
(the stack's settings from the environment). A benchmark, not a test.

First render: from navigating to the page until its script has run and no skeleton is left
(what Streamlit's own e2e tests wait for). Runs are `LIVE_TTL` apart, so every one reads its
tables again rather than the shared cache.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from dashboard.queries import LIVE_TTL
from smart_shelf_platform.settings import get_settings

CHROMIUM = "/usr/lib/chromium/chromium"
VIEWS = Path(__file__).with_name("views")


def page_paths() -> dict[str, str]:
    """Page module -> its URL path (the store map is the default page, at the root)."""
    return {p.stem: "" if p.stem == "store_map" else p.stem for p in sorted(VIEWS.glob("*.py"))}


def first_renders(url: str, runs: int) -> dict[str, list[float]]:
    from playwright.sync_api import expect, sync_playwright

    seconds: dict[str, list[float]] = {page: [] for page in page_paths()}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        for _ in range(runs):
            for page, path in page_paths().items():
                time.sleep(LIVE_TTL + 1)
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                tab = context.new_page()
                start = time.perf_counter()
                tab.goto(f"{url}/{path}")
                expect(tab.get_by_test_id("stApp")).to_have_attribute(
                    "data-test-script-state", "notRunning", timeout=120_000)
                expect(tab.get_by_test_id("stSkeleton")).to_have_count(0, timeout=120_000)
                seconds[page].append(round(time.perf_counter() - start, 2))
                context.close()
        browser.close()
    return seconds


def main() -> None:
    from smart_shelf_platform.stack.dashboard_service import DashboardService

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="loads of each page")
    args = parser.parse_args()
    dashboard = DashboardService(get_settings())
    seconds = first_renders(dashboard.url, args.runs)
    print(json.dumps({
        "first_render_s": {page: {"median": statistics.median(s), "max": max(s), "runs": s}
                           for page, s in seconds.items()},
        "dashboard_rss_mib": round(dashboard.status().rss_bytes / 2**20, 1)}, indent=2))


if __name__ == "__main__":
    main()
