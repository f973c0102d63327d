"""Observability: structured logs with per-call/per-command context, and Prometheus metrics.

Imports nothing of the bridge: every other package may use it.
"""
