"""Postgres tables written outside Dagster: the Kafka Connect mirrors (`state.*`, `ops.*`,
`analytics.daily_discounts`), the simulator's ground-truth ledger (`sim.*`) and the ML tables
not materialized yet (`analytics.shelf_daily_features` is `defs/analytics/`'s). `ref.*` and
`config.*` are the reference domain's."""

from smart_shelf_platform.defs.analytics.assets import MATERIALIZED_KEYS
from smart_shelf_platform.defs.specs import postgres_specs

postgres_tables = [s for s in postgres_specs(reference=False) if s.key not in MATERIALIZED_KEYS]
