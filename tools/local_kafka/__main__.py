"""`python3 -m tools.local_kafka` from the repo root: the same CLI as scripts/local-kafka."""

from __future__ import annotations

import sys

from tools.local_kafka.cli import main

if __name__ == "__main__":
    sys.exit(main())
