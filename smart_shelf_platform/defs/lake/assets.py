"""Every Delta table of the catalogue as an external asset.

The streaming queries own all but two; `lake/sensors.py` turns their new versions into
materializations. `analytics/shelf_daily_features` and `analytics/predictions` are Dagster's own
and stay external specs until the ML assets that write them exist.
"""

from smart_shelf_platform.defs.specs import delta_specs

delta_tables = delta_specs()
