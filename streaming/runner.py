"""`smart-shelf stream`: host streaming queries in one Spark application.

Locally every query runs in one application, each with its own checkpoint and query name; on a
cluster, any subset can be `spark-submit`ted on its own (`python -m streaming.runner --query X`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from smart_shelf_platform.clock import DEFAULT_KEY_PREFIX, RedisClock
from smart_shelf_platform.progress import forget_progress
from smart_shelf_platform.settings import Settings, get_settings
from streaming import (
    alerts_sink, batch_state_updater, daily_discount_manager, foot_traffic_raw_sink,
    removal_scheduler, shell, shelf_aggregator, shelf_alert_engine, shelf_refill_bridge,
    shelf_restock_manager, supplier_manager, wh_aggregator, wh_alert_engine,
    wh_batch_state_updater,
)
from streaming.progress import ProgressListener
from streaming.session import build_spark

log = logging.getLogger(__name__)

# Each stage reads what the stages before it write: events -> state -> alerts and plans ->
# warehouse picks -> refills -> the alerts table. A drain (`--until-drained`) runs them once in
# this order; the refills it emits are applied by the next run (the loop closes through Kafka).
STAGES: tuple[tuple[shell.StreamingQuerySpec, ...], ...] = (
    (foot_traffic_raw_sink.QUERY, shelf_aggregator.QUERY, wh_aggregator.QUERY,
     wh_batch_state_updater.QUERY, batch_state_updater.QUERY),
    (shelf_alert_engine.QUERY, wh_alert_engine.QUERY),
    (shelf_restock_manager.QUERY, supplier_manager.QUERY, daily_discount_manager.QUERY,
     removal_scheduler.QUERY),
    (shelf_refill_bridge.QUERY,),
    (alerts_sink.QUERY,),
)
QUERIES: dict[str, shell.StreamingQuerySpec] = {q.name: q for stage in STAGES for q in stage}


def unknown_queries(names: list[str]) -> list[str]:
    return [n for n in names if n not in QUERIES]


def run(settings: Settings, names: list[str] | None = None, *, until_drained: bool = False,
        app_name: str = "smart-shelf-streaming", trigger_seconds: float = 2,
        **context) -> None:
    """Start the queries and block until SIGINT/SIGTERM (or, with `until_drained`, until each
    has processed everything available, stage by stage); a failed query stops the application.
    `context` overrides QueryContext fields (topic_prefix, max_offsets_per_trigger, ...)."""
    names = names or list(QUERIES)
    if unknown := unknown_queries(names):
        raise ValueError(f"unknown queries {unknown}; available: {sorted(QUERIES)}")
    spark = build_spark(settings, app_name)
    stopping: list[bool] = []
    # A flag only: the loop below stops the queries, so a signal never interrupts a py4j call.
    previous = {sig: signal.signal(sig, lambda *_: stopping.append(True))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    ctx = shell.QueryContext.from_settings(settings, **context)
    spark.streams.addListener(ProgressListener(ctx.clock.client, ctx.clock.key_prefix,
                                               spark.streams))
    stages = [[q for q in stage if q.name in names] for stage in STAGES]
    # Running continuously, every query starts at once; a drain goes stage by stage.
    waves = [s for s in stages if s] if until_drained else [[q for s in stages for q in s]]
    started = []
    try:
        for wave in waves:
            queries = [spec.start(spark, ctx, available_now=until_drained,
                                  trigger_seconds=trigger_seconds) for spec in wave]
            started += queries
            for query in queries:
                log.info("%s started (checkpoint %s)", query.name, ctx.checkpoint(query.name))
            _watch(queries, stopping)
            if stopping:
                break
    finally:
        for query in started:
            if query.isActive:
                query.stop()
            forget_progress(ctx.clock.client, ctx.clock.key_prefix, query.name)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        spark.stop()
    _raise_failure(started)


def _watch(queries, stopping: list[bool]) -> None:
    """Block while any query runs, no stop was requested and none failed."""
    while not stopping and any(q.isActive for q in queries):
        _raise_failure(queries)
        queries[0].awaitTermination(1)


def _raise_failure(queries) -> None:
    failed = [q for q in queries if q.exception() is not None]
    if failed:
        raise RuntimeError(f"query {failed[0].name} failed: {failed[0].exception()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--query", action="append", help=f"one of {sorted(QUERIES)} (repeat)")
    parser.add_argument("--until-drained", action="store_true",
                        help="process what is available now, stage by stage, then stop")
    parser.add_argument("--trigger-seconds", type=float, default=2,
                        help="micro-batch interval (default 2)")
    parser.add_argument("--max-offsets-per-trigger", type=int,
                        help="cap on Kafka records per micro-batch and query (default: none)")
    parser.add_argument("--topic-prefix", default="",
                        help="read and write <prefix><topic> (side-by-side copies, tests)")
    parser.add_argument("--clock-prefix", default=DEFAULT_KEY_PREFIX,
                        help=f"Redis key prefix of the simulated clock "
                             f"(default {DEFAULT_KEY_PREFIX})")
    parser.add_argument("--metrics-dir",
                        help="per-batch metrics JSON lines "
                             "(default $SMART_SHELF_HOME/logs/streaming)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # one line per callback otherwise
    try:
        settings = get_settings()
        context = {"topic_prefix": args.topic_prefix,
                   "max_offsets_per_trigger": args.max_offsets_per_trigger,
                   "clock": RedisClock.from_settings(settings, args.clock_prefix)}
        if args.metrics_dir:
            context["metrics_dir"] = args.metrics_dir
        run(settings, args.query, until_drained=args.until_drained,
            trigger_seconds=args.trigger_seconds, **context)
    except (ValueError, RuntimeError) as exc:
        print(f"streaming: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
