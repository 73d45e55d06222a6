"""Storages that keep rate-limit counters: in memory for local use, DynamoDB for Lambda."""
