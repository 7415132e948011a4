"""Daily and cutoff partitions, and which days feed which cutoff, through Dagster's own API."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import dagster as dg
import pytest

from smart_shelf_platform.defs.partitions import (
    DailyToCutoffPartitionMapping, cutoff_partitions, daily_partitions, days_feeding_cutoff,
)

SIM_START = datetime(2026, 1, 1, 7, 0, tzinfo=timezone.utc)
DAILY = daily_partitions(SIM_START)
CUTOFFS = cutoff_partitions(SIM_START)
MAPPING = DailyToCutoffPartitionMapping()


def upstream_days(cutoff_key: str, current_time: datetime | None = None):
    result = MAPPING.get_upstream_mapped_partitions_result_for_partitions(
        CUTOFFS.subset_with_partition_keys([cutoff_key]), CUTOFFS, DAILY,
        current_time=current_time)
    return (sorted(result.partitions_subset.get_partition_keys()),
            sorted(result.required_but_nonexistent_partition_keys))


def downstream_cutoffs(*day_keys: str) -> list[str]:
    return sorted(MAPPING.get_downstream_partitions_for_partitions(
        DAILY.subset_with_partition_keys(list(day_keys)), DAILY, CUTOFFS).get_partition_keys())


def test_partition_keys_start_on_the_simulation_day():
    assert DAILY.get_partition_keys()[:2] == ["2026-01-01", "2026-01-02"]
    # 2026-01-01 is a Thursday: the first cutoff is that day at noon, then Sun, Tue, Thu.
    assert CUTOFFS.get_partition_keys()[:5] == [
        "2026-01-01-12:00", "2026-01-04-12:00", "2026-01-06-12:00", "2026-01-08-12:00",
        "2026-01-11-12:00"]
    assert CUTOFFS.cron_schedule == "0 12 * * 0,2,4" and CUTOFFS.timezone == "UTC"
    assert CUTOFFS.time_window_for_partition_key("2026-01-06-12:00").start == datetime(
        2026, 1, 6, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize(("cutoff", "days"), [
    ("2026-01-01-12:00", []),  # nothing complete yet: the simulation starts that morning
    ("2026-01-04-12:00", ["2026-01-01", "2026-01-02", "2026-01-03"]),  # Sun <- Thu..Sat
    ("2026-01-06-12:00", ["2026-01-04", "2026-01-05"]),                # Tue <- Sun, Mon
    ("2026-01-08-12:00", ["2026-01-06", "2026-01-07"]),                # Thu <- Tue, Wed
    ("2026-01-11-12:00", ["2026-01-08", "2026-01-09", "2026-01-10"]),  # Sun <- Thu..Sat
])
def test_a_cutoff_reads_the_complete_days_since_the_previous_cutoff(cutoff, days):
    assert upstream_days(cutoff) == (days, [])


@pytest.mark.parametrize(("day", "cutoff"), [
    ("2026-01-01", "2026-01-04-12:00"), ("2026-01-03", "2026-01-04-12:00"),
    ("2026-01-04", "2026-01-06-12:00"),  # the cutoff's own day is still running at noon
    ("2026-01-05", "2026-01-06-12:00"), ("2026-01-06", "2026-01-08-12:00"),
    ("2026-01-07", "2026-01-08-12:00"), ("2026-01-08", "2026-01-11-12:00"),
])
def test_a_day_feeds_the_first_cutoff_after_it_ends(day, cutoff):
    assert downstream_cutoffs(day) == [cutoff]


def test_every_day_feeds_exactly_one_cutoff_and_both_directions_agree():
    days = [(date(2026, 1, 1) + timedelta(days=i)).isoformat() for i in range(120)]
    fed: dict[str, str] = {}
    for cutoff in CUTOFFS.get_partition_keys()[:60]:
        for day in upstream_days(cutoff)[0]:
            assert day not in fed, f"{day} feeds both {fed[day]} and {cutoff}"
            fed[day] = cutoff
            assert downstream_cutoffs(day) == [cutoff]
    assert [d for d in days if d < "2026-04-30"] == sorted(d for d in fed if d < "2026-04-30")


def test_days_not_finished_yet_are_required_but_missing():
    # At Mon 01-05 03:00 the Tue cutoff needs Mon, which has not ended.
    assert upstream_days("2026-01-06-12:00", datetime(2026, 1, 5, 3, tzinfo=timezone.utc)) == (
        ["2026-01-04"], ["2026-01-05"])


def test_the_rule_on_plain_datetimes():
    assert days_feeding_cutoff(datetime(2026, 1, 6, 12, tzinfo=timezone.utc), CUTOFFS) == [
        date(2026, 1, 4), date(2026, 1, 5)]


def test_the_mapping_rejects_other_partitions():
    hourly = dg.HourlyPartitionsDefinition(start_date="2026-01-01-00:00")
    with pytest.raises(dg.DagsterInvalidDefinitionError):
        MAPPING.validate_partition_mapping(hourly, CUTOFFS)
    with pytest.raises(dg.DagsterInvalidDefinitionError):
        MAPPING.validate_partition_mapping(DAILY, dg.StaticPartitionsDefinition(["a"]))


class _UpstreamKeys(dg.IOManager):
    """Loads an input as the upstream partition keys Dagster resolved for it."""

    def handle_output(self, context, obj):
        pass

    def load_input(self, context):
        return sorted(context.asset_partition_keys)


# Dagster warns about any non-built-in mapping; partitions.py says why this one is needed.
@pytest.mark.filterwarnings("ignore:Non-built-in PartitionMappings:DeprecationWarning")
def test_dagster_runs_a_cutoff_partition_with_the_mapped_days():
    @dg.asset(partitions_def=DAILY)
    def daily_features():
        return None

    @dg.asset(partitions_def=CUTOFFS, ins={"daily_features": dg.AssetIn(
        partition_mapping=DailyToCutoffPartitionMapping())})
    def cutoff_predictions(daily_features):
        return daily_features

    result = dg.materialize([daily_features, cutoff_predictions], selection=[cutoff_predictions],
                            partition_key="2026-01-06-12:00",
                            resources={"io_manager": _UpstreamKeys()})
    assert result.success
    assert result.output_for_node("cutoff_predictions") == ["2026-01-04", "2026-01-05"]
