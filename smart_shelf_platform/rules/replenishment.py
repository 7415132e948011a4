"""When a shelf needs a refill and how much, when the warehouse needs an order and how much.

The reference system's refill and reorder rules with its flaws fixed: the most specific active
policy wins (it cross-joined every shelf with the store-wide row too), a shelf with a plan in
flight is not planned again, and supplier orders count what is already on its way. The reference
system's own supplier rule is kept too (`reference_supplier_order_quantity`), to measure ours
against it (docs/behaviour.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_THRESHOLD_PCT = 30.0
DEFAULT_MIN_QTY = 1
DEFAULT_TARGET_PCT = 80.0


@dataclass(frozen=True)
class PolicyScope:
    shelf_id: str | None
    item_category: str | None
    item_subcategory: str | None

    def matches(self, shelf_id: str, category: str, subcategory: str) -> bool:
        return ((self.shelf_id in (None, shelf_id))
                and (self.item_category in (None, category))
                and (self.item_subcategory in (None, subcategory)))

    @property
    def specificity(self) -> int:
        """shelf > subcategory > category > store-wide."""
        if self.shelf_id is not None:
            return 3
        if self.item_subcategory is not None:
            return 2
        return 1 if self.item_category is not None else 0


def most_specific(policies: Iterable[tuple[PolicyScope, object]], shelf_id: str,
                  category: str, subcategory: str):
    """The value of the most specific matching policy, or None when none matches."""
    best, best_rank = None, -1
    for scope, value in policies:
        if scope.matches(shelf_id, category, subcategory) and scope.specificity > best_rank:
            best, best_rank = value, scope.specificity
    return best


@dataclass(frozen=True)
class ShelfPolicy:
    threshold_pct: float = DEFAULT_THRESHOLD_PCT
    min_qty: int = DEFAULT_MIN_QTY
    target_pct: float = DEFAULT_TARGET_PCT


def stock_pct(current: int, maximum: int) -> float:
    return 100.0 * current / maximum if maximum > 0 else 0.0


def needs_refill(current: int, maximum: int, policy: ShelfPolicy) -> bool:
    """Below the threshold percentage of the shelf, or below the minimum quantity."""
    return stock_pct(current, maximum) < policy.threshold_pct or current < policy.min_qty


def refill_quantity(current: int, maximum: int, policy: ShelfPolicy, in_carts: int = 0) -> int:
    """Units that bring the shelf up to the target percentage, leaving room for the units
    shoppers hold in their carts (they may put them back): never above its capacity."""
    target = min(maximum, math.ceil(maximum * policy.target_pct / 100.0))
    return max(0, min(target - current, maximum - current - max(in_carts, 0)))


def plan_refill(current: int, maximum: int, policy: ShelfPolicy, plan_in_flight: bool,
                in_carts: int = 0) -> int:
    """Units to plan now: 0 when no refill is due or a plan for the shelf is still in flight
    (one plan per shelf; later low-stock updates must not plan again)."""
    if plan_in_flight or not needs_refill(current, maximum, policy):
        return 0
    return refill_quantity(current, maximum, policy, in_carts)


def default_reorder_point(warehouse_capacity: int) -> int:
    """The default warehouse policy: 5 % of capacity, at least one unit."""
    return max(1, int(0.05 * warehouse_capacity))


def needs_supplier_order(on_hand: int, in_transit: int, reorder_point: int) -> bool:
    """Order when what is on hand plus what is already ordered falls below the reorder point."""
    return on_hand + in_transit < reorder_point


def supplier_order_quantity(on_hand: int, in_transit: int, reorder_point: int,
                            capacity: int, batch_size: int) -> int:
    """Whole batches that lift stock (on hand + in transit) to at least the reorder point plus
    one batch, never beyond the warehouse's free capacity. 0 when no order is due."""
    if batch_size <= 0:
        raise ValueError("standard batch size must be positive")
    if not needs_supplier_order(on_hand, in_transit, reorder_point):
        return 0
    gap = reorder_point + batch_size - (on_hand + in_transit)
    batches = math.ceil(gap / batch_size)
    free_batches = max(0, capacity - on_hand - in_transit) // batch_size
    return min(batches, free_batches) * batch_size


def reference_supplier_order_quantity(on_hand: int, reorder_point: int, batch_size: int) -> int:
    """The reference system's rule (`SMART_SHELF_SUPPLIER_RULE=reference`): below the reorder point,
    its gap rounded up to whole batches (usually one); what is already ordered is not counted.
    0 when no order is due."""
    if batch_size <= 0:
        raise ValueError("standard batch size must be positive")
    if on_hand >= reorder_point:
        return 0
    return math.ceil((reorder_point - on_hand) / batch_size) * batch_size
