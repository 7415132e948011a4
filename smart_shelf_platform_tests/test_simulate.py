"""`smart-shelf simulate` against the real stack: Redis Streams, the clock, the Postgres ledger."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from decimal import Decimal

import psycopg
import pytest
import redis

from producers.ledger import Ledger
from producers.run import SimulateOptions, simulate
from producers.streams import EVENT_TOPICS, stream_name
from producers.world.catalogue import BootLot, Product, StoreCatalogue
from producers.world.store import StoreWorld
from producers.world.traffic import Visit

pytestmark = pytest.mark.integration


@pytest.fixture()
def clean_streams(settings):
    client = redis.Redis.from_url(settings.redis_url)
    client.delete(*[stream_name(t) for t in EVENT_TOPICS])
    yield client
    client.delete(*[stream_name(t) for t in EVENT_TOPICS])


def _stream_total(client) -> int:
    return sum(client.xlen(stream_name(t)) for t in EVENT_TOPICS)


def _ledger(settings, sql: str):
    with psycopg.connect(settings.postgres_dsn()) as conn:
        return conn.execute(sql).fetchone()


def test_simulation_buffers_every_event_and_saves_a_ledger_that_balances(settings,
                                                                         clean_streams):
    sim = simulate(settings, SimulateOptions(until=settings.sim_start + timedelta(hours=3),
                                             speed=None, bad_event_rate=0.02, effects=False),
                   progress=lambda _m: None)
    bad = sum(i.count for i in sim.injectors)
    assert bad > 0
    assert _stream_total(clean_streams) == sim.events_emitted + bad

    on_shelves, = _ledger(settings, "SELECT sum(quantity) FROM sim.ledger_shelf_lots")
    sold, lost = _ledger(settings, "SELECT sum(sold_units), sum(lost_units) "
                                   "FROM sim.ledger_daily_sales")
    initial, = _ledger(settings, "SELECT sum(batch_quantity) FROM ref.store_batches_snapshot")
    in_carts = sim.worlds[0].units_in_carts()
    assert on_shelves + sold + in_carts == initial
    assert _ledger(settings, "SELECT coalesce(sum(quantity), 0) FROM sim.ledger_cart_lots "
                             "WHERE store_id = 'S001'")[0] == in_carts
    assert _ledger(settings, "SELECT min(quantity) FROM sim.ledger_shelf_lots")[0] >= 0
    assert _ledger(settings, "SELECT count(*) FROM sim.ledger_bad_events")[0] == bad
    finished, emitted = _ledger(settings, "SELECT finished, events_emitted "
                                          "FROM sim.ledger_position WHERE store_id = 'S001'")
    assert finished and emitted == sim.events_emitted


def _tiny_world(store_id: str) -> StoreWorld:
    """One shelf with one lot of 10 units, events discarded."""
    received, expiry = date(2026, 1, 1), date(2026, 1, 20)
    product = Product("SH1", "dairy", "milk", Decimal("1.00"), 1000.0, 0.1, 20, 40, 10, True)
    catalogue = StoreCatalogue(store_id, [product], [BootLot("SH1", "B1", received, expiry, 10)],
                               [], {})
    return StoreWorld(catalogue, seed=1, emit=lambda _topic, _record: None)


def test_the_ledger_rewrites_the_carts_at_every_save_and_reset_clears_them(settings):
    import uuid

    store_id = f"T{uuid.uuid4().hex[:8]}"
    world = _tiny_world(store_id)
    at = settings.sim_start
    visit = Visit(at, at + timedelta(minutes=20), "07:00-08:59")
    customers = [world.enter(visit) for _ in range(2)]
    for customer in customers:
        world.act(customer, at, is_pickup=True)
    ledger = Ledger(settings.postgres_dsn())
    reader = settings.postgres_dsn("smart_shelf_reader", settings.postgres_reader_password)

    def carts() -> list[tuple]:
        with psycopg.connect(reader) as conn:  # the dashboard role may read the ledger
            return conn.execute("SELECT shelf_id, batch_code, quantity FROM sim.ledger_cart_lots "
                                "WHERE store_id = %s", (store_id,)).fetchall()

    try:
        ledger.save(world, at, 1, 0, 2, False, [])
        picked = world.units_in_carts()
        assert carts() == [("SH1", "B1", picked)] and picked >= 2  # both carts, one lot
        world.leave(customers[0], at + timedelta(minutes=5))
        ledger.save(world, at + timedelta(minutes=5), 1, 0, 2, False, [])
        assert carts() == [("SH1", "B1", world.units_in_carts())]
        world.leave(customers[1], at + timedelta(minutes=10))
        ledger.save(world, at + timedelta(minutes=10), 1, 0, 2, True, [])
        assert carts() == []
        world.act(world.enter(visit), at, is_pickup=True)
        ledger.save(world, at + timedelta(minutes=15), 1, 0, 3, True, [])
        assert carts()
    finally:
        ledger.reset([store_id])
        ledger.close()
    assert carts() == []


def test_the_ledger_saves_expired_units_removed_per_shelf_and_day(settings):
    import uuid

    from smart_shelf_platform.contracts.simulation import LEDGER_WASTE

    store_id = f"T{uuid.uuid4().hex[:8]}"
    world = _tiny_world(store_id)  # B1 expires on the 20th
    at = settings.sim_start
    lot = {"store_id": store_id, "shelf_id": "SH1", "batch_code": "W1", "quantity": 4,
           "received_date": "2026-01-01", "expiry_date": "2026-01-19",
           "timestamp": "2026-01-20T00:00:00Z"}
    world.apply_effects([
        ("wh_events", lot | {"event_id": "in-1", "event_type": "wh_in"}),
        ("wh_events", lot | {"event_id": "rm-1", "event_type": "wh_removal"}),
        ("alerts", {"alert_id": "order-1", "shelf_id": "SH1",
                    "created_at": "2026-01-21T00:00:00Z"})], at)
    ledger = Ledger(settings.postgres_dsn())

    def waste() -> list[tuple]:
        with psycopg.connect(settings.postgres_dsn()) as conn:
            return conn.execute("SELECT shelf_id, waste_date, shelf_units, warehouse_units "
                                "FROM sim.ledger_daily_waste WHERE store_id = %s ORDER BY 2",
                                (store_id,)).fetchall()

    try:
        ledger.save(world, at, 1, 0, 0, True, [])
        assert waste() == [("SH1", date(2026, 1, 20), 0, 4), ("SH1", date(2026, 1, 21), 10, 0)]
        # The table follows its contract (until the catalogue lists it, nothing else checks).
        with psycopg.connect(settings.postgres_dsn()) as conn:
            columns = conn.execute(
                "SELECT column_name, is_nullable = 'YES' FROM information_schema.columns "
                "WHERE table_schema = 'sim' AND table_name = 'ledger_daily_waste' "
                "ORDER BY ordinal_position").fetchall()
        assert columns == [(f.name, f.nullable) for f in LEDGER_WASTE.fields]
    finally:
        ledger.reset([store_id])
        ledger.close()
    assert waste() == []


def test_ctrl_c_stops_cleanly_and_loses_nothing(settings, clean_streams):
    # Three simulated days at 2,000x would take two minutes; we interrupt after a few seconds.
    proc = subprocess.Popen(
        [sys.executable, "-m", "smart_shelf_platform.cli", "simulate", "--days", "3",
         "--speed", "2000", "--no-effects"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    time.sleep(8)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped at" in err and "ledger saved" in err
    finished, emitted, sim_time = _ledger(
        settings, "SELECT finished, events_emitted, sim_time FROM sim.ledger_position")
    assert not finished
    assert settings.sim_start < sim_time < settings.sim_start + timedelta(days=3)
    # every event the simulator counted is in the buffer (no bad events in this run)
    assert emitted > 0 and _stream_total(clean_streams) == emitted


def test_a_chain_the_platform_does_not_know_is_refused_in_one_line_before_any_event(
        settings, clean_streams):
    """The session's platform was set up with one store: simulating three would dead-letter
    every event of the two it does not know, so nothing runs, and the one line says how to get
    a platform with three."""
    from producers.run import platform_stores

    assert platform_stores(settings) == ["S001"]
    manifest = settings.data_dir / "reference" / "manifest.json"
    before = manifest.read_bytes()
    for how in (["--stores", "3"], []):
        result = subprocess.run(
            [sys.executable, "-m", "smart_shelf_platform.cli", "simulate", *how, "--days", "0.1",
             "--bad-events", "0.05", "--no-effects"],
            env={**os.environ, **settings.as_env(), **({} if how else {"SMART_SHELF_STORES": "3"})},
            capture_output=True, text=True, timeout=120)
        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            "smart-shelf: error: the platform was set up with 1 store (S001) and does not know "
            "S002, S003: to simulate 3 stores, set SMART_SHELF_STORES=3 and start a new platform "
            "with it (`./smart-shelf down`, a new SMART_SHELF_HOME, `./smart-shelf up`)"]
    # Nothing emitted (so nothing to dead-letter), nothing in the ledger, the platform's
    # reference data as it was.
    assert _stream_total(clean_streams) == 0
    assert _ledger(settings, "SELECT count(*) FROM sim.ledger_position "
                             "WHERE store_id IN ('S002', 'S003')") == (0,)
    assert platform_stores(settings) == ["S001"] and manifest.read_bytes() == before


def _reference_rows(settings) -> list[tuple]:
    """The platform's shelves and lots of the reference data, to see they are left alone."""
    with psycopg.connect(settings.postgres_dsn()) as conn:
        return [*conn.execute("SELECT store_id, shelf_id, current_stock, snapshot_ts "
                              "FROM ref.store_inventory_snapshot ORDER BY 1, 2"),
                *conn.execute("SELECT store_id, batch_code, batch_quantity "
                              "FROM ref.store_batches_snapshot ORDER BY 1, 2")]


def test_another_seed_varies_the_shoppers_in_the_stacks_stores(settings, clean_streams):
    manifest = settings.data_dir / "reference" / "manifest.json"
    before = manifest.read_bytes(), _reference_rows(settings)
    sim = simulate(settings, SimulateOptions(until=settings.sim_start + timedelta(hours=1),
                                             speed=None, effects=False, seed=7),
                   progress=lambda _m: None)
    assert (manifest.read_bytes(), _reference_rows(settings)) == before
    assert _ledger(settings, "SELECT seed FROM sim.ledger_position WHERE store_id = 'S001'") \
        == (7,)
    # The world is the stack's store: its ledger balances against the stack's lots.
    on_shelves, = _ledger(settings, "SELECT sum(quantity) FROM sim.ledger_shelf_lots")
    sold, = _ledger(settings, "SELECT sum(sold_units) FROM sim.ledger_daily_sales")
    initial, = _ledger(settings, "SELECT sum(batch_quantity) FROM ref.store_batches_snapshot")
    assert sold > 0 and on_shelves + sold + sim.worlds[0].units_in_carts() == initial


def test_a_seed_that_makes_other_stores_is_refused_in_one_line(settings, clean_streams):
    """SMART_SHELF_SEED is the stack's reference data: another one would make other shelves and
    lots than the platform's state started from, so nothing runs and nothing is rewritten."""
    manifest = settings.data_dir / "reference" / "manifest.json"
    before = manifest.read_bytes(), _reference_rows(settings)
    result = subprocess.run(
        [sys.executable, "-m", "smart_shelf_platform.cli", "simulate", "--days", "0.1",
         "--no-effects"], env={**os.environ, **settings.as_env(), "SMART_SHELF_SEED": "7"},
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "smart-shelf: error: the platform's reference data for S001 is not the one "
        f"SMART_SHELF_SEED=7 and SMART_SHELF_SIM_START={settings.sim_start.isoformat()} make: "
        "simulate with the seed and start the stack was set up with (`--seed` alone varies the "
        "shoppers), or start a stack on these (`./smart-shelf down`, a new SMART_SHELF_HOME, "
        "`./smart-shelf up`)"]
    assert _stream_total(clean_streams) == 0
    assert (manifest.read_bytes(), _reference_rows(settings)) == before


def test_the_simulated_stores_reference_is_the_stacks_whatever_its_folder_holds(settings,
                                                                               tmp_path):
    from producers.run import platform_reference
    from smart_shelf_platform.refdata import generate
    from smart_shelf_platform.stack.process import StackError

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    # The stack's own folder, for its seed and start: used as it is.
    files = platform_reference(settings, ["S001"], scratch)
    assert files["store_inventory"].parent == settings.data_dir / "reference"
    # A folder made for a larger chain (fewer stores simulated than the stack has): its files
    # hold S001 as the stack's, so they are used and left as they are.
    chain = tmp_path / "chain"
    generate(chain / "reference", seed=settings.seed, stores=2, sim_start=settings.sim_start)
    before = (chain / "reference" / "manifest.json").read_bytes()
    files = platform_reference(settings.model_copy(update={"data_dir": chain}), ["S001"], scratch)
    assert files["store_inventory"].parent == chain / "reference"
    assert (chain / "reference" / "manifest.json").read_bytes() == before
    # A folder another seed overwrote: the stack's store is made aside and agrees.
    generate(chain / "reference", seed=7, stores=1, sim_start=settings.sim_start)
    files = platform_reference(settings.model_copy(update={"data_dir": chain}), ["S001"], scratch)
    assert files["store_inventory"].parent == scratch
    # Another start makes other lots: refused.
    later = settings.model_copy(update={"sim_start": settings.sim_start + timedelta(days=1)})
    with pytest.raises(StackError, match="reference data for S001 is not the one"):
        platform_reference(later, ["S001"], tmp_path / "later")


def _stream_fingerprint(client) -> str:
    import hashlib

    digest = hashlib.sha256()
    for topic in EVENT_TOPICS:
        for _, fields in client.xrange(stream_name(topic)):
            digest.update(b"\0".join((topic.encode(), fields[b"k"], fields[b"v"],
                                      fields[b"id"])) + b"\n")
    return digest.hexdigest()


def test_two_runs_with_one_seed_buffer_the_same_event_stream(settings, clean_streams):
    options = SimulateOptions(until=settings.sim_start + timedelta(hours=2), speed=None,
                              bad_event_rate=0.01, effects=False)
    fingerprints = []
    for _ in range(2):
        clean_streams.delete(*[stream_name(t) for t in EVENT_TOPICS])
        simulate(settings, options, progress=lambda _m: None)
        fingerprints.append(_stream_fingerprint(clean_streams))
    # (that another seed gives another stream is a unit test: it needs no second reference load)
    assert fingerprints[0] == fingerprints[1]


def _end_offsets(settings, topics) -> list:
    """Where each partition of the topics ends now: later reads start there, so events of
    earlier runs (same seed, same ids) are not counted."""
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"offsets-{uuid.uuid4()}"})
    try:
        metadata = consumer.list_topics(timeout=10).topics
        return [TopicPartition(t, p, consumer.get_watermark_offsets(
                    TopicPartition(t, p), timeout=10)[1])
                for t in topics for p in metadata[t].partitions]
    finally:
        consumer.close()


def _ids_in_kafka(settings, start_at: list, wanted: set[str],
                  timeout_s: float = 60) -> dict[str, int]:
    """How many times each wanted event id appears after the `start_at` offsets."""
    import json
    import uuid

    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"verify-{uuid.uuid4()}", "enable.auto.commit": False})
    consumer.assign(start_at)
    seen: dict[str, int] = {}
    deadline = time.monotonic() + timeout_s
    idle_polls = 0
    try:
        while time.monotonic() < deadline and idle_polls < 3:
            messages = consumer.consume(num_messages=10_000, timeout=1)
            idle_polls = 0 if messages else idle_polls + 1
            for msg in messages:
                if msg.error():
                    continue
                try:
                    event_id = json.loads(msg.value()).get("event_id")
                except (ValueError, AttributeError):
                    continue
                if event_id in wanted:
                    seen[event_id] = seen.get(event_id, 0) + 1
    finally:
        consumer.close()
    return seen


def test_simulated_events_reach_kafka_once_each_across_a_bridge_sigkill(settings):
    import uuid

    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(settings.redis_url)
    streams = [stream_name(t, prefix) for t in EVENT_TOPICS]
    sim = simulate(settings, SimulateOptions(until=settings.sim_start + timedelta(hours=8),
                                             speed=None, effects=False, stream_prefix=prefix),
                   progress=lambda _m: None)
    written = {fields[b"id"].decode() for s in streams for _, fields in client.xrange(s)}
    assert len(written) == sim.events_emitted > 5000

    start_at = _end_offsets(settings, EVENT_TOPICS)
    bridge = [sys.executable, "-m", "producers.bridge", "--prefix", prefix,
              "--consumer", "test-sigkill", "--read-count", "500", "--max-in-flight", "1000"]
    env = {**os.environ, **settings.as_env()}
    first = subprocess.Popen(bridge, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while sum(client.xlen(s) for s in streams) > len(written) // 2:
            assert time.monotonic() < deadline, "the bridge did not start forwarding"
            time.sleep(0.01)
    finally:
        first.kill()  # SIGKILL: no flush, no acknowledgement of what was in flight
        first.wait()
    assert sum(client.xlen(s) for s in streams) > 0, "killed too late to prove anything"
    second = subprocess.run([*bridge, "--stop-when-idle", "3"], env=env, timeout=120,
                            capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-2000:]
    assert sum(client.xlen(s) for s in streams) == 0

    seen = _ids_in_kafka(settings, start_at, written)
    lost = written - set(seen)
    duplicates = sum(n - 1 for n in seen.values())
    assert not lost, f"{len(lost)} events never reached Kafka"
    # At-least-once across a SIGKILL: at most one in-flight window is sent twice, and the
    # streaming jobs drop those by event_id.
    assert duplicates <= 1000, duplicates
    client.delete(*streams)
