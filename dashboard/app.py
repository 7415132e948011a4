"""Entry point: `streamlit run dashboard/app.py` (`smart-shelf up` runs it on
SMART_SHELF_DASHBOARD_PORT). One page per module in `views/`, the store and time on top."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run` puts this folder, not the repository, on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard import ui  # noqa: E402

VIEWS = Path(__file__).with_name("views")
PAGES = [
    st.Page(VIEWS / "store_map.py", title="Store map", icon=":material/map:", default=True),
    st.Page(VIEWS / "alerts.py", title="Alerts", icon=":material/notifications:"),
    st.Page(VIEWS / "stock.py", title="Stock and lots", icon=":material/inventory_2:"),
    st.Page(VIEWS / "replenishment.py", title="Replenishment",
            icon=":material/local_shipping:"),
    st.Page(VIEWS / "forecasts.py", title="Forecasts", icon=":material/trending_up:"),
    st.Page(VIEWS / "health.py", title="Platform health", icon=":material/monitor_heart:"),
]

st.set_page_config(page_title="Smart Shelf", page_icon=":material/shelves:", layout="wide")
page = st.navigation(PAGES)
ui.header()
page.run()
