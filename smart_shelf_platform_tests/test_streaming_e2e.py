"""End to end, a chain: three stores through the whole loop over a simulated morning, with
malformed events mixed in. The simulator runs with the platform's effects on, the bridge and the
streaming application run continuously and decide in hourly rounds (`test_replenishment_loop.
closed_loop`): state, alerts, restock plans, the refills the world's restockers carry out,
supplier plans. When the simulation has settled, and while the application still runs, hostile
records are written straight to every input topic (`hostile_records`): each must be refused with
its reason and change nothing, as must late copies of valid events and the whole run's events
sent a second time (a replayed topic). Then, on what the run left
behind, what a chain's operator runs: `verify` (exact for every store, every bad event
dead-lettered), `report` (every store and the total), the day's features (every shelf of every
store) and every asset check of the Dagster code location.

The run is the module's own: a database with reference data of three stores, Kafka topics,
Delta root, checkpoints, Redis streams and simulated clock nobody else writes to, so the checks
that read the whole ledger or the clock see this run and nothing else."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import dagster as dg
import psycopg
from confluent_kafka import Producer
import pytest

from producers.simulator import Simulation
from producers.streams import stream_name
from smart_shelf_platform.clock import RedisClock, floor_minute, iso_utc
from smart_shelf_platform.contracts.catalogue import TOPICS_BY_NAME
from smart_shelf_platform.definitions import build_definitions
from smart_shelf_platform.defs.analytics.assets import FEATURES_DELTA_KEY, MATERIALIZED_KEYS
from smart_shelf_platform.defs.forecasting.assets import PREDICTIONS_KEY, REGISTRY_KEY
from smart_shelf_platform.defs.lineage import TRAINING_SET_KEY
from smart_shelf_platform.defs.quality.checks import FRESH_WITHIN_LAG, MATCHES_LEDGER
from smart_shelf_platform.defs.resources import RESOURCE_KEY, SmartShelfResource
from smart_shelf_platform.ml import feature_store
from smart_shelf_platform.progress import wait_until_read
from smart_shelf_platform.settings import Settings
from smart_shelf_platform.verify import verify
from smart_shelf_platform_tests.hostile_records import (
    INPUT_TOPICS, Hostile, hostile_records, tick_attacks,
)
from smart_shelf_platform_tests.streaming_support import consume_all, delta_rows
from streaming import runner
from streaming.shell import QueryContext

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

EVENT_TOPICS = ("foot_traffic", "shelf_events", "pos_transactions")
ORDER = [query for stage in runner.STAGES for query in stage]  # state before the engines
STORES = ["S001", "S002", "S003"]
SIMULATED = timedelta(hours=3)  # a morning: the run covers part of its start's day
BAD_EVENTS = 0.01
FORECAST_CHECKED = (TRAINING_SET_KEY, REGISTRY_KEY, PREDICTIONS_KEY)


def bridge_into(ctx, settings, stream_prefix: str) -> None:
    """Forward the run's Redis streams to the context's private topics until idle."""
    mapping = [arg for t in EVENT_TOPICS
               for arg in ("--stream", f"{stream_name(t, stream_prefix)}={ctx.topic(t)}")]
    result = subprocess.run(
        [sys.executable, "-m", "producers.bridge", *mapping, "--consumer", "e2e",
         "--stop-when-idle", "3"],
        env={**os.environ, **settings.as_env()}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@dataclass(frozen=True)
class Attack:
    """What was written to the run's topics after it settled: hostile records, and late copies
    of valid events and of a tick (each valid record as it was first sent)."""

    hostile: list[Hostile]
    late_copies: dict[str, dict]  # topic -> the valid record sent again
    end: str  # the clock's last minute, ISO-8601


@dataclass(frozen=True)
class PipelineRun:
    settings: Settings  # the run's database and Delta root
    ctx: QueryContext
    sim: Simulation
    clock_prefix: str
    attack: Attack

    @property
    def day(self) -> date:
        """The simulated day the run covers part of (it starts and ends within it)."""
        return self.settings.sim_start.date()

    def resource(self) -> SmartShelfResource:
        """The code location's resource for this run: its database, Delta root and clock."""
        resource = SmartShelfResource.from_settings(self.settings)
        return SmartShelfResource(**{**resource.model_dump(),
                                     "clock_key_prefix": self.clock_prefix})

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """`smart-shelf <args>` as a user with this run's settings runs it."""
        return subprocess.run([sys.executable, "-m", "smart_shelf_platform.cli", *args],
                              env={**os.environ, **self.settings.as_env()},
                              capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def pipeline(settings, tmp_path_factory):
    """The chain's closed loop, once for the module, stopped and settled (the platform agrees
    with the ledger) before the first test."""
    # Imported here: that module imports this one's EVENT_TOPICS.
    from smart_shelf_platform_tests.test_replenishment_loop import closed_loop

    tmp = tmp_path_factory.mktemp("e2e")
    clock: dict[str, str] = {}
    attacks: list[Attack] = []

    @contextmanager
    def attack_once_settled(own, ctx, clock_prefix: str):
        clock["prefix"] = clock_prefix  # the freshness checks read the run's clock
        yield
        attacks.append(attack(own, ctx, clock_prefix))

    with closed_loop(settings, tmp, database={"stores": len(STORES), "data_dir": tmp / "data"},
                     simulated=SIMULATED, bad_events=BAD_EVENTS,
                     alongside=attack_once_settled) as (own, ctx, sim):
        yield PipelineRun(own, ctx, sim, clock["prefix"], attacks[0])


def first_valid(messages: list, dead: set[tuple[str, int]]) -> dict:
    """The first of a topic's messages the run did not dead-letter, as a record."""
    return next(json.loads(m.value()) for m in messages if (m.topic(), m.offset()) not in dead)


# Kafka time of the hostile records and the late copies: an hour on. A deduplication bounded
# in Kafka time (the platform's once kept ids for ten minutes of it) would have let the
# originals' ids go by the time the copies come, and applied them again.
LATER = timedelta(hours=1)


def attack(own, ctx, clock_prefix: str) -> Attack:
    """Replay the run's event topics (every message a second time, minutes late, as a replayed
    topic or a bridge re-sending what it had sent brings them), then write the hostile
    records, and once they are read, the late copies of valid events, both stamped an hour
    on in Kafka time; wait until every query of the still running application has read it
    all."""
    import redis

    dead = {(r["source"], r["source_offset"]) for r in delta_rows(ctx, "raw/dead_letter")}
    run = {t: consume_all(ctx, t) for t in EVENT_TOPICS}
    late = {t: first_valid(run[t] if t in run else consume_all(ctx, t), dead)
            for t in (*EVENT_TOPICS, "wh_events", "clock_ticks")}
    valid = {**late, **sample_policies(late["shelf_events"])}
    client = redis.Redis.from_url(own.redis_url)
    end = floor_minute(RedisClock(client, clock_prefix).now())
    hostile = hostile_records(valid) + tick_attacks(end)
    producer = Producer({"bootstrap.servers": own.kafka_bootstrap, "enable.idempotence": True})
    refused = []
    later_ms = int((datetime.now(timezone.utc) + LATER).timestamp() * 1000)

    def send(topic: str, key, value, **kafka_time) -> None:
        producer.produce(ctx.topic(topic), key=key, value=value, **kafka_time,
                         on_delivery=lambda err, _m: err and refused.append(err))

    def all_read() -> None:
        assert producer.flush(60) == 0 and not refused, refused
        wait_until_read(client, clock_prefix, own.kafka_bootstrap,
                        queries=runner.spark_query_names(), timeout=300)

    for topic, messages in run.items():
        for message in messages:
            send(topic, message.key(), message.value())
    for i, h in enumerate(hostile):  # keyed: the policy topics are compacted and need one
        send(h.topic, f"hostile-{i}", h.payload, timestamp=later_ms)
    all_read()
    for topic, record in late.items():
        send(topic, TOPICS_BY_NAME[topic].message_key(record), json.dumps(record),
             timestamp=later_ms)
    all_read()
    client.close()
    return Attack(hostile, late, iso_utc(end))


def sample_policies(shelf_event: dict) -> dict[str, dict]:
    """A valid policy of each kind for the event's shelf: the base of the hostile ones, never
    sent itself."""
    at = shelf_event["timestamp"]
    scope = {"store_id": shelf_event["store_id"], "policy_id": str(uuid.uuid4()),
             "shelf_id": shelf_event["shelf_id"], "item_category": None,
             "item_subcategory": None, "active": True, "notes": None, "created_at": at,
             "updated_at": at}
    return {"shelf_policies": scope | {"threshold_pct": 30.0, "min_qty": 1, "target_pct": 80.0},
            "wh_policies": scope | {"reorder_point_qty": 10}}


def test_verify_is_exact_for_every_store_and_every_bad_event_is_dead_lettered(pipeline):
    ctx, sim = pipeline.ctx, pipeline.sim
    bad = sum(i.count for i in sim.injectors)
    assert sim.events_emitted > 3000 and bad > 30

    result = pipeline.cli("verify")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    report = verify(pipeline.settings)
    assert report.ok and report.stores == STORES
    assert report.bad_events == bad and not report.missing_dead_letters
    lines = result.stdout.splitlines()
    for store in STORES:  # each store exact, each with malformed events of its own
        keys = sum(c.store_keys[store] for c in report.comparisons.values())
        injected = report.store_bad_events[store]
        assert injected and f"  {store}: {keys} keys, 0 differences, {injected} bad events " \
            "injected" in lines, lines[-8:]
    keys = sum(c.keys for c in report.comparisons.values())
    assert lines[-1] == f"verify: OK (3 stores, {keys} keys, {bad} bad events dead-lettered)"

    hostile = {dead_letter_payload(h.payload) for h in pipeline.attack.hostile}
    dead = [r for r in delta_rows(ctx, "raw/dead_letter") if r["payload"] not in hostile]
    # The run's topics were replayed (`attack`): a malformed event without a readable id is
    # refused each time it comes; one refused with its id read (a time or shelf out of bounds)
    # is, replayed, a repeat of that id and is dropped.
    sent = Counter(r["payload"] for r in dead)
    assert len(sent) == bad and set(sent.values()) == {1, 2} and all(r["reason"] for r in dead)
    # Found in the one Spark query of the platform, named after the query that reads the topic.
    reporter = {"shelf_events": "shelf_aggregator", "foot_traffic": "foot_traffic_raw_sink",
                "pos_transactions": "batch_state_updater", "wh_events": "wh_aggregator"}
    assert all(r["detected_by"] == reporter[r["source"].removeprefix(ctx.topic_prefix)]
               for r in dead)
    alerts = delta_rows(ctx, "ops/alerts")
    assert len({r["alert_id"] for r in alerts}) == len(alerts)
    plans = delta_rows(ctx, "ops/shelf_restock_plan")
    refills = {(r["store_id"], r["shelf_id"]) for r in alerts
               if r["alert_type"] == "refill_request"}
    assert {(p["store_id"], p["shelf_id"]) for p in plans} == refills, \
        "a plan for every shelf that asked for one"
    assert {store for store, _ in refills} == set(STORES), "three hours empty shelves everywhere"
    # The loop closed: restockers put the plans' picks on the shelves.
    assert any(e["actor"] == "restocker" and e["event_type"] == "putback"
               for e in delta_rows(ctx, "raw/shelf_events"))


def dead_letter_payload(payload: bytes | None) -> str | None:
    """A record's payload as the dead letters keep it: text, base64 when not UTF-8, "" for a
    null value."""
    if payload is None:
        return ""
    try:
        return payload.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(payload).decode()


def test_hostile_records_are_refused_with_their_reason_and_late_copies_change_nothing(
        pipeline):
    """Written straight to the topics after the run, while the application runs: every
    hostile record is in the dead letters with its reason, found by a query of the platform;
    a copy of a valid event or tick, however late, is taken once; nothing any query decided or
    folded carries a time after the clock's last minute (a forged tick or event moved no
    state, no plan, no alert). `verify`, exact in the test above, ran after all of it."""
    ctx, attack = pipeline.ctx, pipeline.attack
    dead: dict[tuple[str, str], list[dict]] = {}
    for row in delta_rows(ctx, "raw/dead_letter"):
        dead.setdefault((row["source"], row["payload"]), []).append(row)
    queries = set(runner.QUERIES)
    unrefused = []
    for h in attack.hostile:
        found = dead.get((ctx.topic(h.topic), dead_letter_payload(h.payload)), [])
        if not any(h.reason in r["reason"] for r in found):
            unrefused.append((h.topic, h.what, h.reason, [r["reason"] for r in found]))
        assert all(r["detected_by"] in queries for r in found), found
    assert not unrefused, unrefused
    assert len(attack.hostile) > 150 and {h.topic for h in attack.hostile} == {
        *INPUT_TOPICS, "clock_ticks"}

    # Late copies, and the whole run replayed: every id once in its raw table, none
    # dead-lettered.
    raw = {"shelf_events": "raw/shelf_events", "pos_transactions": "raw/pos_transactions",
           "foot_traffic": "raw/foot_traffic", "wh_events": "raw/wh_events"}
    for topic, path in raw.items():
        ids = [r["event_id"] for r in delta_rows(ctx, path)]
        assert len(ids) == len(set(ids)), topic
        copy = attack.late_copies[topic]
        assert copy["event_id"] in ids and not dead.get((ctx.topic(topic), json.dumps(copy)))
    for topic in EVENT_TOPICS:  # the run was indeed sent twice
        sent = Counter(m.value() for m in consume_all(ctx, topic))
        ours = {h.payload for h in attack.hostile if h.topic == topic}
        late = json.dumps(attack.late_copies[topic]).encode()
        assert {v for v, n in sent.items() if n != 2} <= ours | {late}, topic
        assert sent[late] == 1 and sum(n == 2 for n in sent.values()) > 100, topic

    # No state, alert or plan moved past the clock by a forged time.
    end = datetime.fromisoformat(attack.end.replace("Z", "+00:00"))
    stamped = {"cleansed/shelf_state": "last_update_ts", "cleansed/wh_state": "last_update_ts",
               "cleansed/shelf_batch_state": "last_update_ts",
               "cleansed/wh_batch_state": "last_update_ts", "ops/alerts": "updated_at",
               "ops/shelf_restock_plan": "updated_at", "ops/wh_supplier_plan": "updated_at"}
    for path, column in stamped.items():
        latest = max(r[column] for r in delta_rows(ctx, path))
        assert latest.replace(tzinfo=timezone.utc) <= end, (path, latest)


Evaluations = dict[tuple[str, str], dg.AssetCheckEvaluation]


def evaluations(result: dg.ExecuteInProcessResult) -> Evaluations:
    return {(e.asset_key.to_user_string(), e.check_name): e
            for e in result.get_asset_check_evaluations()}


def failures(found: Evaluations) -> dict:
    return {key: {k: v.value for k, v in e.metadata.items()}
            for key, e in found.items() if not e.passed}


def test_the_day_s_features_and_every_asset_check_of_the_code_location_pass(pipeline):
    """Every check of `smart_shelf_platform.definitions:defs` applies to this run (none is left
    out): the reference and ledger checks read its database, the state, freshness and
    conservation checks its Delta root and clock, the feature checks the day's partition. The
    forecasting checks are partitioned by supplier cutoff and need a cutoff's training set and
    forecast: test_forecasting_assets.py runs them."""
    definitions = build_definitions(pipeline.settings)
    forecasting = dg.AssetSelection.checks_for_assets(*FORECAST_CHECKED)
    every_check = {(k.asset_key.to_user_string(), k.name)
                   for k in definitions.resolve_asset_graph().asset_check_keys
                   if k.asset_key not in FORECAST_CHECKED}
    everything = [*definitions.assets, *definitions.asset_checks]
    resources = {RESOURCE_KEY: pipeline.resource()}  # the run's database, Delta root and clock
    day = pipeline.day
    assert (pipeline.settings.sim_start + SIMULATED).date() == day, "one day's partition"

    # The day's partition: the Delta features, their (blocking) checks, the Postgres upsert.
    features = dg.materialize(
        everything, partition_key=day.isoformat(), resources=resources, raise_on_error=False,
        selection=dg.AssetSelection.assets(*MATERIALIZED_KEYS)
        | dg.AssetSelection.checks_for_assets(FEATURES_DELTA_KEY))
    feature_checks = evaluations(features)
    assert features.success and feature_checks, failures(feature_checks)
    assert {e.asset_key for e in features.get_asset_materialization_events()} == \
        MATERIALIZED_KEYS

    # Every other check, once, on what the run left behind (none of them is partitioned).
    others = dg.materialize(
        everything, resources=resources, raise_on_error=False,
        selection=dg.AssetSelection.all_asset_checks()
        - dg.AssetSelection.checks_for_assets(FEATURES_DELTA_KEY) - forecasting)
    found = {**feature_checks, **evaluations(others)}
    assert set(found) == every_check, {"not run": every_check - set(found)}
    assert not failures(found), failures(found)
    assert others.success

    # One row per shelf of every store, in Delta and Postgres; the day's sales are the ledger's.
    rows = feature_store.read_delta_partition(pipeline.settings.delta_root, day).to_pylist()
    with psycopg.connect(pipeline.settings.postgres_dsn()) as conn:
        shelves = dict(conn.execute("SELECT store_id, count(*) FROM ref.store_inventory_snapshot "
                                    "GROUP BY store_id").fetchall())
        upserted = dict(conn.execute("SELECT store_id, count(*) FROM "
                                     "analytics.shelf_daily_features WHERE feature_date = %s "
                                     "GROUP BY store_id", (day,)).fetchall())
        sold = dict(conn.execute("SELECT store_id, sum(sold_units) FROM sim.ledger_daily_sales "
                                 "WHERE sale_date = %s GROUP BY store_id", (day,)).fetchall())
    assert sorted(shelves) == STORES
    assert len(rows) == len({(r["store_id"], r["shelf_id"]) for r in rows})
    assert Counter(r["store_id"] for r in rows) == shelves == upserted
    sales = Counter()
    for row in rows:
        sales[row["store_id"]] += row["sales_qty"]
    assert sales == sold and all(sold.values())
    # The Delta partition's materialization shows the day store by store.
    materialized = next(e for e in features.get_asset_materialization_events()
                        if e.asset_key == FEATURES_DELTA_KEY).materialization
    assert {r.data["store_id"]: (r.data["shelves"], r.data["units_sold"])
            for r in materialized.metadata["per_store"].records} == {
        store: (shelves[store], sold[store]) for store in STORES}
    # The checks saw this run: its clock (a lag, not "never run"), its ledger and Delta state.
    fresh = found[("delta/cleansed/shelf_state", FRESH_WITHIN_LAG)]
    assert fresh.metadata["lag_minutes"].value <= 60
    conserved = found[("delta/cleansed/shelf_batch_state", MATCHES_LEDGER)]
    assert conserved.metadata["stores"].value == STORES and conserved.metadata["keys"].value


def test_the_report_command_shows_every_store_and_the_chain_s_total(pipeline):
    """`smart-shelf report --json` with the run's settings: per store, lost sales and waste are
    the ledger's, alerts and plans the ops tables', stock the cleansed state's (one day, so its
    end is now); the total adds the stores up. The table has a column per store and the total."""
    ctx, day = pipeline.ctx, pipeline.day
    result = pipeline.cli("report", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["window"] == {"from": day.isoformat(), "to": day.isoformat()}
    assert list(report["stores"]) == STORES

    with psycopg.connect(pipeline.settings.postgres_dsn()) as conn:
        sales = {s: (sold, lost) for s, sold, lost in conn.execute(
            "SELECT store_id, sum(sold_units), sum(lost_units) FROM sim.ledger_daily_sales "
            "GROUP BY store_id")}
        waste = {s: (shelf, wh) for s, shelf, wh in conn.execute(
            "SELECT store_id, coalesce(sum(shelf_units), 0), coalesce(sum(warehouse_units), 0) "
            "FROM sim.ledger_daily_waste GROUP BY store_id")}
    assert report["waste_source"].startswith("ledger")
    alerts, plans = delta_rows(ctx, "ops/alerts"), delta_rows(ctx, "ops/shelf_restock_plan")
    orders = delta_rows(ctx, "ops/wh_supplier_orders")
    shelf_state, wh_state = delta_rows(ctx, "cleansed/shelf_state"), \
        delta_rows(ctx, "cleansed/wh_state")
    days = SIMULATED / timedelta(days=1)
    for store in STORES:
        kpis, (sold, lost) = report["stores"][store], sales[store]
        assert kpis["units_sold"] == sold > 0
        assert kpis["lost_sales"]["units"] == lost
        assert kpis["lost_sales"]["pct_of_demand"] == round(100 * lost / (sold + lost), 2)
        assert (kpis["waste"]["shelf_units"], kpis["waste"]["warehouse_units"]) == \
            waste.get(store, (0, 0))
        assert {k: v for k, v in kpis["alerts"]["by_type"].items() if v} == \
            Counter(a["alert_type"] for a in alerts if a["store_id"] == store)
        assert {k: v for k, v in kpis["restock_plans"].items() if v} == \
            Counter(p["status"] for p in plans if p["store_id"] == store)
        assert kpis["supplier_orders"]["placed"] == sum(o["store_id"] == store for o in orders)
        # A run within one day: its end-of-day stock is the current state.
        on_hand = sum(r["current_stock"] for r in shelf_state if r["store_id"] == store) + sum(
            r["wh_current_stock"] for r in wh_state if r["store_id"] == store)
        cover = kpis["stock_cover"]
        assert cover["simulated_days"] == round(days, 3)
        assert cover["average_stock_units"] == on_hand > 0
        assert cover["average_daily_sold"] == round(sold / days, 2)
    total = report["total"]
    assert total["units_sold"] == sum(sold for sold, _ in sales.values())
    assert total["lost_sales"]["units"] == sum(lost for _, lost in sales.values())
    assert sum(total["alerts"]["by_type"].values()) == len(alerts)

    table = pipeline.cli("report")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].startswith(f"report: {day} to {day}") and "3 stores" in lines[0]
    assert lines[1].split() == [*STORES, "total"]
    assert any(line.startswith("lost sales, units") for line in lines)
