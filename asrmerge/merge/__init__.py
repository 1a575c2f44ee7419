"""Merge algorithms: one module per algorithm, registered in :mod:`asrmerge.merge.registry`.

Importing this package imports every module of this folder that is not part of the engine, which
registers every algorithm (a new algorithm is one new module here; see ``registry.algorithm``). It never
imports torch.
"""

import importlib
import pkgutil

# the engine and its parts; every other module here is an algorithm
ENGINE_MODULES = frozenset({"api", "engine", "plan", "policy", "registry", "stream", "tasks"})

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ENGINE_MODULES and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
