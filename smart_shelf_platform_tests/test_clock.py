"""The simulated clock: pure stepping rules, then the driver against real Redis and Kafka."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import date, datetime, timedelta, timezone

import jsonschema
import pytest

from smart_shelf_platform.clock import (
    ClockBounds, ClockConflict, ClockError, ClockNotRunning, ClockState, RedisClock, SimClock,
    decision_rounds, iso_utc, minutes_crossed, redis_client, run_clock, tick_event, tick_id,
)
from smart_shelf_platform.contracts.events import CLOCK_TICK
from smart_shelf_platform.settings import REPO_ROOT, Settings

START = datetime(2026, 1, 1, 7, 0, tzinfo=timezone.utc)


def minute(hh: int, mm: int, day: int = 1) -> datetime:
    return datetime(2026, 1, day, hh, mm, tzinfo=timezone.utc)


def ids(minutes: list[datetime]) -> list[str]:
    return [tick_id(m) for m in minutes]


def run_pure(state: ClockState, step: float, steps: int) -> tuple[ClockState, list[list[str]]]:
    per_step = []
    for _ in range(steps):
        state, ticks = state.advance(step)
        per_step.append(ids(ticks))
    return state, per_step


# ------------------------------------------------------------------------------------------------
# Pure core
# ------------------------------------------------------------------------------------------------


def test_decision_rounds_fall_on_the_same_minutes_every_day():
    assert decision_rounds(0) == frozenset()
    assert decision_rounds(360) == {"00:00", "06:00", "12:00", "18:00"}
    assert len(decision_rounds(30)) == 48 and "23:30" in decision_rounds(30)
    assert Settings(decision_round_minutes=45).decision_round_minutes == 45
    with pytest.raises(ValueError, match="does not divide a day"):
        Settings(decision_round_minutes=7)


def test_five_second_steps_tick_once_every_twelve_steps():
    state, per_step = run_pure(ClockState.fresh(START), 5, 36)
    ticking = [i + 1 for i, t in enumerate(per_step) if t]
    assert ticking == [12, 24, 36]
    assert [t for t in per_step if t] == [["2026-01-01T07:01:00Z"], ["2026-01-01T07:02:00Z"],
                                          ["2026-01-01T07:03:00Z"]]
    assert state == ClockState(minute(7, 3), minute(7, 3))


def test_two_minute_steps_tick_twice_per_step():
    _, per_step = run_pure(ClockState.fresh(START), 120, 3)
    assert per_step == [ids([minute(7, 1), minute(7, 2)]), ids([minute(7, 3), minute(7, 4)]),
                        ids([minute(7, 5), minute(7, 6)])]


def test_step_landing_on_a_minute_ticks_it_exactly_once():
    state = ClockState.fresh(START + timedelta(seconds=30))
    assert state.last_tick == START  # the start minute itself is not a crossed minute
    state, per_step = run_pure(state, 30, 4)
    assert per_step == [["2026-01-01T07:01:00Z"], [], ["2026-01-01T07:02:00Z"], []]
    assert state.now == minute(7, 2) + timedelta(seconds=30)


def test_uneven_steps_cross_every_minute_once_and_in_order():
    state, per_step = run_pure(ClockState.fresh(START), 37, 100)
    flat = [t for ticks in per_step for t in ticks]
    assert flat == ids([START + i * timedelta(minutes=1) for i in range(1, 62)])
    assert state.now == START + timedelta(seconds=3700)


def test_ticks_are_deterministic_across_replays():
    a = run_pure(ClockState.fresh(START), 25, 200)
    b = run_pure(ClockState.fresh(START), 25, 200)
    assert a == b
    wall_1, wall_2 = datetime(2030, 1, 1, tzinfo=timezone.utc), datetime.now(timezone.utc)
    e1, e2 = tick_event(minute(7, 1), wall_1, 10), tick_event(minute(7, 1), wall_2, 10)
    assert {k: v for k, v in e1.items() if k != "wall_time"} == \
           {k: v for k, v in e2.items() if k != "wall_time"}


def test_minutes_crossed_is_half_open():
    assert minutes_crossed(minute(7, 0), minute(7, 0)) == []
    assert minutes_crossed(minute(7, 0), minute(7, 0) + timedelta(seconds=59)) == []
    assert minutes_crossed(minute(7, 0), minute(7, 1)) == [minute(7, 1)]
    assert minutes_crossed(minute(7, 0) + timedelta(seconds=59), minute(7, 3)) == \
           [minute(7, 1), minute(7, 2), minute(7, 3)]


def test_step_must_move_forward():
    with pytest.raises(ValueError):
        ClockState.fresh(START).advance(0)


def test_tick_event_matches_the_contract_and_crosses_midnight():
    event = tick_event(minute(0, 0, day=2), datetime(2026, 5, 1, 12, 0, 0, 123456,
                                                      tzinfo=timezone.utc), 10)
    assert list(event) == CLOCK_TICK.field_names
    jsonschema.validate(event, CLOCK_TICK.json_schema())
    assert event == {"tick_id": "2026-01-02T00:00:00Z", "sim_time": "2026-01-02T00:00:00Z",
                     "sim_date": "2026-01-02", "wall_time": "2026-05-01T12:00:00.123Z",
                     "speed": 10.0}


def test_position_round_trip_and_validation():
    state = ClockState(minute(7, 3) + timedelta(seconds=5.5), minute(7, 3))
    assert ClockState.decode(state.encode()) == state
    assert json.loads(state.encode()) == {"now": "2026-01-01T07:03:05.500000Z",
                                          "last_tick": "2026-01-01T07:03:00Z"}
    with pytest.raises(ClockError):
        ClockState.decode("not json")
    with pytest.raises(ClockError):
        ClockState.decode(json.dumps({"now": "2026-01-01T07:00:00Z",
                                      "last_tick": "2026-01-01T07:05:00Z"}))


def test_iso_utc_uses_z_and_treats_naive_as_utc():
    assert iso_utc(datetime(2026, 1, 1, 7, 0)) == "2026-01-01T07:00:00Z"
    cet = timezone(timedelta(hours=1))
    assert iso_utc(datetime(2026, 1, 1, 8, 0, tzinfo=cet)) == "2026-01-01T07:00:00Z"


# ------------------------------------------------------------------------------------------------
# Against real Redis and Kafka (`settings` and the stack come from conftest.py)
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def redis_conn(settings):
    """The clock's own client (strings, not bytes); conftest's `prefix` cleans up after it."""
    client = redis_client(settings)
    yield client
    client.close()


@pytest.fixture
def topic(settings):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    name = f"test_clock_ticks_{uuid.uuid4().hex}"
    admin.create_topics([NewTopic(name, 1, settings.kafka_replication_factor)])[name].result(30)
    deadline = time.monotonic() + 10
    while name not in admin.list_topics(timeout=5).topics:  # metadata can trail creation
        assert time.monotonic() < deadline, f"topic {name} never appeared"
        time.sleep(0.1)
    yield name
    admin.delete_topics([name])[name].result(30)


def make_clock(settings, prefix, topic, **overrides) -> SimClock:
    kwargs = {"start": START, "speed": 0, "step_seconds": 25, "key_prefix": prefix,
              "topic": topic} | overrides
    return SimClock.from_settings(settings, **kwargs)


def read_ticks(settings, topic: str, expected: int, timeout: float = 15.0) -> list[dict]:
    """Every tick on the topic, in partition order: waits for `expected`, then for strays."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": f"test-clock-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    ticks: list[dict] = []
    deadline = time.monotonic() + timeout
    idle_until = None
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                if len(ticks) >= expected:
                    idle_until = idle_until or time.monotonic() + 1.0
                    if time.monotonic() >= idle_until:
                        break
                continue
            assert msg.error() is None, msg.error()
            value = json.loads(msg.value())
            assert msg.key().decode() == value["tick_id"]
            ticks.append(value)
    finally:
        consumer.close()
    return ticks


def expected_ids(first: datetime, last: datetime) -> list[str]:
    count = (last - first) // timedelta(minutes=1) + 1
    return ids([first + i * timedelta(minutes=1) for i in range(count)])


@pytest.mark.integration
def test_reader_fails_clearly_before_the_clock_ever_ran(redis_conn, prefix):
    reader = RedisClock(redis_conn, prefix)
    with pytest.raises(ClockNotRunning, match="never run"):
        reader.now()
    with pytest.raises(ClockNotRunning):
        reader.today()


@pytest.mark.integration
def test_steps_write_redis_and_publish_exactly_the_crossed_minutes(settings, redis_conn, prefix,
                                                                     topic):
    clock = make_clock(settings, prefix, topic)
    clock.start()
    try:
        final = clock.run(max_steps=30)  # 30 x 25 s = 12.5 min
    finally:
        clock.close()
    assert final == ClockState(minute(7, 12) + timedelta(seconds=30), minute(7, 12))
    assert redis_conn.get(f"{prefix}now") == "2026-01-01T07:12:30Z"
    assert redis_conn.get(f"{prefix}today") == "2026-01-01"
    assert ClockState.decode(redis_conn.get(f"{prefix}position")) == final
    reader = RedisClock(redis_conn, prefix)
    assert reader.now() == final.now and reader.today() == date(2026, 1, 1)

    ticks = read_ticks(settings, topic, expected=12)
    assert [t["tick_id"] for t in ticks] == expected_ids(minute(7, 1), minute(7, 12))
    for t in ticks:
        jsonschema.validate(t, CLOCK_TICK.json_schema())
        assert t["sim_time"] == t["tick_id"] and t["sim_date"] == "2026-01-01"


@pytest.mark.integration
def test_restart_resumes_without_gap_or_duplicate(settings, redis_conn, prefix, topic):
    first = make_clock(settings, prefix, topic)
    first.start()
    stopped_at = first.run(max_steps=30)
    first.close()

    second = make_clock(settings, prefix, topic, start=datetime(2030, 1, 1, tzinfo=timezone.utc))
    assert second.start() == stopped_at  # the persisted position wins over the configured start
    final = second.run(max_steps=30)
    second.close()

    assert final.now == START + timedelta(seconds=60 * 25)
    assert RedisClock(redis_conn, prefix).now() == final.now
    ticks = [t["tick_id"] for t in read_ticks(settings, topic, expected=25)]
    assert ticks == expected_ids(minute(7, 1), minute(7, 25))


@pytest.mark.integration
def test_crash_between_publish_and_commit_republishes_the_same_ticks(settings, redis_conn,
                                                                     prefix, topic):
    clock = make_clock(settings, prefix, topic, step_seconds=60)
    clock.start()
    clock.run(max_steps=3)  # ticks 07:01..07:03 committed
    # The next step's ticks reach Kafka, then the process "dies" before its Redis commit.
    _, minutes = clock.state.advance(60)
    clock._publish(minutes)
    clock.close()

    restarted = make_clock(settings, prefix, topic, step_seconds=60)
    assert restarted.start().now == minute(7, 3)
    assert restarted.step() == ["2026-01-01T07:04:00Z"]
    restarted.close()

    ticks = [t["tick_id"] for t in read_ticks(settings, topic, expected=5)]
    assert ticks == expected_ids(minute(7, 1), minute(7, 4)) + ["2026-01-01T07:04:00Z"]
    assert sorted(set(ticks)) == expected_ids(minute(7, 1), minute(7, 4))  # dedupe: no gap


@pytest.mark.integration
def test_reset_starts_again_from_sim_start(settings, redis_conn, prefix, topic):
    settings = settings.model_copy(update={"sim_start": START, "sim_speed": 0,
                                           "sim_step_seconds": 60})
    state = run_clock(settings, max_steps=10, key_prefix=prefix, topic=topic)
    assert state.now == minute(7, 10)
    # What readers check ticks against: no tick before the start, none past the horizon.
    assert RedisClock(redis_conn, prefix).bounds() == ClockBounds(START, minute(7, 10),
                                                                  minute(7, 10))

    state = run_clock(settings, max_steps=2, reset=True, key_prefix=prefix, topic=topic)
    assert state == ClockState(minute(7, 2), minute(7, 2))
    assert RedisClock(redis_conn, prefix).now() == minute(7, 2)
    assert RedisClock(redis_conn, prefix).bounds() == ClockBounds(START, minute(7, 2),
                                                                  minute(7, 2))
    ticks = [t["tick_id"] for t in read_ticks(settings, topic, expected=12)]
    assert ticks == expected_ids(minute(7, 1), minute(7, 10)) + expected_ids(minute(7, 1),
                                                                             minute(7, 2))


@pytest.mark.integration
def test_until_stops_exactly_at_the_given_sim_time(settings, redis_conn, prefix, topic):
    settings = settings.model_copy(update={"sim_start": START, "sim_speed": 0,
                                           "sim_step_seconds": 7})
    state = run_clock(settings, until=minute(7, 10), key_prefix=prefix, topic=topic)
    assert state == ClockState(minute(7, 10), minute(7, 10))
    ticks = [t["tick_id"] for t in read_ticks(settings, topic, expected=10)]
    assert ticks == expected_ids(minute(7, 1), minute(7, 10))


@pytest.mark.integration
def test_second_clock_on_the_same_keys_is_refused(settings, prefix, topic):
    a = make_clock(settings, prefix, topic)
    b = make_clock(settings, prefix, topic)
    a.start()
    b.start()
    b.step()  # b moves the shared position: a's view of it is now stale
    try:
        with pytest.raises(ClockConflict):
            a.step()
    finally:
        a.close()
        b.close()


@pytest.mark.integration
def test_speed_paces_wall_time_without_drift(settings, prefix, topic):
    clock = make_clock(settings, prefix, topic, speed=100, step_seconds=5)  # 0.05 s per step
    clock.start()
    began = time.monotonic()
    clock.run(max_steps=40)
    elapsed = time.monotonic() - began
    clock.close()
    assert 1.9 <= elapsed < 2.6


@pytest.mark.integration
def test_sigterm_finishes_the_step_commits_and_exits_zero(settings, redis_conn, prefix, topic):
    script = textwrap.dedent(f"""
        import logging
        from smart_shelf_platform.clock import run_clock
        from smart_shelf_platform.settings import get_settings
        logging.basicConfig(level=logging.INFO)
        settings = get_settings().model_copy(update={{"sim_speed": 600.0,
                                                      "sim_step_seconds": 30}})
        run_clock(settings, key_prefix={prefix!r}, topic={topic!r}, reset=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 15
        while redis_conn.get(f"{prefix}position") is None or \
                ClockState.decode(redis_conn.get(f"{prefix}position")).last_tick < \
                settings.sim_start + timedelta(minutes=3):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "clock never advanced"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "stopped at" in output

    state = ClockState.decode(redis_conn.get(f"{prefix}position"))
    first = settings.sim_start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    ticks = [t["tick_id"] for t in read_ticks(settings, topic, expected=1)]
    assert ticks == expected_ids(first, state.last_tick)  # every committed minute, nothing more


@pytest.mark.integration
def test_a_held_minute_waits_for_the_hold_then_ticks_once(settings, redis_conn, prefix, topic):
    """The clock stops just short of a held minute, calls the hold (readers see a time before
    it, its tick not yet sent), then crosses it; other minutes pass untouched."""
    seen = []

    def hold(held: datetime) -> None:
        seen.append((held, RedisClock(redis_conn, prefix).now(),
                     [t["tick_id"] for t in read_ticks(settings, topic, expected=1)]))

    clock = make_clock(settings, prefix, topic, hold_at=frozenset({"07:02"}), hold=hold)
    clock.start(reset=True)
    clock.run(until=minute(7, 4))
    clock.close()
    assert len(seen) == 1
    held, now, ticks_before = seen[0]
    assert held == minute(7, 2) and minute(7, 1) < now < minute(7, 2)
    assert ticks_before == expected_ids(minute(7, 1), minute(7, 1))
    assert [t["tick_id"] for t in read_ticks(settings, topic, expected=4)] \
        == expected_ids(minute(7, 1), minute(7, 4))


@pytest.mark.integration
def test_at_max_rate_the_simulator_stops_short_of_a_held_minute_and_then_ticks_it_first(
        settings, redis_conn, prefix, topic):
    """At max rate the simulator moves the clock (a follower): it stops just short of a held
    minute with every earlier event written, holds, and the minute's tick goes out before any
    later event; the time-driven steps then decide on exactly what came before them."""
    from producers.simulator import HashSink, Simulation, SimulationSettings, run_simulation
    from smart_shelf_platform.stack.lifecycle import reference_files

    seen, clock_at_next_event = [], []

    class Sink(HashSink):
        def add(self, *args) -> None:
            super().add(*args)
            if seen and not clock_at_next_event:
                clock_at_next_event.append(clock.state.now)

    sim = Simulation(reference_files(settings), ["S001"], Sink(), SimulationSettings(start=START))

    def hold(held: datetime) -> None:
        seen.append((held, sim.now, sim.events_emitted, sim.next_event_time(),
                     [t["tick_id"] for t in read_ticks(settings, topic, expected=1)]))

    clock = make_clock(settings, prefix, topic, hold_at=frozenset({"08:00"}), hold=hold)
    clock.start(reset=True)
    run_simulation(sim, minute(8, 30), follower=clock, batch_steps=100)
    clock.close()
    assert len(seen) == 1
    held, now, emitted, next_event, ticks_before = seen[0]
    assert held == minute(8, 0) and minute(7, 59) < now < held <= next_event
    assert 0 < emitted < sim.events_emitted, "events on both sides of the hold"
    assert clock_at_next_event == [held], "the held minute ticked before the next event"
    assert ticks_before == expected_ids(minute(7, 1), minute(7, 59))
    assert [t["tick_id"] for t in read_ticks(settings, topic, expected=90)] \
        == expected_ids(minute(7, 1), minute(8, 30))
