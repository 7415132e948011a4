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

Lots have a provenance too: a shelf can only sell a lot the reference data put in the store or
a supplier order of the platform's delivered to that shelf (`ids.supplier_batch_code`). A
receipt line naming any other lot is refused whole (`KnownLots`): taking its units off a lot
that never existed would leave the shelf's lots short of what the ledger has. The order is
in the orders table before its delivery is published, so before any shelf could sell the lot.
"""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from smart_shelf_platform import delta_reader
from smart_shelf_platform.contracts.events import REFILL_RETURN
from streaming import reference, shell
from streaming.contract_checks import REASON, append_reason
from streaming.ids import restock_event_id, supplier_batch_code, supplier_id

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
    candidates = (batch.where(F.col("_source").isin(topics) & F.col(REASON).isNull()
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
    return append_reason(flagged, F.col("_forged").isNotNull(),
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


Lot = tuple[str, str, str]  # (store_id, shelf_id, batch_code)


def unknown_lots(named: set[Lot], known: set[Lot], orders: list[dict]) -> set[Lot]:
    """The lots of `named` that are neither `known` (the reference data's) nor delivered by one
    of `orders` (rows with store_id, shelf_id and delivery_date)."""
    delivered = {(o["store_id"], o["shelf_id"],
                  supplier_batch_code(date.fromisoformat(str(o["delivery_date"])), o["shelf_id"]))
                 for o in orders}
    return named - known - delivered


class KnownLots:
    """The verify hook of `pos_transactions`: receipts whose lines name a lot the shelf could
    never have held get the reason `unknown lot in items[]: <shelf>/<lot>`. Lots found genuine
    are remembered for the process's life, so a batch reads the orders table only for lots
    it has not seen before."""

    def __init__(self) -> None:
        self.known: set[Lot] = set()
        self.source: tuple = ()  # the Delta root and reference data `known` was found in

    def _with_reference_lots(self, ctx: shell.QueryContext) -> None:
        source = (ctx.delta_root, reference.reference_version(ctx.settings))
        if source != self.source:  # other tables, or reference data made again: start afresh
            self.known, self.source = reference.known_lots(ctx.settings), source

    def __call__(self, batch: DataFrame, ctx: shell.QueryContext,
                 topics: list[str]) -> DataFrame:
        lines = (batch.where(F.col("_source").isin(topics) & F.col(REASON).isNull()
                             & F.col("items").isNotNull())
                 .select(*POSITION, "store_id", F.explode("items").alias("line"))
                 .select(*POSITION, "store_id", F.col("line.shelf_id").alias("shelf_id"),
                         F.col("line.batch_code").alias("batch_code"))
                 .where(F.col("batch_code").isNotNull()))
        named = {(r["store_id"], r["shelf_id"], r["batch_code"])
                 for r in lines.select("store_id", "shelf_id", "batch_code").distinct().collect()}
        self._with_reference_lots(ctx)
        new = named - self.known
        if not new:
            return batch
        stores = sorted({lot[0] for lot in new})
        orders = delta_reader.read(
            ctx.delta_root, ORDER_TABLE, ["store_id", "shelf_id", "delivery_date"], stores=stores,
            where=pc.field("shelf_id").isin(pa.array(sorted({lot[1] for lot in new}),
                                                     pa.string()))).to_pylist()
        unknown = unknown_lots(new, set(), orders)
        self.known |= new - unknown
        if not unknown:
            return batch
        strangers = batch.sparkSession.createDataFrame(
            sorted(unknown), "store_id string, shelf_id string, batch_code string")
        reasons = (lines.join(F.broadcast(strangers), ["store_id", "shelf_id", "batch_code"])
                   .groupBy(*POSITION)
                   .agg(F.array_join(F.array_sort(F.collect_set(
                       F.concat_ws("/", "shelf_id", "batch_code"))), ", ").alias("_lots")))
        columns = batch.columns
        flagged = batch.join(F.broadcast(reasons), on=list(POSITION), how="left")
        return append_reason(flagged, F.col("_lots").isNotNull(), F.concat(
            F.lit("unknown lot in items[]: "), F.col("_lots"))).select(*columns)
