"""dayzero: serve every new LLM on day zero.

The package is split into layers that only import downward (see ``.importlinter`` contracts in
pyproject.toml): ``api`` types, the pure ``planner`` and ``render``, the ``kube`` I/O layer and the
thin kopf ``controller``. ``gateway``, ``gauntlet`` and ``watcher`` are siblings on top of ``api``.
"""

__version__ = "0.1.0"
