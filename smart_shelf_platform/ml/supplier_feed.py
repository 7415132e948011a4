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

from collections.abc import Callable
from datetime import datetime

import numpy as np
import pandas as pd

from smart_shelf_platform import delta_reader
from smart_shelf_platform.contracts.analytics import ML_PREDICTION
from smart_shelf_platform.contracts.catalogue import TOPICS_BY_NAME
from smart_shelf_platform.ml.training_set import SHELF
from smart_shelf_platform.publisher import Publisher, jsonable

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


def records(rows: pd.DataFrame) -> list[dict]:
    """Each forecast row in the contract's fields, as its message carries it (`jsonable`
    values, so the message key has the wire's timestamps; NaN as null)."""
    return [{name: None if isinstance(v, float) and np.isnan(v) else jsonable(v)
             for name, v in record.items()}
            for record in rows[ML_PREDICTION.field_names].to_dict("records")]


def publish(bootstrap: str, topic: Callable[[str], str], rows: pd.DataFrame) -> int:
    """Send every row to the `ml_predictions` topic (`topic` maps the catalogue's name to the
    topic written) and return once Kafka has them all; returns the count."""
    return Publisher(bootstrap, "cutoff forecasts", topic).send(
        (TOPIC.name, record) for record in records(rows))
