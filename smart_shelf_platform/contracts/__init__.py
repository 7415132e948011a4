"""Data contracts: every event, state message and table schema, defined once.

`types` is the contract language; `events`, `state`, `reference` and `analytics` define the
records; `catalogue` says where each record lives (Kafka topics, Delta tables, Postgres tables).
"""
