"""Time to first render of each dashboard page in Debian's Chromium, and the dashboard's
resident memory: `python -m dashboard.bench [--runs N]` against the dashboard `up` started
(the stack's settings from the environment). A benchmark, not a test.

Two ways to reach a page: *open* (a new browser, nothing cached, the page's URL typed in: the
first visit, which also loads Streamlit's scripts) and *switch* (a click on the page in the
side bar of a dashboard already open: what moving between pages costs). First render: until
the page's title shows, its script has run and no skeleton is left (what Streamlit's own e2e
tests wait for). Loads are `LIVE_TTL` apart, so every one reads its tables again rather than
the shared cache.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from dashboard.pages import DEFAULT, PAGES, TITLES
from dashboard.queries import LIVE_TTL
from smart_shelf_platform.settings import get_settings

CHROMIUM = "/usr/lib/chromium/chromium"


def page_paths() -> dict[str, str]:
    """Page module -> its URL path (the default page is at the root)."""
    return {module: "" if module == DEFAULT else module for module, _, _ in PAGES}


def _rendered(tab, title: str) -> None:
    from playwright.sync_api import expect

    expect(tab.get_by_role("heading", name=title, exact=True).first).to_be_visible(
        timeout=120_000)
    expect(tab.get_by_test_id("stApp")).to_have_attribute(
        "data-test-script-state", "notRunning", timeout=120_000)
    expect(tab.get_by_test_id("stSkeleton")).to_have_count(0, timeout=120_000)


def first_renders(url: str, runs: int) -> dict[str, dict[str, list[float]]]:
    """Seconds to first render of each page, opened in a new browser and switched to."""
    from playwright.sync_api import sync_playwright

    titles = TITLES
    seconds = {way: {page: [] for page in page_paths()} for way in ("open", "switch")}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        for _ in range(runs):
            for page, path in page_paths().items():
                time.sleep(LIVE_TTL + 1)
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                tab = context.new_page()
                start = time.perf_counter()
                tab.goto(f"{url}/{path}")
                _rendered(tab, titles[page])
                seconds["open"][page].append(round(time.perf_counter() - start, 2))
                context.close()
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            tab = context.new_page()
            tab.goto(url)
            _rendered(tab, titles[DEFAULT])
            order = [p for p in page_paths() if p != DEFAULT] + [DEFAULT]
            for page in order:
                time.sleep(LIVE_TTL + 1)
                start = time.perf_counter()
                tab.get_by_test_id("stSidebarNavLink").filter(has_text=titles[page]).click()
                _rendered(tab, titles[page])
                seconds["switch"][page].append(round(time.perf_counter() - start, 2))
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
        "first_render_s": {way: {page: {"median": statistics.median(s), "max": max(s), "runs": s}
                                 for page, s in pages.items()}
                           for way, pages in seconds.items()},
        "dashboard_rss_mib": round(dashboard.status().rss_bytes / 2**20, 1)}, indent=2))


if __name__ == "__main__":
    main()
