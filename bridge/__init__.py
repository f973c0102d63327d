"""FoneStorm <-> Kafka bridge: a package per role, each saying in its docstring what it imports.

The console script (:mod:`bridge.entry`) is the top, then the command line (:mod:`bridge.cli`),
then the application (:mod:`bridge.app`), which wires the roles together. The modules beside
the packages (``errors``, ``settings``, ``envlists``, ``deadlines``, ``phone``, ``retrying``,
``stop_signals``, ``tasks``) are shared helpers that import no package of the bridge; any
package may use them. ``[tool.importlinter]`` in pyproject.toml
holds the code to these rules (``lint-imports``, in ``make lint``).
"""
