"""Small filesystem steps the store builds its atomic operations from."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from p2p_orchestrator._files import fsync_dir


def fsync_file(path: str | Path) -> None:
    """Flush one file (never followed if a symlink) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and directory under ``root`` to disk."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for filename in filenames:
            fsync_file(os.path.join(dirpath, filename))
        fsync_dir(Path(dirpath))


def point_symlink(link: Path, target: str) -> None:
    """Make ``link`` point at ``target`` atomically (replace via rename)."""
    tmp = link.with_name(f".{link.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)
