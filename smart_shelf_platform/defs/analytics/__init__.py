"""The ML data the platform computes itself: daily shelf features (assets, checks, sensor)."""
