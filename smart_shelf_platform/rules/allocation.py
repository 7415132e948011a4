"""Earliest-expiry-first (FEFO) picking: which lots units come from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Protocol


class LotLike(Protocol):
    """Anything with a lot's code, dates and units (the simulator passes its own lots)."""

    batch_code: str
    received_date: date
    expiry_date: date
    quantity: int


@dataclass(frozen=True)
class LotStock:
    batch_code: str
    received_date: date
    expiry_date: date
    quantity: int


def fefo_order(lot: LotLike) -> tuple:
    """Earliest expiry first, then the oldest received, then the code (a total order, so two
    runs always pick the same lots)."""
    return (lot.expiry_date, lot.received_date, lot.batch_code)


def allocate_fefo(lots: Iterable[LotLike], need: int) -> list[tuple[str, int]]:
    """Up to `need` units from `lots`, FEFO; returns [(batch_code, units)] with units > 0.

    Each lot gives at most what it holds, so a lot is never allocated twice within one call;
    callers that allocate repeatedly must pass the quantities left after earlier allocations.
    """
    if need < 0:
        raise ValueError("cannot allocate a negative quantity")
    picked = []
    for lot in sorted((lot for lot in lots if lot.quantity > 0), key=fefo_order):
        if need == 0:
            break
        units = min(need, lot.quantity)
        picked.append((lot.batch_code, units))
        need -= units
    return picked
