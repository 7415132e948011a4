"""Daily discount manager: near-expiry discounts per shelf, decided once per simulated day.

At the first tick of day D (00:00), every shelf whose earliest lot with units expires within the
ladder (`SMART_SHELF_DISCOUNT_LADDER`, days to expiry -> fraction off) gets that day's discount:
a row of `analytics/daily_discounts` and a message on the compacted topic `daily_discounts`,
keyed store|shelf|date so two days of one shelf never collapse; the simulator's shoppers and
tills apply it. The discount is a pure function of the lots and the day, and a day is decided
once, so re-running or replaying a day writes the same rows and never compounds (in the
reference system random draws stacked on every run, and the topic was keyed by shelf alone).

Each discount comes with a `near_expiry_discount` alert: open at D 00:00, resolved when the lot
that earned it has no units left or at the next day's first tick, whichever comes first.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import SparkSession

from smart_shelf_platform.rules.alerts import alert_id
from smart_shelf_platform.rules.expiry import (
    daily_discount, earliest_expiring, parse_discount_ladder,
)
from streaming import shell
from streaming.driver_query import DriverQuery, Outputs, Rows, blank, rows_of, tick_source, utc
from streaming.shelf_lots import LOTS, fold_lot, later, lot_stock, shelf_key

NAME = "daily_discount_manager"
TABLE, TOPIC = "analytics/daily_discounts", "daily_discounts"
TICKS = tick_source("00:00")
# Inputs of a batch apply in simulated-time order; a lot updated at the tick's minute is
# known before the day is decided.
ORDER = {"lot": 0, "tick": 1}


class DailyDiscountManager(DriverQuery):
    name = NAME

    def __init__(self, spark: SparkSession, ctx: shell.QueryContext):
        super().__init__(spark, ctx)
        self.ladder = parse_discount_ladder(ctx.settings.discount_ladder)

    @property
    def sources(self) -> list[shell.EventSource]:
        return [LOTS, TICKS]

    def initial_state(self) -> dict:
        # alerts: shelf key -> the open near_expiry_discount alert of that shelf
        return {"lots": {}, "today": None, "alerts": {}}

    def step(self, state: dict, rows: Rows, batch_id: int) -> Outputs:
        out = Outputs()
        inputs = ([("lot", r["last_update_ts"], r) for r in rows_of(rows, LOTS)]
                  + [("tick", r["sim_time"], r) for r in rows_of(rows, TICKS)])
        for kind, _, row in sorted(inputs, key=lambda i: (utc(i[1]), ORDER[i[0]])):
            if kind == "lot":
                self._lot(state, row, out)
            else:
                self._new_day(state, row, out)
        return out

    def _lot(self, state: dict, row: dict, out: Outputs) -> None:
        if not fold_lot(state["lots"], row):
            return
        alert = state["alerts"].get(shelf_key(row))
        if alert is not None and alert["batch_code"] == row["batch_code"] \
                and row["batch_quantity_store"] == 0:
            self._resolve(state, shelf_key(row), row["last_update_ts"], out)

    def _new_day(self, state: dict, tick: dict, out: Outputs) -> None:
        if state["today"] is not None and tick["sim_date"] <= state["today"]:
            return  # a day is decided once
        state["today"], now = tick["sim_date"], tick["sim_time"]
        for key in sorted(state["alerts"]):  # yesterday's discounts are over
            self._resolve(state, key, now, out)
        today = date.fromisoformat(tick["sim_date"])
        for key in sorted(state["lots"]):
            lots = lot_stock(state["lots"][key])
            discount = daily_discount(lots, today, self.ladder)
            if discount is None:
                continue
            store_id, shelf_id = key.split("|", 1)
            record = {"store_id": store_id, "shelf_id": shelf_id, "discount_date": tick["sim_date"],
                      "discount": discount[0], "days_to_expiry": discount[1], "created_at": now}
            out.write(TABLE, record)
            out.send(TOPIC, record)
            lot = earliest_expiring(lots, today)
            alert = blank("alerts") | {
                "alert_id": alert_id("near_expiry_discount", store_id, shelf_id, "store",
                                     utc(now)),
                "store_id": store_id, "shelf_id": shelf_id,
                "alert_type": "near_expiry_discount", "location": "store", "status": "open",
                "current_stock": lot.quantity, "suggested_qty": 0,
                "batch_code": lot.batch_code, "expiry_date": lot.expiry_date.isoformat(),
                "created_at": now, "updated_at": now}
            state["alerts"][key] = alert
            out.send("alerts", alert)

    @staticmethod
    def _resolve(state: dict, key: str, now: str, out: Outputs) -> None:
        alert = state["alerts"].pop(key)
        out.send("alerts", alert | {"status": "resolved",
                                    "updated_at": later(alert["created_at"], now)})



# Decides once a simulated day; between days it only folds lots, so it runs less often.
QUERY = DailyDiscountManager.spec("shelf lots, first tick of each day -> daily "
                                 "discounts, near-expiry discount alerts", pace=5)


if __name__ == "__main__":
    shell.run_alone(NAME)
