"""The reference assets materialize in-process against the test stack's Postgres."""

from __future__ import annotations

import dagster as dg
import pytest

from smart_shelf_platform.defs.reference.assets import reference_files, reference_tables
from smart_shelf_platform.defs.resources import SmartShelfResource

SHELVES_PER_STORE = 1142


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    found = (e.event_specific_data.materialization
             for e in result.get_asset_materialization_events())
    return {m.asset_key.to_user_string(): m.metadata for m in found}


@pytest.mark.integration
def test_reference_files_then_tables(settings, tmp_path):
    # Own data directory: other test modules read the shared one while this regenerates.
    smart_shelf = SmartShelfResource.from_settings(
        settings.model_copy(update={"data_dir": tmp_path, "stores": 1}))
    result = dg.materialize([reference_files, reference_tables],
                            resources={"smart_shelf": smart_shelf})
    assert result.success
    metadata = materializations(result)
    assert set(metadata) == {"files/reference"} | {
        f"postgres/{name}" for name in (
            "ref/stores", "ref/store_inventory_snapshot", "ref/warehouse_inventory_snapshot",
            "ref/store_batches_snapshot", "ref/warehouse_batches_snapshot",
            "ref/weekly_discounts", "config/shelf_policies", "config/wh_policies",
            "config/shelf_profiles", "config/batch_catalog")}

    files = metadata["files/reference"]
    assert files["seed"].value == settings.seed and files["stores"].value == 1
    assert files["rows_per_file"].value["store_inventory"] == SHELVES_PER_STORE
    assert files["rows_per_file"].value["stores"] == 1

    inventory = metadata["postgres/ref/store_inventory_snapshot"]
    assert inventory["rows_in_file"].value == SHELVES_PER_STORE
    assert inventory["dagster/row_count"].value >= SHELVES_PER_STORE
    assert metadata["postgres/ref/stores"]["rows_in_file"].value == 1
    assert metadata["postgres/config/shelf_profiles"]["rows_in_file"].value == SHELVES_PER_STORE

    # Loading again is harmless: same files, same tables.
    again = dg.materialize([reference_files, reference_tables],
                           resources={"smart_shelf": smart_shelf})
    assert materializations(again)["postgres/ref/store_inventory_snapshot"][
        "dagster/row_count"].value == inventory["dagster/row_count"].value


def test_loading_without_the_files_fails_with_what_to_do(tmp_path):
    smart_shelf = SmartShelfResource(
        env="local", delta_root=str(tmp_path), data_dir=str(tmp_path), postgres_host="x",
        postgres_port=1, postgres_db="x", postgres_user="x", postgres_password="x",
        redis_url="redis://127.0.0.1:1/0", kafka_bootstrap="x:1", seed=42, stores=1,
        sim_start="2026-01-01T07:00:00+00:00", freshness_lag_minutes=60.0)
    result = dg.materialize([reference_tables], resources={"smart_shelf": smart_shelf},
                            raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "materialize files/reference first" in failure.step_failure_data.error.message
