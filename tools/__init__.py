"""Developer tooling of the repository, not part of the bridge package: local_kafka and
local_registry (stdlib only, run by scripts/ with the system python3) and lockcheck (run with
the venv by make lint)."""
