"""Benchmarks for asgi-lambda-mw: one script per measure, each a ratio against a baseline taken
in the same run. ``bench/run`` runs them all and prints one table (see BENCHMARKS.md)."""
