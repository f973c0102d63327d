"""Test support: fixtures and helpers shared by the test suites, one module per role.

Fixture modules are loaded once, as plugins, by ``pytest_plugins`` in ``tests/conftest.py``;
test modules import plain helpers (functions, classes, constants) from here, never from another
test module or from a conftest.

* :mod:`~tests.support.paths`: the repository root and the ``scripts/local-kafka`` launcher.
* :mod:`~tests.support.ports`: free TCP ports on 127.0.0.1.
* :mod:`~tests.support.controller_link`: a relay between a broker and its controller, cut to
  have the broker fenced (fixture ``fenceable_broker`` in :mod:`~tests.support.dedicated_broker`).
* :mod:`~tests.support.kafka_broker`: fixtures ``kafka_bootstrap`` (the session's Kafka: an
  external cluster, testcontainers or ``scripts/local-kafka``) and ``new_topic``.
* :mod:`~tests.support.kafka_records`: reading records back from Kafka.
* :mod:`~tests.support.servers`: serving an aiohttp app on a free port, waiting for ``/readyz``.
* :mod:`~tests.support.bridge_app`: fixtures ``start_bridge`` (the bridge app served
  in-process on fresh topics) and ``http`` (a client session).
* :mod:`~tests.support.sandbox`: the FoneStorm sandbox, a callback catcher and a canned-answer
  server on real ports; fixture ``sandbox``.
* :mod:`~tests.support.commands`: place-call commands and the closed loop (sandbox + bridge).
* :mod:`~tests.support.callbacks`: callback bodies as FoneStorm sends them, posting them.
* :mod:`~tests.support.correlation`: a call correlator over a fake follower of the ledger, and
  ledger records to apply to it.
* :mod:`~tests.support.dead_letters`: dead letters as the bridge writes them, on the topic, and
  `fonestorm-bridge dead-letters`.
* :mod:`~tests.support.local_kafka`: ``scripts/local-kafka start`` options, parsed.
* :mod:`~tests.support.processes`: the bridge's receiver and worker as real subprocesses.
* :mod:`~tests.support.pid_namespace`: the console script as PID 1 of a PID namespace of its
  own (``unshare``), as a container with no init runs it.
* :mod:`~tests.support.security`: bridge settings for SASL/TLS brokers.
* :mod:`~tests.support.stats`: small statistics for load reports.
* :mod:`~tests.support.spans`: fixture ``spans``, the bridge's tracing with an in-memory exporter.
* :mod:`~tests.support.schema_registry`: fixtures ``schema_registry`` / ``registry_url`` (a
  real Apicurio Registry for the session), ``new_registry`` (one of a test's own), and calls of
  its Confluent-compatible API.
* :mod:`~tests.support.java_serdes`: fixture ``java_serdes``, Apicurio's Java serializer and
  deserializer run as subprocesses (tests/java/serdes).
* :mod:`~tests.support.topics`: an admin client (fixture ``admin``), fresh topics, partitions
  added, `fonestorm-bridge topics`.
* :mod:`~tests.support.waiting`: waiting until a condition holds.
* :mod:`~tests.support.virtual_time`: an event loop on virtual time, for timing without sleeps.
"""
