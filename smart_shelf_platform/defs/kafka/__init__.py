"""Kafka topics as assets."""
