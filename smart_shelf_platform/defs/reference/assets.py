"""Reference data as materializable assets: the generated Parquet files, then the ten Postgres
`ref.*` and `config.*` tables loaded from them.

The load is one multi-asset because `load_into_postgres` writes all ten tables in one transaction
(a failed load leaves nothing half-written). `ref.*` rows are upserted; `config.*` rows are only
inserted when absent, so an operator's edit to a policy survives a reload.
"""


import dagster as dg
import psycopg
import pyarrow.parquet as pq
from psycopg import sql

from smart_shelf_platform.defs import specs
from smart_shelf_platform.defs.lineage import REFERENCE_FILES_KEY, postgres_key
from smart_shelf_platform.defs.resources import SmartShelfResource
from smart_shelf_platform.refdata import generate, load_into_postgres
from smart_shelf_platform.refdata.generator import MANIFEST, OUTPUTS


@dg.asset(
    key=REFERENCE_FILES_KEY,
    group_name=specs.REFERENCE_GROUP,
    kinds={"parquet", "python"},
    description="The deterministic store catalogue, bootstrap stock, lots, weekly promotions and "
                "default policies, one Parquet file per ref/config table (data/README.md).",
    metadata={specs.OWNING_JOB: "reference loader"},
)
def reference_files(context: dg.AssetExecutionContext,
                    smart_shelf: SmartShelfResource) -> dg.MaterializeResult:
    # Same seed, stores and start give the same bytes, so regenerating is always safe.
    paths = generate(smart_shelf.reference_dir, seed=smart_shelf.seed, stores=smart_shelf.stores,
                     sim_start=smart_shelf.sim_start_at)
    rows = {name: pq.read_metadata(path).num_rows
            for name, path in paths.items() if name != MANIFEST}
    context.log.info("generated reference data in %s: %s", smart_shelf.reference_dir, rows)
    return dg.MaterializeResult(metadata={
        "seed": smart_shelf.seed,
        "stores": smart_shelf.stores,
        "sim_start": smart_shelf.sim_start,
        "path": dg.MetadataValue.path(str(smart_shelf.reference_dir)),
        "rows_per_file": dg.MetadataValue.json(rows),
    })


@dg.multi_asset(
    name="reference_tables",
    specs=specs.postgres_specs(reference=True),
    description="Load the reference Parquet files into Postgres ref.* and config.*.",
)
def reference_tables(context: dg.AssetExecutionContext, smart_shelf: SmartShelfResource):
    files = {o.name: smart_shelf.reference_dir / o.file_name for o in OUTPUTS}
    missing = sorted(str(p) for p in files.values() if not p.exists())
    if missing:
        raise dg.Failure(f"reference files missing ({', '.join(missing)}); materialize "
                         f"{REFERENCE_FILES_KEY.to_user_string()} first")
    dsn = smart_shelf.postgres_dsn()
    rows_in_file = load_into_postgres(dsn, files)
    with psycopg.connect(dsn) as conn:
        for output in OUTPUTS:
            table = output.table
            (rows_in_table,) = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(table.schema, table.name))).fetchone()
            context.log.info("%s: %d rows in file, %d in table", table.qualified_name,
                             rows_in_file[table.qualified_name], rows_in_table)
            yield dg.MaterializeResult(asset_key=postgres_key(table), metadata={
                "rows_in_file": rows_in_file[table.qualified_name],
                "dagster/row_count": rows_in_table,
            })
