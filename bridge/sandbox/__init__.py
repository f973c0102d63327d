"""A FoneStorm look-alike server for local runs and tests, behaving as the calls API doc says.

Imports nothing of the bridge (its own settings included; whoever builds it brings tracing);
nothing of the bridge imports it but the command line, whose ``sandbox`` command runs it.
"""
