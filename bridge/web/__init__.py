"""HTTP helpers: the server of the callback port, health/readiness/metrics, JSON errors.

The application that uses them is built in :mod:`bridge.app`. May import `kafka` (the
publisher's readiness), `obs` and the shared modules; no role (commands, ingest, fonestorm).
"""
