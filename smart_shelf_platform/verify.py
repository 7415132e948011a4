"""`smart-shelf verify`: the platform's state against the simulator's ground-truth ledger.

After a run drains, every shelf, warehouse and lot quantity in the Delta `cleansed/` tables must
equal the ledger in Postgres `sim.*`, and every malformed event the simulator injected must be in
`raw/dead_letter`. The comparison (`compare`) is pure, over plain dicts; `verify` reads both sides
(Delta through `delta_reader`, no Spark; the ledger with psycopg) and calls it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from smart_shelf_platform import delta_reader
from smart_shelf_platform.settings import Settings
from smart_shelf_platform.stack.process import StackError

Key = tuple[str, ...]  # (store, shelf) or (store, shelf, batch)
Quantities = dict[Key, int]

# ---- the comparison (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    key: Key
    platform: int
    ledger: int

    def __str__(self) -> str:
        return f"{' '.join(self.key)}: platform {self.platform}, ledger {self.ledger}"


@dataclass(frozen=True)
class Comparison:
    name: str
    keys: int  # keys on either side
    differences: list[Difference]
    store_keys: dict[str, int] = field(default_factory=dict)  # keys on either side, per store


@dataclass(frozen=True)
class InjectedBadEvent:
    store_id: str
    bad_event_id: str
    stream: str
    defect: str
    payload: str

    def __str__(self) -> str:
        return (f"{self.store_id} {self.bad_event_id} ({self.stream}, {self.defect}): "
                "not in raw/dead_letter")


@dataclass(frozen=True)
class DeadLetter:
    payload: str
    reason: str


@dataclass(frozen=True)
class PlatformState:
    shelf_stock: Quantities  # (store, shelf) -> shelf_state.current_stock
    shelf_lots: Quantities  # (store, shelf, batch) -> shelf_batch_state.batch_quantity_store
    wh_stock: Quantities  # (store, shelf) -> wh_state.wh_current_stock
    wh_lots: Quantities  # (store, shelf, batch) -> wh_batch_state.batch_quantity_warehouse
    dead_letters: list[DeadLetter]


@dataclass(frozen=True)
class LedgerState:
    stores: list[str]
    shelf_lots: Quantities  # (store, shelf, batch) -> units on the shelf
    cart_lots: Quantities  # (store, shelf, batch) -> units in carts, not yet paid
    wh_lots: Quantities  # (store, shelf, batch) -> units in the warehouse
    bad_events: list[InjectedBadEvent]


@dataclass
class VerifyReport:
    stores: list[str]
    comparisons: dict[str, Comparison]  # shelf_state, shelf_batch_state, wh_state, wh_batch_state
    bad_events: int  # injected by the simulator
    missing_dead_letters: list[InjectedBadEvent]
    dead_letter_reasons: dict[str, int]  # rows per reason prefix, information only
    store_bad_events: dict[str, int] = field(default_factory=dict)  # injected, per store

    @property
    def difference_count(self) -> int:
        return (sum(len(c.differences) for c in self.comparisons.values())
                + len(self.missing_dead_letters))

    @property
    def ok(self) -> bool:
        return self.difference_count == 0

    def store_lines(self) -> list[str]:
        """One line per store: its keys, its differences by table, its bad events."""
        missing = Counter(b.store_id for b in self.missing_dead_letters)
        lines = []
        for store in self.stores:
            keys = sum(c.store_keys.get(store, 0) for c in self.comparisons.values())
            differs = {c.name: n for c in self.comparisons.values()
                       if (n := sum(d.key[0] == store for d in c.differences))}
            count = sum(differs.values()) + missing[store]
            detail = ", ".join([*(f"{name} {n}" for name, n in differs.items()),
                                *([f"raw/dead_letter {missing[store]}"] if missing[store] else [])])
            injected = self.store_bad_events.get(store, 0)
            lines.append(f"  {store}: {_plural(keys, 'key')}, {_plural(count, 'difference')}"
                         + (f" ({detail})" if detail else "")
                         + f", {_plural(injected, 'bad event')} injected")
        return lines

    def lines(self) -> list[str]:
        """The report as printed: a summary per comparison, each difference indented below it
        (in store order), the bad events, then a line per store and the verdict, with the
        differences per store."""
        lines = []
        for c in self.comparisons.values():
            lines.append(f"{c.name}: {_plural(c.keys, 'key')}, "
                         f"{_plural(len(c.differences), 'difference')}")
            lines += [f"  {d}" for d in c.differences]
        lines.append(f"bad events: {self.bad_events} injected, "
                     f"{len(self.missing_dead_letters)} missing from raw/dead_letter")
        lines += [f"  {b}" for b in self.missing_dead_letters]
        reasons = ", ".join(f"{r}: {n}" for r, n in self.dead_letter_reasons.items())
        lines.append(f"dead letters: {_plural(sum(self.dead_letter_reasons.values()), 'row')}"
                     + (f" ({reasons})" if reasons else ""))
        lines.append("stores:")
        lines += self.store_lines()
        if self.ok:
            keys = sum(c.keys for c in self.comparisons.values())
            lines.append(f"verify: OK ({_plural(len(self.stores), 'store')}, "
                         f"{_plural(keys, 'key')}, "
                         f"{_plural(self.bad_events, 'bad event')} dead-lettered)")
        else:
            per_store = Counter(d.key[0] for c in self.comparisons.values()
                                for d in c.differences)
            per_store.update(b.store_id for b in self.missing_dead_letters)
            lines.append(f"verify: {_plural(self.difference_count, 'difference')} ("
                         + ", ".join(f"{s}: {per_store[s]}" for s in sorted(per_store)) + ")")
        return lines

    def as_dict(self) -> dict:
        return {"ok": self.ok, "differences": self.difference_count, **asdict(self)}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def compare_quantities(name: str, platform: Quantities, ledger: Quantities) -> Comparison:
    """A key missing on one side is an emptied lot or shelf there: it counts as 0."""
    keys = platform.keys() | ledger.keys()
    differences = [Difference(k, platform.get(k, 0), ledger.get(k, 0)) for k in sorted(keys)
                   if platform.get(k, 0) != ledger.get(k, 0)]
    return Comparison(name, len(keys), differences, dict(sorted(Counter(k[0] for k in keys)
                                                                .items())))


def per_shelf(lots: Quantities) -> Quantities:
    """(store, shelf, batch) quantities summed per (store, shelf)."""
    totals: Quantities = {}
    for (store, shelf, _batch), quantity in lots.items():
        totals[store, shelf] = totals.get((store, shelf), 0) + quantity
    return totals


def added(*parts: Quantities) -> Quantities:
    total: Quantities = {}
    for part in parts:
        for key, quantity in part.items():
            total[key] = total.get(key, 0) + quantity
    return total


def reason_prefix(reason: str) -> str:
    """The first reason of a dead letter without its detail: "quantity: not an integer; ..." ->
    "quantity", so the counts group by kind of defect."""
    return reason.split(";", 1)[0].split(":", 1)[0].strip()


def compare(platform: PlatformState, ledger: LedgerState) -> VerifyReport:
    # shelf_batch_state only drops units at checkout, so it still counts what is in the carts;
    # shelf_state drops them at the pickup, like the ledger's shelf lots.
    comparisons = [
        compare_quantities("shelf_state", platform.shelf_stock, per_shelf(ledger.shelf_lots)),
        compare_quantities("shelf_batch_state", platform.shelf_lots,
                           added(ledger.shelf_lots, ledger.cart_lots)),
        compare_quantities("wh_state", platform.wh_stock, per_shelf(ledger.wh_lots)),
        compare_quantities("wh_batch_state", platform.wh_lots, ledger.wh_lots),
    ]
    dead_payloads = {d.payload for d in platform.dead_letters}
    reasons = Counter(reason_prefix(d.reason) for d in platform.dead_letters)
    return VerifyReport(
        stores=ledger.stores,
        comparisons={c.name: c for c in comparisons},
        bad_events=len(ledger.bad_events),
        missing_dead_letters=[b for b in ledger.bad_events if b.payload not in dead_payloads],
        dead_letter_reasons=dict(reasons.most_common()),
        store_bad_events=dict(sorted(Counter(b.store_id for b in ledger.bad_events).items())),
    )


# ---- reading both sides ---------------------------------------------------------------------


def verify(settings: Settings, stores: list[str] | None = None) -> VerifyReport:
    """Compare the platform with the ledger for `stores` (default: every store in the ledger).
    Raises StackError when there is nothing to compare (no ledger, a missing Delta table)."""
    ledger = read_ledger(settings, stores)
    return compare(read_platform(settings, ledger.stores), ledger)


LEDGER_LOTS = "SELECT store_id, shelf_id, batch_code, quantity FROM {} WHERE store_id = ANY(%s)"


def connect_ledger(settings: Settings) -> psycopg.Connection:
    """A connection to the ledger's database, or one clear StackError saying why not."""
    try:
        return psycopg.connect(settings.postgres_dsn(), connect_timeout=10)
    except psycopg.OperationalError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StackError(f"cannot read the ledger from Postgres at {settings.postgres_host}:"
                         f"{settings.postgres_port} ({reason}); is the stack up "
                         "(smart-shelf up)?") from None


def read_ledger(settings: Settings, stores: list[str] | None) -> LedgerState:
    return read_ledger_from(connect_ledger(settings), stores)


def read_ledger_from(conn: psycopg.Connection, stores: list[str] | None) -> LedgerState:
    """The ledger of `stores` (default: all) over an open connection, which this closes."""
    # One snapshot for every table, so a simulator saving meanwhile cannot mix two saves.
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    try:
        with conn, conn.transaction():
            in_ledger = [r[0] for r in conn.execute(
                "SELECT store_id FROM sim.ledger_position ORDER BY store_id")]
            selected = select_stores(in_ledger, stores)
            lots = {table: _lots(conn, table, selected) for table in
                    ("sim.ledger_shelf_lots", "sim.ledger_cart_lots", "sim.ledger_wh_lots")}
            bad_events = [InjectedBadEvent(*row) for row in conn.execute(
                "SELECT store_id, bad_event_id, stream, defect, payload "
                "FROM sim.ledger_bad_events WHERE store_id = ANY(%s) "
                "ORDER BY store_id, injected_at, bad_event_id", (selected,))]
    except psycopg.errors.UndefinedTable as exc:
        raise StackError(f"{exc.diag.message_primary}: apply the migrations with "
                         "`smart-shelf up`") from None
    return LedgerState(selected, lots["sim.ledger_shelf_lots"], lots["sim.ledger_cart_lots"],
                       lots["sim.ledger_wh_lots"], bad_events)


class EmptyLedger(StackError):
    """No simulator has run: the ledger holds no store, so there is nothing to compare."""


def select_stores(in_ledger: list[str], wanted: list[str] | None) -> list[str]:
    if not in_ledger:
        raise EmptyLedger("the ledger is empty (no store in sim.ledger_position): run "
                         "`smart-shelf simulate` first")
    unknown = sorted(set(wanted or ()) - set(in_ledger))
    if unknown:
        raise StackError(f"store {unknown[0]} is not in the ledger; it holds "
                         f"{', '.join(in_ledger)}")
    return sorted(set(wanted)) if wanted else in_ledger


def _lots(conn: psycopg.Connection, table: str, stores: list[str]) -> Quantities:
    rows = conn.execute(LEDGER_LOTS.format(table), (stores,))
    return {(store, shelf, batch): quantity for store, shelf, batch, quantity in rows}


def read_platform(settings: Settings, stores: list[str]) -> PlatformState:
    return read_platform_at(settings.delta_root, stores)


def read_platform_at(delta_root: str, stores: list[str]) -> PlatformState:
    """The platform's Delta state of `stores` under `delta_root`."""
    def state(path: str, keys: tuple[str, ...], value: str) -> Quantities:
        table = delta_reader.read(delta_root, path,
                                  [*keys, value, "version"], stores=stores)
        # A key written twice would break the table's contract (the asset checks say so);
        # the latest version is the platform's current answer.
        return {row[:-1]: row[-1] for row in _rows(table.sort_by("version"), (*keys, value))}

    shelf, lot = ("store_id", "shelf_id"), ("store_id", "shelf_id", "batch_code")
    shelf_stock = state("cleansed/shelf_state", shelf, "current_stock")
    shelf_lots = state("cleansed/shelf_batch_state", lot, "batch_quantity_store")
    wh_stock = state("cleansed/wh_state", shelf, "wh_current_stock")
    wh_lots = state("cleansed/wh_batch_state", lot, "batch_quantity_warehouse")
    # Records the platform could not read may carry no store: they are kept for every selection.
    store = pc.field("store_id")
    dead = delta_reader.read(delta_root, "raw/dead_letter",
                             ["payload", "reason", "store_id"],
                             where=store.isin(pa.array(stores, pa.string())) | store.is_null())
    return PlatformState(shelf_stock, shelf_lots, wh_stock, wh_lots,
                         [DeadLetter(p, r) for p, r in _rows(dead, ("payload", "reason"))])


def _rows(table: pa.Table, columns: Iterable[str]) -> Iterable[tuple]:
    return zip(*(table[c].to_pylist() for c in columns))
