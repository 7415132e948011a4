"""Persist the simulator's ground truth to Postgres `sim.*` (the oracle `verify` compares with).

Only rows that changed since the last save are written, as upserts, in one transaction together
with the position, so the saved ledger is always exact for the saved `sim_time`. Waste (expired
units removed per shelf and day) is saved the same way. Carts are the
exception: few and short-lived, a store's are replaced whole at every save.
"""

from __future__ import annotations

from datetime import datetime, timezone

import psycopg

from producers.bad_events import BadEvent
from producers.world.store import StoreWorld
from smart_shelf_platform.contracts.catalogue import POSTGRES_TABLES_BY_NAME
from smart_shelf_platform.contracts.types import Record


def _record(table: str) -> Record:
    return POSTGRES_TABLES_BY_NAME[table].record


def _insert_sql(table: str) -> str:
    cols = _record(table).field_names
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"


def _upsert_sql(table: str) -> str:
    record = _record(table)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in record.field_names
                        if c not in record.key)
    return (f"{_insert_sql(table)} "
            f"ON CONFLICT ({', '.join(record.key)}) DO UPDATE SET {updates}")


def _cart_lots(world: StoreWorld) -> dict[tuple[str, str], int]:
    """Units in all carts of the store per (shelf, batch)."""
    lots: dict[tuple[str, str], int] = {}
    for customer in world.customers.values():
        for shelf_id, held in customer.cart.items():
            for batch, units in held:
                lots[shelf_id, batch] = lots.get((shelf_id, batch), 0) + units
    return lots


class Ledger:
    def __init__(self, dsn: str):
        self.conn = psycopg.connect(dsn)

    def reset(self, store_ids: list[str]) -> None:
        with self.conn.transaction():
            for table in ("ledger_shelf_lots", "ledger_wh_lots", "ledger_cart_lots",
                          "ledger_daily_sales", "ledger_daily_waste", "ledger_bad_events",
                          "ledger_position"):
                self.conn.execute(f"DELETE FROM sim.{table} WHERE store_id = ANY(%s)",
                                  (store_ids,))

    def save(self, world: StoreWorld, sim_time: datetime, seed: int, events_emitted: int,
             customers: int, finished: bool, bad_events: list[BadEvent]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            for table, places, dirty in (("sim.ledger_shelf_lots", world.shelves, world.dirty_shelf),
                                         ("sim.ledger_wh_lots", world.warehouse, world.dirty_wh)):
                rows = []
                for shelf_id, batch in sorted(dirty):
                    lot = places[shelf_id].by_code.get(batch)
                    if lot is None:
                        continue
                    rows.append((world.store_id, shelf_id, batch, lot.received_date,
                                 lot.expiry_date, lot.quantity, sim_time))
                cur.executemany(_upsert_sql(table), rows)
            cur.execute("DELETE FROM sim.ledger_cart_lots WHERE store_id = %s", (world.store_id,))
            cur.executemany(_insert_sql("sim.ledger_cart_lots"), [
                (world.store_id, shelf_id, batch, units, sim_time)
                for (shelf_id, batch), units in sorted(_cart_lots(world).items())])
            cur.executemany(_upsert_sql("sim.ledger_daily_sales"), [
                (world.store_id, shelf_id, day, d.sold, d.lost_units, d.lost_attempts, sim_time,
                 d.lost_units_wh_empty)
                for (shelf_id, day), d in sorted(
                    (k, world.daily[k]) for k in world.dirty_daily)])
            cur.executemany(_upsert_sql("sim.ledger_daily_waste"), [
                (world.store_id, shelf_id, day, w.shelf_units, w.warehouse_units, sim_time)
                for (shelf_id, day), w in sorted(
                    (k, world.waste[k]) for k in world.dirty_waste)])
            cur.executemany(_upsert_sql("sim.ledger_bad_events"), [
                (world.store_id, b.bad_event_id, b.topic, b.defect, b.event_id,
                 b.payload.decode("utf-8", "replace"), sim_time) for b in bad_events])
            cur.execute(_upsert_sql("sim.ledger_position"), (
                world.store_id, seed, sim_time, events_emitted, customers, finished,
                datetime.now(timezone.utc)))
        world.dirty_shelf.clear()
        world.dirty_wh.clear()
        world.dirty_daily.clear()
        world.dirty_waste.clear()

    def close(self) -> None:
        self.conn.close()
