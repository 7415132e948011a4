"""Unit tests of the simulated world (no services): determinism, physics, effects, bad events."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from datetime import date, datetime, timedelta, timezone

import jsonschema
import pytest

from producers.bad_events import DEFECTS
from producers.simulator import HashSink, Simulation, SimulationSettings
from producers.world.catalogue import BootLot, Product, StoreCatalogue
from producers.world.lots import Lots
from producers.world.store import DailyWaste, StoreWorld
from producers.world.traffic import (
    TrafficSettings, Visit, allocate_to_slots, daily_total, visits_for_day,
)
from smart_shelf_platform.contracts import events
from smart_shelf_platform.refdata import generate
from smart_shelf_platform.rules.pricing import combined_discount, line_total

START = datetime(2026, 1, 1, 7, 0, tzinfo=timezone.utc)
PLAN = "3b8d6f0e-1c2a-4e5f-9a7b-0c1d2e3f4a5b"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("refdata"), seed=42, stores=2, sim_start=START)


class ListSink(HashSink):
    def __init__(self):
        super().__init__()
        self.events: list[tuple[str, str, bytes, str]] = []

    def add(self, topic, key, value, event_id):
        super().add(topic, key, value, event_id)
        self.events.append((topic, key, value, event_id))


def simulate(files, hours: float, stores=("S001",), **settings) -> tuple[Simulation, ListSink]:
    sink = ListSink()
    sim = Simulation(files, list(stores), sink, SimulationSettings(start=START, **settings))
    sim.run_until(START + timedelta(hours=hours))
    return sim, sink


def test_same_seed_gives_the_same_event_stream_and_another_seed_does_not(files):
    _, first = simulate(files, 6)
    _, second = simulate(files, 6)
    _, other = simulate(files, 6, seed=7)
    assert first.hexdigest() == second.hexdigest()
    assert first.hexdigest() != other.hexdigest()
    assert first.counts["shelf_events"] > 1000


def test_every_valid_event_matches_its_contract(files):
    _, sink = simulate(files, 3)
    records = {"foot_traffic": events.FOOT_TRAFFIC, "shelf_events": events.SHELF_EVENT,
               "pos_transactions": events.POS_TRANSACTION}
    validators = {t: jsonschema.Draft202012Validator(r.json_schema(),
                                                     format_checker=jsonschema.FormatChecker())
                  for t, r in records.items()}
    for topic, key, value, _ in sink.events:
        record = json.loads(value)
        validators[topic].validate(record)
        assert key.startswith(record["store_id"] + "|")


def test_bad_events_are_extra_and_leave_the_valid_stream_and_stock_unchanged(files):
    clean_sim, clean = simulate(files, 6)
    dirty_sim, dirty = simulate(files, 6, bad_event_rate=0.05)
    bad_ids = {b.bad_event_id for b in dirty_sim.bad_events}
    assert len(bad_ids) > 50
    assert {b.defect for b in dirty_sim.bad_events} == set(DEFECTS)
    valid = [e for e in dirty.events if e[3] not in bad_ids]
    assert valid == clean.events
    assert ({s: w.total for s, w in dirty_sim.worlds[0].shelves.items()}
            == {s: w.total for s, w in clean_sim.worlds[0].shelves.items()})
    for bad in dirty_sim.bad_events:
        if bad.defect == "broken_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(bad.payload)


def test_stock_is_conserved_and_never_negative_without_refills(files):
    sim = Simulation(files, ["S001"], HashSink(), SimulationSettings(start=START))
    world = sim.worlds[0]
    initial = sum(lots.total for lots in world.shelves.values())
    # The most visible product's warehouse is emptied: its losses are the supplier's.
    popular = max(world.products.values(), key=lambda p: p.visibility).shelf_id
    world.warehouse[popular] = type(world.warehouse[popular])()
    # Three days without refills: shelves empty out and sales get lost.
    sim.run_until(START + timedelta(days=3))
    sold = sum(d.sold for d in world.daily.values())
    on_shelves = sum(lots.total for lots in world.shelves.values())
    assert initial == on_shelves + world.units_in_carts() + sold
    assert all(lot.quantity >= 0 for lots in world.shelves.values()
               for lot in lots.by_code.values())
    assert all(lots.total == sum(l.quantity for l in lots.by_code.values())
               for lots in world.shelves.values())
    assert sum(d.lost_units for d in world.daily.values()) > 0
    # Without the platform nothing leaves the warehouse: a loss is "warehouse empty" exactly
    # where the product's warehouse holds nothing (the emptied one), and both kinds occur.
    causes = {(world.warehouse[shelf].total == 0, d.lost_units_wh_empty == d.lost_units,
               d.lost_units_wh_empty == 0) for (shelf, _), d in world.daily.items() if d.lost_units}
    assert causes == {(True, True, False), (False, False, True)}


def test_receipts_price_with_the_combined_discount_and_carry_batches(files):
    sim = Simulation(files, ["S001"], ListSink(), SimulationSettings(start=START))
    world = sim.worlds[0]
    day = START.date()
    for shelf_id in world.shelf_order:
        world.set_daily_discount(day, shelf_id, 0.5)
    sim.run_until(START + timedelta(hours=4))
    receipts = [json.loads(v) for t, _, v, _ in sim.sink.events if t == "pos_transactions"]
    assert receipts
    for receipt in receipts:
        assert receipt["total_items"] == sum(line["quantity"] for line in receipt["items"])
        for line in receipt["items"]:
            expected = combined_discount(world.catalogue.weekly_discount(day, line["shelf_id"]),
                                         0.5)
            stored, total = line_total(line["quantity"], Decimal(str(line["unit_price"])),
                                       expected)
            assert (line["discount"], line["total_price"]) == (float(stored), float(total))
            assert line["batch_code"] in world.lot_dates


def _task(task_id: str, shelf_id: str, batch: str, qty: int,
          due: str = "2026-01-01T08:00:00Z", plan_id: str = PLAN) -> dict:
    """A refill task of the refill bridge (`restock_tasks`)."""
    return {"event_id": task_id, "store_id": "S001", "shelf_id": shelf_id, "plan_id": plan_id,
            "pick_event_id": f"pick-of-{task_id}", "batch_code": batch, "quantity": qty,
            "timestamp": due}


def test_platform_effects_move_real_units_once(files):
    sim = Simulation(files, ["S001"], HashSink(), SimulationSettings(start=START))
    world = sim.worlds[0]
    shelf_id = next(s for s in world.shelf_order
                    if world.warehouse[s].total > 0 and world.room(s) >= 2)
    lot = next(iter(world.warehouse[shelf_id].by_code.values()))
    wh_before, shelf_before = world.warehouse[shelf_id].total, world.shelves[shelf_id].total
    wh_out = {"event_id": "e-1", "event_type": "wh_out", "store_id": "S001",
              "shelf_id": shelf_id, "batch_code": lot.batch_code, "quantity": 2}
    task = _task("t-2", shelf_id, lot.batch_code, 2)
    # Shelf events are the world's own (customers', and the staff's reports): never effects.
    shelf_event = {"event_id": "e-3", "event_type": "putback", "actor": "restocker",
                   "store_id": "S001", "shelf_id": shelf_id, "batch_code": lot.batch_code,
                   "quantity": 2}
    applied = sim.apply_effects([("wh_events", wh_out), ("wh_events", wh_out),
                                 ("shelf_events", shelf_event),
                                 ("shelf_events", dict(shelf_event, actor="customer"))])
    assert applied == 2 and world.warehouse[shelf_id].total == wh_before - 2
    assert world.shelves[shelf_id].total == shelf_before  # still in transit
    sim.apply_effects([("restock_tasks", task), ("restock_tasks", task)])
    assert world.shelves[shelf_id].total == shelf_before + 2
    assert world.in_transit[(shelf_id, lot.batch_code)] == 0
    # A task with nothing in transit cannot conjure stock: it waits for its pick, and is
    # flagged only if that never comes before the run ends.
    sim.apply_effects([("restock_tasks", _task("t-4", shelf_id, lot.batch_code, 2))])
    assert world.shelves[shelf_id].total == shelf_before + 2
    assert len(world.waiting) == 1 and not world.anomalies
    sim.give_up_waiting()
    assert not world.waiting and "t-4" in world.anomalies[0]


def test_lots_are_taken_earliest_expiry_first():
    lots = Lots()
    lots.add("B2", date(2026, 1, 1), date(2026, 3, 1), 5)
    lots.add("B1", date(2026, 1, 2), date(2026, 2, 1), 2)
    assert lots.take_fefo(4) == [("B1", 2), ("B2", 2)]
    assert lots.total == 3
    assert lots.take_fefo(10) == [("B2", 3)] and lots.total == 0


def test_foot_traffic_follows_the_reference_weights():
    cfg = TrafficSettings()
    assert sum(allocate_to_slots(801, (16, 17, 20, 17, 13, 10))) == 801
    rng = random.Random(1)
    # Saturday is the busiest day, Tuesday the quietest (reference means 988 and 654).
    saturday = sum(daily_total(date(2026, 1, 3), rng, cfg) for _ in range(200)) / 200
    tuesday = sum(daily_total(date(2026, 1, 6), rng, cfg) for _ in range(200)) / 200
    assert saturday == pytest.approx(988, rel=0.03) and tuesday == pytest.approx(654, rel=0.03)
    # Starting mid-morning skips the night slots entirely.
    visits = visits_for_day(date(2026, 1, 1), random.Random(2), cfg, not_before=START)
    assert visits and min(v.entry for v in visits) >= START


def test_a_chain_splits_into_disjoint_store_groups_that_cover_it():
    from producers.run import stores_of_group

    groups = [stores_of_group(5, k, 2) for k in range(2)]
    assert groups == [["S001", "S003", "S005"], ["S002", "S004"]]
    assert stores_of_group(3, 0, 1) == ["S001", "S002", "S003"]
    with pytest.raises(ValueError):
        stores_of_group(3, 2, 2)


def test_a_store_simulated_alone_or_in_a_group_emits_the_same_events(files):
    _, alone = simulate(files, 3, stores=("S002",))
    _, together = simulate(files, 3, stores=("S001", "S002"))
    assert [e for e in together.events if e[1].startswith("S002|")] == alone.events


# ---- effects arriving out of order, expired-removal work orders, waste ----------------------

def _wh_event(kind: str, event_id: str, shelf_id: str, batch: str, qty: int, **extra) -> dict:
    return {"event_id": event_id, "event_type": kind, "store_id": "S001", "shelf_id": shelf_id,
            "batch_code": batch, "quantity": qty, "received_date": "2026-01-01",
            "expiry_date": "2026-01-20", "timestamp": "2026-01-01T08:00:00Z", **extra}


def _add_shelf_lot(world, shelf_id: str, code: str, expiry: date, qty: int) -> None:
    world.shelves[shelf_id].add(code, date(2025, 12, 20), expiry, qty)
    world.lot_dates[code] = (date(2025, 12, 20), expiry)


def _removal_order(shelf_id: str, opened: str) -> dict:
    return {"alert_id": f"a-{shelf_id}-{opened}", "store_id": "S001",
            "alert_type": "expired_removal", "shelf_id": shelf_id, "location": "store",
            "status": "open", "current_stock": 9, "batch_code": "OLD1",
            "expiry_date": "2026-01-01", "created_at": opened, "updated_at": opened}


def test_effects_that_cannot_apply_yet_wait_for_their_cause(files):
    sim = Simulation(files, ["S001"], HashSink(), SimulationSettings(start=START))
    world = sim.worlds[0]
    shelf_id = next(s for s in world.shelf_order if world.room(s) >= 4)
    wh_before, shelf_before = world.warehouse[shelf_id].total, world.shelves[shelf_id].total
    task = _task("p-1", shelf_id, "NEW1", 4)
    wh_out = _wh_event("wh_out", "o-1", shelf_id, "NEW1", 4)
    # The refill and its pick arrive before the delivery of the lot they move.
    assert sim.apply_effects([("restock_tasks", task), ("wh_events", wh_out)]) == 0
    assert len(world.waiting) == 2
    assert world.shelves[shelf_id].total == shelf_before
    # Later polls: the delivery comes, and each waiting effect applies once its cause has.
    assert sim.apply_effects([]) == 0
    assert sim.apply_effects([("wh_events", _wh_event("wh_in", "i-1", shelf_id, "NEW1", 10))]) \
        == 3
    assert not world.waiting
    assert world.warehouse[shelf_id].total == wh_before + 6
    assert world.shelves[shelf_id].total == shelf_before + 4
    sim.give_up_waiting()
    assert world.anomalies == []


def test_customers_draw_the_same_randomness_whenever_effects_arrive(files):
    def rng_after(poll_every: timedelta | None) -> tuple:
        sim = Simulation(files, ["S001"], HashSink(), SimulationSettings(start=START))
        world = sim.worlds[0]
        shelf_id = world.shelf_order[3]
        _add_shelf_lot(world, shelf_id, "OLD9", date(2025, 12, 31), 4)
        end = START + timedelta(hours=6)
        effects = [("wh_events", _wh_event("wh_in", "i-9", shelf_id, "NEW9", 10)),
                   ("alerts", _removal_order(shelf_id, "2026-01-01T00:00:00Z")),
                   ("wh_events", _wh_event("wh_out", "o-9", shelf_id, "NEW9", 5)),
                   ("restock_tasks", _task("p-9", shelf_id, "NEW9", 5))]
        while poll_every is not None and sim.now < end:
            sim.apply_effects(effects[:1])
            effects = effects[1:]
            sim.run_until(min(sim.now + poll_every, end))
        sim.run_until(end)
        return world.rng.getstate(), sim.customers

    # Stock differs (refilled, removed, or not at all), the draws do not.
    assert rng_after(None) == rng_after(timedelta(minutes=7)) == rng_after(timedelta(hours=1))


def test_staff_remove_expired_lots_on_a_work_order_and_report_each_one(files):
    sim = Simulation(files, ["S001"], ListSink(), SimulationSettings(start=START))
    world = sim.worlds[0]
    shelf_id = world.shelf_order[0]
    lots = world.shelves[shelf_id]
    for code, expiry, qty in (("OLD1", date(2026, 1, 1), 5), ("OLD2", date(2026, 1, 2), 3),
                              ("TODAY", date(2026, 1, 3), 2)):
        _add_shelf_lot(world, shelf_id, code, expiry, qty)
    before = lots.total
    sim.events_emitted = 0
    order = _removal_order(shelf_id, "2026-01-03T00:00:00Z")
    not_effects = [("alerts", dict(order, status="resolved")),
                   ("alerts", dict(order, location="warehouse")),
                   ("alerts", dict(order, alert_type="near_expiry"))]
    assert sim.apply_effects(not_effects) == 0
    assert sim.apply_effects([("alerts", order), ("alerts", order)]) == 2
    # Lots that expired before the order's day go, in expiry order; today's lot stays.
    assert lots.total == before - 8 and lots.by_code["TODAY"].quantity == 2
    assert lots.by_code["OLD1"].quantity == lots.by_code["OLD2"].quantity == 0
    reports = [json.loads(v) for t, _, v, _ in sim.sink.events if t == "shelf_events"]
    assert [(r["event_type"], r["batch_code"], r["quantity"]) for r in reports] == [
        ("expired_removal", "OLD1", 5), ("weight_change", "OLD1", None),
        ("expired_removal", "OLD2", 3), ("weight_change", "OLD2", None)]
    weight = world.products[shelf_id].unit_weight
    assert reports[1]["delta_weight"] == -5 * weight
    validator = jsonschema.Draft202012Validator(events.SHELF_EVENT.json_schema(),
                                                format_checker=jsonschema.FormatChecker())
    for report in reports:
        validator.validate(report)
        # Carried out when the order exists (the world's clock was still on the 1st).
        assert (report["actor"], report["timestamp"]) == ("restocker", "2026-01-03T00:00:00Z")
    assert len({r["event_id"] for r in reports}) == 4
    assert world.waste[(shelf_id, date(2026, 1, 3))].shelf_units == 8
    # The reports come back on shelf_events: the world made them, it does not apply them again.
    assert sim.apply_effects([("shelf_events", r) for r in reports]) == 0
    assert lots.total == before - 8
    # The staff's ids are their own: customers' ids do not shift with work orders.
    sim.run_until(START + timedelta(hours=1))
    customer_ids = {json.loads(v)["event_id"] for t, _, v, _ in sim.sink.events
                    if t == "foot_traffic"}
    assert customer_ids and not customer_ids & {r["event_id"] for r in reports}


def test_warehouse_removals_count_as_waste_of_their_day(files):
    sim = Simulation(files, ["S001"], HashSink(), SimulationSettings(start=START))
    world = sim.worlds[0]
    shelf_id = world.shelf_order[1]
    removal = _wh_event("wh_removal", "r-1", shelf_id, "NEW5", 6,
                        timestamp="2026-01-04T00:00:00Z", reason="expired")
    assert sim.apply_effects([("wh_events", removal)]) == 0  # its lot is not delivered yet
    sim.apply_effects([("wh_events", _wh_event("wh_in", "i-5", shelf_id, "NEW5", 6))])
    assert world.warehouse[shelf_id].by_code["NEW5"].quantity == 0
    assert world.waste == {(shelf_id, date(2026, 1, 4)): DailyWaste(0, 6)}
    assert (shelf_id, date(2026, 1, 4)) in world.dirty_waste


# ---- refill tasks: the restocker puts what fits, the platform returns the rest ---------------

def _small_store(shelf_units: int, capacity: int = 20) -> tuple[StoreWorld, list[dict]]:
    """One shelf SH1 of `capacity` units holding `shelf_units` of lot B1, and 30 units of lot W1
    in the warehouse; returns the world and the shelf events it emits."""
    product = Product("SH1", "dairy", "milk", Decimal("1.00"), 1000.0, 0.1, capacity, 100, 10,
                      True)
    catalogue = StoreCatalogue(
        "S001", [product], [BootLot("SH1", "B1", date(2025, 12, 28), date(2026, 1, 20),
                                    shelf_units)],
        [BootLot("SH1", "W1", date(2025, 12, 30), date(2026, 2, 1), 30)], {})
    emitted: list[dict] = []
    world = StoreWorld(catalogue, seed=1,
                       emit=lambda topic, record: emitted.append(record)
                       if topic == "shelf_events" else None)
    return world, emitted


def _pick(world: StoreWorld, units: int, event_id: str = "o-1") -> None:
    assert world.apply_effects([("wh_events", _wh_event("wh_out", event_id, "SH1", "W1", units))],
                               START) == 1


def _refill_return(units: int, event_id: str = "r-1") -> dict:
    return _wh_event("wh_in", event_id, "SH1", "W1", units, reason="refill_return",
                     plan_id=PLAN, received_date="2025-12-30", expiry_date="2026-02-01")


def test_a_refill_puts_what_fits_and_the_platform_returns_the_rest(files):
    world, emitted = _small_store(shelf_units=14)  # room for 6
    _pick(world, 10)
    assert world.warehouse["SH1"].total == 20 and world.in_transit[("SH1", "W1")] == 10
    due = "2026-01-01T07:03:00Z"
    now = START + timedelta(minutes=5)  # the task reaches the store after its due time
    assert world.apply_effects([("restock_tasks", _task("t-1", "SH1", "W1", 10, due=due))],
                               now) == 1
    assert world.shelves["SH1"].total == 20 == world.products["SH1"].max_stock
    assert world.shelves["SH1"].by_code["W1"].quantity == 6
    assert world.in_transit[("SH1", "W1")] == 4, "what did not fit waits for its return"
    assert world.refill_overflow == 4
    assert world.refill_lateness == [timedelta(minutes=2)]
    putback, weight = emitted
    assert (putback["event_type"], putback["actor"], putback["quantity"], putback["batch_code"],
            putback["plan_id"], putback["timestamp"]) == (
        "putback", "restocker", 6, "W1", PLAN, "2026-01-01T07:05:00Z")
    assert (weight["event_type"], weight["delta_weight"], weight["plan_id"]) == (
        "weight_change", 6000.0, PLAN)
    validator = jsonschema.Draft202012Validator(events.SHELF_EVENT.json_schema(),
                                                format_checker=jsonschema.FormatChecker())
    for event in emitted:
        validator.validate(event)
    # The platform books the 4 units back into the warehouse lot they left.
    assert world.apply_effects([("wh_events", _refill_return(4))], now) == 1
    assert world.in_transit[("SH1", "W1")] == 0
    assert world.warehouse["SH1"].by_code["W1"].quantity == 24
    assert ("SH1", "W1") in world.dirty_wh
    # Not a delivery: a return of units that are not in transit waits (and is flagged).
    assert world.apply_effects([("wh_events", _refill_return(4, "r-2"))], now) == 0
    world.give_up_waiting()
    assert world.warehouse["SH1"].total == 24 and "r-2" in world.anomalies[0]


def test_a_refill_on_a_full_shelf_places_nothing_and_still_reports(files):
    world, emitted = _small_store(shelf_units=20)
    _pick(world, 3)
    # Due after the world's time: the restocker acts at the due time.
    assert world.apply_effects([("restock_tasks", _task("t-1", "SH1", "W1", 3,
                                                        due="2026-01-01T07:10:00Z"))],
                               START) == 1
    assert world.shelves["SH1"].total == 20 and "W1" not in world.shelves["SH1"].by_code
    assert world.in_transit[("SH1", "W1")] == 3
    assert [(e["event_type"], e["quantity"], e["delta_weight"], e["timestamp"])
            for e in emitted] == [("putback", 0, None, "2026-01-01T07:10:00Z"),
                                  ("weight_change", None, 0.0, "2026-01-01T07:10:00Z")]
    assert world.apply_effects([("wh_events", _refill_return(3))], START) == 1
    assert world.warehouse["SH1"].total == 30 and world.in_transit[("SH1", "W1")] == 0


def test_a_repeated_refill_task_is_carried_out_and_reported_once(files):
    world, emitted = _small_store(shelf_units=5)
    _pick(world, 4)
    task = _task("t-1", "SH1", "W1", 4)
    assert world.apply_effects([("restock_tasks", task), ("restock_tasks", task)], START) == 2
    assert world.apply_effects([("restock_tasks", task)], START) == 1  # done: dropped
    assert world.shelves["SH1"].total == 9 and world.in_transit[("SH1", "W1")] == 0
    assert [e["event_type"] for e in emitted] == ["putback", "weight_change"]
    # The report's ids come from the task's: the same in any run, whenever the task arrives.
    again, emitted_again = _small_store(shelf_units=5)
    _pick(again, 4)
    again.apply_effects([("restock_tasks", task)], START + timedelta(hours=1))
    assert [e["event_id"] for e in emitted_again] == [e["event_id"] for e in emitted]
    assert len({e["event_id"] for e in emitted}) == 2


def test_a_full_shelf_takes_no_units_back_they_stay_in_the_cart_and_are_paid(files):
    world, emitted = _small_store(shelf_units=20)
    visit = Visit(START, START + timedelta(minutes=20), "07:00-08:59")
    customer_id = world.enter(visit)
    customer = world.customers[customer_id]
    world._pickup(customer, START, 0.0, 0.99)  # 3 units
    assert world.shelves["SH1"].total == 17 and world.units_in_carts() == 3
    world.shelves["SH1"].add("B2", date(2025, 12, 29), date(2026, 1, 25), 2)  # refilled
    world.lot_dates["B2"] = (date(2025, 12, 29), date(2026, 1, 25))
    emitted.clear()
    world._putback(customer, START, 0.0, 0.99)  # wants to put all 3 back, 1 fits
    assert world.shelves["SH1"].total == 20 and world.units_in_carts() == 2
    assert [(e["event_type"], e["quantity"]) for e in emitted] == [("putback", 1),
                                                                    ("weight_change", None)]
    emitted.clear()
    world._putback(customer, START, 0.0, 0.99)  # full: nothing goes back, no event
    assert world.shelves["SH1"].total == 20 and world.units_in_carts() == 2 and not emitted
    assert world.kept_in_carts == 2 + 2
    world.leave(customer_id, START + timedelta(minutes=20))
    assert world.daily[("SH1", START.date())].sold == 2
    # Every unit is on the shelf or sold: 20 + 2 B2 added by hand = 20 on the shelf + 2 sold.
    assert world.shelves["SH1"].total + world.daily[("SH1", START.date())].sold == 22
    assert world.shelves["SH1"].total <= world.products["SH1"].max_stock
