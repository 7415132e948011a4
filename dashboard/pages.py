"""The dashboard's pages, in side-bar order: module in `views/`, title (in the side bar and on
the page), icon. The app builds its navigation from them and the benchmark finds each page by
them."""

from __future__ import annotations

PAGES = (
    ("store_map", "Store map", ":material/map:"),
    ("alerts", "Alerts", ":material/notifications:"),
    ("stock", "Stock and lots", ":material/inventory_2:"),
    ("replenishment", "Replenishment", ":material/local_shipping:"),
    ("forecasts", "Forecasts", ":material/trending_up:"),
    ("health", "Platform health", ":material/monitor_heart:"),
)
DEFAULT = "store_map"
TITLES = {module: title for module, title, _ in PAGES}
