"""P2P Core's import names for the framework, inside a service's process.

P2P Core services import ``from layers.service import BaseService, service_method``
(3.0.0) or ``from layers.service_framework import ...`` (earlier).  A finder
placed last on :data:`sys.meta_path` makes ``layers``, ``layers.service`` and
``layers.service_framework`` modules holding the top-level ``service_framework``
module's names, so they give the very same objects.  Being last, it yields to a ``layers``
package that a service ships itself.  Only the runner installs it: the node's
own process has no ``layers``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence

__all__ = ["ALIASES", "install_framework_aliases"]

ALIASES = ("layers.service", "layers.service_framework")


class _FrameworkAliases(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "layers":
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        if fullname in ALIASES:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None  # a fresh module, filled by exec_module

    def exec_module(self, module: types.ModuleType) -> None:
        if module.__name__ == "layers":
            module.__path__ = []
            module.__doc__ = "P2P Core's framework package, as this orchestrator provides it."
            return
        framework = importlib.import_module("service_framework")
        module.__doc__ = framework.__doc__
        names: list[str] = list(getattr(framework, "__all__", ()))
        setattr(module, "__all__", names)  # noqa: B010 - ModuleType declares no __all__
        for name in names:
            setattr(module, name, getattr(framework, name))


def install_framework_aliases() -> None:
    """Make the ``layers.*`` names importable (idempotent)."""
    if not any(isinstance(finder, _FrameworkAliases) for finder in sys.meta_path):
        sys.meta_path.append(_FrameworkAliases())
