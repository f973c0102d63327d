"""Commands out: the place-call worker, its ledger (at most one call per command) and offsets.

May import contracts, kafka, fonestorm, obs, settings and errors; never ingest or sandbox.
"""
