"""Postgres tables written outside Dagster: the Kafka Connect mirrors (`state.*`, `ops.*`,
`analytics.daily_discounts`) and the simulator's ground-truth ledger (`sim.*`). The ML tables are
Dagster's own assets (`defs/analytics/`, `defs/forecasting/`); `ref.*` and `config.*` are the
reference domain's."""

from smart_shelf_platform.defs.analytics.assets import MATERIALIZED_KEYS as FEATURE_KEYS
from smart_shelf_platform.defs.forecasting.assets import MATERIALIZED_KEYS as FORECAST_KEYS
from smart_shelf_platform.defs.specs import postgres_specs

postgres_tables = [s for s in postgres_specs(reference=False) if s.key not in FEATURE_KEYS | FORECAST_KEYS]
