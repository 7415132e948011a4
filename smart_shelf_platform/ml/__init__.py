"""Machine learning: the daily feature set, training and inference (no Dagster imports)."""
