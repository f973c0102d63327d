"""The one conftest of the suites outside tests/chart: it loads the fixture plugins.

Fixtures and helpers live in :mod:`tests.support`, one module per role (see its docstring).
"""

import os

from hypothesis import settings

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

# Property tests explore new examples on every developer run (where they find bugs); CI
# (`.ci/run` sets HYPOTHESIS_PROFILE=ci) tries the same examples every time, so a red CI run
# is a change's doing, never the draw's. Nor the runner's: Hypothesis fails a test one of
# whose examples overran its 200 ms deadline once (a loaded runner descheduled it) and not on
# the rerun, and timing is not what these tests check.
settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
