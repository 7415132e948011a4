"""The code location: it loads; every catalogue topic and table is exactly one asset with its key,
kinds, group and column schema; the lineage equals the snapshot below; and `dagster dev` serves it.

EXPECTED_EDGES is the platform's data flow as (upstream, downstream). A change to it is a change
to the lineage graph: update it on purpose, in the same review as the change.
"""

from __future__ import annotations

import importlib
import time

import dagster as dg
import pytest
import requests
import yaml

from smart_shelf_platform.contracts.catalogue import DELTA_TABLES, POSTGRES_TABLES, TOPICS
from smart_shelf_platform.definitions import build_definitions
from smart_shelf_platform.defs import lineage, specs
from smart_shelf_platform.defs.resources import SmartShelfResource, build_resources
from smart_shelf_platform.settings import REPO_ROOT, Settings

EXPECTED_EDGES = [
    ("delta/analytics/daily_discounts", "delta/analytics/shelf_daily_features"),
    ("delta/analytics/daily_discounts", "kafka/daily_discounts"),
    ("delta/analytics/ml_backtest", "postgres/analytics/ml_backtest"),
    ("delta/analytics/predictions", "kafka/ml_predictions"),
    ("delta/analytics/predictions", "postgres/analytics/ml_predictions_log"),
    ("delta/analytics/shelf_daily_features", "delta/analytics/ml_backtest"),
    ("delta/analytics/shelf_daily_features", "delta/analytics/predictions"),
    ("delta/analytics/shelf_daily_features", "ml/training_set"),
    ("delta/analytics/shelf_daily_features", "postgres/analytics/shelf_daily_features"),
    ("delta/cleansed/shelf_batch_state", "delta/analytics/shelf_daily_features"),
    ("delta/cleansed/shelf_batch_state", "kafka/shelf_batch_state"),
    ("delta/cleansed/shelf_state", "delta/analytics/shelf_daily_features"),
    ("delta/cleansed/shelf_state", "kafka/shelf_state"),
    ("delta/cleansed/wh_batch_state", "kafka/wh_batch_state"),
    ("delta/cleansed/wh_state", "delta/analytics/shelf_daily_features"),
    ("delta/cleansed/wh_state", "kafka/wh_state"),
    ("delta/ops/alerts", "delta/analytics/shelf_daily_features"),
    ("delta/ops/shelf_restock_plan", "kafka/shelf_restock_plan"),
    ("delta/ops/wh_supplier_orders", "delta/ops/wh_supplier_receipts"),
    ("delta/ops/wh_supplier_plan", "delta/analytics/shelf_daily_features"),
    ("delta/ops/wh_supplier_plan", "kafka/wh_supplier_plan"),
    ("delta/raw/foot_traffic", "delta/analytics/shelf_daily_features"),
    ("delta/raw/pos_transactions", "delta/analytics/shelf_daily_features"),
    ("delta/raw/shelf_events", "delta/analytics/shelf_daily_features"),
    ("delta/raw/wh_events", "delta/analytics/shelf_daily_features"),
    ("files/reference", "kafka/foot_traffic"),
    ("files/reference", "kafka/pos_transactions"),
    ("files/reference", "kafka/shelf_events"),
    ("files/reference", "postgres/config/batch_catalog"),
    ("files/reference", "postgres/config/shelf_policies"),
    ("files/reference", "postgres/config/shelf_profiles"),
    ("files/reference", "postgres/config/wh_policies"),
    ("files/reference", "postgres/ref/store_batches_snapshot"),
    ("files/reference", "postgres/ref/store_inventory_snapshot"),
    ("files/reference", "postgres/ref/stores"),
    ("files/reference", "postgres/ref/warehouse_batches_snapshot"),
    ("files/reference", "postgres/ref/warehouse_inventory_snapshot"),
    ("files/reference", "postgres/ref/weekly_discounts"),
    ("files/reference", "postgres/sim/ledger_bad_events"),
    ("files/reference", "postgres/sim/ledger_cart_lots"),
    ("files/reference", "postgres/sim/ledger_daily_sales"),
    ("files/reference", "postgres/sim/ledger_daily_waste"),
    ("files/reference", "postgres/sim/ledger_position"),
    ("files/reference", "postgres/sim/ledger_shelf_lots"),
    ("files/reference", "postgres/sim/ledger_wh_lots"),
    ("kafka/alerts", "delta/ops/alerts"),
    ("kafka/alerts", "kafka/dead_letter"),
    ("kafka/alerts", "postgres/ops/alerts"),
    ("kafka/alerts", "postgres/sim/ledger_daily_waste"),
    ("kafka/batch_catalog", "delta/cleansed/shelf_batch_state"),
    ("kafka/batch_catalog", "delta/cleansed/wh_batch_state"),
    ("kafka/clock_ticks", "delta/analytics/daily_discounts"),
    ("kafka/clock_ticks", "delta/ops/wh_supplier_orders"),
    ("kafka/clock_ticks", "delta/ops/wh_supplier_receipts"),
    ("kafka/clock_ticks", "kafka/alerts"),
    ("kafka/clock_ticks", "kafka/dead_letter"),
    ("kafka/clock_ticks", "kafka/restock_tasks"),
    ("kafka/daily_discounts", "postgres/analytics/daily_discounts"),
    ("kafka/daily_discounts", "postgres/sim/ledger_daily_sales"),
    ("kafka/dead_letter", "delta/raw/dead_letter"),
    ("kafka/foot_traffic", "delta/raw/foot_traffic"),
    ("kafka/foot_traffic", "kafka/dead_letter"),
    ("kafka/ml_predictions", "delta/ops/wh_supplier_orders"),
    ("kafka/pos_transaction_items", "kafka/dead_letter"),
    ("kafka/pos_transaction_items", "postgres/ops/pos_transaction_items"),
    ("kafka/pos_transactions", "delta/cleansed/shelf_batch_state"),
    ("kafka/pos_transactions", "delta/raw/pos_transactions"),
    ("kafka/pos_transactions", "kafka/dead_letter"),
    ("kafka/pos_transactions", "kafka/pos_transaction_items"),
    ("kafka/pos_transactions", "postgres/ops/pos_transactions"),
    ("kafka/restock_tasks", "kafka/dead_letter"),
    ("kafka/restock_tasks", "postgres/sim/ledger_cart_lots"),
    ("kafka/restock_tasks", "postgres/sim/ledger_shelf_lots"),
    ("kafka/shelf_batch_state", "delta/analytics/daily_discounts"),
    ("kafka/shelf_batch_state", "kafka/alerts"),
    ("kafka/shelf_batch_state", "postgres/state/shelf_batch_state"),
    ("kafka/shelf_events", "delta/cleansed/shelf_batch_state"),
    ("kafka/shelf_events", "delta/cleansed/shelf_state"),
    ("kafka/shelf_events", "delta/raw/shelf_events"),
    ("kafka/shelf_events", "kafka/dead_letter"),
    ("kafka/shelf_events", "postgres/sim/ledger_cart_lots"),
    ("kafka/shelf_events", "postgres/sim/ledger_daily_sales"),
    ("kafka/shelf_events", "postgres/sim/ledger_shelf_lots"),
    ("kafka/shelf_policies", "delta/ops/shelf_restock_plan"),
    ("kafka/shelf_policies", "kafka/alerts"),
    ("kafka/shelf_profiles", "delta/cleansed/shelf_state"),
    ("kafka/shelf_profiles", "delta/cleansed/wh_state"),
    ("kafka/shelf_profiles", "delta/ops/shelf_restock_plan"),
    ("kafka/shelf_profiles", "delta/ops/wh_supplier_plan"),
    ("kafka/shelf_restock_plan", "kafka/alerts"),
    ("kafka/shelf_restock_plan", "postgres/ops/shelf_restock_plan"),
    ("kafka/shelf_state", "delta/ops/shelf_restock_plan"),
    ("kafka/shelf_state", "kafka/alerts"),
    ("kafka/shelf_state", "postgres/state/shelf_state"),
    ("kafka/wh_batch_state", "kafka/alerts"),
    ("kafka/wh_batch_state", "postgres/state/wh_batch_state"),
    ("kafka/wh_events", "delta/cleansed/wh_batch_state"),
    ("kafka/wh_events", "delta/cleansed/wh_state"),
    ("kafka/wh_events", "delta/raw/wh_events"),
    ("kafka/wh_events", "kafka/dead_letter"),
    ("kafka/wh_events", "kafka/restock_tasks"),
    ("kafka/wh_events", "postgres/ops/wh_events"),
    ("kafka/wh_events", "postgres/sim/ledger_daily_waste"),
    ("kafka/wh_events", "postgres/sim/ledger_wh_lots"),
    ("kafka/wh_policies", "delta/ops/wh_supplier_plan"),
    ("kafka/wh_policies", "kafka/alerts"),
    ("kafka/wh_state", "delta/ops/wh_supplier_plan"),
    ("kafka/wh_state", "kafka/alerts"),
    ("kafka/wh_state", "postgres/state/wh_state"),
    ("kafka/wh_supplier_plan", "delta/ops/wh_supplier_orders"),
    ("kafka/wh_supplier_plan", "postgres/ops/wh_supplier_plan"),
    ("ml/champion", "delta/analytics/predictions"),
    ("ml/training_set", "postgres/analytics/ml_models"),
    ("postgres/analytics/ml_models", "ml/champion"),
    ("postgres/config/batch_catalog", "kafka/batch_catalog"),
    ("postgres/config/shelf_policies", "delta/analytics/shelf_daily_features"),
    ("postgres/config/shelf_policies", "kafka/shelf_policies"),
    ("postgres/config/shelf_profiles", "delta/analytics/shelf_daily_features"),
    ("postgres/config/shelf_profiles", "kafka/shelf_profiles"),
    ("postgres/config/wh_policies", "delta/analytics/shelf_daily_features"),
    ("postgres/config/wh_policies", "kafka/wh_policies"),
    ("postgres/ref/store_batches_snapshot", "delta/cleansed/shelf_batch_state"),
    ("postgres/ref/store_inventory_snapshot", "delta/analytics/shelf_daily_features"),
    ("postgres/ref/store_inventory_snapshot", "delta/cleansed/shelf_state"),
    ("postgres/ref/warehouse_batches_snapshot", "delta/cleansed/wh_batch_state"),
    ("postgres/ref/warehouse_inventory_snapshot", "delta/cleansed/wh_state"),
    ("postgres/ref/weekly_discounts", "delta/analytics/shelf_daily_features"),
    ("postgres/sim/ledger_daily_sales", "delta/analytics/ml_backtest"),
]

STREAMING_WRITTEN_DELTA = {t.path for t in DELTA_TABLES if t.owner != "dagster"}


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    return build_definitions(Settings())


@pytest.fixture(scope="module")
def asset_graph(definitions):
    return definitions.resolve_asset_graph()


def parents(asset_graph, name: str) -> set[str]:
    return {k.to_user_string() for k in
            asset_graph.get(dg.AssetKey.from_user_string(name)).parent_keys}


def test_definitions_load_and_validate(definitions):
    dg.Definitions.validate_loadable(definitions)
    repository = definitions.get_repository_def()
    assert {s.name for s in repository.sensor_defs} == {
        "delta_table_versions", "kafka_consumer_lag", "simulated_day_features",
        "simulated_cutoff_forecasts", "cutoff_barrier_checks"}
    assert set(repository.get_top_level_resources()) == {"smart_shelf"}


def test_the_entry_point_reads_the_environment_when_called_not_when_imported(monkeypatch):
    import smart_shelf_platform.definitions as module

    monkeypatch.setenv("SMART_SHELF_ENV", "nowhere")
    module = importlib.reload(module)  # importing must not read settings
    with pytest.raises(ValueError, match="nowhere"):
        module.defs()
    monkeypatch.delenv("SMART_SHELF_ENV")
    assert isinstance(module.defs(), dg.Definitions)


def test_every_topic_and_table_is_exactly_one_asset(asset_graph):
    expected = {
        **{("kafka", t.name): ({"kafka"}, "kafka") for t in TOPICS},
        **{("delta", t.layer, t.name): ({"delta", "python" if t.owner == "dagster" else "spark"},
                                        "lake") for t in DELTA_TABLES},
        **{("postgres", t.schema, t.name): (
            {"postgres"}, {"ref": "reference", "config": "reference",
                           "sim": "simulation"}.get(t.schema, "postgres"))
           for t in POSTGRES_TABLES},
        ("files", "reference"): ({"parquet", "python"}, "reference"),
        ("ml", "training_set"): ({"parquet", "python"}, "forecasting"),
        ("ml", "champion"): ({"xgboost", "python"}, "forecasting"),
    }
    keys = asset_graph.get_all_asset_keys()
    assert len(keys) == len(TOPICS) + len(DELTA_TABLES) + len(POSTGRES_TABLES) + 3
    assert {tuple(k.path) for k in keys} == set(expected)
    for path, (kinds, group) in expected.items():
        node = asset_graph.get(dg.AssetKey(list(path)))
        assert kinds <= node.kinds, path
        assert node.group_name == group, path
    # Delta layers and Postgres schemas share names; the first key part tells them apart.
    assert asset_graph.has(dg.AssetKey(["delta", "ops", "alerts"]))
    assert asset_graph.has(dg.AssetKey(["postgres", "ops", "alerts"]))


@pytest.mark.parametrize(("key", "kinds"), [
    ("kafka/shelf_events", {"kafka", "python"}),   # the bridge: the store's events, refills too
    ("kafka/shelf_state", {"kafka", "spark"}),
    ("kafka/shelf_policies", {"kafka", "kafka_connect"}),   # CDC from config.shelf_policies
    ("kafka/clock_ticks", {"kafka", "python"}),
    ("delta/cleansed/shelf_state", {"delta", "spark"}),
    ("postgres/state/shelf_state", {"postgres", "kafka_connect"}),
    ("postgres/ref/store_inventory_snapshot", {"postgres", "python"}),
    ("postgres/sim/ledger_shelf_lots", {"postgres", "python"}),
])
def test_kinds_name_the_store_and_the_writer(asset_graph, key, kinds):
    assert asset_graph.get(dg.AssetKey.from_user_string(key)).kinds == kinds


def test_metadata_carries_owner_description_and_the_contract_schema(asset_graph):
    entries = [(lineage.topic_key(t), t.record, t.producer, t.description) for t in TOPICS]
    entries += [(lineage.delta_key(t), t.record, t.owner, t.description) for t in DELTA_TABLES]
    entries += [(lineage.postgres_key(t), t.record, t.writer, t.description)
                for t in POSTGRES_TABLES]
    for key, record, writer, description in entries:
        node = asset_graph.get(key)
        assert node.metadata[specs.OWNING_JOB] == writer, key
        assert node.description == description, key
        schema = node.metadata[specs.COLUMN_SCHEMA].schema
        assert [c.name for c in schema.columns] == record.field_names, key
        nullable = {c.name: c.constraints.nullable for c in schema.columns}
        assert nullable == {f.name: f.nullable for f in record.fields}, key
    shelf_state = asset_graph.get(dg.AssetKey(["postgres", "state", "shelf_state"]))
    assert shelf_state.metadata[specs.TABLE_NAME] == "state.shelf_state"


def test_record_table_schema_renders_logical_types():
    from smart_shelf_platform.contracts import events

    columns = {c.name: c for c in specs.record_table_schema(events.POS_TRANSACTION).columns}
    assert columns["total_amount"].type == "decimal(12,2)"
    assert columns["items"].type == "array<pos_transaction_line>"
    assert columns["event_id"].description == "deterministic id, the deduplication key"
    alert_status = specs.record_table_schema(events.ALERT).columns[5]
    assert (alert_status.name, alert_status.type) == ("status", "enum ops.alert_status")


def test_dagster_materializes_the_reference_domain_and_the_daily_features(asset_graph):
    materializable = {k.to_user_string() for k in asset_graph.get_all_asset_keys()
                      if asset_graph.get(k).is_materializable}
    features = {"delta/analytics/shelf_daily_features", "postgres/analytics/shelf_daily_features"}
    forecasting = {"ml/training_set", "postgres/analytics/ml_models", "ml/champion",
                   "delta/analytics/predictions", "postgres/analytics/ml_predictions_log",
                   "kafka/ml_predictions",
                   "delta/analytics/ml_backtest", "postgres/analytics/ml_backtest"}
    assert materializable == {"files/reference"} | features | forecasting | {
        f"postgres/{t.qualified_name.replace('.', '/')}" for t in POSTGRES_TABLES
        if t.schema in ("ref", "config")}
    for name in features:  # one partition per simulated day, from the simulation's first day
        partitions = asset_graph.get(dg.AssetKey.from_user_string(name)).partitions_def
        assert partitions.get_first_partition_key() == "2026-01-01"
        assert partitions.cron_schedule == "0 0 * * *"


@pytest.mark.parametrize(("upstream", "downstream"), [
    ("kafka/shelf_events", "delta/raw/shelf_events"),
    ("kafka/shelf_events", "delta/cleansed/shelf_state"),
    ("delta/cleansed/shelf_state", "kafka/shelf_state"),
    ("kafka/shelf_state", "postgres/state/shelf_state"),
    ("postgres/config/shelf_policies", "kafka/shelf_policies"),
    ("kafka/shelf_policies", "delta/ops/shelf_restock_plan"),
    ("kafka/alerts", "delta/ops/alerts"),
    ("kafka/alerts", "postgres/ops/alerts"),
    ("kafka/wh_events", "delta/raw/wh_events"),
    ("kafka/wh_events", "delta/cleansed/wh_state"),
    ("kafka/wh_events", "postgres/ops/wh_events"),
    ("kafka/pos_transactions", "postgres/ops/pos_transactions"),
    ("kafka/pos_transactions", "kafka/pos_transaction_items"),
    ("kafka/pos_transaction_items", "postgres/ops/pos_transaction_items"),
    ("delta/analytics/daily_discounts", "kafka/daily_discounts"),
    ("kafka/daily_discounts", "postgres/analytics/daily_discounts"),
    ("files/reference", "postgres/ref/store_inventory_snapshot"),
])
def test_data_flow_edges(asset_graph, upstream, downstream):
    assert upstream in parents(asset_graph, downstream)


def test_lineage_equals_the_snapshot(asset_graph):
    actual = sorted((parent.to_user_string(), key.to_user_string())
                    for key in asset_graph.get_all_asset_keys()
                    for parent in asset_graph.get(key).parent_keys)
    assert lineage.edges() == actual
    assert actual == EXPECTED_EDGES


def test_the_graph_is_acyclic_with_loops_cut_at_the_input_topics(asset_graph):
    assert len(asset_graph.toposorted_asset_keys) == len(asset_graph.get_all_asset_keys())
    for topic in lineage.INPUT_EVENT_TOPICS:
        assert parents(asset_graph, f"kafka/{topic}") <= {"files/reference"}
    effect_edges = set(lineage.EFFECT_EDGES)
    assert all(down.removeprefix("kafka/") in lineage.INPUT_EVENT_TOPICS
               for _, down in effect_edges)
    assert not effect_edges & set(EXPECTED_EDGES)
    shelf_events = asset_graph.get(dg.AssetKey(["kafka", "shelf_events"]))
    assert "kafka/restock_tasks" in shelf_events.metadata["effects_written_back_by"].data


def test_explicit_lineage_names_only_known_assets():
    known = {k.to_user_string() for k in lineage.all_keys()}
    named = set(lineage.EXPLICIT_UPSTREAMS) | {
        up for ups in lineage.EXPLICIT_UPSTREAMS.values() for up in ups}
    named |= {name for edge in lineage.EFFECT_EDGES for name in edge}
    assert named <= known


def test_resources_follow_the_environment(monkeypatch):
    local = build_resources(Settings(env="local"))["smart_shelf"]
    assert local.postgres_user == "smart_shelf_writer"
    assert local.delta_root == Settings().delta_root
    assert local.redis_password == Settings().redis_password != ""
    monkeypatch.delenv("SMART_SHELF_POSTGRES_WRITER_PASSWORD", raising=False)
    with pytest.raises(ValueError, match="SMART_SHELF_POSTGRES_WRITER_PASSWORD"):
        SmartShelfResource.from_settings(Settings(env="prod"))
    with pytest.raises(ValueError, match="staging"):
        SmartShelfResource.from_settings(Settings(env="staging"))
    monkeypatch.setenv("SMART_SHELF_POSTGRES_WRITER_PASSWORD", "s3cret")
    monkeypatch.setenv("SMART_SHELF_REDIS_PASSWORD", "r3dis")
    prod = build_resources(Settings(env="prod"))["smart_shelf"]
    # EnvVars: resolved when the resource is used, and never shown in the UI.
    assert isinstance(prod.postgres_password, dg.EnvVar)
    assert prod.postgres_password.get_value() == "s3cret"
    assert isinstance(prod.redis_password, dg.EnvVar) and "r3dis" not in prod.redis_url


def test_workspace_loads_this_code_location():
    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    assert location["python_module"]["module_name"] == "smart_shelf_platform.definitions"
    assert location["python_module"]["attribute"] == "defs"


def test_dagster_home_keeps_instance_storage_in_postgres(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    from smart_shelf_platform.stack.dagster_service import write_dagster_home

    settings = Settings(home=tmp_path, postgres_port=15999)
    home = write_dagster_home(settings)
    assert home == tmp_path / "dagster"
    monkeypatch.setenv("SMART_SHELF_POSTGRES_PASSWORD", "pw")
    config, _ = dagster_instance_config(str(home))  # validates against Dagster's schema
    database = config["storage"]["postgres"]["postgres_db"]
    assert (database["db_name"], database["port"], database["username"]) == (
        "dagster", 15999, "smart_shelf")
    assert database["scheme"] == "postgresql+psycopg2"  # see SQLALCHEMY_SCHEME
    assert "pw" not in (home / "dagster.yaml").read_text()  # the password stays in the env


GRAPHQL_ASSET_KEYS = "{ assetNodes { assetKey { path } } }"
GRAPHQL_LATEST_MATERIALIZATION = """
{ assetOrError(assetKey: {path: ["delta", "cleansed", "shelf_state"]}) {
    ... on Asset { assetMaterializations(limit: 1) { metadataEntries { label } } } } }
"""


def graphql(url: str, query: str) -> dict:
    response = requests.post(f"{url}/graphql", json={"query": query}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]


def poll(fetch, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(1)


@pytest.mark.integration
def test_dagster_dev_serves_the_asset_graph(settings):
    from smart_shelf_platform.stack.dagster_service import DagsterService

    service = DagsterService(settings)
    assert service.start()
    try:
        assert service.healthy()
        # The UI answers before the code location has loaded; wait for the assets.
        served = poll(lambda: {tuple(n["assetKey"]["path"]) for n in
                               graphql(service.url, GRAPHQL_ASSET_KEYS)["assetNodes"]}, 60)
        assert {tuple(k.path) for k in lineage.all_keys()} <= served
        assert ("delta", "cleansed", "shelf_state") in served
        assert ("postgres", "state", "shelf_state") in served
        assert ("kafka", "shelf_events") in served
        # The daemon runs the Delta sensor and its events land in the Postgres instance storage.
        latest = poll(lambda: graphql(service.url, GRAPHQL_LATEST_MATERIALIZATION)[
            "assetOrError"]["assetMaterializations"], 30)
        assert latest, "the Delta sensor reported nothing"
        assert "delta_version" in {e["label"] for e in latest[0]["metadataEntries"]}
    finally:
        service.stop()
    assert service.pid() is None and not service.healthy()
