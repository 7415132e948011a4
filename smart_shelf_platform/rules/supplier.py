"""Supplier ordering: when orders are placed and delivered, how many units, how long lots keep.

The reference system's ordering with two flaws fixed: an order counts what is already on its
way against the warehouse's free capacity, and a delivered lot expires after the shelf life of
its product's kind (days for fish, not the reference system's flat year), learned from the
reference lots.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

# A forecast row made by the model (`ml.forecast`); any other method is a fallback.
MODEL_METHOD = "model"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# A subcategory with fewer reference lots than this takes its category's shelf life: one odd
# lot (a perishable drawn two days from expiry) must not decide for every delivery.
MIN_LOTS_PER_SUBCATEGORY = 5


def parse_weekdays(text: str) -> frozenset[int]:
    """"Sun,Tue,Thu" -> {6, 1, 3} (Monday = 0, as `datetime.weekday`)."""
    return frozenset(WEEKDAYS.index(day.strip()) for day in text.split(","))


@dataclass(frozen=True)
class SupplierSchedule:
    """Weekly cutoffs (orders are placed) and delivery slots (orders arrive), in UTC."""

    cutoff_days: frozenset[int]
    cutoff_time: time
    delivery_days: frozenset[int]
    delivery_time: time

    @classmethod
    def parse(cls, cutoff_days: str, cutoff_time: str, delivery_days: str,
              delivery_time: str) -> SupplierSchedule:
        return cls(parse_weekdays(cutoff_days), time.fromisoformat(cutoff_time),
                   parse_weekdays(delivery_days), time.fromisoformat(delivery_time))

    def next_cutoff(self, moment: datetime) -> datetime:
        """The first cutoff at or after `moment`."""
        return _next(self.cutoff_days, self.cutoff_time, moment, inclusive=True)

    def next_delivery(self, moment: datetime) -> datetime:
        """The first delivery slot strictly after `moment` (a cutoff's slot)."""
        return _next(self.delivery_days, self.delivery_time, moment, inclusive=False)

    def is_cutoff(self, minute: datetime) -> bool:
        return self.next_cutoff(minute) == minute

    def is_delivery(self, minute: datetime) -> bool:
        return _next(self.delivery_days, self.delivery_time, minute, inclusive=True) == minute


def _next(days: frozenset[int], at: time, moment: datetime, *, inclusive: bool) -> datetime:
    for offset in range(8):
        candidate = datetime.combine(moment.date() + timedelta(days=offset), at,
                                     tzinfo=moment.tzinfo)
        if candidate.weekday() in days and (candidate > moment or
                                            (inclusive and candidate == moment)):
            return candidate
    raise ValueError("a schedule needs at least one weekday")


def order_quantity(requested: int, batch_size: int, capacity: int, on_hand: int,
                   in_transit: int) -> int:
    """Units to order: `requested` rounded up to whole batches, cut to the whole batches that
    fit in the free capacity (capacity - on hand - units already on their way)."""
    if batch_size <= 0:
        raise ValueError("standard batch size must be positive")
    wanted = math.ceil(max(0, requested) / batch_size)
    fitting = max(0, capacity - on_hand - in_transit) // batch_size
    return min(wanted, fitting) * batch_size


@dataclass(frozen=True)
class ShelfLife:
    """Days from receipt to expiry of a delivered lot, per product subcategory and category."""

    by_subcategory: dict[tuple[str, str], int]
    by_category: dict[str, int]

    @classmethod
    def from_lots(cls, lots: Iterable[tuple[str, str, date, date]]) -> ShelfLife:
        """From (category, subcategory, received, expiry) of reference lots: the median span
        (the lower middle value, so it is a span some lot really had), at least one day."""
        spans: dict[tuple[str, str], list[int]] = defaultdict(list)
        for category, subcategory, received, expiry in lots:
            spans[(category, subcategory)].append((expiry - received).days)
        per_category: dict[str, list[int]] = defaultdict(list)
        for (category, _), days in spans.items():
            per_category[category] += days
        return cls({kind: _median(days) for kind, days in spans.items()
                    if len(days) >= MIN_LOTS_PER_SUBCATEGORY},
                   {category: _median(days) for category, days in per_category.items()})

    def days(self, category: str, subcategory: str) -> int:
        if (category, subcategory) in self.by_subcategory:
            return self.by_subcategory[(category, subcategory)]
        if category in self.by_category:
            return self.by_category[category]
        raise KeyError(f"no reference lots of category {category!r}: its shelf life is unknown")

    def expiry(self, category: str, subcategory: str, received: date) -> date:
        return received + timedelta(days=self.days(category, subcategory))


def _median(days: list[int]) -> int:
    return max(1, statistics.median_low(days))


def order_up_to_units(target: float, shelf_on_hand: int, wh_on_hand: int, on_order: int,
                      lead_demand: float, batch_size: int, wh_capacity: int,
                      sellable_before_expiry: float | None = None) -> int:
    """Units a forecast orders at a cutoff (an order-up-to policy in whole batches).

    `target` is the chosen quantile of the protection interval's demand; the inventory position
    when the order arrives is what will still be on hand (shelf and warehouse, less the demand
    expected before the delivery, `lead_demand`, and never below zero) plus what is on order. The order tops the position up
    to the target, rounded up to whole standard batches and cut to the batches that fit in the
    warehouse's free capacity (`order_quantity`). A perishable product's target is capped by what
    can sell before a new lot expires (`sellable_before_expiry`), so the order does not buy waste.
    """
    if sellable_before_expiry is not None:
        target = min(target, sellable_before_expiry)
    position = max(0.0, shelf_on_hand + wh_on_hand - lead_demand) + on_order
    requested = math.ceil(max(0.0, target - position))
    return order_quantity(requested, batch_size, wh_capacity, wh_on_hand, on_order)


@dataclass(frozen=True)
class CutoffChoice:
    """Who orders one shelf at a cutoff under `SMART_SHELF_SUPPLIER_RULE=forecast`."""

    source: str  # "model": the forecast decides; "rule": the rule's pending plans stand
    canceled: tuple[str, ...]  # the pending plans the model's decision replaces
    model_units: int  # units of the model's plan (0: the model orders nothing)


def forecast_or_rule(pending_plan_ids: Sequence[str], forecast_method: str | None,
                     forecast_units: int) -> CutoffChoice:
    """The model orders a shelf when the cutoff's forecast of it is the model's: its order (none
    when 0) replaces the shelf's pending plans (the rule's, or an earlier cutoff's model plan the
    warehouse had no room for: the forecast counts what is on hand and on order), which are
    canceled, so a shelf is ordered once per cutoff and never by both. The pending plans stand
    when the shelf has no forecast for the cutoff (its run did not land in time) or only a
    fallback (no champion model, too little history): the platform never waits on a forecast
    it cannot use."""
    if forecast_method != MODEL_METHOD:
        return CutoffChoice("rule", (), 0)
    return CutoffChoice("model", tuple(pending_plan_ids), max(0, int(forecast_units)))
