"""`smart-shelf`: set up, start, watch and stop the platform locally.

Every failure a person can act on is printed as one line (`smart-shelf: error: ...`) with a
non-zero exit code; tracebacks are kept for bugs.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
# typer vendors its own click; its exception classes live here.
from typer._click import exceptions as click_exc

from smart_shelf_platform.cli_docker import container_app, docker_app
from smart_shelf_platform.settings import REPO_ROOT, Settings, get_settings
from smart_shelf_platform.stack.process import StackError

app = typer.Typer(
    name="smart-shelf",
    help="Smart Shelf: real-time stock, batch and replenishment platform for supermarkets.\n\n"
         "Configuration comes from SMART_SHELF_* environment variables (see README).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _progress(message: str) -> None:
    typer.echo(f"- {message}", err=True)


def _finite(value: float | None) -> float | None:
    """Refuse infinity where an option takes a number (ranges already refuse nan)."""
    if value is not None and math.isinf(value):
        raise typer.BadParameter(f"takes a finite number, not {value}")
    return value


def _check_writable(path: Path | None) -> None:
    """Refuse an output file whose folder does not exist before any work is done."""
    if path is not None and not path.parent.is_dir():
        raise StackError(f"cannot write {path}: there is no folder {path.parent}")


def _write(path: Path, text: str) -> None:
    """Write an output file the user named; a path that cannot be written is one line."""
    try:
        path.write_text(text)
    except OSError as error:
        raise StackError(f"cannot write {path}: {error.strerror}") from None


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                                help="Log debug detail to stderr.")] = False):
    _configure_logging(verbose)


@app.command()
def setup() -> None:
    """Install what is missing: Python packages, the JVM jars (Maven) and Debian's postgresql
    and redis-server. Safe to run again; does nothing when all is present."""
    from smart_shelf_platform.stack.setup import run_setup

    run_setup(get_settings(), _progress)
    typer.echo("setup complete")


@app.command()
def up(
    skip_setup: Annotated[bool, typer.Option(
        "--skip-setup", help="Do not check for missing packages and jars first.")] = False,
) -> None:
    """Set up if needed, then start Postgres, Redis, Kafka (KRaft), Kafka Connect, the
    Redis->Kafka bridge and Dagster, create every topic, migration, Delta table, load the
    reference data, apply the Kafka Connect connectors, and start the streaming queries in the
    background (`smart-shelf stream`; ready within a minute or so, see logs/streaming.log).
    Running it twice is harmless."""
    from smart_shelf_platform.stack.lifecycle import up as stack_up
    from smart_shelf_platform.stack.setup import run_setup

    settings = get_settings()
    if not skip_setup:
        run_setup(settings, _progress)
    report = stack_up(settings, _progress)
    created = sum(1 for v in report.topics.values() if v == "created")
    tables = sum(1 for v in report.delta_tables.values() if v == "created")
    typer.echo(
        f"stack up in {report.total_seconds:.1f} s: started {', '.join(report.started) or 'none'}"
        f"; {len(report.topics)} topics ({created} new), {len(report.migrations)} migrations "
        f"applied, {len(report.delta_tables)} Delta tables ({tables} new), reference rows "
        f"{sum(report.reference_rows.values())}, {len(report.connectors)} connectors. "
        f"State in {settings.home}")


@app.command()
def down() -> None:
    """Stop every component this stack started (external servers are left alone)."""
    from smart_shelf_platform.stack.lifecycle import down as stack_down

    stopped = stack_down(get_settings(), _progress)
    typer.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """One line per component: healthy or not, port, pid and resident memory."""
    from smart_shelf_platform.stack.lifecycle import status as stack_status

    rows = stack_status(get_settings())
    if as_json:
        typer.echo(json.dumps([r.__dict__ for r in rows], indent=2))
    else:
        for r in rows:
            state = "healthy" if r.healthy else "DOWN"
            pid = "external" if r.external else (r.pid or "-")
            typer.echo(f"{r.name:<9} {state:<8} port {r.port or '-'!s:<6} pid {pid!s:<8} "
                       f"rss {r.rss_bytes / 2**20:7.1f} MiB")
    if not all(r.healthy for r in rows):
        raise typer.Exit(1)


app.add_typer(docker_app, name="docker")
app.add_typer(container_app, name="container")

connect_app = typer.Typer(
    help="Kafka Connect connectors of connect/connectors.yaml: Postgres config -> Kafka (CDC), "
         "Kafka state and operations -> Postgres mirrors.",
    no_args_is_help=True)
app.add_typer(connect_app, name="connect")


@connect_app.command("apply")
def connect_apply() -> None:
    """Create or update every connector on the Connect worker from connect/connectors.yaml and
    the contracts, and restart failed tasks (`up` does this too). Running it twice changes
    nothing."""
    from smart_shelf_platform.stack.connect import apply

    for name, outcome in apply(get_settings()).items():
        typer.echo(f"{name:<28} {outcome}")


@connect_app.command("status")
def connect_status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """One line per connector and task: RUNNING, PAUSED, FAILED (with the first line of the
    error) or MISSING (not applied), then what to do about any that do not run (a failed task
    stays failed until `connect apply` restarts it); exit 1 unless every connector and task
    runs."""
    from smart_shelf_platform.stack.connect import remedies
    from smart_shelf_platform.stack.connect import status as connect_states

    settings = get_settings()
    states = connect_states(settings)
    if as_json:
        typer.echo(json.dumps([s.__dict__ for s in states], indent=2))
    else:
        for s in states:
            typer.echo(f"{s.name:<28} {s.kind:<6} {s.state}")
            for task in s.tasks:
                trace = f"  {task['trace']}" if task["trace"] else ""
                typer.echo(f"  task {task['id']:<22} {task['state']}{trace}")
        for line in remedies(states, settings):
            typer.echo(line, err=True)
    if not all(s.running for s in states):
        raise typer.Exit(1)


@app.command()
def clock(
    until: Annotated[Optional[datetime], typer.Option(
        help="Stop at this simulated time (UTC), e.g. 2026-01-02T07:00:00.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(
        min=1, help="Stop after this many steps.")] = None,
    reset: Annotated[bool, typer.Option(
        help="Forget the saved position and start again at SMART_SHELF_SIM_START.")] = False,
    speed: Annotated[Optional[float], typer.Option(
        min=0, callback=_finite, help="Simulated seconds per wall second (default "
                                       "SMART_SHELF_SIM_SPEED); 0 = as fast as possible.")]
        = None,
) -> None:
    """Run the simulated clock: sim:now/sim:today in Redis and one tick per simulated minute on
    the clock_ticks topic. Resumes where it stopped unless --reset; Ctrl-C stops cleanly."""
    from smart_shelf_platform.clock import run_clock

    logging.getLogger("smart_shelf_platform.clock").setLevel(logging.INFO)
    settings = get_settings()
    if speed is not None:
        settings = settings.model_copy(update={"sim_speed": speed})
    state = run_clock(settings, until=until, max_steps=max_steps, reset=reset)
    typer.echo(f"sim clock at {state.now.isoformat()}")


@app.command()
def simulate(
    stores: Annotated[Optional[int], typer.Option(
        min=1, max=999, help="Stores to simulate (default SMART_SHELF_STORES).")] = None,
    days: Annotated[Optional[float], typer.Option(
        min=0, callback=_finite,
        help="Simulated days to run from SMART_SHELF_SIM_START, above 0 (default 1).")] = None,
    until: Annotated[Optional[datetime], typer.Option(
        help="Simulated end time (UTC), after SMART_SHELF_SIM_START, instead of --days.")]
        = None,
    speed: Annotated[str, typer.Option(
        help="Clock speed (simulated s per wall s, the clock runs in this process) or 'max' "
             "for as fast as possible, the simulator moving the clock itself (with "
             "SMART_SHELF_DECISION_ROUND_MINUTES set it meets the platform at each round, so "
             "the run replays exactly).")] = "max",
    seed: Annotated[Optional[int], typer.Option(
        min=0, help="Seed of the shoppers (arrivals, choices, bad events; default "
                    "SMART_SHELF_SEED). The stores stay the stack's: the reference data `up` "
                    "made from SMART_SHELF_SEED, SMART_SHELF_STORES and SMART_SHELF_SIM_START, "
                    "which simulate never rewrites; a run whose SMART_SHELF_SEED or "
                    "SMART_SHELF_SIM_START makes other data than the stack holds is refused.")]
        = None,
    bad_events: Annotated[float, typer.Option(
        min=0, max=1, help="Fraction of events to duplicate with a defect (dead-letter tests).")]
        = 0.0,
    effects: Annotated[bool, typer.Option(
        help="Apply the platform's refills, deliveries and removals read from Kafka.")] = True,
    store_group: Annotated[str, typer.Option(
        help="K/N: run the K-th of N store groups (0-based) in this process, so a chain can be "
             "split over N simulator processes.")] = "0/1",
) -> None:
    """Simulate customers, shelves and checkouts into Redis Streams (forwarded to Kafka by the
    bridge), with the ground-truth ledger in Postgres `sim.*`, starting from the stack's
    reference data (--stores N runs its first N stores). Deterministic for a seed;
    Ctrl-C stops cleanly and saves the ledger."""
    from producers.run import SimulateOptions, simulate as run, stores_of_group, until_from

    settings = get_settings()
    if stores is not None:
        settings = settings.model_copy(update={"stores": stores})
    end = until_from(settings, days, until)
    if speed != "max":
        try:
            clock_speed: float | None = float(speed)
        except ValueError:
            clock_speed = math.nan
        if not (math.isfinite(clock_speed) and clock_speed > 0):
            raise StackError(f"--speed takes a positive number of simulated seconds per second "
                             f"or 'max', not {speed!r}")
    else:
        clock_speed = None
    try:
        group, groups = (int(part) for part in store_group.split("/"))
        stores_of_group(settings.stores, group, groups)
    except ValueError:
        raise StackError(f"--store-group takes K/N with 0 <= K < N, not {store_group!r}") from None
    if effects:
        from smart_shelf_platform.stack.lifecycle import wait_for_streaming

        wait_for_streaming(settings, _progress)
    run(settings, SimulateOptions(until=end, speed=clock_speed, seed=seed,
                                  bad_event_rate=bad_events, effects=effects,
                                  store_group=(group, groups)), _progress)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bridge(ctx: typer.Context) -> None:
    """Run the Redis Streams -> Kafka bridge in the foreground (`up` already runs one; use this
    with `SMART_SHELF_BRIDGE_ENABLED=false`). Extra arguments go to the bridge, see
    `smart-shelf bridge --help-bridge`."""
    from producers.bridge import main as bridge_main

    args = ["--help" if a == "--help-bridge" else a for a in ctx.args]
    raise typer.Exit(bridge_main(args))


@app.command()
def stream(
    query: Annotated[Optional[list[str]], typer.Option(
        help="Query to run (repeat for several); default: all.")] = None,
    until_drained: Annotated[bool, typer.Option(
        help="Process what is in Kafka now, stage by stage (state, then alerts), then stop.")]
        = False,
    trigger_seconds: Annotated[float, typer.Option(
        min=0.1, callback=_finite, help="Micro-batch interval in seconds.")] = 2.0,
    max_offsets_per_trigger: Annotated[Optional[int], typer.Option(
        min=1, help="Cap on Kafka records per micro-batch and query (default: no cap).")] = None,
) -> None:
    """Run the Spark Structured Streaming queries in one local Spark application, checkpoints
    under $SMART_SHELF_DELTA_ROOT/_checkpoints. Started together, the queries run as two Spark
    queries (`state`, then `decisions`); one started alone keeps its own name and checkpoint.
    Ctrl-C stops them cleanly.
    `smart-shelf up` runs this in the background unless SMART_SHELF_STREAMING_ENABLED=false."""
    from smart_shelf_platform.stack.components import Streaming

    settings = get_settings()
    # Two applications on the same checkpoints would fight over them.
    if (running := Streaming(settings).pid()) is not None:
        raise StackError(f"the streaming application `up` started is running (pid {running}) "
                         "on the same checkpoints; stop it first: `./smart-shelf down`, then "
                         "`SMART_SHELF_STREAMING_ENABLED=false ./smart-shelf up`")
    from streaming.runner import QUERIES, run, unknown_queries

    names = list(query or [])
    if unknown := unknown_queries(names):
        raise StackError(f"unknown query {unknown[0]!r}; available: {', '.join(sorted(QUERIES))}")
    logging.getLogger("streaming").setLevel(logging.INFO)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        run(settings, names or None, until_drained=until_drained,
            trigger_seconds=trigger_seconds, max_offsets_per_trigger=max_offsets_per_trigger)
    except RuntimeError as exc:
        raise StackError(str(exc)) from None


@app.command()
def verify(
    store: Annotated[Optional[list[str]], typer.Option(
        metavar="STORE",
        help="Store to check (repeat for several); default: every store in the ledger.")] = None,
    json_out: Annotated[Optional[Path], typer.Option(
        "--json", metavar="PATH",
        help="Also write the report as JSON to this file (in a folder that exists: a missing "
             "one is refused before the check runs).")] = None,
) -> None:
    """Compare the platform's Delta state (shelf, warehouse and lot quantities) with the
    simulator's ground-truth ledger in Postgres `sim.*`, and check that every injected bad event
    reached raw/dead_letter. Run it after the streaming queries have drained. Exit 0 when
    everything agrees, 1 otherwise."""
    from smart_shelf_platform.verify import verify as run_verify

    _check_writable(json_out)
    report = run_verify(get_settings(), store or None)
    for line in report.lines():
        typer.echo(line)
    if json_out:
        _write(json_out, json.dumps(report.as_dict(), indent=2))
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def report(
    store: Annotated[Optional[list[str]], typer.Option(
        metavar="STORE",
        help="Store to report on (repeat for several); default: every store in the ledger.")]
        = None,
    first: Annotated[Optional[datetime], typer.Option(
        "--from", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD",
        help="First simulated day (UTC); default: the day of SMART_SHELF_SIM_START.")] = None,
    last: Annotated[Optional[datetime], typer.Option(
        "--to", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD",
        help="Last simulated day, included; default: the day of the ledger's position.")]
        = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the report as JSON instead of a table.")] = False,
) -> None:
    """Print the KPIs of the simulated days, per store and in total: units sold; lost sales
    (units shoppers wanted from an empty shelf, in units and as % of demand = sold + lost, and
    split by whether the warehouse was empty too or still had units);
    waste (expired units removed from shelves and from the warehouse, and their value at list
    price; from the ledger's sim.ledger_daily_waste, else the platform's removal events);
    supplier orders placed at a cutoff in the window and delivered in it, with their units;
    restock and supplier plans created in the window by their status now; restock time (median
    and p95 simulated minutes from a restock plan to its completion); average stock cover
    in days = average over the window's days of the end-of-day units on shelves plus in the
    warehouse, divided by the average units sold per simulated day; alerts created in the
    window by type and by status. Run it after the streaming queries have drained."""
    from smart_shelf_platform.report import report as run_report

    result = run_report(get_settings(), store or None, first and first.date(),
                        last and last.date())
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        for line in result.lines():
            typer.echo(line)


@app.command()
def backtest(
    cutoffs: Annotated[Optional[int], typer.Option(
        min=1, help="Backtest only the last N cutoffs of the history (default: every cutoff "
                    "with --min-history-days before it and its interval ended).")] = None,
    min_history_days: Annotated[int, typer.Option(
        min=7, help="Days of history a cutoff needs before it to be backtested (the model "
                    "learns from the days before its origin, the 28-day average from up to "
                    "four weeks).")] = 14,
    json_out: Annotated[Optional[Path], typer.Option(
        "--json", metavar="PATH",
        help="Also write the per-method metrics as JSON here (in a folder that exists).")]
        = None,
) -> None:
    """Backtest the demand forecast on the stack's own history: at every past supplier cutoff,
    refit the XGBoost model on the days before it, forecast each shelf's protection interval,
    and score it and every baseline (seasonal naive, 7- and 28-day moving averages, TSB, and
    the simulator's oracle) against the true demand (units sold + lost, from the simulator's
    ledger). Prints WAPE, bias, MASE, the 0.9 quantile's pinball loss and coverage, overall
    and for slow movers; writes them to analytics.ml_backtest (Delta and Postgres) and draws
    <home>/ml/backtest.png. Needs the daily features of the simulated days (Dagster computes
    each day once it has ended)."""
    from smart_shelf_platform.ml import backtest as bt
    from smart_shelf_platform.ml.evaluation import evaluate, markdown
    from smart_shelf_platform.ml.feature_store import MissingInput
    from smart_shelf_platform.ml.intervals import schedule_from

    _check_writable(json_out)
    settings = get_settings()
    try:
        result = evaluate(settings.delta_root, settings.postgres_dsn(), schedule_from(settings),
                          settings.home / "ml", _progress, cutoffs, min_history_days)
    except MissingInput as error:
        raise StackError(str(error)) from None
    if not len(result.rows):
        raise StackError(f"no cutoff of the history can be backtested yet: it needs "
                         f"{min_history_days} days of daily features before a cutoff and the "
                         f"cutoff's interval ended (simulate more days with the stack up)")
    overall = bt.summary(result.scores)
    typer.echo(f"backtest {result.backtest_id}: {result.rows['cutoff'].nunique()} cutoffs, "
               f"{int(overall.loc['model', 'rows']):,} shelf intervals per method")
    typer.echo(markdown(overall))
    slow = bt.summary(result.scores, "slow_movers")
    if len(slow):
        typer.echo(f"slow movers (under {bt.SLOW_MOVER_DAILY_UNITS:g} units a day):")
        typer.echo(markdown(slow))
    if {"seasonal_naive", "oracle", "model"} <= set(overall.index):
        naive, oracle = overall.loc["seasonal_naive", "wape"], overall.loc["oracle", "wape"]
        closed = (naive - overall.loc["model", "wape"]) / (naive - oracle) if naive > oracle \
            else float("nan")
        typer.echo(f"the model closes {closed:.0%} of the WAPE gap between seasonal naive and "
                   f"the oracle")
    if result.plot:
        typer.echo(f"plot: {result.plot}")
    if json_out:
        _write(json_out, overall.to_json(orient="index", indent=2))


model_app = typer.Typer(
    help="The demand model registry (analytics.ml_models): list the models, promote one to "
         "champion, or roll the last promotion back.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("list")
def model_list() -> None:
    """One line per registered model: version, status, training window and rows, gate."""
    import psycopg

    from smart_shelf_platform.ml import registry

    with psycopg.connect(get_settings().postgres_dsn()) as conn:
        entries = registry.entries(conn)
    if not entries:
        typer.echo("no model registered yet (the cutoff runs train one at every cutoff)")
    for e in entries:
        gate = e.metrics.get("gate", {})
        verdict = "gate passed" if gate.get("passed") else \
            "gate failed: " + "; ".join(gate.get("reasons", ["not run"]))
        typer.echo(f"{e.model_version:<20} {e.status:<10} trained to {e.train_until}  {verdict}")


@model_app.command("promote")
def model_promote(version: Annotated[str, typer.Argument(
        help="Version to make the champion (see `smart-shelf model list`).")]) -> None:
    """Make VERSION the champion by hand (the gate is the automatic path); the current champion
    is retired. The next cutoff forecasts with it."""
    import psycopg

    from smart_shelf_platform.ml import registry

    with psycopg.connect(get_settings().postgres_dsn()) as conn:
        try:
            entry = registry.promote(conn, version)
        except registry.RegistryError as error:
            raise StackError(str(error)) from None
    typer.echo(f"champion: {entry.model_name} {entry.model_version}")


@model_app.command("rollback")
def model_rollback() -> None:
    """Undo the last promotion: the champion before it serves again."""
    import psycopg

    from smart_shelf_platform.ml import registry

    with psycopg.connect(get_settings().postgres_dsn()) as conn:
        try:
            entry = registry.rollback(conn)
        except registry.RegistryError as error:
            raise StackError(str(error)) from None
    typer.echo(f"champion: {entry.model_name} {entry.model_version}")


@app.command("generate-data")
def generate_data(
    out: Annotated[Optional[Path], typer.Option(help="Output folder.")] = None,
    seed: Annotated[Optional[int], typer.Option(
        min=0, help="Random seed (default SMART_SHELF_SEED).")] = None,
    stores: Annotated[Optional[int], typer.Option(
        min=1, max=999, help="Number of stores (default SMART_SHELF_STORES).")] = None,
) -> None:
    """Generate the reference catalogue, stock, batches, weekly discounts and default policies
    (deterministic for a seed) as Parquet files."""
    from smart_shelf_platform.refdata import generate

    settings = get_settings()
    files = generate(out or settings.data_dir / "reference",
                     seed=settings.seed if seed is None else seed,
                     stores=stores or settings.stores, sim_start=settings.sim_start)
    for name, path in files.items():
        typer.echo(f"{name}: {path}")


@app.command()
def docs(
    check: Annotated[bool, typer.Option(
        "--check", help="Write nothing; exit 1 naming the first file whose tables are stale.")]
        = False,
) -> None:
    """Regenerate the tables of docs/ that come from the code: every topic and table with its
    writer and readers (docs/architecture.md), every SMART_SHELF_* setting
    (docs/operations.md)."""
    from smart_shelf_platform import doc_tables

    try:
        if check:
            stale = doc_tables.stale()
            if stale:
                raise StackError(f"{stale[0].relative_to(REPO_ROOT)} is stale: run "
                                 "./smart-shelf docs")
            typer.echo("docs: up to date")
            return
        changed = doc_tables.write()
    except doc_tables.DocsError as error:
        raise StackError(str(error)) from None
    for path in changed:
        typer.echo(f"docs: wrote {path.relative_to(REPO_ROOT)}")
    if not changed:
        typer.echo("docs: up to date")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def test(ctx: typer.Context) -> None:
    """Set up what is missing, then run the whole test suite (unit, in-process and integration
    tests against a real stack the tests start on their own ports). Extra arguments go to
    pytest, e.g. `smart-shelf test -k clock`."""
    from smart_shelf_platform.stack.setup import run_setup

    run_setup(get_settings(), _progress)
    code = subprocess.call([sys.executable, "-m", "pytest", *ctx.args], cwd=REPO_ROOT)
    raise typer.Exit(code)


BENCHMARKS = ("up", "bridge", "simulate", "stream", "forecast", "chain")


@app.command()
def bench(
    what: Annotated[str, typer.Argument(
        help="What to measure: 'up' (cold/warm start-up and idle memory of the stack), "
             "'bridge' (Redis -> Kafka forwarding of synthetic events), 'simulate' (the store "
             "simulator at full speed through Redis and the bridge into Kafka), 'stream' (the "
             "Spark streaming application: throughput on a backlog, live latency, CPU, "
             "memory), 'forecast' (one cutoff's training set, model fit and forecast on the "
             "stack's daily features, copied to --stores stores: wall time and peak memory), "
             "'chain' (--stores stores for --days simulated days through the whole loop on a "
             "stack of its own, started for them: wall time of each phase, events, `verify`, "
             "`report` and the daily features timed, peak memory of each component, load "
             "average; 10-20 minutes for 10 stores and a day).")]
        = "up",
    events: Annotated[int, typer.Option(min=1000, help="Events for bridge/simulate.")] = 500_000,
    stores: Annotated[int, typer.Option(
        min=1, max=99, help="stream: stores in the backlog; forecast: stores to copy the "
                            "history to; chain: stores the stack is set up with and "
                            "simulated.")] = 10,
    hours: Annotated[float, typer.Option(
        min=0.5, callback=_finite, help="stream: simulated hours in the backlog.")] = 24.0,
    live_minutes: Annotated[float, typer.Option(
        min=2, callback=_finite,
        help="stream: wall minutes of the live latency phase (the first is warm-up).")]
        = 4.0,
    days: Annotated[float, typer.Option(
        min=0.01, callback=_finite,
        help="chain: simulated days from SMART_SHELF_SIM_START (0.01 or more), at full "
             "speed.")] = 1.0,
    keep: Annotated[bool, typer.Option(
        "--keep", help="chain: leave its stack running at the end and print how to reach it "
                       "(its home and ports), e.g. for `python -m dashboard.bench`; the next "
                       "`bench chain` stops and replaces it.")] = False,
    out: Annotated[Optional[Path], typer.Option(
        help="Also write the JSON report here (in a folder that exists).")] = None,
) -> None:
    """Measure and print performance figures as JSON (a benchmark, not a test). bridge,
    simulate, stream and forecast need a running stack (`smart-shelf up`) and leave its data
    alone; up and chain start a throw-away stack of their own in SMART_SHELF_HOME/bench and
    .../bench-chain, on the configured ports + 100 and + 200."""
    if what not in BENCHMARKS:
        raise StackError(f"unknown benchmark {what!r}; available: {', '.join(BENCHMARKS)}")
    _check_writable(out)
    settings = get_settings()
    if what == "up":
        from smart_shelf_platform.bench.up import bench_up

        report = bench_up(settings, _progress)
    elif what == "chain":
        from smart_shelf_platform.bench.chain import bench_chain

        report = bench_chain(settings, _progress, stores=stores, days=days, keep=keep)
    elif what == "forecast":
        from smart_shelf_platform.bench.forecast import bench_forecast

        report = bench_forecast(settings, _progress, stores=stores)
    elif what == "stream":
        from smart_shelf_platform.bench.stream import bench_stream

        report = bench_stream(settings, _progress, stores=stores, hours=hours,
                              live_minutes=live_minutes)
    else:
        from smart_shelf_platform.bench.bridge import bench_bridge

        report = bench_bridge(settings, events, _progress,
                              source="synthetic" if what == "bridge" else "simulator")
    typer.echo(json.dumps(report, indent=2))
    if out:
        _write(out, json.dumps(report, indent=2))


def settings_error(error: ValidationError) -> str:
    """A settings validation error as one line naming each environment variable at fault
    (pydantic names the field, or the variable itself for a field with an alias)."""
    variables = {}
    for name, field in Settings.model_fields.items():
        variable = field.alias or f"SMART_SHELF_{name.upper()}"
        variables[name] = variables[variable] = variable
    parts = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else ""
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{variables.get(name, name)}={item.get('input')!r}: {message}")
    return "; ".join(parts)


def main() -> None:
    """Console entry point: one clear line for usage mistakes and operational errors."""
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except click_exc.NoArgsIsHelpError as exc:
        typer.echo(exc.ctx.get_help() if exc.ctx else "see smart-shelf --help")
        sys.exit(0)
    except click_exc.UsageError as exc:
        typer.echo(f"smart-shelf: error: {exc.format_message()} (see smart-shelf --help)",
                   err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("smart-shelf: interrupted", err=True)
        sys.exit(130)
    except StackError as exc:
        typer.echo(f"smart-shelf: error: {exc}", err=True)
        sys.exit(1)
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise  # another model's: a bug, with its traceback
        typer.echo(f"smart-shelf: error: {settings_error(exc)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("smart-shelf: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
