"""Fetched records whose header names are not UTF-8 are read, not raised on.

Kafka's protocol calls a header name a string, but nothing checks it: librdkafka (kcat), sarama
and a hand-rolled producer send any bytes. aiokafka (0.14) decodes each name as strict UTF-8
while it iterates a fetched batch, so one such record raises ``UnicodeDecodeError`` out of
``getmany`` at every call: its consumer can read neither that record nor any after it, and a
worker stops consuming commands for good. Java's client reads the same record with U+FFFD in
place of the bad bytes; so does every consumer in this process once :func:`read_any_header_name`
has run: a batch that fails so is read again by aiokafka's pure-Python batch reader, with
header names decoded leniently, from the record after the last one already handed out.

aiokafka has no option for it (its fetcher reads ``MemoryRecords`` from its module's globals),
so, like :mod:`bridge.kafka.no_auto_create`, this swaps in a class at start-up.
"""

from __future__ import annotations

import logging
from typing import Any, SupportsIndex

import aiokafka.consumer.fetcher
from aiokafka.record.default_records import _DefaultRecordBatchPy
from aiokafka.record.memory_records import _MemoryRecordsPy

log = logging.getLogger(__name__)

#: Where a batch says its format (the magic byte): headers exist from format 2 on.
_MAGIC_OFFSET = _MemoryRecordsPy.MAGIC_OFFSET


class _LenientSlice(bytearray):
    """A slice of a record batch whose ``decode`` replaces what is not valid."""

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self).decode(encoding, "replace")


class _LenientBuffer(bytearray):
    """A batch's bytes, whose slices decode leniently (only header names are decoded)."""

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        item = super().__getitem__(index)
        return _LenientSlice(item) if isinstance(index, slice) else item


class _LenientBatch(_DefaultRecordBatchPy):  # type: ignore[misc]
    """aiokafka's pure-Python batch reader over a :class:`_LenientBuffer`."""

    def __init__(self, buffer: memoryview) -> None:
        super().__init__(buffer)
        self._buffer: bytearray = _LenientBuffer(self._buffer)

    def _maybe_uncompress(self) -> None:
        super()._maybe_uncompress()
        if not isinstance(self._buffer, _LenientBuffer):  # decompressed into a new buffer
            self._buffer = _LenientBuffer(self._buffer)


class _Batch:
    """A fetched batch as aiokafka reads it (its C reader), read again leniently if a header
    name is not UTF-8."""

    def __init__(self, batch: Any, raw: memoryview) -> None:
        self._batch = batch
        self._raw = raw
        self._lenient: _LenientBatch | None = None
        self._last: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __iter__(self) -> _Batch:
        iter(self._batch)  # decompresses
        return self

    def __next__(self) -> Any:
        if self._lenient is None:
            try:
                record = next(self._batch)
            except UnicodeDecodeError as exc:
                log.warning(
                    "a record after offset %s of the batch at offset %s has a header name that "
                    "is not UTF-8 (%s); read with U+FFFD in its place",
                    self._last,
                    self._batch.base_offset,
                    exc.reason,
                )
                self._lenient = iter(_LenientBatch(self._raw))
            else:
                self._last = record.offset
                return record
        while True:
            record = next(self._lenient)  # StopIteration ends the batch
            if self._last is None or record.offset > self._last:
                self._last = record.offset
                return record


class LenientMemoryRecords(_MemoryRecordsPy):  # type: ignore[misc]
    """aiokafka's ``MemoryRecords`` whose batches survive header names that are not UTF-8.

    The batches are cut in Python (a few operations per batch) and read by aiokafka's own
    reader (its C extension where installed), record by record, as before.
    """

    def next_batch(self) -> Any:
        """The next batch (None at the end), wrapped when it may carry headers."""
        raw = self._next_slice
        batch = super().next_batch()
        if batch is None or raw is None or raw[_MAGIC_OFFSET] < 2:
            return batch
        return _Batch(batch, raw)


def read_any_header_name() -> None:
    """Make every aiokafka consumer in this process read records whose header names are not
    UTF-8. For start-up; calling it again changes nothing."""
    fetcher = aiokafka.consumer.fetcher
    if getattr(fetcher, "MemoryRecords", None) is LenientMemoryRecords:
        return
    if not hasattr(fetcher, "MemoryRecords"):
        raise RuntimeError("aiokafka.consumer.fetcher.MemoryRecords is gone; update " + __name__)
    fetcher.MemoryRecords = LenientMemoryRecords
