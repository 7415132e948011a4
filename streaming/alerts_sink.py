"""Alerts sink: the `alerts` topic -> Delta `ops/alerts`, one row per alert with its status.

Engines publish every lifecycle step of an alert under the alert's deterministic id; the sink
keeps the furthest step (open -> acknowledged -> resolved | dismissed), the first `created_at`
and the step's simulated `updated_at`. The MERGE runs once per micro-batch (txn), and steps
that arrive twice or out of order never move an alert backwards (REFERENCE 6.9, 11 item 13).
"""

from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from smart_shelf_platform.contracts.events import ALERT
from smart_shelf_platform.rules.alerts import TRANSITIONS
from streaming import shell
from streaming.host import Member

NAME = "alerts_sink"
SOURCE = shell.EventSource("alerts", ALERT, dedupe_on=("alert_id", "status"))
TABLE = "ops/alerts"


def _stage_order() -> dict[str, int]:
    """Lifecycle position of each status, from the rules' transition table."""
    order: dict[str, int] = {}

    def walk(status: str, depth: int) -> None:
        order[status] = max(order.get(status, 0), depth)
        for nxt in TRANSITIONS[status]:
            walk(nxt, depth + 1)

    walk("open", 0)
    return order


STAGE = _stage_order()


def stage(status: Column) -> Column:
    return F.coalesce(*(F.when(status == s, F.lit(n)) for s, n in STAGE.items()))


def latest_steps(alerts: DataFrame) -> DataFrame:
    """The furthest lifecycle step of each alert in a batch, with its earliest created_at."""
    by_alert = Window.partitionBy("store_id", "alert_id")
    ranked = by_alert.orderBy(stage(F.col("status")).desc(), F.col("updated_at").desc())
    return (alerts.withColumn("created_at", F.min("created_at").over(by_alert))
            .withColumn("_rank", F.row_number().over(ranked))
            .where("_rank = 1").drop("_rank"))


class AlertsSink(Member):
    name, sources = NAME, [SOURCE]

    def handle(self, valid: shell.ValidRows, batch_id: int) -> None:
        steps = latest_steps(valid[SOURCE.topic])
        session = steps.sparkSession
        t, s = (lambda c: F.col(f"t.{c}")), (lambda c: F.col(f"s.{c}"))
        later = (stage(s("status")) > stage(t("status"))) | (
            (s("status") == t("status")) & (s("updated_at") > t("updated_at")))
        update = {f: s(f) for f in ALERT.field_names} | {
            "created_at": F.least(t("created_at"), s("created_at"))}
        merge = (DeltaTable.forPath(session, self.ctx.table(TABLE)).alias("t")
                 .merge(steps.alias("s"), "t.store_id = s.store_id AND t.alert_id = s.alert_id")
                 .whenMatchedUpdate(condition=later, set=update)
                 .whenNotMatchedInsertAll())
        shell.merge_idempotent(session, merge, self.app_id, batch_id)


QUERY = AlertsSink.spec("alert steps -> ops/alerts", pace=5)


if __name__ == "__main__":
    shell.run_alone(NAME)
