"""Daily and cutoff partitions (simulated time, UTC) and which days feed which cutoff.

- `daily_partitions(sim_start)`: one partition per simulated day, keys `2026-01-01`, from the day
  the simulation starts.
- `cutoff_partitions(sim_start, cron)`: one partition per supplier cutoff, by default Sun/Tue/Thu
  12:00 (`0 12 * * 0,2,4`; `cutoff_cron` makes the cron of the configured schedule), keys
  `2026-01-06-12:00`; the key is the cutoff instant.
- `DailyToCutoffPartitionMapping`: a day feeds the first cutoff at or after the day's end, so a
  cutoff is fed by every complete day since the previous cutoff's day, and never by the day it
  falls on (at 12:00 that day is still running):
    cutoff Sun 01-04 12:00 <- Thu 01-01, Fri 01-02, Sat 01-03
    cutoff Tue 01-06 12:00 <- Sun 01-04, Mon 01-05
    cutoff Thu 01-08 12:00 <- Tue 01-06, Wed 01-07

Dagster's `TimeWindowPartitionMapping` cannot say this: it maps a window to every overlapping
day, and even shifted by one cutoff (offsets -1/-1) [Sun 12:00, Tue 12:00) overlaps Sun, Mon *and*
Tue. Hence the small custom mapping. Non-built-in mappings are not sent to the webserver and
daemon (they fall back to the overlap mapping there), so the runs for cutoffs must be requested
explicitly by partition key (the sim-clock sensor), not left to declarative automation.

Factories, not module-level objects: the start comes from settings, read when definitions load.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Optional

import dagster as dg
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.definitions.partitions.mapping.partition_mapping import UpstreamPartitionsResult

from smart_shelf_platform.rules.supplier import SupplierSchedule

if TYPE_CHECKING:
    from dagster._core.instance import DynamicPartitionsStore

TIMEZONE = "UTC"
DAILY_CRON = "0 0 * * *"
CUTOFF_CRON = "0 12 * * 0,2,4"
DAILY_KEY_FORMAT = "%Y-%m-%d"
CUTOFF_KEY_FORMAT = "%Y-%m-%d-%H:%M"
DAY = timedelta(days=1)


def _start_of_day(sim_start: datetime) -> datetime:
    utc = sim_start.astimezone(timezone.utc) if sim_start.tzinfo else sim_start
    return datetime.combine(utc.date(), time(0), tzinfo=timezone.utc)


def daily_partitions(sim_start: datetime) -> dg.TimeWindowPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=_start_of_day(sim_start).strftime(DAILY_KEY_FORMAT), timezone=TIMEZONE)


def cutoff_cron(schedule: SupplierSchedule) -> str:
    """The schedule's cutoffs as a cron expression (cron counts weekdays from Sunday = 0)."""
    days = ",".join(str(d) for d in sorted((d + 1) % 7 for d in schedule.cutoff_days))
    return f"{schedule.cutoff_time.minute} {schedule.cutoff_time.hour} * * {days}"


def cutoff_partitions(sim_start: datetime,
                      cron: str = CUTOFF_CRON) -> dg.TimeWindowPartitionsDefinition:
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=cron, start=_start_of_day(sim_start), fmt=CUTOFF_KEY_FORMAT,
        timezone=TIMEZONE)


# ---- the rule, on plain datetimes -----------------------------------------------------------


def cutoff_at_or_after(cutoffs: dg.TimeWindowPartitionsDefinition, t: datetime) -> datetime:
    window = cutoffs.time_window_for_partition_key(
        cutoffs.get_partition_key_for_timestamp(t.timestamp()))
    return window.start if window.start == t else window.end


def _tick_before(cutoffs: dg.TimeWindowPartitionsDefinition, t: datetime) -> datetime:
    return cutoffs.time_window_for_partition_key(
        cutoffs.get_partition_key_for_timestamp(t.timestamp(), end_closed=True)).start


def cutoff_fed_by_day(day: date, cutoffs: dg.TimeWindowPartitionsDefinition) -> datetime:
    """The first cutoff at or after the end of `day`."""
    return cutoff_at_or_after(cutoffs, datetime.combine(day + DAY, time(0), tzinfo=timezone.utc))


def days_feeding_cutoff(cutoff: datetime,
                        cutoffs: dg.TimeWindowPartitionsDefinition) -> list[date]:
    """Days whose end falls in (previous cutoff, `cutoff`]."""
    previous = _tick_before(cutoffs, cutoff)
    end_of_day = datetime.combine(previous.date() + DAY, time(0), tzinfo=timezone.utc)
    days = []
    while end_of_day <= cutoff:
        days.append((end_of_day - DAY).date())
        end_of_day += DAY
    return days


# ---- as a Dagster partition mapping --------------------------------------------------------


def _split_existing(partitions_def: dg.TimeWindowPartitionsDefinition, keys: Iterable[str],
                    current_time: datetime | None,
                    store: Optional[DynamicPartitionsStore]) -> tuple[list[str], list[str]]:
    existing, missing = [], []
    with partition_loading_context(current_time, store):
        for key in dict.fromkeys(keys):
            (existing if partitions_def.has_partition_key(key) else missing).append(key)
    return existing, missing


def _subset(partitions_def: dg.TimeWindowPartitionsDefinition, keys: list[str]):
    return partitions_def.empty_subset().with_partition_keys(keys)


def _check_time_window(partitions_def, role: str, cron: str | None = None) -> None:
    if not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        raise dg.DagsterInvalidDefinitionError(f"{role} partitions must be time windows")
    if cron is not None and partitions_def.cron_schedule != cron:
        raise dg.DagsterInvalidDefinitionError(f"{role} partitions must follow `{cron}`")
    if partitions_def.timezone != TIMEZONE:
        raise dg.DagsterInvalidDefinitionError(f"{role} partitions must be in {TIMEZONE}")


@dataclass(frozen=True)
class DailyToCutoffPartitionMapping(dg.PartitionMapping):
    """Daily partitions (upstream) -> cutoff partitions (downstream): see the module docstring."""

    @property
    def description(self) -> str:
        return ("A day feeds the first cutoff at or after its end: a cutoff reads the complete "
                "days since the previous cutoff's day.")

    def validate_partition_mapping(self, upstream_partitions_def, downstream_partitions_def):
        # Any cutoff schedule works; the days must be calendar days.
        _check_time_window(upstream_partitions_def, "upstream", DAILY_CRON)
        _check_time_window(downstream_partitions_def, "downstream")

    def get_upstream_mapped_partitions_result_for_partitions(
        self, downstream_partitions_subset, downstream_partitions_def, upstream_partitions_def,
        current_time: datetime | None = None,
        dynamic_partitions_store: Optional[DynamicPartitionsStore] = None,
    ) -> UpstreamPartitionsResult:
        self.validate_partition_mapping(upstream_partitions_def, downstream_partitions_def)
        keys = []
        for cutoff_key in downstream_partitions_subset.get_partition_keys():
            cutoff = downstream_partitions_def.time_window_for_partition_key(cutoff_key).start
            keys += [d.strftime(upstream_partitions_def.fmt)
                     for d in days_feeding_cutoff(cutoff, downstream_partitions_def)]
        existing, missing = _split_existing(upstream_partitions_def, keys, current_time,
                                            dynamic_partitions_store)
        # Days before the simulation started simply do not exist; they are not "required".
        first = upstream_partitions_def.start
        missing = [k for k in missing
                   if upstream_partitions_def.time_window_for_partition_key(k).start >= first]
        return UpstreamPartitionsResult(
            partitions_subset=_subset(upstream_partitions_def, existing),
            required_but_nonexistent_subset=_subset(upstream_partitions_def, missing),
        )

    def get_downstream_partitions_for_partitions(
        self, upstream_partitions_subset, upstream_partitions_def, downstream_partitions_def,
        current_time: datetime | None = None,
        dynamic_partitions_store: Optional[DynamicPartitionsStore] = None,
    ):
        self.validate_partition_mapping(upstream_partitions_def, downstream_partitions_def)
        keys = []
        for day_key in upstream_partitions_subset.get_partition_keys():
            day = upstream_partitions_def.time_window_for_partition_key(day_key).start.date()
            keys.append(cutoff_fed_by_day(day, downstream_partitions_def)
                        .strftime(downstream_partitions_def.fmt))
        existing, _ = _split_existing(downstream_partitions_def, keys, current_time,
                                      dynamic_partitions_store)
        return _subset(downstream_partitions_def, existing)
