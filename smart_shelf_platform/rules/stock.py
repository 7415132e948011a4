"""How a net movement of units changes a stock (REFERENCE 11 items 6 and 9: the reference let
shelf and warehouse stock go negative and past the shelf's capacity)."""

from __future__ import annotations


def folded_stock(current: int, delta: int, capacity: int | None = None) -> int:
    """Units after moving `delta` (signed): never below zero, never above `capacity` (a shelf's
    or warehouse slot's maximum; lots have none)."""
    units = current + delta
    if capacity is not None:
        units = min(units, capacity)
    return max(units, 0)
