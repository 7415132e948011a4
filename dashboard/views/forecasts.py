"""Forecasts: the model registry (champion and challengers), the backtest against its
baselines, each cutoff's forecast per shelf against what the shelf then sold and what its
shoppers wanted (the demand: sold + lost, from the simulator's ledger). Columns come from
the contracts (`smart_shelf_platform.contracts.analytics`); until the forecaster has written its
tables the page says what will appear and what produces it."""

from __future__ import annotations

import streamlit as st

from dashboard import data, figures, queries, ui
from smart_shelf_platform.contracts import analytics
from smart_shelf_platform.contracts.types import Record

CUTOFF_RUNS = ("the cutoff runs in Dagster (`./smart-shelf up`, then a simulation that passes a "
               "supplier cutoff with two weeks of daily features behind it: "
               "`./smart-shelf simulate --days 15 --speed max`)")


def contract_has(record: Record, *columns: str) -> bool:
    """Whether the contract still has the columns a chart needs; says so when it does not."""
    missing = sorted(set(columns) - set(record.field_names))
    if missing:
        st.warning(f"The {record.name} contract has no {', '.join(missing)} any more: this part "
                   "of the page needs updating to its new columns.", icon=":material/warning:")
    return not missing


def registry(ctx: ui.Context) -> None:
    st.subheader("Model registry")
    with ui.needs_sources():
        models = queries.ml_models(ctx.settings)
        if models.empty:
            st.info("Every trained version of the demand model will be listed here with its "
                    "training window and metrics, the champion first and then the challengers, "
                    f"once {CUTOFF_RUNS} trains one.", icon=":material/model_training:")
            return
        if contract_has(analytics.ML_MODEL, "status", "trained_at"):
            champion = models[models["status"] == "champion"]
            if len(champion):
                st.metric("Champion", f"{champion.iloc[0]['model_name']} "
                                      f"{champion.iloc[0]['model_version']}")
            models = models.assign(champion=models["status"] == "champion").sort_values(
                ["champion", "trained_at"], ascending=False).drop(columns="champion")
        st.dataframe(models, hide_index=True, width="stretch", key="models")


def backtest(ctx: ui.Context) -> None:
    st.subheader("Backtest against the baselines")
    with ui.needs_sources():
        results = queries.ml_backtest(ctx.settings)
        if results.empty:
            st.info("The model's and each baseline's metrics (WAPE, bias, MASE, pinball loss, "
                    "coverage) will be charted here, overall and per cutoff, once "
                    "`./smart-shelf backtest` has run on the stack's history.",
                    icon=":material/query_stats:")
            return
        if not contract_has(analytics.ML_BACKTEST, "backtest_id", "ran_at", "method", "scope",
                            "cutoff", "metric", "value"):
            return
        overall = data.backtest_overall(results)
        metrics = [c for c in overall.columns if c != "method"]
        st.plotly_chart(figures.metric_bars(overall, "method", metrics), key="backtest")
        metric = st.selectbox("Per cutoff", metrics, key="backtest_metric")
        by_cutoff = data.backtest_by_cutoff(results, metric)
        st.plotly_chart(figures.lines(by_cutoff, "cutoff", {
            m: m for m in by_cutoff.columns if m != "cutoff"}), key="backtest_cutoffs")


def forecast_against_sales(ctx: ui.Context) -> None:
    st.subheader("Forecast against demand and units sold, per shelf and cutoff")
    with ui.needs_sources():
        predictions = ui.of_store(queries.ml_predictions(ctx.settings), ctx)
        if predictions.empty:
            st.info("Each cutoff's forecast per shelf (expected units over its protection "
                    "interval, the 90 % quantile and the units ordered) will be set against the "
                    "units shoppers then wanted and bought, once "
                    f"{CUTOFF_RUNS} forecasts a cutoff.",
                    icon=":material/timeline:")
            return
        if not contract_has(analytics.ML_PREDICTION, "shelf_id", "cutoff_ts", "interval_start",
                            "interval_end", "forecast_mean", "q90", "order_units"):
            return
        shelf = st.selectbox("Shelf", sorted(predictions["shelf_id"].unique()), key="fc_shelf")
        mine = predictions[predictions["shelf_id"] == shelf].sort_values("cutoff_ts")
        joined = data.totals_over_intervals(
            mine, queries.daily_demand(ctx.settings, ctx.store_id, shelf), "demand")
        joined = data.totals_over_intervals(
            joined, queries.daily_sales(ctx.settings, ctx.store_id, shelf), "sold")
        st.plotly_chart(figures.lines(joined, "cutoff_ts", {
            "forecast_mean": "forecast (mean)", "q90": "forecast (90 % quantile)",
            "order_units": "ordered", "demand": "demand (sold + lost)", "sold": "sold"}),
            key="forecast_sold")


st.title("Forecasts")
ctx = ui.context()
registry(ctx)
backtest(ctx)
forecast_against_sales(ctx)
