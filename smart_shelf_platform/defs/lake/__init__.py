"""Delta Lake tables as assets, and the sensor that reports their new versions."""
