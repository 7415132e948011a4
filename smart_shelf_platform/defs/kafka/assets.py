"""Every topic of the catalogue as an external asset, except the one Dagster materializes: topics
are written by the bridge, the clock, the streaming queries and Kafka Connect, and a cutoff's
forecasts (`kafka/ml_predictions`) by its forecast run (`defs/forecasting/`)."""

from smart_shelf_platform.defs.forecasting.assets import MATERIALIZED_KEYS as FORECAST_KEYS
from smart_shelf_platform.defs.specs import topic_specs

kafka_topics = [s for s in topic_specs() if s.key not in FORECAST_KEYS]
