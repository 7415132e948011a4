"""Every Delta table of the catalogue as an external asset, except those Dagster materializes.

The streaming queries own most; `lake/sensors.py` turns their new versions into
materializations. `analytics/shelf_daily_features` is Dagster's own asset (`defs/analytics/`),
as are `analytics/predictions` and `analytics/ml_backtest` (`defs/forecasting/`).
"""

from smart_shelf_platform.defs.analytics.assets import MATERIALIZED_KEYS as FEATURE_KEYS
from smart_shelf_platform.defs.forecasting.assets import MATERIALIZED_KEYS as FORECAST_KEYS
from smart_shelf_platform.defs.specs import delta_specs

delta_tables = [s for s in delta_specs() if s.key not in FEATURE_KEYS | FORECAST_KEYS]
