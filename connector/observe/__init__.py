"""Observability: Prometheus metrics (metrics.py) and log formatting (logs.py)."""
