"""A throw-away stack next to yours: its own home and ports, for the benchmarks and the tests.

A benchmark or a test that needs a whole stack of its own (to start, stop, kill or fill it)
must not touch the stack a user already runs: `isolated_settings` moves every port by an
offset and the state into a folder of the configured home.
"""

from __future__ import annotations

import os
import shutil

from smart_shelf_platform.passwords import PASSWORD_VARIABLES, stack_passwords
from smart_shelf_platform.settings import Settings


def isolated_settings(settings: Settings, home_name: str, port_offset: int, *,
                      fresh: bool = False) -> Settings:
    """A stack of its own in `<home>/<home_name>` (emptied first when `fresh`), every port
    `port_offset` above the configured one, no external server. A local stack's passwords are
    its own, in that home's secrets.env (unless set in the environment), as for a stack started
    with SMART_SHELF_HOME set to it: one left running can be reached that way."""
    home = settings.home / home_name
    if fresh:
        shutil.rmtree(home, ignore_errors=True)
    update = {
        "home": home,
        "data_dir": home / "data",
        "postgres_port": settings.postgres_port + port_offset,
        "redis_port": settings.redis_port + port_offset,
        "kafka_port": settings.kafka_port + port_offset,
        "kafka_controller_port": settings.kafka_controller_port + port_offset,
        "connect_port": settings.connect_port + port_offset,
        "dagster_port": settings.dagster_port + port_offset,
        "dashboard_port": settings.dashboard_port + port_offset,
        "postgres_external": False, "redis_external": False, "kafka_external": False,
        "kafka_bootstrap_override": "", "delta_root_override": "",
    }
    if settings.env == "local":
        own = stack_passwords(home)
        update |= {field: own[field] for field, variable in PASSWORD_VARIABLES.items()
                   if not os.environ.get(variable)}
    return settings.model_copy(update=update)


def stack_environment(settings: Settings) -> dict[str, str]:
    """The variables that point a shell at this stack (its home, data and ports)."""
    env = settings.as_env()
    return {name: env[name] for name in (
        "SMART_SHELF_HOME", "SMART_SHELF_DATA_DIR", "SMART_SHELF_STORES",
        *(f"SMART_SHELF_{c.upper()}_PORT" for c in (
            "postgres", "redis", "kafka", "kafka_controller", "connect", "dagster",
            "dashboard")))}
