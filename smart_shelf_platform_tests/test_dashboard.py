"""The dashboard over a real stack after a short simulated run (`dashboard_support`): every page
in Streamlit's AppTest, then the served app in Debian's Chromium driven by Playwright, and the
pages of a dashboard whose Postgres or Redis does not answer."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from streamlit.testing.v1 import AppTest

from smart_shelf_platform.clock import iso_utc
from smart_shelf_platform.settings import REPO_ROOT
from smart_shelf_platform.stack.lifecycle import reference_files, status
from smart_shelf_platform_tests.dashboard_support import (
    CHROMIUM, SIMULATED, app_env, dashboard_run, screenshot_dir,
)
from smart_shelf_platform_tests.streaming_support import produce

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

APP = str(REPO_ROOT / "dashboard" / "app.py")
PAGES = {  # page file -> its title, a header it must show, its filters
    "views/store_map.py": ("Store map", None, ()),
    "views/alerts.py": ("Alerts", None, ("alert_types", "alert_statuses", "alert_categories")),
    "views/stock.py": ("Stock and lots", "Shelves, at risk first",
                       ("stock_categories", "stock_subcategories", "stock_shelves")),
    "views/replenishment.py": ("Replenishment", "Restock plans in flight", ()),
    "views/forecasts.py": ("Forecasts", "Model registry", ()),
    "views/health.py": ("Platform health", "Delta tables", ()),
}
URLS = {"Store map": "", "Alerts": "alerts", "Stock and lots": "stock",
        "Replenishment": "replenishment", "Forecasts": "forecasts",
        "Platform health": "health"}


@pytest.fixture(scope="module")
def run(settings, tmp_path_factory):
    with dashboard_run(settings, tmp_path_factory.mktemp("dashboard")) as result:
        yield result


def app_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    if page != "views/store_map.py":
        at.switch_page(page)
        at.run()
    return at


# --- AppTest: every page, in-process ----------------------------------------------------------


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_its_headers_without_an_exception(run, page):
    own, _, _ = run
    title, header, filters = PAGES[page]
    with app_env(own):
        at = app_page(page)
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [title]
    if header:
        assert header in [h.value for h in at.subheader]
    for key in filters:
        assert at.multiselect(key=key).options, key
    assert at.selectbox(key="store_id").value == "S001"
    # The clock of the run: the end of its window.
    assert at.metric[0].value == (own.sim_start + SIMULATED).strftime("%a %Y-%m-%d %H:%M UTC")


def test_the_pages_with_data_show_it_and_no_banner(run):
    own, _, _ = run
    with app_env(own):
        stock = app_page("views/stock.py")
        alerts = app_page("views/alerts.py")
    assert not stock.warning and not alerts.warning
    shelves = sum(int(m.value) for m in stock.metric if m.label.startswith("Shelves "))
    assert shelves == DeltaTable(f"{own.delta_root}/cleansed/shelf_state").to_pyarrow_table(
    ).num_rows
    assert [m.label for m in alerts.metric][1] == "Open alerts"


def test_the_category_filter_keeps_the_shelves_of_that_category(run):
    own, _, _ = run
    catalogue = pq.read_table(reference_files(own)["store_inventory"]).to_pylist()
    meat = {r["shelf_id"] for r in catalogue
            if r["store_id"] == "S001" and r["item_category"] == "MEAT"}
    with app_env(own):
        at = app_page("views/stock.py")
        at.multiselect(key="stock_categories").select("MEAT").run()
    shelves = next(d.value for d in at.dataframe if "threshold_pct" in d.value.columns)
    assert set(shelves["shelf_id"]) == meat
    assert set(shelves["item_category"]) == {"MEAT"}
    assert sum(int(m.value) for m in at.metric if m.label.startswith("Shelves ")) == len(meat)
    # The subcategory filter now offers MEAT's subcategories only.
    assert set(at.multiselect(key="stock_subcategories").options) == {
        r["item_subcategory"] for r in catalogue
        if r["store_id"] == "S001" and r["item_category"] == "MEAT"}


def test_a_postgres_that_does_not_answer_gives_banners_and_the_health_page_still_works(run):
    own, _, _ = run
    with app_env(own, postgres_port=1):
        store_map = app_page("views/store_map.py")
        health = app_page("views/health.py")
    for at in (store_map, health):
        assert not at.exception, [e.value for e in at.exception]
    assert any("Postgres is not reachable" in w.value for w in store_map.warning)
    assert "Delta tables" in [h.value for h in health.subheader]
    assert any("DOWN: postgres" in e.value for e in health.error)


def test_a_redis_that_does_not_answer_gives_a_banner_and_the_map_still_draws(run):
    own, _, _ = run
    with app_env(own, redis_port=1):
        at = app_page("views/store_map.py")
    assert not at.exception, [e.value for e in at.exception]
    assert any("Redis is not reachable" in w.value for w in at.warning)
    assert at.get("plotly_chart"), "the map is drawn from Delta and Postgres without Redis"


# --- a real browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, settings, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    yield tab
    tab.screenshot(path=str(screenshot_dir(settings) / f"{request.node.name}.png"),
                   full_page=True)
    context.close()


def open_page(tab, url: str) -> None:
    """Load a page and wait as Streamlit's own e2e tests do: the script has run, no skeleton."""
    from playwright.sync_api import expect

    tab.goto(url)
    expect(tab.get_by_test_id("stApp")).to_have_attribute(
        "data-test-script-state", "notRunning", timeout=60_000)
    expect(tab.get_by_test_id("stSkeleton")).to_have_count(0, timeout=30_000)


@pytest.mark.parametrize("title", list(URLS))
def test_each_page_loads_in_the_browser_without_an_error(run, page, title):
    from playwright.sync_api import expect

    _, _, url = run
    open_page(page, f"{url}/{URLS[title]}")
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)


def test_the_map_has_a_zone_per_category_and_a_click_lists_its_shelves(run, page):
    from playwright.sync_api import expect

    from dashboard.layout import floor_plan

    own, _, url = run
    open_page(page, url)
    zones = page.locator(".js-plotly-plot .barlayer .point")
    expect(zones).to_have_count(len(floor_plan().zones))
    catalogue = pq.read_table(reference_files(own)["store_inventory"]).to_pylist()
    meat = sum(1 for r in catalogue if r["store_id"] == "S001" and r["item_category"] == "MEAT")
    # Plotly's drag layer lies over the bars: click where the zone is, as a user does.
    box = zones.filter(has_text=re.compile(r"^MEAT$")).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.get_by_role("heading", name=f"MEAT: {meat} shelves")).to_be_visible(
        timeout=30_000)
    expect(page.get_by_test_id("stDataFrame")).to_have_count(1)


def test_a_refill_seen_in_kafka_shows_on_the_map_within_the_refresh(run, page):
    """A restocker's putback on the most depleted shelf, sent to the run's shelf_events topic:
    the streaming application folds it, and the live map's counts change without a reload."""
    from playwright.sync_api import expect

    own, ctx, url = run
    state = DeltaTable(f"{own.delta_root}/cleansed/shelf_state").to_pyarrow_table().to_pylist()
    shelf = min(state, key=lambda r: r["current_stock"] / r["max_stock"])
    lots = DeltaTable(f"{own.delta_root}/cleansed/shelf_batch_state").to_pyarrow_table()
    lot = next(r for r in lots.to_pylist() if r["shelf_id"] == shelf["shelf_id"])
    open_page(page, url)
    caption = page.get_by_text(re.compile(r"\d+ shelves empty"))
    counts = dict((state, int(n)) for n, state in re.findall(
        r"(\d+) shelves (empty|below threshold|near expiry|fine)", caption.inner_text()))
    # Refilled to capacity, it leaves its state (empty or below threshold) for fine or near expiry.
    before_state = "empty" if shelf["current_stock"] == 0 else "below threshold"
    assert counts[before_state] > 0, counts
    produce(ctx, "shelf_events", [{
        "event_id": str(uuid.uuid4()), "event_type": "putback", "store_id": "S001",
        "shelf_id": shelf["shelf_id"], "actor": "restocker", "customer_id": None,
        "batch_code": lot["batch_code"], "quantity": shelf["max_stock"] - shelf["current_stock"],
        "unit_weight": shelf["unit_weight"], "delta_weight": None, "plan_id": None,
        "timestamp": iso_utc(own.sim_start + SIMULATED + timedelta(seconds=30))}])
    expect(caption).to_contain_text(f"{counts[before_state] - 1} shelves {before_state}",
                                    timeout=60_000)


def test_the_health_page_shows_every_component_healthy(run, page):
    from playwright.sync_api import expect

    own, _, url = run
    open_page(page, f"{url}/health")
    expected = len(status(own))
    expect(page.get_by_text(f"All {expected} components healthy.")).to_be_visible()
    expect(page.get_by_role("heading", name="Streaming queries")).to_be_visible()
