"""Developer tooling of the repository (not part of the bridge package); stdlib-only Python run
by scripts/ with the system python3."""
