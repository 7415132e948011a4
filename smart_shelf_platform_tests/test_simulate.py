"""`smart-shelf simulate` against the real stack: Redis Streams, the clock, the Postgres ledger."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import psycopg
import pytest
import redis

from producers.run import SimulateOptions, simulate
from producers.streams import EVENT_TOPICS, stream_name

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
    assert _ledger(settings, "SELECT min(quantity) FROM sim.ledger_shelf_lots")[0] >= 0
    assert _ledger(settings, "SELECT count(*) FROM sim.ledger_bad_events")[0] == bad
    finished, emitted = _ledger(settings, "SELECT finished, events_emitted "
                                          "FROM sim.ledger_position WHERE store_id = 'S001'")
    assert finished and emitted == sim.events_emitted


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
    assert fingerprints[0] == fingerprints[1]
    other = settings.model_copy(update={"seed": settings.seed + 1})
    clean_streams.delete(*[stream_name(t) for t in EVENT_TOPICS])
    simulate(other, options, progress=lambda _m: None)
    assert _stream_fingerprint(clean_streams) != fingerprints[0]
