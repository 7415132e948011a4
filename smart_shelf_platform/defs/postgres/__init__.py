"""Postgres tables written outside Dagster (Kafka Connect mirrors, ML tables to come)."""
