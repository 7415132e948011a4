"""How a net movement of units changes a stock (the reference system let shelf and warehouse
stock go negative and past the shelf's capacity; here a stock stays within [0, capacity])."""

from __future__ import annotations


def folded_stock(current: int, delta: int, capacity: int | None = None) -> int:
    """Units after moving `delta` (signed): never below zero, never above `capacity` (a shelf's
    or warehouse slot's maximum; lots have none)."""
    units = current + delta
    if capacity is not None:
        units = min(units, capacity)
    return max(units, 0)
