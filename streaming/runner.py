"""`smart-shelf stream`: host streaming queries in one Spark application.

Locally every query runs in one application, each with its own checkpoint and query name; on a
cluster, any subset can be `spark-submit`ted on its own (`python -m streaming.runner --query X`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from smart_shelf_platform.settings import Settings, get_settings
from streaming import (
    alerts_sink, batch_state_updater, foot_traffic_raw_sink, shell, shelf_aggregator,
    shelf_alert_engine, wh_aggregator, wh_alert_engine, wh_batch_state_updater,
)
from streaming.session import build_spark

log = logging.getLogger(__name__)

QUERIES: dict[str, shell.StreamingQuerySpec] = {
    spec.name: spec for spec in (
        foot_traffic_raw_sink.QUERY, shelf_aggregator.QUERY, batch_state_updater.QUERY,
        wh_aggregator.QUERY, wh_batch_state_updater.QUERY, shelf_alert_engine.QUERY,
        wh_alert_engine.QUERY, alerts_sink.QUERY,
    )
}


def unknown_queries(names: list[str]) -> list[str]:
    return [n for n in names if n not in QUERIES]


def run(settings: Settings, names: list[str] | None = None, *, until_drained: bool = False,
        app_name: str = "smart-shelf-streaming") -> None:
    """Start the queries and block until SIGINT/SIGTERM (or, with `until_drained`, until each has
    processed everything available at start); a failed query stops the application."""
    names = names or list(QUERIES)
    if unknown := unknown_queries(names):
        raise ValueError(f"unknown queries {unknown}; available: {sorted(QUERIES)}")
    spark = build_spark(settings, app_name)
    stopping: list[bool] = []
    # A flag only: the loop below stops the queries, so a signal never interrupts a py4j call.
    previous = {sig: signal.signal(sig, lambda *_: stopping.append(True))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    ctx = shell.QueryContext.from_settings(settings)
    queries = [QUERIES[n].start(spark, ctx, available_now=until_drained) for n in names]
    for name in names:
        log.info("%s started (checkpoint %s)", name, ctx.checkpoint(name))
    try:
        while not stopping and any(q.isActive for q in queries):
            failed = [q for q in queries if q.exception() is not None]
            if failed:
                raise RuntimeError(f"query {failed[0].name} failed: {failed[0].exception()}")
            queries[0].awaitTermination(1)
    finally:
        for query in queries:
            if query.isActive:
                query.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        spark.stop()
    failed = [q for q in queries if q.exception() is not None]
    if failed:
        raise RuntimeError(f"query {failed[0].name} failed: {failed[0].exception()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--query", action="append", help=f"one of {sorted(QUERIES)} (repeat)")
    parser.add_argument("--until-drained", action="store_true",
                        help="process what is available now, then stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # one line per callback otherwise
    try:
        run(get_settings(), args.query, until_drained=args.until_drained)
    except (ValueError, RuntimeError) as exc:
        print(f"streaming: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
