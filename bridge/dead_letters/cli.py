"""``fonestorm-bridge dead-letters list|show|replay``: the arguments, and the three commands.

Settings come from ``BRIDGE_*`` like every command's. Exit status: 0 done, 1 something failed
(Kafka, a missing topic, no such dead letter, a replay batch not committed), 2 bad arguments.
Each action is an ``async`` function writing to the streams it is given, so tests run it in
their own event loop (:func:`run_command`); :func:`cmd_dead_letters` is what the command line
calls.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError

from bridge.contracts.base import utcnow
from bridge.dead_letters import render
from bridge.dead_letters.escaping import escape
from bridge.dead_letters.integrity import check
from bridge.dead_letters.model import Entry, ReplayRecord, Selection
from bridge.dead_letters.reading import group_less_consumer, parse_entry, read_range, read_replays
from bridge.dead_letters.replayer import Output, Replayer, ReplayFailed
from bridge.dead_letters.summary import metrics_text, parse_counts, summary
from bridge.dead_letters.timespec import parse_when
from bridge.settings import Settings

_WHERE = re.compile(r"(\d+)@(\d+)")
Action = Callable[
    [Settings, argparse.Namespace, Selection, TextIO, TextIO], Coroutine[Any, Any, int]
]


def _when(text: str) -> datetime:
    try:
        return parse_when(text, utcnow())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_dead_letters_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``dead-letters`` and its actions on the top-level subparsers."""
    parser = sub.add_parser(
        "dead-letters",
        help="list, show and replay dead letters",
        description="Read the dead-letter topic (BRIDGE_TOPICS__DEAD_LETTERS) and replay it.",
    )
    actions = parser.add_subparsers(dest="dead_letters_command", required=True, metavar="ACTION")
    window = argparse.ArgumentParser(add_help=False)
    window.add_argument(
        "--since", type=_when, metavar="T",
        help="written at or after T: a duration ago (90s, 30m, 2h, 7d) or an ISO time",
    )  # fmt: skip
    window.add_argument("--until", type=_when, metavar="T", help="written at or before T")
    filters = argparse.ArgumentParser(add_help=False, parents=[window])
    filters.add_argument(
        "--reason", action="append", default=[], metavar="CODE",
        help="only this reason code, e.g. invalid_fields (repeat for several)",
    )  # fmt: skip
    filters.add_argument("--source", choices=("callback", "command"), help="only this source")

    listing = actions.add_parser("list", parents=[filters], help="a table, newest last")
    listing.add_argument(
        "--json", action="store_true", help="JSON lines (whole dead letters), in topic order"
    )
    listing.set_defaults(func=cmd_dead_letters, action=list_letters)

    show = actions.add_parser("show", parents=[window], help="one dead letter, whole and decoded")
    show.add_argument("id", help="dead letter id (or a unique prefix), or PARTITION@OFFSET")
    show.set_defaults(func=cmd_dead_letters, action=show_letter)

    replay = actions.add_parser(
        "replay",
        parents=[filters],
        help="callbacks through today's validation into events; commands back to their topic",
    )
    replay.add_argument("--dry-run", action="store_true", help="decide and print; produce nothing")
    replay.add_argument("--verbose", "-v", action="store_true", help="a line per dead letter")
    replay.add_argument(
        "--allow-unsigned", action="store_true",
        help="also replay dead letters without a signature, or whose source's signing key is "
        "not set here (a signature that does not verify is refused all the same)",
    )  # fmt: skip
    replay.add_argument(
        "--metrics-file", type=Path, metavar="PATH",
        help="write counters in Prometheus text format (node-exporter textfile collector)",
    )  # fmt: skip
    replay.set_defaults(func=cmd_dead_letters, action=replay_letters)


def _selection(args: argparse.Namespace) -> Selection:
    if args.since is not None and args.until is not None and args.since > args.until:
        raise ValueError("--since is after --until")
    return Selection(
        since=args.since,
        until=args.until,
        reasons=frozenset(getattr(args, "reason", [])),
        source=getattr(args, "source", None),
    )


async def run_command(
    settings: Settings, args: argparse.Namespace, out: TextIO, err: TextIO
) -> int:
    """Run the parsed ``dead-letters`` action: 2 on contradictory arguments, 1 when Kafka fails."""
    try:
        selection = _selection(args)
    except ValueError as exc:
        print(f"fonestorm-bridge: {exc}", file=err)
        return 2
    action: Action = args.action
    try:
        return await action(settings, args, selection, out, err)
    except KafkaError as exc:
        print(f"fonestorm-bridge: Kafka: {exc}", file=err)
        return 1


def cmd_dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    """``dead-letters list|show|replay``, from the command line."""
    return asyncio.run(run_command(settings, args, sys.stdout, sys.stderr))


async def _replays(settings: Settings) -> dict[str, ReplayRecord]:
    # A missing replay topic only means nothing was replayed yet.
    return await read_replays(settings.kafka, settings.topics.dead_letter_replays) or {}


async def list_letters(
    settings: Settings, args: argparse.Namespace, selection: Selection, out: TextIO, err: TextIO
) -> int:
    """Print the selected dead letters as a table (or JSON lines with ``--json``)."""
    replays = await _replays(settings)
    rows: list[render.Row] = []
    topic = settings.topics.dead_letters
    async with group_less_consumer(settings.kafka) as consumer:
        try:
            async for batch in read_range(
                consumer, topic, since=selection.since, until=selection.until
            ):
                for entry in (parse_entry(record) for record in batch):
                    if not selection.wants(entry):
                        continue
                    replay = replays.get(entry.letter.dead_letter_id) if entry.letter else None
                    if args.json:
                        print(escape(render.json_line(entry, replay)), file=out)
                    else:
                        rows.append(render.row(entry, replay))
        except UnknownTopicOrPartitionError:
            print(f"fonestorm-bridge: topic {topic} does not exist", file=err)
            return 1
    if not args.json:
        print(escape(render.table(rows), newlines=True), file=out)
    return 0


async def show_letter(
    settings: Settings, args: argparse.Namespace, selection: Selection, out: TextIO, err: TextIO
) -> int:
    """Print one dead letter whole, with its body or value decoded."""
    wanted: str = args.id.strip()
    where = _WHERE.fullmatch(wanted)
    topic = settings.topics.dead_letters
    found: list[Entry] = []
    async with group_less_consumer(settings.kafka) as consumer:
        try:
            async for batch in read_range(
                consumer, topic, since=selection.since, until=selection.until
            ):
                for entry in (parse_entry(record) for record in batch):
                    if where is not None:
                        hit = entry.where == wanted
                    else:
                        hit = entry.letter is not None and (
                            entry.letter.dead_letter_id.startswith(wanted)
                        )
                    if hit:
                        found.append(entry)
        except UnknownTopicOrPartitionError:
            print(f"fonestorm-bridge: topic {topic} does not exist", file=err)
            return 1
    exact = [e for e in found if e.letter is not None and e.letter.dead_letter_id == wanted]
    found = exact or found
    if len(found) != 1:
        problem = "no dead letter" if not found else f"{len(found)} dead letters match"
        print(f"fonestorm-bridge: {problem} {escape(repr(wanted))} in {topic}", file=err)
        for entry in found[:10]:
            shown = entry.letter.dead_letter_id if entry.letter else entry.where
            print(f"  {escape(shown)}", file=err)
        return 1
    entry = found[0]
    replays = await _replays(settings)
    letter = entry.letter
    replay = replays.get(letter.dead_letter_id) if letter else None
    integrity = (
        check(entry.value, entry.signatures, settings.dead_letters.key_for(letter.source))
        if letter is not None
        else None
    )
    # Every field is escaped already; this keeps a field added without it from reaching the
    # terminal raw.
    print(escape(render.show(entry, replay, topic, integrity), newlines=True), file=out)
    return 0


async def replay_letters(
    settings: Settings, args: argparse.Namespace, selection: Selection, out: TextIO, err: TextIO
) -> int:
    """Replay the selected dead letters; print the summary (and write the metrics file)."""
    replayer = Replayer(
        settings,
        selection,
        Output(out, err, verbose=args.verbose),
        dry_run=args.dry_run,
        allow_unsigned=args.allow_unsigned,
    )
    failure: str | None = None
    try:
        await replayer.run()
    except ReplayFailed as exc:
        failure = str(exc)
    print(summary(replayer.tally, dry_run=args.dry_run), file=out)
    if args.metrics_file is not None and not args.dry_run:
        try:
            _write_metrics(args.metrics_file, replayer, ok=failure is None)
        except OSError as exc:
            failure = failure or f"cannot write the metrics file: {exc}"
    if failure is not None:
        print(f"fonestorm-bridge: replay stopped: {failure}", file=err)
        return 1
    return 0


def _write_metrics(path: Path, replayer: Replayer, *, ok: bool) -> None:
    """Add this run to the counters in ``path``; atomically, as the textfile collector wants
    (it may read the file at any moment)."""
    previous = parse_counts(path.read_text(encoding="utf-8")) if path.exists() else {}
    text = metrics_text(previous, replayer.tally, finished_at=time.time(), ok=ok)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
