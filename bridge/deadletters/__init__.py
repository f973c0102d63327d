"""Dead letters as a tool: ``fonestorm-bridge dead-letters list|show|replay``.

Reads the dead-letter topic without a consumer group, shows what was refused, and replays it:
a callback through today's validation into its ``CallEvent``, a command back onto the command
topic; a compacted replay topic remembers what was done, so a replay runs at most once per
dead letter (see :mod:`bridge.deadletters.replayer`).

Pure decisions (:mod:`~bridge.deadletters.timespec`, :mod:`~bridge.deadletters.revalidate`,
:mod:`~bridge.deadletters.decision`, :mod:`~bridge.deadletters.render`,
:mod:`~bridge.deadletters.summary`) and thin Kafka shells (:mod:`~bridge.deadletters.reading`,
:mod:`~bridge.deadletters.replayer`). May import contracts, ingest.parsing, kafka, obs
and the shared modules; never commands, web or sandbox.
"""
