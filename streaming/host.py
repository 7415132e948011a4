"""Queries hosted together in one Spark query: each topic read once, one micro-batch for all.

On two cores the fixed cost of a micro-batch (offsets, dedupe state, Spark jobs, commits) and
queries competing for the cores, not the work in a batch, is what limits the platform: six
sink and state queries and one for the driver queries kept both cores busy for two events a
second. So the runner starts the queries it runs together as two Spark queries, `state` and
`decisions` (`runner.HOSTS`). Each member keeps what is its own: its handler, its Delta
transaction ids (`<host>/<member>`) and its driver state. A query started alone is a host of
one, under its own name and checkpoint.

Per micro-batch the host checks contracts and dedupes once, reports the dead letters once, then
hands every member, in stage order (state before the engines that read it, engines before the
managers that act on their plans), the rows of its topics: as Spark frames (`Member.handle`)
or, collected to the driver in one Spark job for all of them, as records
(`DriverQuery.run_batch`). What a member publishes reaches the others in a later batch,
through Kafka, as it would if they ran apart.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql.streaming import DataStreamWriter

from streaming import reference, shell


class Member:
    """A query a host runs; subclasses set `name` and `sources` and `handle` batches.

    `handle` must be correct without the sources' prefilters: hosted with readers that want all
    of a topic, a member sees every record of it (the prefilter only saves work).
    """

    name: str
    sources: list[shell.EventSource]
    # Its writes are idempotent per batch id of the checkpoint it runs under (appends, state
    # folds): moved into or out of a host, it would read its topics afresh and write twice.
    pinned = False
    # Wants the batch's records on the driver: `collect(valid, sources)` makes them, once for
    # every such member of the host, and `run_batch(spark, records, batch id)` takes them.
    collects = False

    def __init__(self, spark: SparkSession, ctx: shell.QueryContext):
        self.ctx = ctx
        self.hosted_by(None)

    @classmethod
    def spec(cls, description: str, pace: float = 1.0) -> shell.StreamingQuerySpec:
        """The query's runner entry; run alone, it is a host of one."""
        return shell.StreamingQuerySpec(
            cls.name, lambda spark, ctx: QueryHost(cls.name, [cls(spark, ctx)]).build(spark),
            description, pace=pace, member=cls)

    def hosted_by(self, host: str | None) -> None:
        """Alone, the query names its Delta transactions after itself; hosted, after the host
        too, whose batch ids it then shares."""
        self.app_id = self.name if host is None else f"{host}/{self.name}"

    def handle(self, valid: shell.ValidRows, batch_id: int) -> None:
        raise NotImplementedError


def shared_sources(sources: list[shell.EventSource]) -> list[shell.EventSource]:
    """One source per topic for queries hosted together: it reports dead letters and checks
    shelves if any reader does, and prefilters only if every reader does (each reader filters
    again, `accepts`)."""
    by_topic: dict[str, list[shell.EventSource]] = {}
    for source in sources:
        by_topic.setdefault(source.topic, []).append(source)
    shared = []
    for topic, readers in by_topic.items():
        if len({(r.record.name, r.dedupe_fields) for r in readers}) > 1:
            raise ValueError(f"queries read {topic} with different contracts or dedupe keys; "
                             "they cannot share one read of it")
        filters = [r.prefilter for r in readers]
        dead_letters = any(r.dead_letters for r in readers)
        prefilter = None
        if not dead_letters and None not in filters:
            prefilter = shell.any_of(filters)
        shared.append(replace(readers[0], dead_letters=dead_letters, prefilter=prefilter,
                              dedupe_on=readers[0].dedupe_fields,
                              checks_shelves=any(r.checks_shelves for r in readers),
                              verify=next((r.verify for r in readers if r.verify), None)))
    return shared


def pin_checkpoints(ctx: shell.QueryContext, query: str, members: list[str]) -> None:
    """Record that `members` run under the checkpoint of `query`; refuse a member whose last
    checkpoint was another one that still exists (`<checkpoint root>/members.json`, local
    checkpoints only, like the driver state)."""
    if not members or "://" in ctx.checkpoint(query):
        return
    path = Path(ctx.checkpoint("members.json"))
    pinned = json.loads(path.read_text()) if path.exists() else {}
    for member in members:
        previous = pinned.get(member, query)
        if previous != query and Path(ctx.checkpoint(previous)).exists():
            raise RuntimeError(
                f"{member} last ran in {previous} (checkpoint {ctx.checkpoint(previous)}); run "
                f"in {query} it would read its topics afresh and write their events twice. Run "
                f"the same queries as before, or start from scratch (README, Troubleshooting)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(pinned | dict.fromkeys(members, query), indent=1, sort_keys=True))


class QueryHost:
    """Members run as one Spark query `name`, handed each micro-batch in the given order."""

    def __init__(self, name: str, members: list[Member]):
        self.name = name
        self.members = members
        for member in members:
            if len(members) > 1:
                member.hosted_by(name)
            topics = [s.topic for s in member.sources]
            if len(set(topics)) < len(topics):
                raise ValueError(f"{member.name} reads a topic twice")
        self.sources = shared_sources([s for m in members for s in m.sources])
        # What the driver members read of each topic: all of it, or what passes their filters.
        self.collected: dict[str, list[shell.FieldIn | shell.AnyOf | None]] = {}
        for source in (s for m in members if m.collects for s in m.sources):
            self.collected.setdefault(source.topic, []).append(source.prefilter)

    def build(self, spark: SparkSession) -> DataStreamWriter:
        ctx = self.members[0].ctx
        pin_checkpoints(ctx, self.name, [m.name for m in self.members if m.pinned])
        known = (reference.known_shelves(spark, ctx.settings)
                 if any(s.checks_shelves for s in self.sources) else None)
        # Each topic's bad records are reported as found by its first reader that reports.
        reporters = {}
        for member in self.members:
            for source in member.sources:
                if source.dead_letters:
                    reporters.setdefault(source.topic, member.name)
        return shell.event_query(spark, ctx, self.name, self.sources, self.handle,
                                 known_shelves=known, reporters=reporters)

    def handle(self, valid: shell.ValidRows, batch_id: int, stages: shell.StageTimer) -> None:
        """Each member in turn, its time lapped under its name (`collect` for the one Spark job
        that brings the driver members' records)."""
        rows = None
        for member in self.members:
            own = {s.topic: valid[s.topic] for s in member.sources if s.topic in valid}
            if not own:
                continue
            if not member.collects:
                member.handle(own, batch_id)
                stages.lap(member.name)
                continue
            if rows is None:  # one Spark job for every member that decides on the driver
                rows = member.collect(self._to_collect(valid), self.sources)
                stages.lap("collect")
            records = {s.topic: [r for r in rows[s.topic]
                                 if s.prefilter is None or s.prefilter.accepts(r)]
                       for s in member.sources if s.topic in rows}
            if any(records.values()):
                member.run_batch(next(iter(own.values())).sparkSession, records, batch_id)
                stages.lap(member.name)

    def _to_collect(self, valid: shell.ValidRows) -> shell.ValidRows:
        """The driver members' rows: a topic others read whole (shelf events) is filtered in
        Spark when every driver member of it filters."""
        frames = {}
        for topic, filters in self.collected.items():
            if topic in valid:
                frame = valid[topic]
                if None not in filters:
                    frame = frame.where(shell.any_of(filters).column())
                frames[topic] = frame
        return frames
