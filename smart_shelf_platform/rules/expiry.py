"""Expiry rules: near-expiry alerts, the daily discount ladder and expired lots.

Only lots that still hold units count (the reference system looked at empty lots too), and
discounts come from a fixed ladder instead of a random draw that compounded on every re-run (see
docs/behaviour.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from smart_shelf_platform.rules.allocation import LotStock
from smart_shelf_platform.rules.pricing import MAX_DISCOUNT

NEAR_EXPIRY_DAYS_STORE = 5
NEAR_EXPIRY_DAYS_WAREHOUSE = 10
# days until the earliest lot expires -> discount; expiring today 50 %, tomorrow 30 %.
DEFAULT_DISCOUNT_LADDER: Mapping[int, float] = {0: 0.50, 1: 0.30}


def parse_discount_ladder(text: str) -> dict[int, float]:
    """The ladder from its setting, "days:fraction" pairs separated by commas ("0:0.50,1:0.30").

    Days to expiry are whole days from 0 (expires today); fractions, kept to four decimals (the
    precision discounts are stored with), lie in (0, MAX_DISCOUNT]; at least one step. Anything
    else is a ValueError naming the bad entry, so a typo stops the platform at start instead of
    pricing wrongly.
    """
    ladder: dict[int, float] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        days_text, _, fraction_text = entry.partition(":")
        try:
            days, fraction = int(days_text), round(float(fraction_text), 4)
        except ValueError:
            raise ValueError(f"discount ladder entry {entry!r} is not days:fraction, "
                             f"e.g. 0:0.50") from None
        if days < 0:
            raise ValueError(f"discount ladder entry {entry!r}: days to expiry must be >= 0")
        if not 0 < fraction <= MAX_DISCOUNT:
            raise ValueError(f"discount ladder entry {entry!r}: the fraction must be above 0 "
                             f"and at most {MAX_DISCOUNT}")
        if days in ladder:
            raise ValueError(f"discount ladder names {days} days to expiry twice")
        ladder[days] = fraction
    if not ladder:
        raise ValueError("the discount ladder is empty: give days:fraction pairs, e.g. 0:0.50")
    return ladder


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
