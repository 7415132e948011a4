"""Platform health: every component's status (as `smart-shelf status`), the streaming queries'
last micro-batches and how far behind Kafka they are, dead letters by reason over time, Kafka
Connect, Dagster's runs and sensors, and how fresh each Delta table is."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import streamlit as st

from dashboard import figures, queries, ui

BATCHES_PER_QUERY = 20  # the latency quantiles are over each query's last batches with input


def batch_summary(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per query: its last batch (when, rows, duration) and the latency p50/p95 of its last
    batches with input (the median of their p50s, the highest p95)."""
    rows = []
    for query, batches in metrics.groupby("query"):
        last = batches.iloc[-1]
        busy = batches[batches["valid"] > 0].tail(BATCHES_PER_QUERY)
        latency = pd.DataFrame(list(busy["latency_ms"])) if len(busy) else pd.DataFrame()
        rows.append({
            "query": query, "last batch": int(last["batch"]),
            "finished": datetime.fromtimestamp(last["finished_at"], timezone.utc),
            "rows": int(last["valid"]), "dead": int(last["dead"]),
            "duration_ms": round(1000 * (last["finished_at"] - last["started_at"])),
            "latency p50 ms": latency["p50"].median() if "p50" in latency else None,
            "latency p95 ms": latency["p95"].max() if "p95" in latency else None})
    return pd.DataFrame(rows)


def enabled(flag: bool, component: str) -> bool:
    """Whether the stack runs this component; says so when it does not."""
    if not flag:
        st.caption(f"Not part of this stack (SMART_SHELF_{component}_ENABLED=false).")
    return flag


@st.fragment(run_every=ui.REFRESH_SECONDS)
def live_health() -> None:
    s = ui.context().settings
    st.subheader("Components")
    comps = queries.components(s)
    down = comps[~comps["healthy"]]
    if down.empty:
        st.success(f"All {len(comps)} components healthy.", icon=":material/check_circle:")
    else:
        st.error(f"DOWN: {', '.join(down['component'])}. Run `./smart-shelf up`.",
                 icon=":material/error:")
    st.dataframe(comps, hide_index=True, width="stretch", key="components")
    st.subheader("Streaming queries")
    left, right = st.columns([3, 1])
    with left, ui.needs_sources():
        left.dataframe(batch_summary(queries.batch_metrics(s)), hide_index=True,
                       width="stretch", key="batches")
    with right, ui.needs_sources():
        right.dataframe(queries.kafka_lag(s), hide_index=True, width="stretch", key="lag")
    st.subheader("Dead letters by reason")
    with ui.needs_sources():
        dead = queries.table(s, "raw/dead_letter", columns=("received_at", "reason"))
        if dead.empty:
            st.caption("No record has broken its contract.")
        else:
            st.plotly_chart(figures.dead_letters_over_time(dead), key="dead_letters")
    st.subheader("Kafka Connect")
    if enabled(s.connect_enabled, "CONNECT"):
        with ui.needs_sources():
            st.dataframe(queries.connectors(s), hide_index=True, width="stretch",
                         key="connectors")
    st.subheader("Dagster")
    if enabled(s.dagster_enabled, "DAGSTER"):
        with ui.needs_sources():
            runs, sensors = queries.dagster(s)
            left, right = st.columns(2)
            left.caption("Last runs")
            left.dataframe(runs, hide_index=True, width="stretch", key="runs")
            right.caption("Sensors' last ticks")
            right.dataframe(sensors, hide_index=True, width="stretch", key="sensors")
    st.subheader("Delta tables")
    fresh = queries.delta_freshness(s)
    fresh["age_s"] = (pd.Timestamp.now(tz="UTC") - pd.to_datetime(fresh["last commit"],
                                                                   utc=True)).dt.total_seconds()
    st.dataframe(fresh, hide_index=True, width="stretch", key="delta_tables")


st.title("Platform health")
live_health()
