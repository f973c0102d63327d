"""The one conftest of the suites outside tests/chart: it loads the fixture plugins.

Fixtures and helpers live in :mod:`tests.support`, one module per role (see its docstring).
"""

pytest_plugins = [
    "tests.support.dedicated_broker",
    "tests.support.kafka_broker",
    "tests.support.bridge_app",
    "tests.support.sandbox",
    "tests.support.jaeger",
    "tests.support.spans",
    "tests.support.schema_registry",
    "tests.support.java_serdes",
    "tests.support.topics",
    "tests.support.leftovers",
]
