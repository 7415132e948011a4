"""`python -m smart_shelf_platform.refdata --out data --seed 42 --stores 1 [--load]`."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq

from smart_shelf_platform.refdata.generator import MANIFEST, generate
from smart_shelf_platform.settings import Settings


def main(argv: list[str] | None = None) -> None:
    settings = Settings()  # defaults follow SMART_SHELF_* environment variables
    parser = argparse.ArgumentParser(prog="python -m smart_shelf_platform.refdata",
                                     description="Generate the reference parquet files.")
    parser.add_argument("--out", type=Path, default=settings.data_dir)
    parser.add_argument("--seed", type=int, default=settings.seed)
    parser.add_argument("--stores", type=int, default=settings.stores)
    parser.add_argument("--sim-start", type=datetime.fromisoformat, default=settings.sim_start,
                        help="ISO timestamp; naive means UTC")
    parser.add_argument("--load", metavar="DSN", nargs="?", const="",
                        help="also load into Postgres (DSN defaults to the settings' database)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    paths = generate(args.out, seed=args.seed, stores=args.stores, sim_start=args.sim_start)
    elapsed = time.perf_counter() - started
    for name, path in paths.items():
        if name != MANIFEST:
            rows = pq.ParquetFile(path).metadata.num_rows
            print(f"{path}  {rows:>7} rows  {path.stat().st_size:>9} bytes")
    print(f"{paths[MANIFEST]}  seed={args.seed} stores={args.stores} "
          f"sim_start={args.sim_start.isoformat()}  ({elapsed:.2f} s)")

    if args.load is not None:
        from smart_shelf_platform.refdata.loader import load_into_postgres

        dsn = args.load or settings.postgres_dsn()
        for table, rows in load_into_postgres(dsn, paths).items():
            print(f"loaded {table}: {rows} rows")


if __name__ == "__main__":
    main()
