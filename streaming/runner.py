"""`smart-shelf stream`: host streaming queries in one Spark application.

Locally the queries started together run as two Spark queries (`HOSTS`, `host.QueryHost`):
`state` and `decisions`, each with one checkpoint; on a cluster, any subset can be
`spark-submit`ted on its own (`python -m streaming.runner --query X`): one query alone keeps
its own name and checkpoint.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import NamedTuple

from smart_shelf_platform.clock import DEFAULT_KEY_PREFIX, RedisClock
from smart_shelf_platform.progress import forget_progress
from smart_shelf_platform.settings import Settings, get_settings
from streaming import (
    alerts_sink, batch_state_updater, daily_discount_manager, foot_traffic_raw_sink,
    removal_scheduler, shell, shelf_aggregator, shelf_alert_engine, shelf_refill_bridge,
    shelf_restock_manager, supplier_manager, wh_aggregator, wh_alert_engine,
    wh_batch_state_updater,
)
from streaming.host import QueryHost
from streaming.progress import ProgressReporter
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


class Host(NamedTuple):
    """Queries started together that run as one Spark query (`host.QueryHost`)."""

    name: str
    stages: tuple[tuple[shell.StreamingQuerySpec, ...], ...]
    # Its micro-batches come at least this many trigger intervals apart (`pace` of a query).
    pace: float = 1.0


# Two hosts: events become state in `state`, while `decisions` (engines, managers, the alerts
# sink) acts on that state in batches of its own, every interval as `state` does. In one host
# for all, every state change waited for the plans and alerts decided in the same batch, and a
# drain read all 14 topics in every stage. Measured when both hosts still wrote with Spark
# MERGEs (`bench stream`, one host -> these two): drain throughput +20-40 %, state -> alert
# p95 9.7 -> 6.6-7.5 s, event -> state unchanged. Deciding every interval then took CPU from
# `state`; with batches of about a second (the writes from the driver, `bench stream`'s stages)
# it no longer does, and a state change waited half of 5 s on average for its decisions.
HOSTS = (Host("state", STAGES[:1]), Host("decisions", STAGES[1:]))


def unknown_queries(names: list[str]) -> list[str]:
    return [n for n in names if n not in QUERIES]


def arranged(names: list[str] | None = None) -> list[list[shell.StreamingQuerySpec]]:
    """The stages of the selected queries, with two or more hostable queries of a host replaced
    by that host in each stage that had one of them (a drain runs a host once per such stage)."""
    arranged_stages = []
    for host in HOSTS:
        chosen = [[q for q in stage if names is None or q.name in names] for stage in host.stages]
        members = [q for stage in chosen for q in stage if q.member is not None]
        if len(members) > 1:
            spec = host_spec(host, members)
            chosen = [([spec] if any(q.member for q in stage) else [])
                      + [q for q in stage if q.member is None] for stage in chosen]
        arranged_stages += chosen
    return [stage for stage in arranged_stages if stage]


def host_spec(host: Host, members: list[shell.StreamingQuerySpec]) -> shell.StreamingQuerySpec:
    every = [q.name for stage in host.stages for q in stage if q.member is not None]
    names = tuple(q.name for q in members)
    # A subset gets a name of its own: another set of queries cannot share its checkpoint.
    name = host.name if list(names) == every else "-".join((host.name, *names))

    def build(spark, ctx: shell.QueryContext):
        return QueryHost(name, [q.member(spark, ctx) for q in members]).build(spark)

    pace = max(host.pace, min(q.pace for q in members))
    return shell.StreamingQuerySpec(name, build, "queries " + ", ".join(names), pace=pace,
                                    hosts=names)


def spark_query_names(names: list[str] | None = None) -> list[str]:
    """The Spark queries a run of these queries starts (what reports progress and metrics)."""
    return list(dict.fromkeys(q.name for stage in arranged(names) for q in stage))


def run(settings: Settings, names: list[str] | None = None, *, until_drained: bool = False,
        app_name: str = "smart-shelf-streaming", trigger_seconds: float = 2,
        **context) -> None:
    """Start the queries and block until SIGINT/SIGTERM (or, with `until_drained`, until each
    has processed everything available, stage by stage); a failed query stops the application.
    `context` overrides QueryContext fields (topic_prefix, max_offsets_per_trigger, ...)."""
    if unknown := unknown_queries(names or []):
        raise ValueError(f"unknown queries {unknown}; available: {sorted(QUERIES)}")
    spark = build_spark(settings, app_name)
    stopping: list[bool] = []
    # A flag only: the loop below stops the queries, so a signal never interrupts a py4j call.
    previous = {sig: signal.signal(sig, lambda *_: stopping.append(True))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    ctx = shell.QueryContext.from_settings(settings, **context)
    reporter = ProgressReporter(ctx.clock.client, ctx.clock.key_prefix)
    stages = arranged(names or None)
    # Running continuously, every query starts at once; a drain goes stage by stage.
    waves = stages if until_drained else [list({q.name: q for s in stages for q in s}.values())]
    started = []
    try:
        for wave in waves:
            queries = [spec.start(spark, ctx, available_now=until_drained,
                                  trigger_seconds=trigger_seconds) for spec in wave]
            started += queries
            for spec in wave:
                for name in spec.hosts or (spec.name,):
                    log.info("%s started (checkpoint %s%s)", name, ctx.checkpoint(spec.name),
                             f", in {spec.name}" if spec.hosts else "")
            _watch(queries, stopping, reporter)
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


# How soon a finished batch's progress is reported: a simulator meeting the platform at each
# decision round waits for it a few times per round.
WATCH_SECONDS = 0.25


def _watch(queries, stopping: list[bool], reporter: ProgressReporter) -> None:
    """Block while any query runs, no stop was requested and none failed; report progress."""
    while not stopping and any(q.isActive for q in queries):
        _raise_failure(queries)
        reporter.report(queries)
        # On one that still runs: a finished query returns at once (a busy loop of py4j calls).
        if active := [q for q in queries if q.isActive]:
            active[0].awaitTermination(WATCH_SECONDS)


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
