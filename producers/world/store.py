"""One store's physical world: shelves, warehouse, customers' carts, and the ground-truth ledger.

Customers act on real stock (an empty shelf is a lost sale, never negative stock; a full shelf
takes no units back, they stay in the cart and are paid at checkout); the platform's decisions
come back as effects (warehouse picks, refill tasks, refill returns, deliveries, warehouse
removals, daily discounts, expired-removal work orders) and move real units. Every random draw
comes from the store's own `random.Random`, and each customer action consumes the same number of
draws whatever the stock, so a seed gives the same customers and choices however fast the
platform reacts. The staff's reports take their ids from a sequence of their own (removals) or
from the task they carry out (refills), so customers' event ids do not depend on when work
orders arrive either.

Refills: a task of the refill bridge (`restock_tasks`) sends the restocker to a shelf with the
units of one pick. They put on the shelf what fits (never past its capacity), from the task's
due time, and report it through the store's own shelf stream: a `putback` of the units placed,
0 when the shelf is full, with its weight change. What did not fit stays in transit until the
platform books it back into the warehouse (a `wh_in` with reason `refill_return`).
"""

from __future__ import annotations

import bisect
import itertools
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from producers.world.catalogue import Product, StoreCatalogue
from producers.world.lots import Lots
from producers.world.traffic import (
    WEEKDAY_NAMES, TrafficSettings, Visit, draw_tiered, visits_for_day,
)
from smart_shelf_platform.contracts.events import REFILL_RETURN
from smart_shelf_platform.rules.pricing import combined_discount, line_total

Emit = Callable[[str, dict], None]  # (topic, event record)

ID_NAMESPACE = uuid.UUID("6f1c1f43-5c55-5b0e-9a55-5b3ad1c0d0a1")
# The restocker's reports of a refill task: ids derived from the task's, so a task delivered
# twice is carried out and reported once, with the same ids whenever it arrives.
RESTOCKER_NAMESPACE = uuid.uuid5(ID_NAMESPACE, "restocker")


@dataclass(frozen=True)
class ShopperSettings:
    putback_probability: float = 0.15
    pickup_quantities: tuple[int, ...] = (1, 2, 3)
    pickup_quantity_weights: tuple[float, ...] = (0.6, 0.3, 0.1)
    first_action_after_s: int = 60
    last_action_before_exit_s: int = 30


# Shelf actions per visit, as the reference system's simulation drew them: 20 % few, 50 % some,
# 30 % many (mean about 13).
ACTIONS_PER_VISIT = ((0.20, 3, 6), (0.70, 7, 15), (1.0, 16, 30))


def actions_for_visit(rng: random.Random) -> int:
    return draw_tiered(rng, ACTIONS_PER_VISIT)


class IdSequence:
    """Deterministic UUIDs: a per-store namespace (high 64 bits) and a counter (low 64 bits).

    Version 8 (custom) with the RFC 4122 variant, so they parse as UUIDs everywhere. Formatted
    by hand: this runs for every event and a `uuid.UUID` object per id costs a third of it.
    A store's other sequences (`stream`) get namespaces of their own.
    """

    VARIANT = 0x2 << 62

    def __init__(self, seed: int, store_id: str, stream: str = ""):
        name = f"{seed}:{store_id}" + (f":{stream}" if stream else "")
        high = uuid.uuid5(ID_NAMESPACE, name).int >> 64
        high = (high & ~(0xF << 12)) | (0x8 << 12)
        h = f"{high:016x}"
        self._prefix = f"{h[:8]}-{h[8:12]}-{h[12:16]}-"
        self._counter = itertools.count(1)

    def next(self) -> str:
        low = f"{next(self._counter) | self.VARIANT:016x}"
        return f"{self._prefix}{low[:4]}-{low[4:]}"


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@dataclass
class Customer:
    customer_id: str
    visit: Visit
    cart: dict[str, list[list]] = field(default_factory=dict)  # shelf -> [[batch, units], ...]


@dataclass
class DailyLedger:
    sold: int = 0
    lost_units: int = 0
    lost_attempts: int = 0
    # Of lost_units, those lost while the product's warehouse held none and none was on its
    # way to the shelf: only a supplier order could have saved them (the rest waited for a
    # restock the warehouse could have given).
    lost_units_wh_empty: int = 0


@dataclass
class DailyWaste:
    """Expired units thrown away on one day for one product."""

    shelf_units: int = 0
    warehouse_units: int = 0


class StoreWorld:
    def __init__(self, catalogue: StoreCatalogue, seed: int, emit: Emit,
                 traffic: TrafficSettings = TrafficSettings(),
                 shoppers: ShopperSettings = ShopperSettings()):
        self.store_id = catalogue.store_id
        self.catalogue = catalogue
        self.rng = random.Random(f"{seed}:{self.store_id}")
        self.ids = IdSequence(seed, self.store_id)
        self.staff_ids = IdSequence(seed, self.store_id, "staff")
        self.emit = emit
        self.traffic = traffic
        self.shoppers = shoppers
        self.products: dict[str, Product] = {p.shelf_id: p for p in catalogue.products}
        self.shelf_order = [p.shelf_id for p in catalogue.products]
        self.shelves = {s: Lots() for s in self.shelf_order}
        self.warehouse = {s: Lots() for s in self.shelf_order}
        self.in_transit: dict[tuple[str, str], int] = {}
        self.lot_dates: dict[str, tuple[date, date]] = {}
        for lot in catalogue.shelf_lots:
            self.shelves[lot.shelf_id].add(lot.batch_code, lot.received_date, lot.expiry_date,
                                           lot.quantity)
            self.lot_dates[lot.batch_code] = (lot.received_date, lot.expiry_date)
        for lot in catalogue.wh_lots:
            self.warehouse[lot.shelf_id].add(lot.batch_code, lot.received_date, lot.expiry_date,
                                             lot.quantity)
            self.lot_dates[lot.batch_code] = (lot.received_date, lot.expiry_date)
        self.customers: dict[str, Customer] = {}
        self.daily: dict[tuple[str, date], DailyLedger] = {}
        self.waste: dict[tuple[str, date], DailyWaste] = {}
        self.daily_discounts: dict[tuple[date, str], float] = {}
        self.applied_effects: set[str] = set()  # event ids, and alert ids of work orders
        self.waiting: list[tuple[str, dict]] = []  # effects that cannot apply yet
        self.anomalies: list[str] = []
        # For reports: units shoppers kept because their shelf was full, units of refills that
        # did not fit (in transit until the platform returns them to the warehouse).
        self.kept_in_carts = 0
        self.refill_overflow = 0
        # How long after its due time each refill task was carried out (it reached the store
        # late): how far the world ran ahead of the platform.
        self.refill_lateness: list[timedelta] = []
        # Keys changed since the ledger was last saved.
        self.dirty_shelf: set[tuple[str, str]] = set()
        self.dirty_wh: set[tuple[str, str]] = set()
        self.dirty_daily: set[tuple[str, date]] = set()
        self.dirty_waste: set[tuple[str, date]] = set()
        # The whole bootstrap stock is new to the ledger.
        self.dirty_shelf.update((lot.shelf_id, lot.batch_code) for lot in catalogue.shelf_lots)
        self.dirty_wh.update((lot.shelf_id, lot.batch_code) for lot in catalogue.wh_lots)
        self._choice_day: date | None = None
        self._cum_weights: list[float] = []

    # ---- pricing and choice ------------------------------------------------------------

    def discount(self, day: date, shelf_id: str) -> float:
        return combined_discount(self.catalogue.weekly_discount(day, shelf_id),
                                 self.daily_discounts.get((day, shelf_id), 0.0))

    def set_daily_discount(self, day: date, shelf_id: str, discount: float) -> None:
        self.daily_discounts[(day, shelf_id)] = discount
        if day == self._choice_day:
            self._choice_day = None  # weights must be rebuilt

    def _choose_shelf(self, u: float, day: date) -> str:
        """The shelf a uniform draw `u` picks, weighted by visibility x (1 + discount in force)."""
        if day != self._choice_day:
            weights = [self.products[s].visibility * (1 + self.discount(day, s))
                       for s in self.shelf_order]
            self._cum_weights = list(itertools.accumulate(weights))
            self._choice_day = day
        index = bisect.bisect_right(self._cum_weights, u * self._cum_weights[-1])
        return self.shelf_order[min(index, len(self.shelf_order) - 1)]

    # ---- customers ---------------------------------------------------------------------

    def visits(self, day: date, not_before: datetime | None = None) -> list[Visit]:
        return visits_for_day(day, self.rng, self.traffic, not_before)

    def plan_actions(self, visit: Visit) -> list[tuple[datetime, bool]]:
        """[(time, is_pickup)] spread uniformly over the visit."""
        first = visit.entry + timedelta(seconds=self.shoppers.first_action_after_s)
        last = visit.exit - timedelta(seconds=self.shoppers.last_action_before_exit_s)
        span = max(int((last - first).total_seconds()), 0)
        plan = []
        for _ in range(actions_for_visit(self.rng)):
            at = first + timedelta(seconds=self.rng.randint(0, span))
            plan.append((at, self.rng.random() >= self.shoppers.putback_probability))
        plan.sort(key=lambda a: a[0])
        return plan

    def enter(self, visit: Visit) -> str:
        customer_id = self.ids.next()
        self.customers[customer_id] = Customer(customer_id, visit)
        self._emit_foot_traffic("entry", customer_id, visit.entry, visit, None)
        return customer_id

    def act(self, customer_id: str, at: datetime, is_pickup: bool) -> None:
        customer = self.customers[customer_id]
        # Both draws happen whatever the stock or cart, keeping the random stream stable.
        u_item, u_qty = self.rng.random(), self.rng.random()
        if is_pickup:
            self._pickup(customer, at, u_item, u_qty)
        else:
            self._putback(customer, at, u_item, u_qty)

    def _pickup(self, customer: Customer, at: datetime, u_item: float, u_qty: float) -> None:
        day = at.date()
        shelf_id = self._choose_shelf(u_item, day)
        wanted = self._quantity(u_qty)
        taken = self.shelves[shelf_id].take_fefo(wanted)
        units = sum(q for _, q in taken)
        if units < wanted:
            ledger = self._daily(shelf_id, day)
            ledger.lost_units += wanted - units
            ledger.lost_attempts += 1
            if self.warehouse[shelf_id].total == 0 and not self._in_transit_to(shelf_id):
                ledger.lost_units_wh_empty += wanted - units
        if units == 0:
            return
        cart = customer.cart.setdefault(shelf_id, [])
        for batch, q in taken:
            cart.append([batch, q])
            self.dirty_shelf.add((shelf_id, batch))
        self._emit_shelf_pair("pickup", shelf_id, units, at, customer_id=customer.customer_id)

    def _quantity(self, u: float) -> int:
        acc = 0.0
        for qty, weight in zip(self.shoppers.pickup_quantities,
                               self.shoppers.pickup_quantity_weights):
            acc += weight
            if u < acc:
                return qty
        return self.shoppers.pickup_quantities[-1]

    def _putback(self, customer: Customer, at: datetime, u_item: float, u_qty: float) -> None:
        if not customer.cart:
            return
        shelves = sorted(customer.cart)
        shelf_id = shelves[int(u_item * len(shelves))]
        held = customer.cart[shelf_id]
        in_hand = sum(q for _, q in held)
        # A full shelf takes nothing back: what does not fit stays in the cart, paid at checkout.
        wanted = 1 + int(u_qty * in_hand)
        units = min(wanted, self.room(shelf_id))
        self.kept_in_carts += wanted - units
        if units == 0:
            return
        left = units
        # Put back the units picked last first: what is on top of the basket.
        while left:
            batch, q = held[-1]
            back = min(q, left)
            received, expiry = self.lot_dates[batch]
            self.shelves[shelf_id].add(batch, received, expiry, back)
            self.dirty_shelf.add((shelf_id, batch))
            left -= back
            if back == q:
                held.pop()
            else:
                held[-1][1] -= back
        if not held:
            del customer.cart[shelf_id]
        self._emit_shelf_pair("putback", shelf_id, units, at, customer_id=customer.customer_id)

    def _in_transit_to(self, shelf_id: str) -> bool:
        """Units picked from the warehouse for this shelf that have not reached it yet."""
        return any(units > 0 for (shelf, _), units in self.in_transit.items() if shelf == shelf_id)

    def room(self, shelf_id: str) -> int:
        """Units the shelf can still take before it is at its capacity."""
        return max(0, self.products[shelf_id].max_stock - self.shelves[shelf_id].total)

    def leave(self, customer_id: str, at: datetime) -> None:
        customer = self.customers.pop(customer_id)
        if customer.cart:
            self._checkout(customer, at)
        self._emit_foot_traffic("exit", customer_id, at, customer.visit, customer.visit.minutes)

    def _checkout(self, customer: Customer, at: datetime) -> None:
        day = at.date()
        lines, total_items, total_amount = [], 0, 0
        for shelf_id in sorted(customer.cart):
            per_batch: dict[str, int] = {}
            for batch, q in customer.cart[shelf_id]:
                per_batch[batch] = per_batch.get(batch, 0) + q
            product = self.products[shelf_id]
            discount = self.discount(day, shelf_id)
            for batch, q in per_batch.items():
                stored, total = line_total(q, product.price, discount)
                lines.append({
                    "line_no": len(lines) + 1, "shelf_id": shelf_id, "batch_code": batch,
                    "expiry_date": self.lot_dates[batch][1].isoformat(), "quantity": q,
                    "unit_price": float(product.price), "discount": float(stored),
                    "total_price": float(total),
                })
                total_items += q
                total_amount += total
            ledger = self._daily(shelf_id, day)
            ledger.sold += sum(per_batch.values())
        self.emit("pos_transactions", {
            "event_id": self.ids.next(), "store_id": self.store_id,
            "transaction_id": self.ids.next(), "customer_id": customer.customer_id,
            "timestamp": iso(at), "total_items": total_items,
            "total_amount": float(total_amount), "items": lines,
        })

    def _daily(self, shelf_id: str, day: date) -> DailyLedger:
        key = (shelf_id, day)
        self.dirty_daily.add(key)
        ledger = self.daily.get(key)
        if ledger is None:
            ledger = self.daily[key] = DailyLedger()
        return ledger

    # ---- platform effects (the physical world follows the platform's decisions) --------

    def apply_effects(self, effects: list[tuple[str, dict]], now: datetime) -> int:
        """Apply the platform's effects (topic, record) that can apply now; the others wait.

        Effects of different topics arrive in no common order: a refill task may come before
        the `wh_out` that put its units in transit, a pick or removal before the `wh_in` of its
        lot. Such an effect waits and is tried again after each one that applies, here
        and on later calls; `give_up_waiting` flags what never could. Returns the effects done
        (applied, or dropped as a repeat).
        """
        self.waiting.extend(effects)
        done, progress = 0, True
        while progress:
            still = [(topic, record) for topic, record in self.waiting
                     if not self._apply(topic, record, now)]
            progress = len(still) < len(self.waiting)
            done += len(self.waiting) - len(still)
            self.waiting = still
        return done

    def give_up_waiting(self) -> None:
        """End of a run: effects still waiting are anomalies (their cause never came)."""
        for topic, record in self.waiting:
            self.anomalies.append(
                f"{topic} {record.get('event_type')} {record.get('event_id')} of "
                f"{record.get('quantity')} x {record.get('batch_code')} on "
                f"{record.get('shelf_id')} never applied: the units were never there")
        self.waiting = []

    def _apply(self, topic: str, record: dict, now: datetime) -> bool:
        if topic == "wh_events":
            return self._warehouse_move(record)
        if topic == "restock_tasks":
            return self._refill(record, now)
        if topic == "daily_discounts":
            self.set_daily_discount(date.fromisoformat(record["discount_date"]),
                                    record["shelf_id"], float(record["discount"]))
        elif topic == "alerts":
            self._remove_expired(record, now)
        return True

    def _warehouse_move(self, event: dict) -> bool:
        if event["event_id"] in self.applied_effects:
            return True
        shelf_id, batch, qty = event["shelf_id"], event["batch_code"], event["quantity"]
        kind = event["event_type"]
        if shelf_id not in self.warehouse:
            self.anomalies.append(f"{kind} for unknown shelf {shelf_id}")
        elif kind == "wh_in" and event.get("reason") == REFILL_RETURN:
            # Units a restocker could not fit on the shelf, back from transit: not a delivery.
            key = (shelf_id, batch)
            if self.in_transit.get(key, 0) < qty:
                return False  # the refill that left them over is still to come
            self.in_transit[key] -= qty
            received, expiry = self.lot_dates[batch]
            self.warehouse[shelf_id].add(batch, received, expiry, qty)
            self.dirty_wh.add(key)
        elif kind == "wh_in":
            received = date.fromisoformat(event["received_date"])
            expiry = date.fromisoformat(event["expiry_date"])
            self.lot_dates.setdefault(batch, (received, expiry))
            self.warehouse[shelf_id].add(batch, received, expiry, qty)
            self.dirty_wh.add((shelf_id, batch))
        else:
            lot = self.warehouse[shelf_id].by_code.get(batch)
            if lot is None or lot.quantity < qty:
                return False  # the delivery of these units is still to come
            self.warehouse[shelf_id].remove(batch, qty)
            self.dirty_wh.add((shelf_id, batch))
            if kind == "wh_out":
                key = (shelf_id, batch)
                self.in_transit[key] = self.in_transit.get(key, 0) + qty
            else:
                day = date.fromisoformat(event["timestamp"][:10])
                self._waste(shelf_id, day).warehouse_units += qty
        self.applied_effects.add(event["event_id"])
        return True

    def _refill(self, task: dict, now: datetime) -> bool:
        """A refill task: the restocker puts the units in transit since their `wh_out` on the
        shelf, as many as fit, from the task's due time, and reports the units placed (0 on a
        full shelf) as a putback with its weight change. The rest stays in transit until the
        platform returns it to the warehouse."""
        task_id = task["event_id"]
        if task_id in self.applied_effects:
            return True
        shelf_id, batch, qty = task["shelf_id"], task["batch_code"], task["quantity"]
        if shelf_id not in self.shelves:
            self.anomalies.append(f"refill task {task_id} for unknown shelf {shelf_id}")
            self.applied_effects.add(task_id)
            return True
        key = (shelf_id, batch)
        if self.in_transit.get(key, 0) < qty:
            return False  # the pick that sent them is still to come
        due = datetime.fromisoformat(task["timestamp"])
        at = max(now, due)
        self.refill_lateness.append(at - due)
        placed = min(qty, self.room(shelf_id))
        self.refill_overflow += qty - placed
        if placed:
            self.in_transit[key] -= placed
            received, expiry = self.lot_dates[batch]
            self.shelves[shelf_id].add(batch, received, expiry, placed)
            self.dirty_shelf.add(key)
        self.applied_effects.add(task_id)
        self._emit_shelf_pair("putback", shelf_id, placed, at, batch_code=batch,
                              plan_id=task["plan_id"], event_ids=(
                                  str(uuid.uuid5(RESTOCKER_NAMESPACE, f"putback:{task_id}")),
                                  str(uuid.uuid5(RESTOCKER_NAMESPACE, f"weight:{task_id}"))))
        return True

    def _remove_expired(self, order: dict, now: datetime) -> None:
        """An `expired_removal` work order: the staff take every lot off the shelf that expired
        before the order's day, whatever is physically there (units in carts stay there), and
        the shelf reports each lot removed, with its paired weight change."""
        if order["alert_id"] in self.applied_effects:
            return
        self.applied_effects.add(order["alert_id"])
        shelf_id = order["shelf_id"]
        if shelf_id not in self.shelves:
            self.anomalies.append(f"expired_removal order for unknown shelf {shelf_id}")
            return
        opened = datetime.fromisoformat(order["created_at"])
        at = max(now, opened)  # the staff cannot act before the order exists
        lots = self.shelves[shelf_id]
        for lot in sorted(lots.expired(opened.date()),
                          key=lambda lot: (lot.expiry_date, lot.batch_code)):
            units = lots.remove(lot.batch_code, lot.quantity)
            self.dirty_shelf.add((shelf_id, lot.batch_code))
            self._waste(shelf_id, at.date()).shelf_units += units
            self._emit_shelf_pair("expired_removal", shelf_id, units, at,
                                  batch_code=lot.batch_code)

    def _waste(self, shelf_id: str, day: date) -> DailyWaste:
        key = (shelf_id, day)
        self.dirty_waste.add(key)
        return self.waste.setdefault(key, DailyWaste())

    # ---- events ------------------------------------------------------------------------

    def _emit_foot_traffic(self, kind: str, customer_id: str, at: datetime, visit: Visit,
                           minutes: int | None) -> None:
        self.emit("foot_traffic", {
            "event_id": self.ids.next(), "event_type": kind, "store_id": self.store_id,
            "customer_id": customer_id, "timestamp": iso(at),
            "weekday": WEEKDAY_NAMES[visit.entry.weekday()], "time_slot": visit.slot,
            "trip_duration_minutes": minutes,
        })

    def _emit_shelf_pair(self, kind: str, shelf_id: str, units: int, at: datetime, *,
                         customer_id: str | None = None, batch_code: str | None = None,
                         plan_id: str | None = None,
                         event_ids: tuple[str, str] | None = None) -> None:
        """A shelf movement and its weight change: a customer's, or (without `customer_id`)
        the staff's: a lot removed (ids from the staff's own sequence) or a refill (the ids
        `event_ids` its task gives)."""
        weight = self.products[shelf_id].unit_weight
        actor, ids = ("customer", self.ids) if customer_id else ("restocker", self.staff_ids)
        movement_id, weight_id = event_ids or (ids.next(), ids.next())
        base = {"store_id": self.store_id, "shelf_id": shelf_id, "actor": actor,
                "customer_id": customer_id, "batch_code": batch_code, "plan_id": plan_id,
                "timestamp": iso(at)}
        self.emit("shelf_events", {"event_id": movement_id, "event_type": kind, **base,
                                   "quantity": units, "unit_weight": weight,
                                   "delta_weight": None})
        sign = 1 if kind == "putback" else -1
        self.emit("shelf_events", {"event_id": weight_id, "event_type": "weight_change",
                                   **base, "quantity": None, "unit_weight": weight,
                                   "delta_weight": sign * weight * units})

    # ---- ledger views ------------------------------------------------------------------

    def shelf_stock(self, shelf_id: str) -> int:
        return self.shelves[shelf_id].total

    def units_in_carts(self) -> int:
        return sum(q for c in self.customers.values() for held in c.cart.values()
                   for _, q in held)
