"""The aiohttp application: `create_app`, its HTTP server, health/readiness/metrics, JSON errors.

The top of the service: may import every package of the bridge except `sandbox`.
"""
