"""A FoneStorm look-alike server for local runs and tests, behaving as the calls API doc says.

Imports nothing of the bridge (its own settings included); the bridge never imports it.
"""
