"""Asset checks on one day's partition of `delta/analytics/shelf_daily_features`.

Partitioned like the asset: a run of a day checks that day's rows (read back from Delta), so a
check failing on one day says nothing about the others. What stops the Postgres upsert and
anything else downstream (`blocking=True`, severity ERROR):
- one row per shelf and day, and a row for every catalogue shelf (`ref.store_inventory_snapshot`):
  a panel with holes or twins would train and serve on wrong data;
- no nulls in the columns the contract requires.
What does not: fill ratios outside [0, 1] (severity WARN). They mean a reconstructed end-of-day
stock left [0, capacity], i.e. a state fold clamped somewhere, which is worth a look but leaves
the day's other features as good as they were.

The rules are `smart_shelf_platform.quality`'s; check names are constants.
"""


import warnings
from collections.abc import Iterator

import dagster as dg
import psycopg

from smart_shelf_platform import quality
from smart_shelf_platform.defs.analytics.assets import FEATURES_DELTA_KEY
from smart_shelf_platform.defs.lineage import postgres_key
from smart_shelf_platform.defs.quality.checks import (
    KEYS_UNIQUE, SHELF, STORE_INVENTORY, read_postgres, result, spec,
)
from smart_shelf_platform.defs.resources import SmartShelfResource
from smart_shelf_platform.ml import feature_store
from smart_shelf_platform.ml.feature_store import FEATURES_DELTA

EVERY_SHELF_PRESENT = "every_catalogue_shelf_present"
REQUIRED_VALUES_PRESENT = "required_values_present"
RATIOS_WITHIN_UNIT_INTERVAL = "ratios_within_0_1"

RATIO_COLUMNS = ("shelf_fill_ratio", "warehouse_fill_ratio")
REQUIRED_COLUMNS = tuple(f.name for f in FEATURES_DELTA.record.fields if not f.nullable)


def partitioned(check_spec: dg.AssetCheckSpec,
                partitions: dg.PartitionsDefinition) -> dg.AssetCheckSpec:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # partitioned checks are preview
        return dg.AssetCheckSpec(
            check_spec.name, asset=check_spec.asset_key, description=check_spec.description,
            blocking=check_spec.blocking, additional_deps=check_spec.additional_deps,
            partitions_def=partitions)


def feature_checks(partitions: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    key, catalogue_key = FEATURES_DELTA_KEY, postgres_key(STORE_INVENTORY)
    specs = [
        spec(KEYS_UNIQUE, key, "One row per store, shelf and feature_date.", blocking=True),
        spec(EVERY_SHELF_PRESENT, key, "Every shelf of ref.store_inventory_snapshot has a row "
             "for the day.", blocking=True, reads=[catalogue_key]),
        spec(REQUIRED_VALUES_PRESENT, key, "No nulls in the columns the contract requires.",
             blocking=True),
        spec(RATIOS_WITHIN_UNIT_INTERVAL, key, "shelf_fill_ratio and warehouse_fill_ratio "
             "within [0, 1] (warning).", blocking=False),
    ]

    @dg.multi_asset_check(name="delta_analytics_shelf_daily_features_checks",
                          specs=[partitioned(s, partitions) for s in specs])
    def _feature_checks(context: dg.AssetCheckExecutionContext,
                        smart_shelf: SmartShelfResource) -> Iterator[dg.AssetCheckResult]:
        day = partitions.time_window_for_partition_key(context.partition_key).start.date()
        rows = feature_store.read_delta_partition(smart_shelf.delta_root, day)
        with psycopg.connect(smart_shelf.postgres_dsn()) as conn:
            catalogue = read_postgres(conn, STORE_INVENTORY, SHELF)
        yield result(key, KEYS_UNIQUE, quality.keys_unique(rows, FEATURES_DELTA.record.key))
        yield result(key, EVERY_SHELF_PRESENT, quality.every_key_present(rows, catalogue, SHELF))
        yield result(key, REQUIRED_VALUES_PRESENT,
                     quality.no_nulls(rows, REQUIRED_COLUMNS, SHELF))
        yield result(key, RATIOS_WITHIN_UNIT_INTERVAL,
                     quality.within_bounds(rows, RATIO_COLUMNS, 0, 1, SHELF),
                     severity=dg.AssetCheckSeverity.WARN)

    return _feature_checks
