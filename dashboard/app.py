"""Entry point: `streamlit run dashboard/app.py` (`smart-shelf up` runs it on
SMART_SHELF_DASHBOARD_PORT). One page per module in `views/`, the store and time on top."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run` puts this folder, not the repository, on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard import ui  # noqa: E402
from dashboard.pages import DEFAULT, PAGES  # noqa: E402

VIEWS = Path(__file__).with_name("views")
NAVIGATION = [st.Page(VIEWS / f"{module}.py", title=title, icon=icon, default=module == DEFAULT)
              for module, title, icon in PAGES]

st.set_page_config(page_title="Smart Shelf", page_icon=":material/shelves:", layout="wide")
page = st.navigation(NAVIGATION)
ui.header()
page.run()
