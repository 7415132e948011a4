"""Foot traffic: how many customers come each day, when, and for how long (the reference
system's weekday and time-slot weights and trip durations).

Pure functions of a `random.Random`, so a seed gives the same customers every run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

# Slots as (start minute of day, end minute exclusive). The reference dropped the last minute of
# each slot (ends at HH:59:00); here a slot covers its whole last minute.
SLOTS = ((0, 7 * 60), (7 * 60, 10 * 60), (10 * 60, 14 * 60), (14 * 60, 17 * 60),
         (17 * 60, 20 * 60), (20 * 60, 24 * 60))
# Per weekday, Monday first (Python's weekday()), the reference's slot weights.
SLOT_WEIGHTS = (
    (16, 17, 20, 17, 13, 10),  # Mon
    (12, 15, 21, 17, 14, 9),   # Tue
    (15, 16, 25, 22, 17, 12),  # Wed
    (14, 14, 19, 21, 18, 10),  # Thu
    (19, 17, 25, 24, 23, 15),  # Fri
    (22, 24, 27, 22, 20, 18),  # Sat
    (22, 21, 23, 19, 16, 13),  # Sun
)
AVERAGE_WEIGHT_SUM = 107.7
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class TrafficSettings:
    base_daily_customers: int = 1000
    traffic_multiplier: float = 0.8   # reference default: ~800 customers a day
    daily_variation: float = 0.10


@dataclass(frozen=True)
class Visit:
    entry: datetime
    exit: datetime
    slot: str

    @property
    def minutes(self) -> int:
        return int((self.exit - self.entry).total_seconds() // 60)


def slot_label(slot: int) -> str:
    start, end = SLOTS[slot]
    end -= 1
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def daily_total(day: date, rng: random.Random, cfg: TrafficSettings) -> int:
    weights = SLOT_WEIGHTS[day.weekday()]
    scale = sum(weights) / AVERAGE_WEIGHT_SUM
    variation = rng.uniform(1 - cfg.daily_variation, 1 + cfg.daily_variation)
    return round(cfg.base_daily_customers * scale * cfg.traffic_multiplier * variation)


def allocate_to_slots(total: int, weights: tuple[int, ...]) -> list[int]:
    """Largest-remainder split of `total` customers over the slots."""
    exact = [total * w / sum(weights) for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (exact[i] - counts[i], -i),
                          reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def draw_tiered(rng: random.Random, tiers: tuple[tuple[float, int, int], ...]) -> int:
    """A uniform integer from the first tier (cumulative probability, low, high) the draw hits."""
    r = rng.random()
    for cumulative, low, high in tiers:
        if r < cumulative:
            return rng.randint(low, high)
    _, low, high = tiers[-1]
    return rng.randint(low, high)


# Trip durations, as in the reference system: 35 % short trips, 39 % medium, 26 % long.
TRIP_MINUTES = ((0.35, 10, 29), (0.74, 30, 44), (1.0, 45, 75))


def trip_minutes(rng: random.Random) -> int:
    return draw_tiered(rng, TRIP_MINUTES)


def visits_for_day(day: date, rng: random.Random, cfg: TrafficSettings,
                   not_before: datetime | None = None) -> list[Visit]:
    """The day's visits in arrival order. On the first day, slots already past are skipped and
    the current slot is scaled by what is left of it (as the reference did)."""
    midnight = datetime.combine(day, time(), tzinfo=timezone.utc)
    counts = allocate_to_slots(daily_total(day, rng, cfg), SLOT_WEIGHTS[day.weekday()])
    visits = []
    for slot, ((start, end), count) in enumerate(zip(SLOTS, counts)):
        lo, hi = midnight + timedelta(minutes=start), midnight + timedelta(minutes=end)
        if not_before is not None and not_before > lo:
            if not_before >= hi:
                continue
            count = round(count * (hi - not_before) / (hi - lo))
            lo = not_before
        span = int((hi - lo).total_seconds())
        label = slot_label(slot)
        for _ in range(count):
            entry = lo + timedelta(seconds=rng.randrange(span))
            visits.append(Visit(entry, entry + timedelta(minutes=trip_minutes(rng)), label))
    visits.sort(key=lambda v: v.entry)
    return visits
