"""The Dagster code location (`smart_shelf_platform.definitions:defs`, loaded by workspace.yaml).

It loads every module of the `defs/` folder, then adds what depends on the settings: the
partitioned assets (daily partitions start on the simulated start day, `defs/analytics/`; cutoff
partitions follow the supplier schedule, `defs/forecasting/`) and the resources of the
environment the settings select. Settings are read inside `build_definitions`,
when Dagster loads the location, never at import time, so tests can build definitions for any
settings.

`dg.load_from_defs_folder` would find the folder through a `[tool.dg]` project config; this
project is launched with `dagster dev -w workspace.yaml` and keeps no such config, so the folder
is loaded with the component tree that function builds, from the module directly.
"""

from __future__ import annotations

import warnings

import dagster as dg

from smart_shelf_platform import defs as defs_folder
from smart_shelf_platform.defs.analytics.assets import feature_assets
from smart_shelf_platform.defs.analytics.checks import feature_checks
from smart_shelf_platform.defs.analytics.sensors import simulated_day_sensor
from smart_shelf_platform.defs.forecasting.assets import forecasting_assets
from smart_shelf_platform.defs.forecasting.checks import forecasting_checks
from smart_shelf_platform.defs.forecasting.sensors import (
    barrier_check_sensor, production_schedules, simulated_cutoff_sensor,
)
from smart_shelf_platform.defs.partitions import cutoff_cron, cutoff_partitions, daily_partitions
from smart_shelf_platform.ml.cutoff import ForecastConfig
from smart_shelf_platform.defs.resources import build_resources
from smart_shelf_platform.settings import REPO_ROOT, Settings, get_settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or get_settings()
    with warnings.catch_warnings():
        # The folder loader uses Dagster's own preview helpers; that is not ours to act on.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        folder = dg.ComponentTree.from_module(defs_module=defs_folder,
                                              project_root=REPO_ROOT).build_defs()
    return dg.Definitions.merge(folder, analytics_definitions(settings),
                                forecasting_definitions(settings),
                                dg.Definitions(resources=build_resources(settings)))


def analytics_definitions(settings: Settings) -> dg.Definitions:
    """The daily shelf features: assets and checks partitioned by simulated day, and the sensor
    that runs each day once it has ended."""
    days = daily_partitions(settings.sim_start)
    return dg.Definitions(assets=feature_assets(days), asset_checks=[feature_checks(days)],
                          sensors=[simulated_day_sensor(days)])



def forecasting_definitions(settings: Settings) -> dg.Definitions:
    """Demand forecasting partitioned by supplier cutoff (the configured schedule): assets,
    checks, the simulated-clock sensors (the cutoff runs; the barrier's check) and, in
    production, wall-clock schedules."""
    config = ForecastConfig.from_settings(settings)
    cutoffs = cutoff_partitions(settings.sim_start, cutoff_cron(config.schedule))
    schedules = (production_schedules(cutoffs, settings.forecast_lead_minutes)
                 if settings.env == "prod" else [])
    return dg.Definitions(
        assets=forecasting_assets(config, cutoffs),
        asset_checks=forecasting_checks(cutoffs),
        sensors=[simulated_cutoff_sensor(cutoffs, settings.forecast_lead_minutes,
                                         config.schedule), barrier_check_sensor(cutoffs)],
        schedules=schedules)


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
