"""Asset keys and the platform's data flow (docs/architecture.md) as asset dependencies.

Key scheme: the first part names the store, because Delta layers and Postgres schemas share
names (`ops`, `analytics`) and a key must say which of the two it is:

- Kafka topic          `["kafka", topic]`                e.g. kafka/shelf_events
- Delta table          `["delta", layer, table]`         e.g. delta/cleansed/shelf_state
- Postgres table       `["postgres", schema, table]`     e.g. postgres/state/shelf_state
- reference files      `["files", "reference"]`          the generated Parquet files

Edges (upstream -> downstream) come from two places:

1. `catalogue_upstreams()`: the edges the contracts catalogue implies, by record identity and
   writer (topic -> raw Delta table, Delta state -> compacted topic, topic -> Connect mirror,
   config table -> CDC topic, reference files -> ref/config tables, event topics -> dead letters);
2. `EXPLICIT_UPSTREAMS`: what a streaming or ML job reads, which the catalogue cannot know.

The real flow has loops (state -> plan -> warehouse movement -> refill -> shelf event -> state),
and an asset graph must be acyclic. The loops are cut at the input event topics: those depend on
nothing but the reference files the simulated world is built from, and the platform's effects
that write into them are kept in `EFFECT_EDGES`, shown in the topic's metadata instead of as
graph edges.
"""

from __future__ import annotations

from functools import cache

import dagster as dg

from smart_shelf_platform.contracts.catalogue import (
    DELTA_TABLES, POSTGRES_TABLES, TOPICS, DeltaTable, PostgresTable, Topic,
)

REFERENCE_FILES_KEY = dg.AssetKey(["files", "reference"])
# Forecasting's steps that are not tables: the training set of a cutoff and its champion.
TRAINING_SET_KEY = dg.AssetKey(["ml", "training_set"])
CHAMPION_KEY = dg.AssetKey(["ml", "champion"])

KAFKA_CONNECT_SINK = "Kafka Connect sink"
KAFKA_CONNECT_SOURCE_PREFIX = "Kafka Connect ("
REFERENCE_LOADER = "reference loader"
BRIDGE = "bridge"  # forwards the simulator's Redis Streams to Kafka


def topic_key(topic: Topic) -> dg.AssetKey:
    return dg.AssetKey(["kafka", topic.name])


def delta_key(table: DeltaTable) -> dg.AssetKey:
    return dg.AssetKey(["delta", table.layer, table.name])


def postgres_key(table: PostgresTable) -> dg.AssetKey:
    return dg.AssetKey(["postgres", table.schema, table.name])


def all_keys() -> list[dg.AssetKey]:
    """Every asset of the platform: each topic, Delta table and Postgres table, the files, and
    forecasting's training set and champion."""
    return [*map(topic_key, TOPICS), *map(delta_key, DELTA_TABLES),
            *map(postgres_key, POSTGRES_TABLES), REFERENCE_FILES_KEY, TRAINING_SET_KEY,
            CHAMPION_KEY]


def _name(key: dg.AssetKey) -> str:
    return key.to_user_string()


# Topics fed by the world (simulator via the bridge, the clock) and by the platform's own effects.
INPUT_EVENT_TOPICS = (
    "foot_traffic", "shelf_events", "pos_transactions", "wh_events", "clock_ticks")

# What each streaming or ML job reads besides what the catalogue implies: downstream -> upstreams.
EXPLICIT_UPSTREAMS: dict[str, tuple[str, ...]] = {
    # State is a fold over events, starting from the reference snapshot, using static shelf facts.
    "delta/cleansed/shelf_state": (
        "kafka/shelf_events", "kafka/shelf_profiles", "postgres/ref/store_inventory_snapshot"),
    "delta/cleansed/wh_state": (
        "kafka/wh_events", "kafka/shelf_profiles", "postgres/ref/warehouse_inventory_snapshot"),
    "delta/cleansed/shelf_batch_state": (
        "kafka/shelf_events", "kafka/pos_transactions", "kafka/batch_catalog",
        "postgres/ref/store_batches_snapshot"),
    "delta/cleansed/wh_batch_state": (
        "kafka/wh_events", "kafka/batch_catalog", "postgres/ref/warehouse_batches_snapshot"),
    # Decisions: state + policies -> alerts and plans; plans + ticks -> orders -> receipts.
    "delta/ops/shelf_restock_plan": (
        "kafka/shelf_state", "kafka/shelf_policies", "kafka/shelf_profiles"),
    "delta/ops/wh_supplier_plan": ("kafka/wh_state", "kafka/wh_policies", "kafka/shelf_profiles"),
    "kafka/alerts": (
        "kafka/shelf_state", "kafka/shelf_policies", "kafka/wh_state", "kafka/wh_policies",
        "kafka/shelf_restock_plan", "kafka/shelf_batch_state", "kafka/wh_batch_state",
        "kafka/clock_ticks"),
    # With the forecast deciding (SMART_SHELF_SUPPLIER_RULE=forecast), a cutoff's orders come
    # from its forecasts: the supplier manager makes the model's plans at the cutoff and orders
    # them. (The edge goes to the orders: the plan table feeds the daily features the forecasts
    # learn from, so an edge into it would close a loop the graph cannot hold.)
    "delta/ops/wh_supplier_orders": ("kafka/wh_supplier_plan", "kafka/ml_predictions",
                                     "kafka/clock_ticks"),
    "delta/ops/wh_supplier_receipts": ("delta/ops/wh_supplier_orders", "kafka/clock_ticks"),
    "delta/analytics/daily_discounts": ("kafka/shelf_batch_state", "kafka/clock_ticks"),
    # The refill bridge: each pick becomes the restocker's task, released by ticks.
    "kafka/restock_tasks": ("kafka/wh_events", "kafka/clock_ticks"),
    # Receipt headers are sunk from the receipts; their lines, flattened by the batch state
    # updater, from a topic of their own.
    "postgres/ops/pos_transactions": ("kafka/pos_transactions",),
    "kafka/pos_transaction_items": ("kafka/pos_transactions",),
    # ML (Dagster, daily and cutoff partitions): features -> training set -> model registry ->
    # champion (an earlier cutoff's) -> predictions; the backtest scores the model against the
    # simulator's true demand (defs/forecasting/assets.py maps the partitions of these edges).
    # The features read exactly these (smart_shelf_platform/ml/feature_store.py, a test holds it).
    "delta/analytics/shelf_daily_features": (
        "delta/raw/foot_traffic", "delta/raw/pos_transactions", "delta/raw/shelf_events",
        "delta/raw/wh_events", "delta/cleansed/shelf_state", "delta/cleansed/wh_state",
        "delta/cleansed/shelf_batch_state", "delta/ops/alerts",
        "delta/ops/wh_supplier_plan", "delta/analytics/daily_discounts",
        "postgres/ref/store_inventory_snapshot", "postgres/ref/weekly_discounts",
        "postgres/config/shelf_policies", "postgres/config/wh_policies",
        "postgres/config/shelf_profiles"),
    "postgres/analytics/shelf_daily_features": ("delta/analytics/shelf_daily_features",),
    "ml/training_set": ("delta/analytics/shelf_daily_features",),
    "postgres/analytics/ml_models": ("ml/training_set",),
    "ml/champion": ("postgres/analytics/ml_models",),
    "delta/analytics/predictions": ("delta/analytics/shelf_daily_features", "ml/champion"),
    "postgres/analytics/ml_predictions_log": ("delta/analytics/predictions",),
    "delta/analytics/ml_backtest": (
        "delta/analytics/shelf_daily_features", "postgres/sim/ledger_daily_sales"),
    "postgres/analytics/ml_backtest": ("delta/analytics/ml_backtest",),
    # The simulator's ledger: its world from the reference files, then the platform's physical
    # decisions it carries out (producers/run.py EffectsFeed) and the prices shoppers pay.
    "postgres/sim/ledger_shelf_lots": (
        "files/reference", "kafka/shelf_events", "kafka/restock_tasks"),
    "postgres/sim/ledger_wh_lots": ("files/reference", "kafka/wh_events"),
    # Carts hold units picked from the shelf lots, so they follow what refills the shelves.
    "postgres/sim/ledger_cart_lots": (
        "files/reference", "kafka/shelf_events", "kafka/restock_tasks"),
    "postgres/sim/ledger_daily_sales": (
        "files/reference", "kafka/shelf_events", "kafka/daily_discounts"),
    "postgres/sim/ledger_daily_waste": ("files/reference", "kafka/wh_events", "kafka/alerts"),
    "postgres/sim/ledger_bad_events": ("files/reference",),
    "postgres/sim/ledger_position": ("files/reference",),
}

# The platform's effects on its input topics (upstream, downstream): real flow, not graph edges.
EFFECT_EDGES: tuple[tuple[str, str], ...] = (
    ("kafka/shelf_restock_plan", "kafka/wh_events"),      # restock manager: FEFO wh_out
    ("kafka/wh_batch_state", "kafka/wh_events"),          # FEFO lot choice, expired warehouse lots
    ("delta/ops/wh_supplier_orders", "kafka/wh_events"),  # supplier manager: wh_in deliveries
    ("kafka/restock_tasks", "kafka/shelf_events"),        # the restocker reports what it put up
    ("kafka/shelf_events", "kafka/wh_events"),            # restock manager: unfitted units back
    ("kafka/shelf_batch_state", "kafka/shelf_events"),    # removal scheduler: expired shelf lots
    ("kafka/clock_ticks", "kafka/wh_events"),             # deliveries and removals fire on ticks
    ("kafka/daily_discounts", "kafka/pos_transactions"),  # shoppers pay the discounted price
)


def _connect_source_table(topic: Topic) -> str | None:
    """`config.shelf_policies` for a topic produced by "Kafka Connect (config.shelf_policies)"."""
    if topic.producer.startswith(KAFKA_CONNECT_SOURCE_PREFIX):
        return topic.producer[len(KAFKA_CONNECT_SOURCE_PREFIX):].rstrip(")")
    return None


def catalogue_upstreams() -> dict[str, list[str]]:
    """The edges the catalogue implies, as downstream -> upstreams (names as in the docstring)."""
    edges: dict[str, list[str]] = {}

    def add(upstream: dg.AssetKey, downstream: dg.AssetKey) -> None:
        edges.setdefault(_name(downstream), []).append(_name(upstream))

    for topic in TOPICS:
        for table in DELTA_TABLES:
            if table.record != topic.record:
                continue
            if topic.compacted and _connect_source_table(topic) is None:
                add(delta_key(table), topic_key(topic))  # a job's state, published absolute
            elif not topic.compacted:
                add(topic_key(topic), delta_key(table))  # events as received
        for table in POSTGRES_TABLES:
            if table.record != topic.record:
                continue
            if table.writer == KAFKA_CONNECT_SINK:
                add(topic_key(topic), postgres_key(table))  # upsert mirror
            elif _connect_source_table(topic) == table.qualified_name:
                add(postgres_key(table), topic_key(topic))  # change data capture
        # Every streaming query reads the append-only topics and dead-letters what breaks them.
        if not topic.compacted and topic.name != "dead_letter":
            add(topic_key(topic), dg.AssetKey(["kafka", "dead_letter"]))
        # The simulated world is built from the reference files.
        if BRIDGE in (p.strip() for p in topic.producer.split(",")):
            add(REFERENCE_FILES_KEY, topic_key(topic))
    for table in POSTGRES_TABLES:
        if table.writer.startswith(REFERENCE_LOADER):
            add(REFERENCE_FILES_KEY, postgres_key(table))
    return edges


@cache
def upstreams() -> dict[dg.AssetKey, tuple[dg.AssetKey, ...]]:
    """Every asset's upstream assets (empty for sources): the asset graph's edges."""
    known = {_name(k) for k in all_keys()}
    merged: dict[str, set[str]] = {name: set() for name in known}
    for source in (catalogue_upstreams(), EXPLICIT_UPSTREAMS):
        for downstream, ups in source.items():
            unknown = ({downstream, *ups} - known)
            if unknown:
                raise ValueError(f"lineage names unknown assets: {sorted(unknown)}")
            merged[downstream].update(ups)
    # The loops are cut here: an input topic may only hang off the reference files.
    inputs = {f"kafka/{t}" for t in INPUT_EVENT_TOPICS}
    if any(merged[t] - {_name(REFERENCE_FILES_KEY)} for t in inputs):
        raise ValueError("input event topics take no platform dependencies; use EFFECT_EDGES")
    return {dg.AssetKey.from_user_string(down): tuple(sorted(map(dg.AssetKey.from_user_string, ups),
                                                             key=_name))
            for down, ups in sorted(merged.items())}


def edges() -> list[tuple[str, str]]:
    """All (upstream, downstream) pairs, sorted: the snapshot the tests hold."""
    return sorted((_name(up), _name(down)) for down, ups in upstreams().items() for up in ups)


def effects_into(key: dg.AssetKey) -> list[str]:
    """Assets whose effects write back into this input topic (see EFFECT_EDGES)."""
    return sorted(up for up, down in EFFECT_EDGES if down == _name(key))
