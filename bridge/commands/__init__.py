"""Commands out: the place-call worker, its ledger (at most one call per command) and offsets.

May import contracts, kafka, fonestorm, obs and the shared modules; never ingest, web or sandbox.
"""
