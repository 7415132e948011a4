"""The whole replenishment loop, end to end: the simulator with the platform's effects on, the
bridge and the streaming application running continuously, over a simulated day that holds a
supplier cutoff (Thu 20:00 here), its delivery slot (Fri 06:00) and a day change (discounts).

The world and the platform close the loop through Kafka: low shelves -> plans -> FEFO picks ->
refill tasks the world's restocker carries out, putting on its shelves what fits and reporting
it (what did not fit goes back to the warehouse); low warehouses -> supplier plans -> the
cutoff's orders -> deliveries the world receives; near-expiry lots -> the day's discounts
shoppers pay.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pytest

from producers.run import SimulateOptions, simulate
from producers.streams import stream_name
from smart_shelf_platform.rules.supplier import SupplierSchedule
from smart_shelf_platform.progress import wait_until_read
from smart_shelf_platform.verify import verify
from smart_shelf_platform_tests.streaming_support import (
    consume_all, delta_rows, drop_redis_keys, drop_topics, private_context, store_reference,
)
from smart_shelf_platform_tests.test_daily_features import drop_database, private_database
from smart_shelf_platform_tests.test_streaming_e2e import EVENT_TOPICS
from streaming import runner

# Thursday 07:00 -> Friday 08:30 at 600x: about 2.5 minutes of simulation.
SIMULATED = timedelta(hours=25, minutes=30)
SPEED = 600
# One cutoff late on Thursday and its slot on Friday morning: on the reference data no warehouse
# is below its reorder point yet at the default Thu 12:00 (a run with it ordered nothing).
SCHEDULE = {"supplier_cutoff_days": "Thu", "supplier_cutoff_time": "20:00",
            "supplier_delivery_days": "Fri", "supplier_delivery_time": "06:00"}
# SMART_SHELF_TEST_LOOP_DAYS=7 runs the week instead, on the default schedule (cutoffs Sun, Tue
# and Thu 12:00, slots Mon, Wed and Fri 08:00) until 08:30 of the last day, at
# SMART_SHELF_TEST_LOOP_SPEED (default 1200x): about half an hour, so not in the suite.
DAYS = int(os.environ.get("SMART_SHELF_TEST_LOOP_DAYS", "0"))
if DAYS:
    SIMULATED = timedelta(days=DAYS, hours=1, minutes=30)
    SPEED = int(os.environ.get("SMART_SHELF_TEST_LOOP_SPEED", "1200"))
    SCHEDULE = {}

# The module's run (simulation, holds, settling) counts against its first test.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200 + 600 * DAYS)]


def background(settings, ctx, log: Path, *args) -> subprocess.Popen:
    """A module run in the background, its output in `log` (a pipe nobody reads would fill up
    and block the process after a few minutes of logging)."""
    env = {**os.environ, **settings.as_env(), "SMART_SHELF_DELTA_ROOT": ctx.delta_root}
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def loop(settings, tmp_path_factory):
    import redis

    tmp = tmp_path_factory.mktemp("loop")
    own = private_database(settings, delta_root_override=str(tmp / "delta")).model_copy(
        update=SCHEDULE)
    client = redis.Redis.from_url(own.redis_url)
    clock_prefix, stream_prefix = f"loop-{uuid.uuid4().hex[:8]}:", f"loop-{uuid.uuid4().hex[:8]}:"
    ctx = private_context(own, client, clock_prefix, tmp)
    app_log = tmp / "streaming.log"
    app = background(own, ctx, app_log, "streaming.runner", "--topic-prefix", ctx.topic_prefix,
                     "--clock-prefix", clock_prefix, "--trigger-seconds", "1")
    bridge = background(own, ctx, tmp / "bridge.log", "producers.bridge", "--consumer", "loop", *(
        arg for t in EVENT_TOPICS
        for arg in ("--stream", f"{stream_name(t, stream_prefix)}={ctx.topic(t)}")))
    try:
        # Holds and settling wait for the queries that report progress: all of them, first.
        wait_until_read(client, clock_prefix, own.kafka_bootstrap,
                        queries=runner.spark_query_names(), timeout=300)
        sim = simulate(own, SimulateOptions(
            until=own.sim_start + SIMULATED, speed=SPEED, stream_prefix=stream_prefix,
            clock_key_prefix=clock_prefix, clock_topic=ctx.topic("clock_ticks"),
            topic_prefix=ctx.topic_prefix), progress=print)
        assert app.poll() is None, app_log.read_text()[-3000:]
        yield own, ctx, sim
    finally:
        stop(app)
        stop(bridge)
        drop_topics(ctx)
        drop_redis_keys(client, clock_prefix, stream_prefix)
        client.close()
        drop_database(settings, own)


def messages(ctx, topic: str) -> list[dict]:
    return [json.loads(m.value()) for m in consume_all(ctx, topic)]


def by_shelf(rows, value) -> dict[str, int]:
    totals = defaultdict(int)
    for row in rows:
        totals[row["shelf_id"]] += value(row)
    return totals


def test_the_platform_ends_in_the_ledger_s_state(settings, loop):
    """Exactly: shelves, lots and the warehouse. The world never goes past a shelf's capacity
    (a restocker puts what fits, a shopper keeps in the cart what does not fit) and reports
    what it did through its own stream, so the platform folds the shelf's events in the order
    the store lived them and never has to clamp."""
    own, ctx, sim = loop
    report = verify(own, stores=["S001"])
    print("\n" + "\n".join(report.lines()[:60]))
    world = sim.worlds[0]
    returned = sum(e["quantity"] for e in delta_rows(ctx, "raw/wh_events")
                   if e["event_type"] == "wh_in" and e["reason"] == "refill_return")
    print(f"refill units that did not fit: {world.refill_overflow} (returned to the "
          f"warehouse: {returned}); units shoppers kept because their shelf was full: "
          f"{world.kept_in_carts}")
    assert all(not c.differences for c in report.comparisons.values())
    assert report.bad_events == 0 and not report.missing_dead_letters
    capacity = {r["shelf_id"]: r["maximum_stock"]
                for r in store_reference(settings, "store_inventory")}
    assert all(world.shelves[s].total <= capacity[s] for s in capacity)
    assert not world.anomalies and not world.waiting


def test_stock_stays_within_zero_and_capacity_in_every_published_state(loop):
    _, ctx, _ = loop
    for topic, units, cap in (("shelf_state", "current_stock", "max_stock"),
                              ("wh_state", "wh_current_stock", "wh_max_stock")):
        states = messages(ctx, topic)
        assert states
        assert all(0 <= s[units] <= s[cap] for s in states), topic


def test_every_movement_is_conserved_per_shelf(settings, loop):
    """initial + received - sold - removed = on shelves and in carts + in the warehouse
    + in transit (picked, neither put on the shelf nor returned), per shelf, from the
    platform's records. Returned units are neither received nor sold: they come back from
    transit."""
    _, ctx, _ = loop
    initial = by_shelf(store_reference(settings, "store_batches")
                       + store_reference(settings, "warehouse_batches"),
                       lambda r: r["batch_quantity"])
    wh = delta_rows(ctx, "raw/wh_events")
    shelf = delta_rows(ctx, "raw/shelf_events")
    returns = [e for e in wh if e["event_type"] == "wh_in" and e["reason"] == "refill_return"]
    received = by_shelf([e for e in wh if e["event_type"] == "wh_in"
                         and e["reason"] != "refill_return"], lambda e: e["quantity"])
    returned = by_shelf(returns, lambda e: e["quantity"])
    removed = by_shelf([e for e in wh if e["event_type"] == "wh_removal"]
                       + [e for e in shelf if e["event_type"] == "expired_removal"],
                       lambda e: e["quantity"])
    picked = by_shelf([e for e in wh if e["event_type"] == "wh_out"], lambda e: e["quantity"])
    reports = [e for e in shelf if e["actor"] == "restocker" and e["event_type"] == "putback"]
    refilled = by_shelf(reports, lambda e: e["quantity"])
    sold = by_shelf([line for receipt in delta_rows(ctx, "raw/pos_transactions")
                     for line in receipt["items"]], lambda line: line["quantity"])
    final = by_shelf(delta_rows(ctx, "cleansed/shelf_batch_state")
                     + delta_rows(ctx, "cleansed/wh_batch_state"),
                     lambda r: r.get("batch_quantity_store", r.get("batch_quantity_warehouse")))
    assert sum(picked.values()) > 0 and sum(refilled.values()) > 0, "the loop ran"
    assert sum(received.values()) > 0, "a delivery arrived"
    # Each pick is reported once (plan, lot), and what it did not place came back.
    picks = {(e["plan_id"], e["batch_code"]): e["quantity"] for e in wh
             if e["event_type"] == "wh_out"}
    placed = {(e["plan_id"], e["batch_code"]): e["quantity"] for e in reports}
    assert len(placed) == len(reports) and placed.keys() <= picks.keys()
    assert {(e["plan_id"], e["batch_code"]): e["quantity"] for e in returns} == {
        pick: units - placed[pick] for pick, units in picks.items()
        if pick in placed and units > placed[pick]}
    for shelf_id in initial:
        in_transit = picked[shelf_id] - refilled[shelf_id] - returned[shelf_id]
        assert in_transit >= 0, shelf_id
        assert initial[shelf_id] + received[shelf_id] - sold[shelf_id] - removed[shelf_id] \
            == final[shelf_id] + in_transit, shelf_id


def test_plans_reach_their_final_status_and_orders_arrive_at_their_slot(loop):
    own, ctx, _ = loop
    end = own.sim_start + SIMULATED
    plans = delta_rows(ctx, "ops/shelf_restock_plan")
    assert plans
    # A plan issued early enough for its refill (3 simulated minutes) to reach the shelf.
    settled = [p for p in plans if p["status"] != "pending"
               and p["updated_at"] <= end - timedelta(minutes=10)]
    assert settled and all(p["status"] == "completed" for p in settled)
    orders = delta_rows(ctx, "ops/wh_supplier_orders")
    assert orders, "a cutoff ordered something"
    schedule = SupplierSchedule.parse(own.supplier_cutoff_days, own.supplier_cutoff_time,
                                      own.supplier_delivery_days, own.supplier_delivery_time)
    assert all(schedule.is_cutoff(o["cutoff_ts"]) for o in orders)
    assert all((o["status"], o["delivery_ts"]) == ("delivered",
                                                   schedule.next_delivery(o["cutoff_ts"]))
               for o in orders)
    receipts = {r["order_id"]: r for r in delta_rows(ctx, "ops/wh_supplier_receipts")}
    assert set(receipts) == {o["order_id"] for o in orders}
    deliveries = [e for e in delta_rows(ctx, "raw/wh_events") if e["event_type"] == "wh_in"]
    assert {(e["shelf_id"], e["quantity"]) for e in deliveries} \
        == {(o["shelf_id"], o["total_qty"]) for o in orders}
    supplier_plans = delta_rows(ctx, "ops/wh_supplier_plan")
    ordered = [p for p in supplier_plans
               if p["created_at"] < max(o["cutoff_ts"] for o in orders)]
    assert ordered and all(p["status"] == "completed" for p in ordered)


def test_shoppers_pay_the_day_s_near_expiry_discounts(loop):
    _, ctx, _ = loop
    discounts = {(d["shelf_id"], d["discount_date"]): float(d["discount"])
                 for d in delta_rows(ctx, "analytics/daily_discounts")}
    assert discounts, "Friday's first tick discounts lots expiring soon"
    paid = [float(line["discount"]) >= discounts[(line["shelf_id"], receipt["timestamp"].date())]
            for receipt in delta_rows(ctx, "raw/pos_transactions") for line in receipt["items"]
            if (line["shelf_id"], receipt["timestamp"].date()) in discounts]
    # The day's first shoppers may pay before the discount (decided at 00:00) reaches the till.
    assert paid and sum(paid) >= len(paid) / 2, f"{sum(paid)} of {len(paid)} lines discounted"


def test_the_report_tells_the_loop_s_kpis(loop):
    own, ctx, sim = loop
    result = subprocess.run([sys.executable, "-m", "smart_shelf_platform.cli", "report",
                             "--json"], env={**os.environ, **own.as_env()}, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    kpis = json.loads(result.stdout)["total"]
    print(json.dumps(kpis, indent=1))
    receipts = delta_rows(ctx, "ops/wh_supplier_receipts")
    assert kpis["supplier_orders"]["delivered"] == len(receipts) > 0
    assert kpis["supplier_orders"]["units_delivered"] == sum(r["received_qty"] for r in receipts)
    assert kpis["units_sold"] == sum(line["quantity"] for receipt in
                                     delta_rows(ctx, "raw/pos_transactions")
                                     for line in receipt["items"])
    assert kpis["restock_plans"]["completed"] > 0
    assert kpis["alerts"]["by_status"]["acknowledged"] + kpis["alerts"]["by_status"]["resolved"] \
        > 0, "alerts move through their lifecycle"
