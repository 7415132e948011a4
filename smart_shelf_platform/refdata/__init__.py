"""Reference data: the deterministic store catalogue, bootstrap stock, lots, weekly promotions
and default policies (`generate`), and their loader into Postgres `ref.*` / `config.*`
(`load_into_postgres`). Outputs and choices are documented in `data/README.md`.
"""

from smart_shelf_platform.refdata.generator import generate
from smart_shelf_platform.refdata.loader import load_into_postgres

__all__ = ["generate", "load_into_postgres"]
