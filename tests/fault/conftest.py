"""Fault tests reuse the integration fixtures: a real bridge on a real port, a client session."""

from tests.integration.conftest import http, start_bridge

__all__ = ["http", "start_bridge"]
