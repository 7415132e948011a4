"""Store map: the floor plan, each zone coloured by the worst state of its shelves; a click on a
zone lists its shelves with stock, capacity, lots and open alerts."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data, figures, queries, ui
from dashboard.layout import floor_plan
from dashboard.store import shelves_of_store


def zone_details(ctx: ui.Context, shelves: pd.DataFrame, category: str) -> None:
    s = ctx.settings
    zone = shelves[shelves["item_category"] == category]
    lots = data.lots_view(ui.store_table(ctx, "cleansed/shelf_batch_state"),
                          "batch_quantity_store", ctx.now.date())
    lots["lot"] = (lots["batch_code"] + ": " + lots["batch_quantity_store"].astype(str)
                   + " until " + lots["expiry_date"].astype(str))
    alerts = ui.store_table(ctx, "ops/alerts")
    alerts = alerts[alerts["status"].isin(data.OPEN_ALERT)]
    listing = zone.merge(lots.groupby("shelf_id")["lot"].agg("; ".join).rename("lots"),
                         on="shelf_id", how="left").merge(
        alerts.groupby("shelf_id")["alert_type"].agg(", ".join).rename("open alerts"),
        on="shelf_id", how="left")
    st.subheader(f"{category}: {len(zone)} shelves")
    st.dataframe(listing[["shelf_id", "item_subcategory", "state", "current_stock", "max_stock",
                          "stock_pct", "lots", "open alerts"]].fillna(""),
                 hide_index=True, width="stretch", key="zone_shelves")


@st.fragment(run_every=ui.REFRESH_SECONDS)
def live_map() -> None:
    ctx = ui.context()
    with ui.needs_sources():
        shelves = shelves_of_store(ctx)
        plan = floor_plan()
        zones = data.zone_states(shelves, plan.categories)
        counts = zones[list(data.STATES)].sum()
        st.caption(" · ".join(f"{counts[state]} shelves {state}" for state in data.STATES))
        event = st.plotly_chart(figures.store_map(zones, plan), key="store_map",
                                on_select="rerun", selection_mode="points",
                                config={"displayModeBar": False})
        points = event.selection.points if event else []
        if points:
            zone_details(ctx, shelves, points[0]["customdata"][0])
        else:
            st.caption("Click a zone to list its shelves.")


st.title("Store map")
live_map()
