"""Foot-traffic raw sink: Kafka `foot_traffic` to Delta `raw/foot_traffic`, rejects dead-lettered.

Each micro-batch: contract check (FOOT_TRAFFIC), dedupe by event_id (however late a copy comes),
the time checks against the simulated clock and the store check, then dead letters and an
idempotent append of
the valid rows (app id = the query name, version = the batch id), so a replayed batch adds nothing.

Run it alone with `python -m streaming.foot_traffic_raw_sink` (or spark-submit this file), or
with the others through `smart-shelf stream`.
"""

from __future__ import annotations

from smart_shelf_platform.contracts.events import FOOT_TRAFFIC
from streaming import shell
from streaming.host import Member

NAME = "foot_traffic_raw_sink"
SOURCE = shell.EventSource("foot_traffic", FOOT_TRAFFIC, checks_shelves=True)  # its stores


class FootTrafficRawSink(Member):
    name, sources, pinned = NAME, [SOURCE], True

    def handle(self, valid: shell.ValidRows, batch_id: int) -> None:
        shell.append_idempotent(valid[SOURCE.topic], self.ctx, "raw/foot_traffic", self.app_id,
                                batch_id)


QUERY = FootTrafficRawSink.spec("customer entries and exits -> raw/foot_traffic", pace=5)


if __name__ == "__main__":
    shell.run_alone(NAME)
