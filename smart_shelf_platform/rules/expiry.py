"""Expiry rules: near-expiry alerts, the daily discount ladder and expired lots.

Only lots that still hold units count (REFERENCE 11 item 14: the reference looked at empty lots
too), and discounts come from a fixed ladder instead of a random draw that compounded on every
re-run (REFERENCE 6.12).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from smart_shelf_platform.rules.allocation import LotStock

NEAR_EXPIRY_DAYS_STORE = 5
NEAR_EXPIRY_DAYS_WAREHOUSE = 10
# days until the earliest lot expires -> discount; expiring today 50 %, tomorrow 30 %.
DEFAULT_DISCOUNT_LADDER: Mapping[int, float] = {0: 0.50, 1: 0.30}


def days_to_expiry(lot: LotStock, today: date) -> int:
    return (lot.expiry_date - today).days


def earliest_expiring(lots: Iterable[LotStock], today: date) -> LotStock | None:
    """The lot with units that expires first and has not expired yet."""
    live = [lot for lot in lots if lot.quantity > 0 and lot.expiry_date >= today]
    return min(live, key=lambda lot: (lot.expiry_date, lot.batch_code), default=None)


def near_expiry(lots: Iterable[LotStock], today: date, window_days: int) -> LotStock | None:
    """The earliest lot with units expiring within `window_days` (0 = today), if any."""
    lot = earliest_expiring(lots, today)
    return lot if lot is not None and days_to_expiry(lot, today) <= window_days else None


def daily_discount(lots: Iterable[LotStock], today: date,
                   ladder: Mapping[int, float] = DEFAULT_DISCOUNT_LADDER) -> tuple[float, int] | None:
    """(discount, days to expiry) for a shelf today, from its earliest lot with units, or None.

    A pure function of the lots and the day: running it twice gives the same discount, never a
    compounded one.
    """
    lot = earliest_expiring(lots, today)
    if lot is None:
        return None
    days = days_to_expiry(lot, today)
    return (ladder[days], days) if days in ladder else None


def expired_lots(lots: Iterable[LotStock], today: date) -> list[LotStock]:
    """Lots with units whose expiry date has passed (removed the morning after they expire)."""
    return [lot for lot in lots if lot.quantity > 0 and lot.expiry_date < today]
