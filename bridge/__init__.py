"""FoneStorm <-> Kafka bridge: a package per role, each saying in its docstring what it imports.

The command line (:mod:`bridge.cli`) is the top, then the application (:mod:`bridge.app`), which
wires the roles together. The modules beside the packages (``errors``, ``settings``,
``envlists``, ``deadlines``, ``phone``, ``retrying``, ``tasks``) are shared helpers that import
no package of the bridge; any package may use them. ``[tool.importlinter]`` in pyproject.toml
holds the code to these rules (``lint-imports``, in ``make lint``).
"""
