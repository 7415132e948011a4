"""Where each record lives: the Kafka topic catalogue, the Delta tables and the Postgres tables.

This is the one list that `smart-shelf up` creates from, that the streaming jobs read and write by
name, that Dagster turns into assets and that the tests hold the `sql/` DDL against.
"""

from __future__ import annotations

from dataclasses import dataclass

from smart_shelf_platform.contracts import analytics, events, reference, simulation, state
from smart_shelf_platform.contracts.types import STRING, UUID, Field, Record

# --------------------------------------------------------------------------------------------
# Kafka topics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Topic:
    name: str
    record: Record
    compacted: bool
    key_fields: tuple[str, ...]  # message key = these values joined by "|"; partitions follow it
    producer: str
    description: str
    partitions: int | None = None  # None = the configured default

    @property
    def cleanup_policy(self) -> str:
        return "compact" if self.compacted else "delete"

    def message_key(self, value: dict) -> str:
        return "|".join(str(value[f]) for f in self.key_fields)


def _compacted(name: str, record: Record, producer: str, description: str) -> Topic:
    return Topic(name, record, True, record.key, producer, description)


POS_TRANSACTION_HEADER = events.POS_TRANSACTION.derive(
    "pos_transaction_header", drop=("items",), key=("store_id", "transaction_id"),
    description="Receipt header, flattened from pos_transactions for the Postgres sink.",
)

POS_TRANSACTION_ITEM = events.POS_LINE.derive(
    "pos_transaction_item",
    prepend=(Field("store_id", STRING), Field("transaction_id", UUID)),
    key=("store_id", "transaction_id", "line_no"),
    description="Receipt line, flattened from pos_transactions by the batch state updater.",
)

TOPICS: tuple[Topic, ...] = (
    Topic("foot_traffic", events.FOOT_TRAFFIC, False, ("store_id", "customer_id"),
          "bridge", "customer entries and exits"),
    Topic("shelf_events", events.SHELF_EVENT, False, ("store_id", "shelf_id"),
          "bridge", "pickups, putbacks (customers' and the restocker's refills), weight changes "
          "and removals, ordered per shelf as the store lived them"),
    Topic("pos_transactions", events.POS_TRANSACTION, False, ("store_id", "customer_id"),
          "bridge", "checkout receipts"),
    Topic("pos_transaction_items", POS_TRANSACTION_ITEM, False, ("store_id", "transaction_id"),
          "batch state updater", "receipt lines, one message each, for the Postgres sink"),
    Topic("wh_events", events.WH_EVENT, False, ("store_id", "shelf_id"),
          "shelf restock manager, supplier manager",
          "warehouse lot movements, ordered per shelf"),
    # Append-only, not compacted: a task is an instruction given once (an event, not a state
    # with versions), applied once by its id; retention bounds the topic, whereas compaction
    # would keep every task forever (each id is a key of its own). Keyed per shelf like the
    # other movements, so a shelf's tasks stay in order on one partition.
    Topic("restock_tasks", events.RESTOCK_TASK, False, ("store_id", "shelf_id"),
          "shelf refill bridge",
          "refill tasks for the restocker: picked units to put on their shelf when due"),
    Topic("alerts", events.ALERT, False, ("store_id", "shelf_id"),
          "alert engines, restock manager, discount manager, removal scheduler",
          "alerts and their lifecycle steps"),
    Topic("clock_ticks", events.CLOCK_TICK, False, ("tick_id",), "sim clock",
          "one tick per simulated minute", partitions=1),
    Topic("dead_letter", events.DEAD_LETTER, False, ("source",), "every streaming query",
          "records that broke their contract, with the reason"),
    _compacted("shelf_state", state.SHELF_STATE, "shelf aggregator", "units on each shelf"),
    _compacted("wh_state", state.WH_STATE, "warehouse aggregator", "warehouse units per product"),
    _compacted("shelf_batch_state", state.SHELF_BATCH_STATE, "batch state updater",
               "units per shelf lot"),
    _compacted("wh_batch_state", state.WH_BATCH_STATE, "warehouse batch state updater",
               "units per warehouse lot"),
    _compacted("daily_discounts", state.DAILY_DISCOUNT, "daily discount manager",
               "near-expiry discounts per shelf and day"),
    _compacted("shelf_restock_plan", state.SHELF_RESTOCK_PLAN,
               "shelf alert engine, shelf restock manager",
               "restock plans and their status"),
    _compacted("wh_supplier_plan", state.WH_SUPPLIER_PLAN,
               "warehouse alert engine, supplier manager",
               "supplier plans and their status"),
    # A cutoff's forecasts, published by its Dagster run before the cutoff minute: with
    # SMART_SHELF_SUPPLIER_RULE=forecast the supplier manager turns them into the model's plans.
    _compacted("ml_predictions", analytics.ML_PREDICTION, "dagster",
               "every shelf's forecast and order at a supplier cutoff"),
    _compacted("shelf_policies", state.SHELF_POLICY, "Kafka Connect (config.shelf_policies)",
               "shelf refill policies"),
    _compacted("wh_policies", state.WH_POLICY, "Kafka Connect (config.wh_policies)",
               "warehouse reorder policies"),
    _compacted("shelf_profiles", state.SHELF_PROFILE, "Kafka Connect (config.shelf_profiles)",
               "static shelf facts"),
    _compacted("batch_catalog", state.BATCH_CATALOG, "Kafka Connect (config.batch_catalog)",
               "known lots and their dates"),
)

TOPICS_BY_NAME = {t.name: t for t in TOPICS}

# --------------------------------------------------------------------------------------------
# Delta tables
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeltaTable:
    layer: str  # raw | cleansed | ops | analytics
    name: str
    record: Record
    owner: str  # the one job that writes it
    description: str
    partition_by: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        """Path under the Delta root."""
        return f"{self.layer}/{self.name}"


DELTA_TABLES: tuple[DeltaTable, ...] = (
    DeltaTable("raw", "foot_traffic", events.FOOT_TRAFFIC, "foot_traffic_raw_sink",
               "customer entries and exits as received"),
    DeltaTable("raw", "shelf_events", events.SHELF_EVENT, "shelf_aggregator",
               "shelf events as received, deduplicated by event_id"),
    DeltaTable("raw", "pos_transactions", events.POS_TRANSACTION, "batch_state_updater",
               "receipts as received, deduplicated by event_id"),
    DeltaTable("raw", "wh_events", events.WH_EVENT, "wh_aggregator",
               "warehouse movements as received, deduplicated by event_id"),
    DeltaTable("raw", "dead_letter", events.DEAD_LETTER, "dead_letter_sink",
               "records that broke their contract, with the reason"),
    DeltaTable("cleansed", "shelf_state", state.SHELF_STATE, "shelf_aggregator",
               "units on each shelf"),
    DeltaTable("cleansed", "wh_state", state.WH_STATE, "wh_aggregator",
               "warehouse units per product"),
    DeltaTable("cleansed", "shelf_batch_state", state.SHELF_BATCH_STATE, "batch_state_updater",
               "units per shelf lot"),
    DeltaTable("cleansed", "wh_batch_state", state.WH_BATCH_STATE, "wh_batch_state_updater",
               "units per warehouse lot"),
    DeltaTable("ops", "alerts", events.ALERT, "alerts_sink",
               "current status of every alert"),
    DeltaTable("ops", "shelf_restock_plan", state.SHELF_RESTOCK_PLAN, "shelf_restock_manager",
               "restock plans and their status"),
    DeltaTable("ops", "wh_supplier_plan", state.WH_SUPPLIER_PLAN, "supplier_manager",
               "supplier plans and their status"),
    DeltaTable("ops", "wh_supplier_orders", state.WH_SUPPLIER_ORDER, "supplier_manager",
               "orders placed at the cutoffs"),
    DeltaTable("ops", "wh_supplier_receipts", state.WH_SUPPLIER_RECEIPT, "supplier_manager",
               "deliveries received"),
    DeltaTable("analytics", "daily_discounts", state.DAILY_DISCOUNT, "daily_discount_manager",
               "near-expiry discounts per shelf and day"),
    DeltaTable("analytics", "shelf_daily_features", analytics.SHELF_DAILY_FEATURES, "dagster",
               "daily ML features per shelf", partition_by=("feature_date",)),
    DeltaTable("analytics", "predictions", analytics.ML_PREDICTION, "dagster",
               "cutoff predictions", partition_by=("cutoff_date",)),
    DeltaTable("analytics", "ml_backtest", analytics.ML_BACKTEST, "dagster",
               "backtest metrics of the model and its baselines"),
)

DELTA_TABLES_BY_PATH = {t.path: t for t in DELTA_TABLES}

# --------------------------------------------------------------------------------------------
# Postgres tables
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresTable:
    schema: str  # ref | config | state | ops | analytics
    name: str
    record: Record
    writer: str
    description: str

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def primary_key(self) -> tuple[str, ...]:
        return self.record.key


POSTGRES_TABLES: tuple[PostgresTable, ...] = (
    PostgresTable("ref", "stores", reference.STORE, "reference loader", "stores of the chain"),
    PostgresTable("ref", "store_inventory_snapshot", reference.STORE_INVENTORY, "reference loader",
                  "store shelves at the simulation start"),
    PostgresTable("ref", "warehouse_inventory_snapshot", reference.WAREHOUSE_INVENTORY,
                  "reference loader", "warehouse stock at the simulation start"),
    PostgresTable("ref", "store_batches_snapshot", reference.STORE_BATCH, "reference loader",
                  "shelf lots at the simulation start"),
    PostgresTable("ref", "warehouse_batches_snapshot", reference.WAREHOUSE_BATCH,
                  "reference loader", "warehouse lots at the simulation start"),
    PostgresTable("ref", "weekly_discounts", reference.WEEKLY_DISCOUNT, "reference loader",
                  "planned weekly promotions"),
    PostgresTable("config", "shelf_policies", state.SHELF_POLICY, "reference loader, operators",
                  "shelf refill policies"),
    PostgresTable("config", "wh_policies", state.WH_POLICY, "reference loader, operators",
                  "warehouse reorder policies"),
    PostgresTable("config", "shelf_profiles", state.SHELF_PROFILE, "reference loader",
                  "static shelf facts"),
    PostgresTable("config", "batch_catalog", state.BATCH_CATALOG, "reference loader",
                  "known lots and their dates"),
    PostgresTable("state", "shelf_state", state.SHELF_STATE, "Kafka Connect sink",
                  "mirror of the shelf_state topic"),
    PostgresTable("state", "wh_state", state.WH_STATE, "Kafka Connect sink",
                  "mirror of the wh_state topic"),
    PostgresTable("state", "shelf_batch_state", state.SHELF_BATCH_STATE, "Kafka Connect sink",
                  "mirror of the shelf_batch_state topic"),
    PostgresTable("state", "wh_batch_state", state.WH_BATCH_STATE, "Kafka Connect sink",
                  "mirror of the wh_batch_state topic"),
    PostgresTable("ops", "shelf_restock_plan", state.SHELF_RESTOCK_PLAN, "Kafka Connect sink",
                  "mirror of the shelf_restock_plan topic"),
    PostgresTable("ops", "wh_events", events.WH_EVENT, "Kafka Connect sink",
                  "every warehouse movement"),
    PostgresTable("ops", "wh_supplier_plan", state.WH_SUPPLIER_PLAN, "Kafka Connect sink",
                  "mirror of the wh_supplier_plan topic"),
    PostgresTable("ops", "alerts", events.ALERT, "Kafka Connect sink",
                  "current status of every alert"),
    PostgresTable("ops", "pos_transactions", POS_TRANSACTION_HEADER, "Kafka Connect sink",
                  "receipt headers"),
    PostgresTable("ops", "pos_transaction_items", POS_TRANSACTION_ITEM, "Kafka Connect sink",
                  "receipt lines"),
    PostgresTable("analytics", "daily_discounts", state.DAILY_DISCOUNT, "Kafka Connect sink",
                  "mirror of the daily_discounts topic"),
    PostgresTable("analytics", "shelf_daily_features", analytics.SHELF_DAILY_FEATURES, "dagster",
                  "daily ML features per shelf"),
    PostgresTable("analytics", "ml_models", analytics.ML_MODEL, "dagster",
                  "versioned model registry"),
    PostgresTable("analytics", "ml_predictions_log", analytics.ML_PREDICTION, "dagster",
                  "every cutoff prediction"),
    PostgresTable("analytics", "ml_backtest", analytics.ML_BACKTEST, "dagster",
                  "backtest metrics of the model and its baselines"),
    PostgresTable("sim", "ledger_shelf_lots", simulation.LEDGER_SHELF_LOT, "simulator",
                  "ground truth: units per shelf lot"),
    PostgresTable("sim", "ledger_wh_lots", simulation.LEDGER_WH_LOT, "simulator",
                  "ground truth: units per warehouse lot"),
    PostgresTable("sim", "ledger_cart_lots", simulation.LEDGER_CART_LOT, "simulator",
                  "ground truth: units in customers' carts per shelf lot, not yet paid"),
    PostgresTable("sim", "ledger_daily_sales", simulation.LEDGER_SALES, "simulator",
                  "ground truth: sold and lost units per shelf and day"),
    PostgresTable("sim", "ledger_daily_waste", simulation.LEDGER_WASTE, "simulator",
                  "ground truth: expired units removed per shelf and day"),
    PostgresTable("sim", "ledger_bad_events", simulation.LEDGER_BAD_EVENT, "simulator",
                  "malformed events injected on purpose"),
    PostgresTable("sim", "ledger_position", simulation.LEDGER_POSITION, "simulator",
                  "how far the simulator got per store"),
)

POSTGRES_TABLES_BY_NAME = {t.qualified_name: t for t in POSTGRES_TABLES}

# Views defined in sql/ (checked to exist; their columns follow the tables above).
POSTGRES_VIEWS: tuple[str, ...] = (
    "ops.v_active_alerts",
    "analytics.v_ml_features",
    "analytics.v_ml_train",
)

POSTGRES_SCHEMAS: tuple[str, ...] = ("ref", "config", "state", "ops", "analytics", "sim")

# Records that are global by design and so carry no store_id in their key.
STORELESS_RECORDS = frozenset({"clock_tick", "dead_letter", "ml_model", "ml_backtest"})

