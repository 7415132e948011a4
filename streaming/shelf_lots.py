"""Shelf lots as the expiry queries (daily discounts, removals) keep them in their driver state.

Folded from the compacted `shelf_batch_state` topic, newest version per lot: a state batch
replayed after a crash republishes older versions, which must not undo newer ones. Empty lots
stay (with their version) for the same reason.
"""

from __future__ import annotations

from datetime import date

from smart_shelf_platform.contracts.state import SHELF_BATCH_STATE
from smart_shelf_platform.rules.allocation import LotStock
from streaming import shell
from streaming.driver_query import utc

# The shelf alert engine reads this topic too and reports its bad records.
LOTS = shell.EventSource("shelf_batch_state", SHELF_BATCH_STATE, dead_letters=False)


def shelf_key(row: dict) -> str:
    return f"{row['store_id']}|{row['shelf_id']}"


def fold_lot(lots: dict[str, dict], row: dict) -> bool:
    """Apply one `shelf_batch_state` row to {shelf key: {batch code: lot}}; False if stale."""
    shelf = lots.setdefault(shelf_key(row), {})
    lot = shelf.get(row["batch_code"])
    if lot is not None and row["version"] < lot["version"]:
        return False
    shelf[row["batch_code"]] = {"received": row["received_date"], "expiry": row["expiry_date"],
                                "qty": row["batch_quantity_store"], "version": row["version"]}
    return True


def lot_stock(shelf_lots: dict[str, dict]) -> list[LotStock]:
    return [LotStock(code, date.fromisoformat(lot["received"]), date.fromisoformat(lot["expiry"]),
                     lot["qty"]) for code, lot in sorted(shelf_lots.items())]


def later(first: str, second: str) -> str:
    """The later of two ISO times: inputs of different topics arrive in no common order."""
    return second if utc(second) > utc(first) else first
