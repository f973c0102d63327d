"""`python3 -m tools.local_registry` from the repo root: the same CLI as scripts/local-registry."""

from __future__ import annotations

import sys

from tools.local_registry.cli import main

if __name__ == "__main__":
    sys.exit(main())
