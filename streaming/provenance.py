"""Which warehouse receipts are genuine: a `wh_in` brings units into the warehouse, so only the
platform may make one, and only for something it did.

Two components of the platform write `wh_in` records, and nothing else does: the supplier
manager delivers each supplier order it placed, once, at its slot (reason `supplier_delivery`,
the order's id, its shelf and units, an event id derived from the order), and the restock
manager books back the units of a pick that did not fit on the shelf (reason `refill_return`,
the plan's id and shelf, an event id derived from the plan and lot). A `wh_in` that does not
match an order or a plan of the platform's own tables, as its maker would have written it, is
forged or corrupt: it is refused with its reason (a dead letter) by every query that reads
`wh_events`, so neither the warehouse state nor the restock manager's view of the lots takes
it. Because its id is derived from the order, a second delivery of one order is a repeat of the
first and is dropped as such.

The orders and plans are written long before their receipt exists (an order at the cutoff, a
plan when the shelf asked for units), so the check never waits for a table to catch up.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from smart_shelf_platform import delta_reader
from smart_shelf_platform.contracts.events import REFILL_RETURN
from streaming import shell
from streaming.ids import restock_event_id, supplier_id

SUPPLIER_DELIVERY = "supplier_delivery"
# The makers' tables: the supplier manager's orders, the restock manager's plans.
ORDER_TABLE, PLAN_TABLE = "ops/wh_supplier_orders", "ops/shelf_restock_plan"
POSITION = ("_source", "_partition", "_offset")


def refusal(wh_in: dict, orders: dict[tuple, dict], plans: dict[tuple, dict]) -> str | None:
    """Why a `wh_in` is not the platform's own, or None when it is. `orders` and `plans` are
    the platform's supplier orders and restock plans by (store_id, id)."""
    reason = wh_in["reason"]
    if reason == SUPPLIER_DELIVERY:
        order = orders.get((wh_in["store_id"], wh_in["supplier_order_id"]))
        if order is None or order["shelf_id"] != wh_in["shelf_id"]:
            return "supplier delivery of an order the platform did not place"
        if wh_in["quantity"] != order["total_qty"]:
            return (f"supplier delivery of {wh_in['quantity']} units for an order of "
                    f"{order['total_qty']}")
        if wh_in["event_id"] != supplier_id("wh_in", order["order_id"]):
            return "supplier delivery whose id is not its order's"
        return None
    if reason == REFILL_RETURN:
        plan = plans.get((wh_in["store_id"], wh_in["plan_id"]))
        if plan is None or plan["shelf_id"] != wh_in["shelf_id"]:
            return "refill return of a pick the platform did not make"
        if wh_in["event_id"] != restock_event_id(REFILL_RETURN, plan["plan_id"],
                                                 wh_in["batch_code"]):
            return "refill return whose id is not its pick's"
        return None
    return f"wh_in for '{reason}': only supplier deliveries and refill returns come in"


def provenance_reason(batch: DataFrame, ctx: shell.QueryContext, topics: list[str]) -> DataFrame:
    """The micro-batch with a reason added to every valid `wh_in` of `topics` that is not the
    platform's own (`refusal`); the few receipts of a batch are judged on the driver."""
    candidates = (batch.where(F.col("_source").isin(topics) & F.col(shell.REASON).isNull()
                              & (F.col("event_type") == "wh_in"))
                  .select(*POSITION, "event_id", "store_id", "shelf_id", "batch_code",
                          "quantity", "plan_id", "supplier_order_id", "reason").collect())
    if not candidates:
        return batch
    rows = [r.asDict() for r in candidates]
    stores = sorted({r["store_id"] for r in rows})
    orders = _by_key(ctx, ORDER_TABLE, "order_id", ["shelf_id", "total_qty"], stores,
                     {r["supplier_order_id"] for r in rows if r["supplier_order_id"]})
    plans = _by_key(ctx, PLAN_TABLE, "plan_id", ["shelf_id"], stores,
                    {r["plan_id"] for r in rows if r["plan_id"]})
    refused = [(*(r[c] for c in POSITION), why) for r in rows
               if (why := refusal(r, orders, plans)) is not None]
    if not refused:
        return batch
    reasons = batch.sparkSession.createDataFrame(
        refused, "_source string, _partition int, _offset long, _forged string")
    columns = batch.columns
    flagged = batch.join(F.broadcast(reasons), on=list(POSITION), how="left")
    return shell.append_reason(flagged, F.col("_forged").isNotNull(),
                               F.col("_forged")).select(*columns)


def _by_key(ctx: shell.QueryContext, path: str, key: str, columns: list[str],
            stores: list[str], ids: set[str]) -> dict[tuple, dict]:
    """Rows of a platform table with the given ids, by (store_id, id); only the receipts'
    stores' files are read (the plan table grows by thousands of rows a day per store)."""
    if not ids:
        return {}
    table = delta_reader.read(ctx.delta_root, path, ["store_id", key, *columns], stores=stores,
                              where=pc.field(key).isin(pa.array(sorted(ids), pa.string())))
    return {(row["store_id"], row[key]): row for row in table.to_pylist()}
