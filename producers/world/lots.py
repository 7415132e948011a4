"""Lots of one product in one place (a shelf or the warehouse), taken earliest expiry first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from smart_shelf_platform.rules.allocation import allocate_fefo


@dataclass
class Lot:
    batch_code: str
    received_date: date
    expiry_date: date
    quantity: int


class Lots:
    """The lots of one product in one place. Quantities never go below zero."""

    __slots__ = ("by_code", "total")

    def __init__(self) -> None:
        self.by_code: dict[str, Lot] = {}
        self.total = 0

    def add(self, batch_code: str, received: date, expiry: date, quantity: int) -> None:
        if quantity < 0:
            raise ValueError("cannot add a negative quantity")
        lot = self.by_code.get(batch_code)
        if lot is None:
            self.by_code[batch_code] = Lot(batch_code, received, expiry, quantity)
        else:
            lot.quantity += quantity
        self.total += quantity

    def take_fefo(self, quantity: int) -> list[tuple[str, int]]:
        """Take up to `quantity` units, earliest expiry first (the platform's own FEFO rule);
        returns [(batch_code, units)] actually taken."""
        taken = allocate_fefo(self.by_code.values(), quantity)
        for batch_code, units in taken:
            self.by_code[batch_code].quantity -= units
            self.total -= units
        return taken

    def remove(self, batch_code: str, quantity: int) -> int:
        """Remove up to `quantity` units of one lot; returns the units removed."""
        lot = self.by_code.get(batch_code)
        units = min(quantity, lot.quantity) if lot else 0
        if lot:
            lot.quantity -= units
            self.total -= units
        return units

    def expired(self, today: date) -> list[Lot]:
        """Lots with units whose expiry date is before `today`."""
        return [lot for lot in self.by_code.values() if lot.quantity > 0 and lot.expiry_date < today]
