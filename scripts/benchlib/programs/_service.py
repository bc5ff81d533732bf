"""Load a service's ``main.py`` as a plain program would, and bring its ``Run`` instance up."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["start_service"]


def _configuration(directory: Path) -> dict[str, Any]:
    """``manifest.configuration`` overlaid by ``config/default.json`` (the operator's layer is empty)."""
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    config: dict[str, Any] = dict(manifest.get("configuration") or {})
    default = directory / "config" / "default.json"
    if default.is_file():
        config.update(json.loads(default.read_text(encoding="utf-8")))
    return config


async def start_service(directory: Path) -> Any:
    """Import ``directory/main.py`` with the directory first on ``sys.path``, then init its ``Run``.

    Returns the initialized instance (its ``call_method`` and ``cleanup`` are the service's own).
    """
    instance = _load(directory)
    await instance.initialize()
    return instance


def _load(directory: Path) -> Any:
    """A bound, not yet initialized ``Run`` instance of the service in ``directory``."""
    directory = directory.resolve()
    os.chdir(directory)
    sys.path.insert(0, str(directory))
    spec = importlib.util.spec_from_file_location("main", directory / "main.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {directory / 'main.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["main"] = module
    spec.loader.exec_module(module)
    instance = module.Run()
    instance.bind(name=directory.name, config=_configuration(directory))
    return instance
