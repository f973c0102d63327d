"""Dead letters as a tool: ``fonestorm-bridge dead-letters list|show|replay``.

Reads the dead-letter topic without a consumer group, shows what was refused, and replays it:
a callback through today's validation into its ``CallEvent``, a command back onto the command
topic; a compacted replay topic remembers what was done, so a replay runs at most once per
dead letter (see :mod:`bridge.dead_letters.replayer`).

Pure decisions (:mod:`~bridge.dead_letters.timespec`, :mod:`~bridge.dead_letters.revalidate`,
:mod:`~bridge.dead_letters.decision`, :mod:`~bridge.dead_letters.render`,
:mod:`~bridge.dead_letters.summary`) and thin Kafka shells (:mod:`~bridge.dead_letters.reading`,
:mod:`~bridge.dead_letters.replayer`). May import contracts, ingest.parsing, kafka, obs
and the shared modules; never commands, web or sandbox.
"""
