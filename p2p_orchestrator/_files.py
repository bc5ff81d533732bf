"""Small filesystem steps shared by the store, the transfers and the node: no layer of its own.

:func:`fsync_dir` makes a creation or rename durable; :func:`remove_tree` deletes without
following links; :func:`write_atomically` replaces a file through a temporary file that is always
a new file of our own.  A temporary file beside its target (``.roles.toml.<pid>.tmp``) has a name anyone can guess.
Opening it with ``O_CREAT | O_TRUNC`` would follow a symbolic link planted there and write
through it, or reuse a file someone else made.  :func:`create_temporary` removes whatever has
the name (a crashed writer's leftover, or a planted link: unlinking a link never touches its
target) and creates the file with ``O_EXCL | O_NOFOLLOW``, so it is new and ours, or the write
fails.

Secret files (the node's identity key, a publisher's signing key) have two more steps:
:func:`read_private` refuses a file the group or others may read or write, and
:func:`create_private` writes a new one, mode 0600, whole or not at all, and never replaces one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

__all__ = [
    "ExposedFile",
    "NotRegularFile",
    "create_private",
    "create_temporary",
    "fsync_dir",
    "read_private",
    "remove_tree",
    "temporary_path",
    "write_atomically",
]

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def temporary_path(target: Path) -> Path:
    """The temporary file of this process for ``target``: ``.<name>.<pid>.tmp`` beside it."""
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def create_temporary(path: Path, mode: int = 0o600) -> int:
    """Create ``path`` as a new file (``mode``, less the umask) and return its descriptor."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return os.open(path, _NEW_FILE, mode)


def write_atomically(target: Path, data: bytes, *, mode: int = 0o600, fsync: bool = True) -> None:
    """Replace ``target`` with ``data``: a reader sees the old file or the new one, never half."""
    temp = temporary_path(target)
    fd = create_temporary(temp, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            if fsync:
                os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def fsync_dir(path: Path) -> None:
    """Make a creation or rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """Delete a file or directory tree if it exists, never following symlinks."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path)


class NotRegularFile(OSError):
    """:func:`read_private` found a directory, a device, a socket... where a file should be."""


class ExposedFile(OSError):
    """:func:`read_private` found a secret file the group or others may read or write."""

    def __init__(self, path: Path, mode: int) -> None:
        super().__init__(f"{path} has mode {mode:04o}")
        self.mode = mode
        """The file's permission bits (``0644``...), for the message that explains the fix."""


def read_private(path: Path, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the secret file ``path`` (more than ``limit`` means too large).

    Raises :class:`NotRegularFile` or :class:`ExposedFile` (checked on the opened file, so the
    answer is about the file read), else whatever ``open`` raises (``FileNotFoundError``...).
    """
    with open(path, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"{path} is not a regular file")
        if mode & 0o077:
            raise ExposedFile(path, stat.S_IMODE(mode))
        return file.read(limit + 1)


def create_private(path: Path, data: bytes) -> None:
    """Create the secret file ``path`` holding ``data``, mode 0600 whatever the umask.

    The file appears whole or not at all (written beside it, flushed, then linked into place), and
    an existing file is never replaced: ``FileExistsError`` if anything has the name already.
    """
    temp = temporary_path(path)
    try:
        fd = create_temporary(temp, 0o600)
        with os.fdopen(fd, "wb") as file:
            os.fchmod(fd, 0o600)
            file.write(data)
            file.flush()
            os.fsync(fd)
        os.link(temp, path)  # fails if the path appeared meanwhile
        fsync_dir(path.parent)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()
