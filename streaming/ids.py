"""Deterministic ids of the records the deciders make, one namespace per maker.

An id is uuid5 of the maker's namespace and the parts that make the record what it is, so a
replayed micro-batch makes the same ids, and anyone can tell whether a record carries the id
its maker would have given it (`provenance`).
"""

from __future__ import annotations

import uuid
from datetime import date

SUPPLIER = uuid.UUID("ca3e45cf-31a4-438a-804b-8e7e3e51d53c")  # the supplier manager's records
RESTOCK = uuid.UUID("5b0f7a52-0c1e-5f3a-8d9b-2e4c6a8f1d37")  # the restock manager's events


def supplier_id(*parts: str) -> str:
    """Id of a supplier plan, order, receipt or delivery (`supplier_manager`)."""
    return str(uuid.uuid5(SUPPLIER, ":".join(parts)))


def restock_event_id(*parts: str) -> str:
    """Id of a pick, refill return or removal (`shelf_restock_manager`)."""
    return str(uuid.uuid5(RESTOCK, ":".join(parts)))


def supplier_batch_code(delivery: date, shelf_id: str) -> str:
    """The lot a supplier order delivers: one per shelf and delivery day, so a lot's code names
    the order behind it (`provenance.KnownLots`)."""
    return f"SUP-{delivery:%Y%m%d}-{shelf_id}"
