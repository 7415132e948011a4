"""Shelf restocking: when a plan is picked, which warehouse lots it takes, when units arrive.

The reference system's restocking with its flaws fixed: a plan younger than the handling delay
waits for a later clock tick instead of being dropped, lots are picked earliest-expiry-first
from what is left after earlier picks (never twice), expired lots are never picked, and the
refill reaches the shelf a fixed delay after the pick, released by the clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from smart_shelf_platform.rules.allocation import LotLike, allocate_fefo

DEFAULT_HANDLING = timedelta(seconds=60)
DEFAULT_REFILL_DELAY = timedelta(minutes=3)


def plan_due(created_at: datetime, handling: timedelta = DEFAULT_HANDLING) -> datetime:
    """The earliest simulated time a restock plan may be picked."""
    return created_at + handling


def plan_ready(created_at: datetime, at: datetime, handling: timedelta = DEFAULT_HANDLING, *,
               in_rounds: bool = False) -> bool:
    """Whether a restock plan may be picked at `at`: its handling delay is over and, when the
    platform decides in rounds, `at` is a later round than the one that made the plan (the
    manager may not have the plan yet at that round's tick; at the next round it has it)."""
    return plan_due(created_at, handling) <= at and (not in_rounds or created_at < at)


def pickable(lot: LotLike, today: date) -> bool:
    """A lot with units that has not expired (it may expire today)."""
    return lot.quantity > 0 and lot.expiry_date >= today


def pick_for_plan(lots: Iterable[LotLike], need: int, today: date) -> list[tuple[str, int]]:
    """[(batch_code, units)] for a plan needing `need` units: FEFO over the pickable lots.
    Fewer units than needed when the warehouse is short; none when it is empty."""
    return allocate_fefo([lot for lot in lots if pickable(lot, today)], need)


def refill_due(picked_at: datetime, delay: timedelta = DEFAULT_REFILL_DELAY) -> datetime:
    """When units picked from the warehouse are put on the shelf."""
    return picked_at + delay
