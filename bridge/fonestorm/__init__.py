"""The FoneStorm calls API: HTTP client, callback URL templates, callback registration.

May import `contracts`, `kafka` (registration produces a command), `obs` and the shared modules.
"""
