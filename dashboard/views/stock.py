"""Stock and lots: shelf and warehouse state by category, subcategory and shelf, the shelves at
risk first; the lots on shelves and in the warehouse with their expiry and days left."""

from __future__ import annotations

import streamlit as st

from dashboard import data, queries, ui
from dashboard.store import shelves_of_store

SHELF_COLUMNS = ["shelf_id", "item_category", "item_subcategory", "state", "current_stock",
                 "max_stock", "stock_pct", "threshold_pct", "wh_current_stock", "wh_max_stock",
                 "earliest_expiry", "days_left", "last_update_ts"]


@st.fragment(run_every=ui.REFRESH_SECONDS)
def live_stock(categories, subcategories, shelf_ids) -> None:
    ctx = ui.context()
    s = ctx.settings
    with ui.needs_sources():
        shelves = shelves_of_store(ctx).merge(
            ui.store_table(ctx, "cleansed/wh_state")[
                ["shelf_id", "wh_current_stock", "wh_max_stock"]], on="shelf_id", how="left")
        chosen = data.filtered(shelves, item_category=categories,
                               item_subcategory=subcategories, shelf_id=shelf_ids)
        counts = chosen["state"].value_counts()
        for col, state in zip(st.columns(len(data.STATES)), data.STATES):
            col.metric(f"Shelves {state}", int(counts.get(state, 0)))
        st.subheader("Shelves, at risk first")
        st.dataframe(chosen[SHELF_COLUMNS], hide_index=True, width="stretch", key="shelves")
        today = ctx.now.date()
        shelf_lots, wh_lots = st.columns(2)
        for col, path, quantity, title in (
                (shelf_lots, "cleansed/shelf_batch_state", "batch_quantity_store", "On shelves"),
                (wh_lots, "cleansed/wh_batch_state", "batch_quantity_warehouse",
                 "In the warehouse")):
            lots = data.lots_view(ui.store_table(ctx, path), quantity, today)
            lots = lots[lots["shelf_id"].isin(chosen["shelf_id"])]
            col.subheader(f"Lots: {title.lower()}")
            col.dataframe(lots[["shelf_id", "batch_code", quantity, "expiry_date", "days_left"]],
                          hide_index=True, width="stretch", key=f"lots_{quantity}")


st.title("Stock and lots")
ctx = ui.context()
with ui.needs_sources():
    catalogue = ui.of_store(queries.catalogue(ctx.settings), ctx)
    cols = st.columns(3)
    categories = cols[0].multiselect("Category", sorted(catalogue["item_category"].unique()),
                                     key="stock_categories")
    in_categories = data.filtered(catalogue, item_category=categories)
    subcategories = cols[1].multiselect(
        "Subcategory", sorted(in_categories["item_subcategory"].unique()),
        key="stock_subcategories")
    shelf_ids = cols[2].multiselect(
        "Shelf", sorted(data.filtered(in_categories, item_subcategory=subcategories)["shelf_id"]),
        key="stock_shelves")
    live_stock(categories, subcategories, shelf_ids)
