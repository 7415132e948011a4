"""`smart-shelf bench chain`: a chain of stores through the whole loop, on a stack of its own.

What it measures (issue 28): N stores (10 by default) simulated for `days` simulated days at
full speed through everything the platform runs (simulator -> Redis -> bridge -> Kafka -> Spark
state and decisions -> Delta, Connect -> Postgres, Dagster's sensors and runs, and the refills,
deliveries and removals the platform decides carried back into the simulation), 0.5 % bad
events among them; then `verify`, `report`, and the features (with their checks) of each
simulated day that ended. `simulate`, `verify` and `report` run as the commands a user types;
the features are materialized in this process as Dagster materializes them, after the runs
Dagster's own sensor started during the simulation (reported too) have finished. Each phase is
timed; every component's resident memory (its process tree as `bench stream` counts it) and CPU
are sampled every second from the end of `up` on, and each one's peak and the peak of their sum
reported, with the commands'.

Why a stack of its own: a chain needs a platform set up for it (SMART_SHELF_STORES=N: reference
data, state), and a chain's day should not land in the stack you use. It runs in
`<SMART_SHELF_HOME>/bench-chain` on the configured ports + 200 (`bench.isolated_settings`) and is
stopped and removed at the end unless `keep`, which leaves it running and says how to reach it
(e.g. for `python -m dashboard.bench`). The machine may be shared: the report gives the load
average and the CPU the stack used against the whole machine's, so a slow run can be told from a
busy machine.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import psutil
import requests

from smart_shelf_platform.settings import REPO_ROOT, Settings
from smart_shelf_platform.stack.isolated import isolated_settings, stack_environment
from smart_shelf_platform.stack.lifecycle import down, status, up, wait_for_streaming
from smart_shelf_platform.stack.process import StackError, TreeSampler

HOME_NAME, PORT_OFFSET = "bench-chain", 200
BAD_EVENT_RATE = 0.005
AIMS = {"simulated_day_minutes": 15, "verify_s": 30}
FINISHED = re.compile(r"finished at .*?: ([\d,]+) events, ([\d,]+) customers, ([\d,]+) bad events")
RUNS_QUERY = """query Runs($job: String!) { runsOrError(filter: {pipelineName: $job}) {
  ... on Runs { results { status startTime endTime tags { key value } } } } }"""
DONE = {"SUCCESS", "FAILURE", "CANCELED"}
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # Dagster's own lines
MAX_SHOWN = 40  # lines of a failed verify shown (the whole report is in its JSON)


def _mib(n: float) -> float:
    return round(n / 2**20, 1)


class Watch(threading.Thread):
    """Every second: each watched process tree (the stack's components, then each command) and
    the machine's load average. The trees are sampled together, so the peak of their sum is
    known too."""

    def __init__(self, settings: Settings):
        super().__init__(daemon=True)
        self.samplers: dict[str, TreeSampler] = {}
        self.peak_total = 0
        self.loads: list[float] = []
        self.done = threading.Event()
        self.began, self.cpu_before = time.monotonic(), psutil.cpu_times()
        for row in status(settings):
            if row.pid:
                self.add(row.name, row.pid).count_cpu_from(time.time())  # after `up`'s CPU

    def add(self, name: str, pid: int, alone: bool = False) -> TreeSampler:
        self.samplers[name] = sampler = TreeSampler(pid, alone=alone)
        return sampler

    def run(self) -> None:
        while not self.done.wait(1.0):
            samplers = list(self.samplers.values())
            for sampler in samplers:
                sampler.sample()
            self.peak_total = max(self.peak_total, sum(s.rss for s in samplers))
            self.loads.append(os.getloadavg()[0])

    def summary(self) -> dict:
        self.done.set()
        seconds = time.monotonic() - self.began
        after = psutil.cpu_times()
        busy = (sum(after) - after.idle - after.iowait) - (
            sum(self.cpu_before) - self.cpu_before.idle - self.cpu_before.iowait)
        ours = sum(s.cpu_seconds for s in self.samplers.values())
        return {
            "peak_rss_mib": {name: _mib(s.peak_rss) for name, s in self.samplers.items()},
            "peak_rss_mib_sum": _mib(self.peak_total),
            "cpu_seconds": {name: round(s.cpu_seconds, 1) for name, s in self.samplers.items()},
            "watched_s": round(seconds),
            "machine_busy_cores": round(busy / seconds, 2),
            "stack_and_commands_cores": round(ours / seconds, 2),
            "load_average_1min": {"mean": round(sum(self.loads) / len(self.loads), 2),
                                  "max": round(max(self.loads), 2)} if self.loads else None,
        }


class Chain:
    def __init__(self, settings: Settings, days: float, progress: Callable[[str], None]):
        self.settings = settings
        self.days, self.progress = days, progress
        self.until = self.settings.sim_start + timedelta(days=days)
        self.seconds: dict[str, float] = {}
        self.work = Path(tempfile.mkdtemp(prefix="bench-chain-"))
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("SMART_SHELF_")},
                    **self.settings.as_env()}
        self.watch: Watch | None = None

    def timed(self, phase: str, fn: Callable[[], object]):
        started = time.monotonic()
        try:
            return fn()
        finally:
            self.seconds[phase] = round(time.monotonic() - started, 1)

    def command(self, phase: str, *args: str, live: bool = False) -> tuple[int, list[str]]:
        """`smart-shelf <args>` on the benchmark's stack, timed, its process tree watched;
        (exit code, output lines). `live`: its output (stderr too) is shown as it comes."""
        self.progress(f"{phase}: smart-shelf {' '.join(args)}")
        started = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-m", "smart_shelf_platform.cli", *args], cwd=REPO_ROOT,
            env=self.env, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if live else subprocess.PIPE)
        self.watch.add(phase, child.pid)
        if live:
            lines = []
            for line in child.stdout:
                lines.append(line.rstrip("\n"))
                self.progress(f"{phase}: {lines[-1].removeprefix('- ')}")
            errors = ""
        else:
            out, errors = child.communicate()
            lines = out.splitlines()
        code = child.wait()
        self.seconds[phase] = round(time.monotonic() - started, 1)
        if code not in (0, 1):  # 1 is verify's "differences found"
            detail = errors.strip() or (lines[-1] if lines else "")
            raise StackError(f"smart-shelf {args[0]} failed ({code}): {detail}")
        return code, lines

    # ---- phases ------------------------------------------------------------------------------

    def simulate(self) -> dict:
        _, lines = self.command("simulate", "simulate", "--speed", "max",
                                "--days", f"{self.days:g}", "--bad-events", str(BAD_EVENT_RATE),
                                live=True)
        found = next((m for m in map(FINISHED.search, lines) if m), None)
        if found is None:
            raise StackError("simulate did not say how many events it sent")
        events, customers, bad = (int(g.replace(",", "")) for g in found.groups())
        return {"events": events, "customers": customers, "bad_events": bad}

    def verify(self) -> dict:
        out = self.work / "verify.json"
        code, lines = self.command("verify", "verify", "--json", str(out))
        result = json.loads(out.read_text())
        for line in lines[-1:] if code == 0 else lines[:MAX_SHOWN]:
            self.progress(line)
        return {"seconds": self.seconds["verify"], "ok": result["ok"],
                "differences": result["differences"], "summary": lines[-1] if lines else ""}

    def report(self) -> dict:
        _, lines = self.command("report", "report", "--json")
        result = json.loads("\n".join(lines))
        total = result["total"]
        self.progress(f"report: {len(result['stores'])} stores and the total: "
                      f"{total['units_sold']:,} units sold, lost sales "
                      f"{total['lost_sales']['pct_of_demand']} % of demand")
        return {"seconds": self.seconds["report"], "stores": len(result["stores"]),
                "units_sold": total["units_sold"], "fill_rate_pct": total["fill_rate_pct"],
                "lost_sales_pct": total["lost_sales"]["pct_of_demand"]}

    def feature_days(self) -> list[date]:
        """The simulated days that ended in the run; the first day alone (partial) if none."""
        start = self.settings.sim_start
        days = [start.date() + timedelta(days=n) for n in range(int(self.days) + 2)]
        ended = [d for d in days if datetime.combine(d + timedelta(days=1), datetime.min.time(),
                                                     timezone.utc) <= self.until]
        return ended or [start.date()]

    def dagster_runs(self, days: list[date], timeout: float = 600) -> list[dict]:
        """The features runs Dagster's sensor started for `days`, once none is going (a day is
        due once the clock is SMART_SHELF_FRESHNESS_LAG_MINUTES past its end)."""
        from smart_shelf_platform.defs.analytics.sensors import FEATURES_JOB

        if not self.settings.dagster_enabled:
            return []
        lag = timedelta(minutes=self.settings.freshness_lag_minutes)
        due = {d.isoformat() for d in days if datetime.combine(
            d + timedelta(days=1), datetime.min.time(), timezone.utc) + lag <= self.until}
        url = f"http://127.0.0.1:{self.settings.dagster_port}/graphql"
        deadline = time.monotonic() + timeout
        while True:
            answer = requests.post(url, json={"query": RUNS_QUERY,
                                              "variables": {"job": FEATURES_JOB}}, timeout=10)
            runs = [{"day": tags.get("dagster/partition"), "status": r["status"],
                     "seconds": round(r["endTime"] - r["startTime"], 1)
                     if r["startTime"] and r["endTime"] else None}
                    for r in answer.json()["data"]["runsOrError"]["results"]
                    for tags in [{t["key"]: t["value"] for t in r["tags"]}]]
            if due <= {r["day"] for r in runs} and all(r["status"] in DONE for r in runs):
                return runs
            if time.monotonic() > deadline:
                raise StackError(f"Dagster's features runs of {', '.join(sorted(due))} did not "
                                 f"finish within {timeout:.0f} s: {runs}")
            time.sleep(5)

    def features(self, days: list[date]) -> dict:
        """Each day's features and their checks, materialized here (as the sensor's run does)."""
        import dagster as dg

        from smart_shelf_platform.definitions import analytics_definitions
        from smart_shelf_platform.defs.resources import SmartShelfResource

        defs = analytics_definitions(self.settings)
        resources = {"smart_shelf": SmartShelfResource.from_settings(self.settings)}
        out = {}
        for day in days:
            started = time.monotonic()
            result = dg.materialize([*defs.assets, *defs.asset_checks],
                                    partition_key=day.isoformat(), resources=resources,
                                    raise_on_error=False, run_config=QUIET)
            checks = result.get_asset_check_evaluations()
            metadata = {key: value.value for e in result.get_asset_materialization_events()
                        for key, value in e.event_specific_data.materialization.metadata.items()
                        if key in ("shelves", "stores")}
            out[day.isoformat()] = {
                "seconds": round(time.monotonic() - started, 1), "success": result.success,
                **metadata, "checks_passed": sum(c.passed for c in checks),
                "checks_failed": [c.check_name for c in checks if not c.passed]}
            self.progress(f"features of {day}: {out[day.isoformat()]}")
        return out

    def run(self) -> dict:
        s = self.settings
        self.progress(f"a stack of {s.stores} stores in {s.home} (ports +{PORT_OFFSET})")
        self.timed("up", lambda: up(s, self.progress))
        self.watch = Watch(s)
        self.watch.start()
        self.timed("streaming_ready", lambda: wait_for_streaming(s, self.progress))
        simulated = self.simulate()
        verified, reported = self.verify(), self.report()
        days = self.feature_days()
        self.progress("waiting for the features runs Dagster's sensor started, if any")
        loop_runs = self.timed("dagster_features_runs_wait", lambda: self.dagster_runs(days))
        # This process alone: the stack's components are its children.
        self.watch.add("features", os.getpid(), alone=True).count_cpu_from(time.time())
        features = self.timed("features", lambda: self.features(days))
        watched = self.watch.summary()
        return {"simulated": simulated, "verify": verified, "report": reported,
                "features": {"days": features, "dagster_sensor_runs": loop_runs},
                "watched": watched}


def _code_state() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True,
                              text=True).stdout.rstrip()
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted": [line[3:] for line in git("status", "--porcelain").splitlines()
                            if not line.startswith("??")]}


def bench_chain(settings: Settings, progress: Callable[[str], None], *, stores: int = 10,
                days: float = 1.0, keep: bool = False) -> dict:
    previous = isolated_settings(settings, HOME_NAME, PORT_OFFSET)
    if down(previous, lambda _msg: None):
        progress(f"stopped the benchmark stack an earlier run kept in {previous.home}")
    bench = isolated_settings(settings, HOME_NAME, PORT_OFFSET, fresh=True).model_copy(
        update={"stores": stores})
    chain = Chain(bench, days, progress)
    load_before, began = os.getloadavg(), time.monotonic()
    kept = False
    try:
        measured = chain.run()
        kept = keep
    finally:
        if chain.watch is not None:
            chain.watch.done.set()
        shutil.rmtree(chain.work, ignore_errors=True)
        if not kept:
            progress("stopping and removing the benchmark stack")
            down(bench, lambda _msg: None)
            shutil.rmtree(bench.home, ignore_errors=True)
    seconds = chain.seconds
    watched = measured["watched"]
    report = {
        "benchmark": f"chain ({stores} stores, {days:g} simulated day(s), the whole loop)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": psutil.cpu_count(), "memory_gib": round(
            psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
            "note": "the machine may be shared with other work: compare cpu.machine_busy_cores "
                    "with cpu.stack_and_commands_cores, and see load_average"},
        "code": _code_state(),
        "stores": stores, "simulated_days": days, "bad_event_rate": BAD_EVENT_RATE,
        **measured["simulated"],
        "seconds": {**seconds, "total": round(time.monotonic() - began, 1)},
        "events_per_s_through_the_loop": round(measured["simulated"]["events"]
                                               / seconds["simulate"]),
        "verify": measured["verify"], "report": measured["report"],
        "features": measured["features"],
        "peak_rss_mib": watched["peak_rss_mib"],
        "peak_rss_mib_sum": watched["peak_rss_mib_sum"],
        "cpu": {k: watched[k] for k in ("cpu_seconds", "watched_s", "machine_busy_cores",
                                        "stack_and_commands_cores")},
        "load_average": {"before": [round(x, 2) for x in load_before],
                         "during_1min": watched["load_average_1min"],
                         "after": [round(x, 2) for x in os.getloadavg()]},
        "aims": AIMS,
        "aims_met": {
            "simulated_day_minutes":
                seconds["simulate"] / days < AIMS["simulated_day_minutes"] * 60,
            "verify_s": seconds["verify"] < AIMS["verify_s"]},
    }
    if kept:
        env = stack_environment(bench)
        report["kept_stack"] = {"home": str(bench.home), "environment": env}
        progress("the stack is kept running; to reach it: export "
                 + " ".join(f"{k}={v}" for k, v in env.items())
                 + "  (then e.g. `python -m dashboard.bench`; `./smart-shelf down` stops it)")
    return report
