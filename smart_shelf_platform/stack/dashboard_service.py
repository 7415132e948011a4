"""The Streamlit dashboard (`dashboard/app.py`) as a stack component.

`up` runs `streamlit run dashboard/app.py` on `SMART_SHELF_DASHBOARD_PORT` (default 18501),
bound to `SMART_SHELF_BIND_HOST` (127.0.0.1 unless set), with the stack's settings in its
environment (`SMART_SHELF_DASHBOARD_ENABLED=false` leaves it out); it is healthy once
Streamlit's own health endpoint answers.
"""

from __future__ import annotations

import sys

import requests

from smart_shelf_platform.settings import REPO_ROOT, Settings
from smart_shelf_platform.stack.components import Component
from smart_shelf_platform.stack.process import spawn

APP = REPO_ROOT / "dashboard" / "app.py"
# Arrow's allocations through glibc malloc in two arenas: Arrow's default pool (mimalloc) and
# one malloc arena per reader thread kept tens of MiB of freed table memory in the dashboard's
# resident set (`python -m dashboard.bench`).
MEMORY_ENV = {"ARROW_DEFAULT_MEMORY_POOL": "system", "MALLOC_ARENA_MAX": "2"}


def streamlit_command(settings: Settings) -> list[str]:
    """The command that serves the dashboard on the settings' port, headless, no telemetry."""
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.address", settings.bind_host, "--server.port", str(settings.dashboard_port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer"]


class DashboardService(Component):
    name = "dashboard"
    start_timeout = 60.0

    @property
    def port(self) -> int:
        return self.s.dashboard_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/_stcore/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def _start(self) -> None:
        spawn(streamlit_command(self.s), self.log_file, self.pid_file,
              env=self.s.as_env() | MEMORY_ENV, cwd=REPO_ROOT)
