"""Spark Structured Streaming jobs of the platform (one module per query) and their shared shell."""
