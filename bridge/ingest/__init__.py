"""Callbacks in: decode FoneStorm's three delivery methods, validate, correlate, produce events.

May import contracts, kafka, obs, settings, errors and web.errors; never commands or sandbox.
"""
