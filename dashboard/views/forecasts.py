"""Forecasts: the model registry (champion and challengers), the backtest against its
baselines, predicted against actual orders per shelf and cutoff. Every column comes from the
contracts (`smart_shelf_platform.contracts.analytics`); until the forecaster has written its
tables the page says what will appear and what produces it."""

from __future__ import annotations

import streamlit as st

from dashboard import figures, queries, ui
from smart_shelf_platform.contracts import analytics

NUMERIC = {"int", "long", "double", "decimal"}
TRAIN = ("materialize the forecaster's training asset in Dagster (`./smart-shelf up`, then the "
         "UI on SMART_SHELF_DAGSTER_PORT)")


def registry(ctx: ui.Context) -> None:
    st.subheader("Model registry")
    with ui.needs_sources():
        models = queries.ml_models(ctx.settings)
        if models.empty:
            st.info("Every trained version of the order forecaster will be listed here with "
                    "its metrics, the active one as champion and the others as challengers, "
                    f"once a model is trained: {TRAIN}.", icon=":material/model_training:")
            return
        models["role"] = models["is_active"].map({True: "champion", False: "challenger"})
        champion = models[models["is_active"]]
        if len(champion):
            st.metric("Champion", f"{champion.iloc[0]['model_name']} "
                                  f"{champion.iloc[0]['model_version']}")
        st.dataframe(models.sort_values("trained_at", ascending=False), hide_index=True,
                     width="stretch", key="models")


def backtest(ctx: ui.Context) -> None:
    st.subheader("Backtest against the baselines")
    spec = queries.backtest_table()
    if spec is None:
        st.info("The backtest's metrics per model and baseline will be charted here once the "
                "contracts define its table and `./smart-shelf backtest` has filled it.",
                icon=":material/query_stats:")
        return
    with ui.needs_sources():
        results = queries.backtests(ctx.settings)
        if results.empty:
            st.info(f"{spec.qualified_name} is empty: run `./smart-shelf backtest` to compare "
                    "the model with its baselines.", icon=":material/query_stats:")
            return
        label = next(f.name for f in spec.record.fields if f.type.kind == "string")
        metrics = [f.name for f in spec.record.fields
                   if f.type.kind in NUMERIC and f.name not in spec.record.key]
        st.plotly_chart(figures.metric_bars(results, label, metrics), key="backtest")
        st.dataframe(results, hide_index=True, width="stretch", key="backtest_table")


def predicted_against_actual(ctx: ui.Context) -> None:
    st.subheader("Predicted against actual orders")
    p = analytics.ML_PREDICTION
    with ui.needs_sources():
        predictions = ui.of_store(queries.ml_predictions(ctx.settings), ctx)
        if predictions.empty:
            st.info(f"Each cutoff's predicted batches per shelf ({', '.join(p.key)}) will be "
                    "set against the batches the shelf turned out to need, once the forecaster "
                    f"predicts at a cutoff: {TRAIN}.", icon=":material/timeline:")
            return
        shelf = st.selectbox("Shelf", sorted(predictions["shelf_id"].unique()), key="fc_shelf")
        actual = queries.order_targets(ctx.settings)
        joined = predictions[predictions["shelf_id"] == shelf].merge(
            actual, on=["store_id", "shelf_id", "feature_date"], how="left")
        st.plotly_chart(figures.predicted_against_actual(
            joined.sort_values("cutoff_ts"), "cutoff_ts", "predicted_batches",
            "batches_to_order"), key="predicted_actual")


st.title("Forecasts")
ctx = ui.context()
registry(ctx)
backtest(ctx)
predicted_against_actual(ctx)
