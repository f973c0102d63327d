"""Benchmarks for ``make bench``, not tests: the bridge against its own stack's limits.

Imports the stdlib, aiohttp, aiokafka and matplotlib, never ``bridge`` (run as subprocesses)."""
