"""Every Delta table of the catalogue as an external asset, except those Dagster materializes.

The streaming queries own most; `lake/sensors.py` turns their new versions into
materializations. `analytics/shelf_daily_features` is Dagster's own asset (`defs/analytics/`);
`analytics/predictions` stays an external spec until the ML assets that write it exist.
"""

from smart_shelf_platform.defs.analytics.assets import MATERIALIZED_KEYS
from smart_shelf_platform.defs.specs import delta_specs

delta_tables = [s for s in delta_specs() if s.key not in MATERIALIZED_KEYS]
