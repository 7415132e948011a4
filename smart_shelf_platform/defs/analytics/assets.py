"""The daily shelf features as assets, one partition per simulated day.

- `delta/analytics/shelf_daily_features`: computed by `smart_shelf_platform.ml.features` from the
  streaming pipeline's Delta tables, the catalogue, promotions and policies (the asset's deps),
  written over its day's partition (re-running a day replaces it);
- `postgres/analytics/shelf_daily_features`: the same rows, read back from Delta and upserted
  into Postgres for the training view. It runs after the Delta partition's blocking checks.

Factories, not module-level assets: the daily partitions start on the simulated start day, which
`definitions.build_definitions` reads from the settings. The specs (key, deps, group, kinds, column
schema) are the catalogue's, so these assets replace the external specs of the same tables.
"""

from datetime import date, datetime, timezone

import dagster as dg
import pyarrow.compute as pc

from smart_shelf_platform.defs import specs
from smart_shelf_platform.defs.lineage import delta_key, postgres_key
from smart_shelf_platform.defs.resources import SmartShelfResource
from smart_shelf_platform.ml import feature_store
from smart_shelf_platform.ml.feature_store import FEATURES_DELTA, FEATURES_POSTGRES
from smart_shelf_platform.ml.features import compute_features, to_arrow

FEATURES_DELTA_KEY = delta_key(FEATURES_DELTA)
FEATURES_POSTGRES_KEY = postgres_key(FEATURES_POSTGRES)
# Tables these assets materialize: the lake and postgres folders leave them out of their specs.
MATERIALIZED_KEYS = frozenset({FEATURES_DELTA_KEY, FEATURES_POSTGRES_KEY})


def partition_day(context: dg.AssetExecutionContext) -> date:
    return context.partition_time_window.start.date()


def _distinct(rows, column: str) -> int:
    return len(pc.unique(rows.column(column))) if rows.num_rows else 0


def per_store(frame) -> dg.TableMetadataValue:
    """The day's features store by store (shelves, units sold, shoppers, shelves that ran
    empty): a chain's partition in the UI, where one store short of shelves or sales shows."""
    by_store = frame.groupby("store_id").agg(
        shelves=("shelf_id", "size"), units_sold=("sales_qty", "sum"),
        people_count=("people_count", "first"),
        shelves_with_stockouts=("stockout_events", lambda s: int((s > 0).sum())))
    columns = ["store_id", *by_store.columns]
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"store_id": store, **{c: int(v) for c, v in row.items()}})
                 for store, row in by_store.iterrows()],
        schema=dg.TableSchema(columns=[dg.TableColumn(c, "string" if c == "store_id" else "int")
                                       for c in columns]))


def feature_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    delta_spec = specs.delta_spec(FEATURES_DELTA).replace_attributes(partitions_def=partitions)
    postgres_spec = specs.postgres_spec(FEATURES_POSTGRES).replace_attributes(
        partitions_def=partitions)

    @dg.multi_asset(name="shelf_daily_features", specs=[delta_spec],
                    description="Compute one simulated day's features per shelf and write the "
                                "day's Delta partition.")
    def shelf_daily_features(context: dg.AssetExecutionContext,
                             smart_shelf: SmartShelfResource) -> dg.MaterializeResult:
        day = partition_day(context)
        inputs = feature_store.read_inputs(smart_shelf.delta_root, smart_shelf.postgres_dsn(), day)
        frame = compute_features(inputs, day, datetime.now(timezone.utc))
        rows = to_arrow(frame)
        version = feature_store.write_delta_partition(smart_shelf.delta_root, rows, day)
        context.log.info("features of %s: %d shelves of %d stores, Delta version %d", day,
                         rows.num_rows, _distinct(rows, "store_id"), version)
        return dg.MaterializeResult(metadata={
            "feature_date": day.isoformat(),
            "dagster/row_count": rows.num_rows,
            "shelves": rows.num_rows,
            "stores": _distinct(rows, "store_id"),
            "delta_version": version,
            "units_sold": int(frame["sales_qty"].sum()),
            "people_count": int(frame.drop_duplicates("store_id")["people_count"].sum()),
            "shelves_with_stockouts": int((frame["stockout_events"] > 0).sum()),
            "per_store": per_store(frame),
            "dagster/uri": dg.MetadataValue.path(smart_shelf.delta_uri(FEATURES_DELTA)),
        })

    @dg.multi_asset(name="shelf_daily_features_postgres", specs=[postgres_spec],
                    description="Upsert the day's Delta partition into Postgres.")
    def shelf_daily_features_postgres(context: dg.AssetExecutionContext,
                                      smart_shelf: SmartShelfResource) -> dg.MaterializeResult:
        day = partition_day(context)
        rows = feature_store.read_delta_partition(smart_shelf.delta_root, day)
        if rows.num_rows == 0:
            raise dg.Failure(f"no Delta features for {day}: materialize "
                             f"{FEATURES_DELTA_KEY.to_user_string()} for it first")
        upserted, deleted = feature_store.upsert_postgres(smart_shelf.postgres_dsn(), rows, day)
        context.log.info("%s: %d rows of %s upserted, %d stale deleted",
                         FEATURES_POSTGRES.qualified_name, upserted, day, deleted)
        return dg.MaterializeResult(metadata={
            "feature_date": day.isoformat(),
            "dagster/row_count": rows.num_rows,
            "shelves": rows.num_rows,
            "stores": _distinct(rows, "store_id"),
            "rows_upserted": upserted,
            "stale_rows_deleted": deleted,
        })

    return [shelf_daily_features, shelf_daily_features_postgres]

