"""Postgres tables written outside Dagster: the Kafka Connect mirrors (`state.*`, `ops.*`,
`analytics.daily_discounts`), the simulator's ground-truth ledger (`sim.*`) and the ML tables
(external until the ML assets exist). `ref.*` and `config.*` are the reference domain's."""

from smart_shelf_platform.defs.specs import postgres_specs

postgres_tables = postgres_specs(reference=False)
