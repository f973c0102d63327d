"""The aiohttp application: `create_app`, health/readiness/metrics endpoints, JSON errors, app keys.

The top of the service: may import every package of the bridge except `sandbox`.
"""
