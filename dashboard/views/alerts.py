"""Alerts: open and recent alerts by type, status, age and category, with their lifecycle
(opened, last step, the restock plan that answered them)."""

from __future__ import annotations

import streamlit as st

from dashboard import data, figures, queries, ui
from dashboard.sources import require_rows

COLUMNS = ["alert_type", "status", "shelf_id", "item_category", "item_subcategory", "location",
           "created_at", "updated_at", "age_min", "current_stock", "max_stock", "batch_code",
           "expiry_date", "handled_by"]


def store_alerts(ctx: ui.Context):
    s = ctx.settings
    alerts = require_rows(ui.store_table(ctx, "ops/alerts"),
                          f"the alerts of {ctx.store_id} (Delta ops/alerts)")
    plans = ui.store_table(ctx, "ops/shelf_restock_plan")
    return data.alerts_view(alerts, queries.catalogue(s), plans, ctx.now)


@st.fragment(run_every=ui.REFRESH_SECONDS)
def live_alerts(types, statuses, categories, hours) -> None:
    ctx = ui.context()
    with ui.needs_sources():
        view = store_alerts(ctx)
        recent = view[data.minutes_since(view["updated_at"], ctx.now) <= hours * 60]
        chosen = data.filtered(recent, alert_type=types, status=statuses,
                               item_category=categories)
        open_now = view[view["status"].isin(data.OPEN_ALERT)]
        left, middle, right = st.columns(3)
        left.metric("Open alerts", len(open_now))
        middle.metric("Oldest open, minutes", int(open_now["age_min"].max())
                      if len(open_now) else 0)
        right.metric(f"Shown (last {hours} h, filtered)", len(chosen))
        if chosen.empty:
            st.info("No alert matches these filters.")
            return
        st.plotly_chart(figures.alerts_by_type(chosen), key="alerts_by_type")
        st.dataframe(chosen[COLUMNS], hide_index=True, width="stretch", key="alerts_table")


st.title("Alerts")
ctx = ui.context()
with ui.needs_sources():
    catalogue = queries.catalogue(ctx.settings)
    cols = st.columns(4)
    types = cols[0].multiselect("Type", data.ALERT_TYPES, key="alert_types")
    statuses = cols[1].multiselect("Status", data.ALERT_STATUSES, default=list(data.OPEN_ALERT),
                                   key="alert_statuses")
    categories = cols[2].multiselect("Category", sorted(catalogue["item_category"].unique()),
                                     key="alert_categories")
    hours = cols[3].slider("Changed in the last hours (simulated)", 1, 168, 24, key="alert_hours")
    live_alerts(types, statuses, categories, hours)
