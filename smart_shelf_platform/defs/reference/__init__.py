"""Reference data: the generated Parquet files and the Postgres ref/config tables."""
