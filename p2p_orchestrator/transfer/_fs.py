"""Small blocking file helpers: whole reads and writes at an offset, durable small files."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from p2p_orchestrator._files import create_temporary, fsync_dir

__all__ = ["pread_exact", "pwrite_all", "write_file"]


def pread_exact(fd: int, length: int, offset: int) -> bytes:
    """Exactly ``length`` bytes at ``offset`` (``OSError(EIO)`` if the file is shorter)."""
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            raise OSError(errno.EIO, f"file ends {length - got} bytes short of offset {offset + length}")
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (``pwrite`` may write less than asked)."""
    written = os.pwrite(fd, data, offset)
    if written == len(data):
        return
    with memoryview(data) as view:
        while written < len(data):
            written += os.pwrite(fd, view[written:], offset + written)


def write_file(path: Path, data: bytes, *, fsync: bool, atomic: bool = False) -> None:
    """Write a small file whole; with ``atomic``, via a temporary name and a rename."""
    target = path.with_name(f".{path.name}.tmp") if atomic else path
    fd = create_temporary(target) if atomic else os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        pwrite_all(fd, data, 0)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    if atomic:
        os.replace(target, path)
    if fsync:
        fsync_dir(path.parent)
