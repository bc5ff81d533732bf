"""pack_service: a deterministic service archive from a directory."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from p2p_orchestrator.archive._layout import Layout
from p2p_orchestrator.archive._limits import DEFAULT_LIMITS
from p2p_orchestrator.archive._names import check_service_name
from p2p_orchestrator.errors import ServiceInstallationError

__all__ = ["pack_service", "pack_service_bytes"]

_SKIPPED_NAMES = frozenset({"__pycache__", ".git", ".DS_Store"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class _Entry:
    archive_path: str
    disk_path: str
    is_dir: bool


def _bad_source(message: str) -> ServiceInstallationError:
    return ServiceInstallationError(message, code="bad_source")


class _HashingWriter:
    """Passes bytes to ``out``, hashing them on the way."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        view = memoryview(data)
        try:
            while view:
                written = self._out.write(view)
                view = view[len(view) if written is None else written :]
        except OSError as exc:
            raise ServiceInstallationError(f"cannot write the archive: {exc}", code="write_failed") from exc
        return len(data)

    def flush(self) -> None:
        try:
            self._out.flush()
        except OSError as exc:
            raise ServiceInstallationError(f"cannot write the archive: {exc}", code="write_failed") from exc


def _collect(source_dir: Path, name: str) -> list[_Entry]:
    """Every file and directory to pack, sorted by archive path, checked like an unpack would."""
    entries = [_Entry(name, str(source_dir), True)]
    pending = [(str(source_dir), name)]
    while pending:
        disk_dir, archive_dir = pending.pop()
        try:
            with os.scandir(disk_dir) as listing:
                children = [(child.name, child.path, child.stat(follow_symlinks=False)) for child in listing]
        except OSError as exc:
            raise _bad_source(f"cannot read {disk_dir!r}: {exc}") from exc
        for child_name, child_path, info in children:
            if child_name in _SKIPPED_NAMES or child_name.endswith(_SKIPPED_SUFFIXES):
                continue
            archive_path = f"{archive_dir}/{child_name}"
            if stat.S_ISDIR(info.st_mode):
                entries.append(_Entry(archive_path, child_path, True))
                pending.append((child_path, archive_path))
            elif stat.S_ISREG(info.st_mode):
                entries.append(_Entry(archive_path, child_path, False))
            else:
                kind = "symbolic link" if stat.S_ISLNK(info.st_mode) else "special file"
                raise _bad_source(
                    f"{child_path!r} is a {kind}; only regular files and directories are packed"
                )
    entries.sort(key=lambda entry: entry.archive_path)
    layout = Layout(DEFAULT_LIMITS)
    for entry in entries:
        try:
            entry.archive_path.encode("utf-8")
        except UnicodeError as exc:
            raise _bad_source(f"cannot pack {entry.disk_path!r}: name is not valid UTF-8") from exc
        try:
            layout.add(entry.archive_path, is_dir=entry.is_dir)
        except ServiceInstallationError as exc:
            raise _bad_source(f"cannot pack {entry.disk_path!r}: {exc.message}") from exc
    if not any(entry.archive_path == f"{name}/main.py" and not entry.is_dir for entry in entries):
        raise _bad_source(f"{os.fspath(source_dir)!r} has no main.py")
    return entries


def _tarinfo(path: str, *, is_dir: bool, size: int = 0, executable: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.size = size
    info.mode = 0o755 if is_dir or executable else 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_file(tar: tarfile.TarFile, entry: _Entry) -> None:
    try:
        fd = os.open(entry.disk_path, _READ_FLAGS)
    except OSError as exc:
        raise _bad_source(f"cannot open {entry.disk_path!r}: {exc}") from exc
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _bad_source(f"{entry.disk_path!r} changed into a special file while packing")
        member = _tarinfo(
            entry.archive_path, is_dir=False, size=info.st_size, executable=bool(info.st_mode & 0o111)
        )
        try:
            tar.addfile(member, file)
        except OSError as exc:
            raise _bad_source(f"cannot read {entry.disk_path!r}: {exc}") from exc


def pack_service(source_dir: Path, out: BinaryIO) -> str:
    """Write the service in ``source_dir`` to ``out`` as a ``.tar.gz``; return its sha256 hex.

    The directory's name is the service name and becomes the archive's top
    directory.  The output is deterministic: members sorted by path, owners,
    times and gzip header zeroed, modes normalized to 0o755 (directories and
    executables) or 0o644, so the same tree always gives the same bytes.
    ``__pycache__``, ``*.pyc``, ``*.pyo``, ``.git`` and ``.DS_Store`` are skipped;
    symlinks, special files and anything :func:`unpack_archive` would refuse
    raise ``bad_source``.  File contents are streamed, never held in memory.
    """
    source_dir = Path(os.path.abspath(source_dir))
    name = check_service_name(source_dir.name)
    if source_dir.is_symlink() or not source_dir.is_dir():
        raise _bad_source(f"{os.fspath(source_dir)!r} is not a directory")
    entries = _collect(source_dir, name)
    writer = _HashingWriter(out)
    with (
        gzip.GzipFile(fileobj=writer, mode="wb", compresslevel=6, mtime=0, filename="") as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar,
    ):
        for entry in entries:
            if entry.is_dir:
                tar.addfile(_tarinfo(entry.archive_path, is_dir=True))
            else:
                _add_file(tar, entry)
    return writer.sha256.hexdigest()


def pack_service_bytes(source_dir: Path) -> bytes:
    """:func:`pack_service` into memory."""
    buffer = io.BytesIO()
    pack_service(source_dir, buffer)
    return buffer.getvalue()
