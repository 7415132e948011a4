"""Shelf prices: how weekly promotions and daily near-expiry discounts combine."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

MAX_DISCOUNT = 0.95
CENT = Decimal("0.01")
DISCOUNT_QUANTUM = Decimal("0.0001")


def combined_discount(weekly: float, daily: float) -> float:
    """Discounts stack multiplicatively (30 % then 20 % off is 44 % off), capped at 95 %.

    Used for both the shopper's choice and the receipt, so picking and pricing never disagree
    (in the reference system the two could disagree).
    """
    combined = 1.0 - (1.0 - max(weekly, 0.0)) * (1.0 - max(daily, 0.0))
    return min(max(combined, 0.0), MAX_DISCOUNT)


@lru_cache(maxsize=65536)  # a store prices the same few (qty, price, discount) all day long
def line_total(quantity: int, unit_price: Decimal, discount: float) -> tuple[Decimal, Decimal]:
    """(discount as stored, total) of a receipt line, both rounded half-up like a till."""
    stored = Decimal(str(discount)).quantize(DISCOUNT_QUANTUM, ROUND_HALF_UP)
    total = (unit_price * quantity * (1 - stored)).quantize(CENT, ROUND_HALF_UP)
    return stored, total
