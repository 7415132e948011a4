"""Alerts sink: the `alerts` topic -> Delta `ops/alerts`, one row per alert with its status.

Engines publish every lifecycle step of an alert under the alert's deterministic id; the sink
keeps the furthest step (open -> acknowledged -> resolved | dismissed), the first `created_at`
and the step's simulated `updated_at` (`rules.alerts.furthest_step`). The upsert runs once per
micro-batch (txn), and steps that arrive twice or out of order never move an alert backwards
(the furthest step wins).
"""

from __future__ import annotations

from deltalake import DeltaTable

from smart_shelf_platform.contracts.catalogue import DELTA_TABLES_BY_PATH
from smart_shelf_platform.contracts.events import ALERT
from smart_shelf_platform.rules.alerts import furthest_step
from streaming import driver_writes, shell
from streaming.driver_query import Rows, collect_batch, typed
from streaming.host import Member

NAME = "alerts_sink"
SOURCE = shell.EventSource("alerts", ALERT, dedupe_on=("alert_id", "status"))
TABLE = "ops/alerts"
KEY = DELTA_TABLES_BY_PATH[TABLE].record.key


def latest_steps(steps: list[dict]) -> dict[tuple, dict]:
    """The furthest lifecycle step of each alert in a batch, with its earliest created_at."""
    latest: dict[tuple, dict] = {}
    for step in steps:
        key = tuple(step[k] for k in KEY)
        latest[key] = furthest_step(latest.get(key), step)
    return latest


class AlertsSink(Member):
    """Folds each batch's steps into the touched alerts' rows on the driver (a batch holds a few
    alerts) and upserts them once per batch id."""

    name, sources = NAME, [SOURCE]
    collects = True
    collect = staticmethod(collect_batch)

    def run_batch(self, _spark, rows: Rows, batch_id: int) -> None:
        steps = latest_steps([typed(ALERT, r) for r in rows.get(SOURCE.topic, [])])
        table = DeltaTable(self.ctx.table(TABLE))
        current = driver_writes.rows_by_key(table, KEY, steps)
        changed = [row for key, step in steps.items()
                   if (row := furthest_step(current.get(key), step)) != current.get(key)]
        driver_writes.upsert(table, ALERT, changed, self.app_id, batch_id)


QUERY = AlertsSink.spec("alert steps -> ops/alerts", pace=5)


if __name__ == "__main__":
    shell.run_alone(NAME)
