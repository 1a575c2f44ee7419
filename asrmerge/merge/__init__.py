"""Merge algorithms: one module per algorithm, registered in :mod:`asrmerge.merge.registry`.

Importing this package imports every module of this folder that is not part of the engine, which
registers every algorithm (a new algorithm is one new module here; see ``registry.algorithm``). It never
imports torch.

The package object is also the function :func:`asrmerge.api.merge`: ``asrmerge.merge("ties", [...])``
calls it, while ``from asrmerge.merge.registry import REGISTRY`` still imports the module beside it
(``asrmerge.merge`` is both a public function name and this package's name).
"""

import importlib
import pkgutil
import sys
import types
from typing import Any

# the engine and its parts; every other module here is an algorithm
ENGINE_MODULES = frozenset({"api", "engine", "operands", "plan", "policy", "registry", "stream"})


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`asrmerge.api.merge` (imported on the first call: it needs torch)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from asrmerge.api import merge

        return merge(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ENGINE_MODULES and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
