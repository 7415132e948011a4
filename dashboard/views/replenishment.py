"""Replenishment: restock plans in flight and their age, supplier plans, orders and receipts,
the next cutoff and delivery slot counted down in simulated time, the day's discounts."""

from __future__ import annotations

import streamlit as st

from dashboard import data, queries, ui
from smart_shelf_platform.rules.supplier import SupplierSchedule


def schedule_metrics(ctx: ui.Context) -> None:
    s = ctx.settings
    schedule = SupplierSchedule.parse(s.supplier_cutoff_days, s.supplier_cutoff_time,
                                      s.supplier_delivery_days, s.supplier_delivery_time)
    cutoff = schedule.next_cutoff(ctx.now)
    delivery = schedule.next_delivery(cutoff)
    left, right = st.columns(2)
    left.metric("Next supplier cutoff", cutoff.strftime("%a %d %b %H:%M"),
                f"in {data.countdown(ctx.now, cutoff)}", delta_color="off")
    right.metric("Its delivery slot", delivery.strftime("%a %d %b %H:%M"),
                 f"in {data.countdown(ctx.now, delivery)}", delta_color="off")


def section(ctx: ui.Context, title: str, path: str, columns: list[str], *,
            in_flight: bool = False, sort: str = "created_at") -> None:
    st.subheader(title)
    with ui.needs_sources():
        frame = ui.store_table(ctx, path)
        if in_flight:
            frame = frame[frame["status"].isin(data.IN_FLIGHT)].copy()
            frame["age_min"] = data.minutes_since(frame["created_at"], ctx.now)
            columns = [*columns, "age_min"]
        if frame.empty:
            st.caption("None yet.")
            return
        frame = data.with_category(frame, queries.catalogue(ctx.settings))
        st.dataframe(frame.sort_values(sort, ascending=False)[
            ["shelf_id", "item_category", *columns]], hide_index=True, width="stretch",
            key=f"table_{path}")


@st.fragment(run_every=ui.REFRESH_SECONDS)
def live_replenishment() -> None:
    ctx = ui.context()
    schedule_metrics(ctx)
    section(ctx, "Restock plans in flight", "ops/shelf_restock_plan",
            ["plan_id", "suggested_qty", "status", "created_at", "updated_at"], in_flight=True)
    section(ctx, "Supplier plans", "ops/wh_supplier_plan",
            ["supplier_plan_id", "suggested_qty", "standard_batch_size", "source", "status",
             "created_at", "updated_at"])
    section(ctx, "Supplier orders", "ops/wh_supplier_orders",
            ["order_id", "total_qty", "status", "cutoff_ts", "delivery_ts"], sort="cutoff_ts")
    section(ctx, "Deliveries received", "ops/wh_supplier_receipts",
            ["receipt_id", "batch_code", "received_qty", "expiry_date", "created_at"])
    st.subheader("Today's near-expiry discounts")
    with ui.needs_sources():
        discounts = ui.store_table(ctx, "analytics/daily_discounts")
        today = discounts[discounts["discount_date"] == ctx.now.date()]
        if today.empty:
            st.caption(f"No discount on {ctx.now.date()}.")
        else:
            st.dataframe(data.with_category(today, queries.catalogue(ctx.settings))[
                ["shelf_id", "item_category", "discount", "days_to_expiry"]],
                hide_index=True, width="stretch", key="discounts")


st.title("Replenishment")
live_replenishment()
