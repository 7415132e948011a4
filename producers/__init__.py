"""Event producers: the store simulator, its ledger, and the Redis→Kafka bridge."""
