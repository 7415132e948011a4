"""Dagster definitions by domain, loaded as one folder by `smart_shelf_platform.definitions`.

- `lineage.py`: asset keys and the platform's data-flow edges (the asset graph);
- `specs.py`: `AssetSpec`s built from the contracts catalogue (kinds, groups, column schemas);
- `partitions.py`: daily and cutoff partitions and the mapping between them;
- `resources.py`: the per-environment resource;
- `kafka/`, `lake/` (Delta), `postgres/`, `reference/`: the assets (and sensors) of each store;
- `analytics/`: the daily shelf features, partitioned by simulated day (built by
  `definitions.build_definitions`, since the partitions start on the configured simulated day);
- `quality/`: asset checks (rules in `smart_shelf_platform/quality.py`).
"""
