"""What a supplier cutoff's forecast must cover: its origin, lead days and protection interval.

An order placed at cutoff C arrives at C's delivery slot S; the next cutoff's order arrives at
the slot S' after it. The order placed now must cover the shoppers' demand from S to S': the
**protection interval**. What sells between C and S (the **lead days**) comes out of the stock on
hand before the order arrives, so the order-up-to rule needs that forecast too.

The features are daily, so the arithmetic is in whole simulated days:
- origin: the last complete day at C (the day before C's; C's own day is still running);
- lead days: from C's day up to the day before S's day;
- interval days: from S's day up to the day before S''s day.

On the default schedule (cutoffs Sun/Tue/Thu 12:00, slots Mon/Wed/Fri 08:00):
    cutoff Sun 12:00: origin Sat, lead Sun, interval Mon-Tue
    cutoff Tue 12:00: origin Mon, lead Tue, interval Wed-Thu
    cutoff Thu 12:00: origin Wed, lead Thu, interval Fri-Sun
The day of a slot counts wholly in the interval it opens (the demand before 08:00 of that day is
counted in the interval and not in the lead; with slots at 08:00 the two errors nearly cancel).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from smart_shelf_platform.rules.supplier import SupplierSchedule
from smart_shelf_platform.settings import Settings

DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)


def schedule_from(settings: Settings) -> SupplierSchedule:
    return SupplierSchedule.parse(settings.supplier_cutoff_days, settings.supplier_cutoff_time,
                                  settings.supplier_delivery_days,
                                  settings.supplier_delivery_time)


@dataclass(frozen=True)
class CutoffWindow:
    """One cutoff's days: see the module docstring."""

    cutoff: datetime
    slot: datetime
    next_slot: datetime

    @property
    def origin(self) -> date:
        return self.cutoff.date() - DAY

    @property
    def lead_days(self) -> list[date]:
        return _days(self.cutoff.date(), self.slot.date())

    @property
    def interval_days(self) -> list[date]:
        return _days(self.slot.date(), self.next_slot.date())

    @property
    def horizon(self) -> int:
        """Days from the origin to the interval's last day."""
        return (self.next_slot.date() - DAY - self.origin).days


def _days(first: date, end: date) -> list[date]:
    return [first + i * DAY for i in range((end - first).days)]


def cutoff_window(schedule: SupplierSchedule, cutoff: datetime) -> CutoffWindow:
    """The window of the cutoff at `cutoff` (which must be one of the schedule's cutoffs)."""
    if not schedule.is_cutoff(cutoff):
        raise ValueError(f"{cutoff.isoformat()} is not a supplier cutoff of the schedule")
    slot = schedule.next_delivery(cutoff)
    next_cutoff = schedule.next_cutoff(cutoff + MINUTE)
    next_slot = schedule.next_delivery(next_cutoff)
    if next_slot.date() <= slot.date():
        raise ValueError(f"the cutoffs at {cutoff.isoformat()} and {next_cutoff.isoformat()} "
                         f"deliver on the same day: their interval is empty")
    return CutoffWindow(cutoff, slot, next_slot)


def cutoffs_between(schedule: SupplierSchedule, start: datetime, end: datetime) -> list[datetime]:
    """Every cutoff in [start, end]."""
    found, moment = [], schedule.next_cutoff(start)
    while moment <= end:
        found.append(moment)
        moment = schedule.next_cutoff(moment + MINUTE)
    return found


def max_horizon(schedule: SupplierSchedule, around: datetime) -> int:
    """The longest horizon of any cutoff in the week from `around` (the schedule is weekly)."""
    return max(cutoff_window(schedule, c).horizon
               for c in cutoffs_between(schedule, around, around + 7 * DAY))
