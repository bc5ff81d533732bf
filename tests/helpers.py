"""Shared test helpers: building service trees and archives, fingerprinting directories."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from p2p_orchestrator.archive import pack_service_bytes

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "example_service"


def make_service(
    root: Path,
    name: str = "example_service",
    version: str = "1.0.0",
    *,
    files: dict[str, str] | None = None,
    manifest: dict[str, Any] | None = None,
) -> Path:
    """A fresh copy of the example service, named ``name`` at ``version``, under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix=f"{name}-{version}-", dir=root)) / name
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
    data = json.loads((target / "manifest.json").read_text())
    data.update({"name": name, "version": version})
    data.update(manifest or {})
    (target / "manifest.json").write_text(json.dumps(data))
    for relative, text in (files or {}).items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return target


def make_archive(root: Path, name: str = "example_service", version: str = "1.0.0", **kwargs: Any) -> bytes:
    """The packed archive of :func:`make_service`."""
    return pack_service_bytes(make_service(root, name, version, **kwargs))


def tree_digest(path: Path) -> str:
    """A fingerprint of every name, type, mode and byte under ``path``."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(path)):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            st = full.lstat()
            digest.update(f"{full.relative_to(path)}\0{st.st_mode}\0".encode())
            if full.is_file() and not full.is_symlink():
                digest.update(full.read_bytes())
    return digest.hexdigest()
