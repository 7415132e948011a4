"""Plain-process plumbing for the local stack: pid files, ports, waiting, stopping, memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil


class StackError(RuntimeError):
    """A problem a person can act on; the CLI prints its message as one line."""


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if psutil.pid_exists(pid) and _not_zombie(pid) else None


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def spawn(cmd: list[str], log_file: Path, pid_file: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> int:
    """Start a long-running process detached from this one; its output goes to `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def wait_until(check: Callable[[], bool], timeout: float, what: str, log_file: Path | None = None,
               alive: Callable[[], bool] | None = None, interval: float = 0.25) -> None:
    """Poll `check` until true; fail early if the process died, with a pointer to its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - any failure of a health probe means "not yet"
            pass
        if alive is not None and not alive():
            raise StackError(f"{what} exited during start-up; see {log_file}" if log_file
                             else f"{what} exited during start-up")
        time.sleep(interval)
    hint = f"; see {log_file}" if log_file else ""
    raise StackError(f"{what} was not healthy after {timeout:.0f} s{hint}")


def terminate(pid: int, timeout: float = 30.0, *, leader_first: bool = False) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after `timeout`.

    With `leader_first`, only the process itself gets SIGTERM, so it can stop its children in
    order (the streaming runner stops its queries through its JVM, which must stay up meanwhile);
    once it has exited, or after `timeout`, whatever is left of its group is stopped too.
    """
    try:
        pgid = os.getpgid(pid)
        if leader_first:
            os.kill(pid, signal.SIGTERM)
        else:
            os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        _kill_group(pgid)
        return
    if leader_first:
        _stop_group(pgid, grace=10.0)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return any(_not_zombie(p.pid) for p in psutil.process_iter()
               if _pgid_of(p.pid) == pgid)


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _stop_group(pgid: int, grace: float) -> None:
    """SIGTERM what is left of a process group, SIGKILL it after `grace` seconds."""
    if not _group_alive(pgid):
        return
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return
        time.sleep(0.2)
    _kill_group(pgid)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def process_tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants; empty once it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its children (Postgres forks one per backend)."""
    total = 0
    for p in process_tree(pid):
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


class TreeSampler(threading.Thread):
    """Peak resident memory and CPU seconds of a process and all its descendants (`alone`: of
    the process alone)."""

    def __init__(self, pid: int, interval: float = 0.5, alone: bool = False):
        super().__init__(daemon=True)
        self.pid = pid
        self.alone = alone
        self.interval = interval
        self.peak_rss = 0
        self.rss = 0  # the latest sample's
        self.peak_processes: dict[str, float] = {}  # RSS in MiB at the peak, per process
        self.cpu: dict[int, float] = {}  # last seen CPU seconds per pid (dead ones keep theirs)
        self.done = threading.Event()
        self._cpu_from: float | None = None
        self._cpu_before = 0.0  # CPU seconds at the first sample from `_cpu_from` on

    def count_cpu_from(self, moment: float) -> None:
        """Leave out of `cpu_seconds` what the tree spent before `moment` (a `time.time()`):
        its start-up and warm-up, when only a later phase is measured."""
        self._cpu_from = moment

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        rss, processes = 0, {}
        for process in process_tree(self.pid)[:1 if self.alone else None]:
            try:
                times = process.cpu_times()
                self.cpu[process.pid] = times.user + times.system
                # A fork still running its parent's program (the JVM spawning `chmod`, Spark's
                # Python daemon its workers) shares the parent's pages, which its RSS counts a
                # second time (a 1.7 GiB JVM was seen as 3.4 GiB); it has its parent's command
                # line. A child on its parent's executable otherwise (a Postgres backend,
                # Dagster's Python servers) maps the same files and shared memory (Postgres's
                # buffers), counted with the parent: its private part counts (RSS less shared;
                # within a tenth of the proportional size, which is too slow to read often).
                memory = process.memory_info()
                if process.pid == self.pid:
                    own = memory.rss
                elif process.cmdline() == (parent := process.parent()).cmdline():
                    continue
                else:
                    own = memory.rss - memory.shared if process.exe() == parent.exe() \
                        else memory.rss
                processes[f"{process.pid} {process.name()}"] = round(own / 2**20, 1)
            except (psutil.NoSuchProcess, psutil.AccessDenied, AttributeError):
                continue  # gone, or its parent gone (`parent()` is None)
            rss += own
        self.rss = rss
        if rss > self.peak_rss:
            self.peak_rss, self.peak_processes = rss, processes
        if self._cpu_from is not None and time.time() >= self._cpu_from:
            self._cpu_before, self._cpu_from = sum(self.cpu.values()), None

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values()) - self._cpu_before
