"""The sandbox documents its outcome-by-number table where users read it."""

import bridge.sandbox.app
from bridge.sandbox.app import OUTCOME_TABLE


def test_outcome_table_is_in_the_module_docstring():
    assert OUTCOME_TABLE in bridge.sandbox.app.__doc__
