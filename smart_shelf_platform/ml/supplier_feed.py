"""What a cutoff's forecast hands to the supplier manager (no Dagster).

- `on_order_at(delta_root, moment)`: units of supplier orders still on their way at `moment`
  (placed before it, not delivered by it, not canceled), per shelf, from `ops/wh_supplier_orders`.
  A forecast's order tops up to its target from what is on hand and on order; pending plans are
  left out, because with the forecast deciding the cutoff the rule's pending plans of a shelf it
  serves are canceled, not ordered.
- `publish(bootstrap, topic, rows)`: every forecast row of the cutoff on the `ml_predictions`
  topic (contract `ML_PREDICTION`, keyed by store, shelf and cutoff, so a re-run of the cutoff
  replaces its messages in the compacted topic and the manager dedupes the copies).
"""

from __future__ import annotations

import json
from datetime import date, datetime

import numpy as np
import pandas as pd
from confluent_kafka import Producer

from smart_shelf_platform import delta_reader
from smart_shelf_platform.clock import iso_utc
from smart_shelf_platform.contracts.analytics import ML_PREDICTION
from smart_shelf_platform.contracts.catalogue import TOPICS_BY_NAME
from smart_shelf_platform.ml.training_set import SHELF

ORDERS_PATH = "ops/wh_supplier_orders"
TOPIC = TOPICS_BY_NAME["ml_predictions"]


def on_order_at(delta_root: str, moment: datetime) -> pd.Series:
    """Units on their way at `moment` per (store_id, shelf_id); shelves without any are absent."""
    orders = delta_reader.read(delta_root, ORDERS_PATH, [
        "store_id", "shelf_id", "total_qty", "status", "cutoff_ts", "updated_at"]).to_pandas()
    at = pd.Timestamp(moment)
    placed = pd.to_datetime(orders["cutoff_ts"], utc=True) < at
    # An order's latest row says where it is now; delivered after `moment`, it was on its way.
    arrived = (orders["status"] == "delivered") & (
        pd.to_datetime(orders["updated_at"], utc=True) <= at)
    open_orders = orders.loc[placed & ~arrived & (orders["status"] != "canceled")]
    return open_orders.groupby(SHELF)["total_qty"].sum().astype("int64")


def _json_value(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (pd.Timestamp, datetime)):
        return iso_utc(pd.Timestamp(value).to_pydatetime())
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def messages(rows: pd.DataFrame) -> list[tuple[str, bytes]]:
    """(key, JSON value) of each forecast row, in the contract's fields."""
    out = []
    for record in rows[ML_PREDICTION.field_names].to_dict("records"):
        value = {name: _json_value(v) for name, v in record.items()}
        out.append((TOPIC.message_key(value), json.dumps(value).encode()))
    return out


def publish(bootstrap: str, topic: str, rows: pd.DataFrame, timeout: float = 60) -> int:
    """Send every row to `topic` and wait until Kafka has them all; returns the count."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 20})
    failed: list[str] = []

    def delivered(err, _msg) -> None:
        if err is not None:
            failed.append(str(err))

    sent = messages(rows)
    for key, value in sent:
        producer.produce(topic, key=key.encode(), value=value, on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(timeout)
    if left or failed:
        raise RuntimeError(f"{left + len(failed)} of {len(sent)} forecasts not acknowledged by "
                           f"Kafka on {topic}: {failed[:1] or 'timed out'}")
    return len(sent)
