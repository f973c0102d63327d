"""Callbacks in: decode FoneStorm's three delivery methods, validate, correlate, produce events.

May import contracts, kafka, obs, the shared modules and web.errors; never commands or sandbox.
"""
