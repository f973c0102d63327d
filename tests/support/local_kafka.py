"""``scripts/local-kafka start`` options, parsed as the tool parses its command line."""

from __future__ import annotations

import argparse

from tools.local_kafka.cli import build_parser


def start_args(**overrides: object) -> argparse.Namespace:
    """``local-kafka start --name unit --port 19000``, then ``overrides`` (by option dest)."""
    args = build_parser().parse_args(["start", "--name", "unit", "--port", "19000"])
    for dest, value in overrides.items():
        setattr(args, dest, value)
    return args
