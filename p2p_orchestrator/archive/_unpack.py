"""unpack_archive: the one place where archive bytes become files."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from p2p_orchestrator.archive._gunzip import BoundedGunzip
from p2p_orchestrator.archive._json import load_object
from p2p_orchestrator.archive._layout import Layout
from p2p_orchestrator.archive._limits import DEFAULT_LIMITS, ArchiveLimits
from p2p_orchestrator.archive._tar import TarMember, TarReader
from p2p_orchestrator.archive.manifest import Manifest, default_manifest, parse_manifest
from p2p_orchestrator.errors import ServiceInstallationError

__all__ = ["UnpackedArchive", "unpack_archive"]

_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MANIFEST = ("manifest.json",)
_CONFIG = ("config", "default.json")
_MAIN = ("main.py",)


@dataclass(frozen=True)
class UnpackedArchive:
    """A service archive, checked and written out."""

    service_name: str
    manifest: Manifest
    #: sha256 hex of the compressed archive bytes.
    archive_hash: str
    #: Size of the compressed archive.
    archive_size: int
    #: Regular files written.
    files_count: int
    #: The service tree: the contents of the archive's ``<name>/`` directory.
    root: Path


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Unpacker:
    def __init__(self, dest: Path, limits: ArchiveLimits, stream: BoundedGunzip) -> None:
        self._dest = dest
        self._limits = limits
        self._stream = stream
        self._tar = TarReader(stream, limits)
        self._layout = Layout(limits)
        self._made: set[tuple[str, ...]] = {()}
        self._declared = 0
        self.files = 0
        self.has_main = False
        self.manifest: Manifest | None = None

    def run(self) -> None:
        for member in self._tar:
            parts = self._layout.add(member.path, is_dir=member.is_dir)
            if parts is None:
                continue
            if member.is_dir:
                self._make_dirs(member.path, parts)
            else:
                self._declared += member.size
                if self._declared > self._limits.max_uncompressed_bytes:
                    raise ServiceInstallationError(
                        f"archive member {member.path!r}: files add up to more than "
                        f"{self._limits.max_uncompressed_bytes} bytes",
                        code="uncompressed_too_large",
                    )
                self._make_dirs(member.path, parts[:-1])
                self._write_file(member, parts)

    def _make_dirs(self, path: str, parts: tuple[str, ...]) -> None:
        for depth in range(1, len(parts) + 1):
            if parts[:depth] not in self._made:
                try:
                    os.mkdir(self._dest.joinpath(*parts[:depth]), 0o755)
                except OSError as exc:
                    raise _write_failed(path, exc) from exc
                self._made.add(parts[:depth])

    def _write_file(self, member: TarMember, parts: tuple[str, ...]) -> None:
        keep = parts in (_MANIFEST, _CONFIG)
        if keep and member.size > self._limits.max_manifest_bytes:
            code = "manifest_too_large" if parts == _MANIFEST else "bad_config"
            raise ServiceInstallationError(
                f"archive member {member.path!r}: larger than {self._limits.max_manifest_bytes} bytes",
                code=code,
            )
        kept: list[bytes] = []
        target = self._dest.joinpath(*parts)
        try:
            fd = os.open(target, _FILE_FLAGS, 0o755 if member.executable else 0o644)
        except OSError as exc:
            raise _write_failed(member.path, exc) from exc
        try:
            try:
                for chunk in self._tar.data():
                    if keep:
                        kept.append(chunk)
                    _write_all(fd, chunk)
            finally:
                os.close(fd)
        except OSError as exc:
            raise _write_failed(member.path, exc) from exc
        self.files += 1
        if parts == _MAIN:
            self.has_main = True
        elif parts == _MANIFEST:
            assert self._layout.top is not None
            self.manifest = parse_manifest(b"".join(kept), service_name=self._layout.top, limits=self._limits)
        elif parts == _CONFIG:
            load_object(b"".join(kept), what=f"archive member {member.path!r}", code="bad_config")

    def result(self) -> tuple[str, Manifest]:
        name = self._layout.top
        if name is None:
            raise ServiceInstallationError("archive contains no service directory", code="bad_layout")
        if not self.has_main:
            raise ServiceInstallationError(f"archive has no regular file {name}/main.py", code="missing_main")
        return name, self.manifest or default_manifest(name)


def _write_failed(path: str, exc: OSError) -> ServiceInstallationError:
    return ServiceInstallationError(f"archive member {path!r}: cannot write: {exc}", code="write_failed")


def _empty(dest: Path) -> None:
    with os.scandir(dest) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def unpack_archive(
    source: BinaryIO,
    dest: Path,
    *,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    copy_to: BinaryIO | None = None,
) -> UnpackedArchive:
    """Check a service archive while writing its service tree into ``dest``.

    ``source`` is read once, in blocks, as a gzip'd tar; ``copy_to`` (if given)
    receives every compressed byte as it is read.  ``dest`` must be an existing
    empty directory: the contents of the archive's ``<name>/`` directory land
    directly in it.  Only regular files and directories are accepted, with safe,
    unique names, inside exactly one top directory named after the service, which
    must hold ``main.py``; ``manifest.json`` and ``config/default.json`` are
    validated.  Every limit in ``limits`` is enforced while reading.  Files get
    mode 0o755 if the archive marks them executable, else 0o644, directories
    0o755 (all less the umask); owners, times and other modes in the archive
    are ignored.  Nothing is fsynced: that is the caller's choice.

    This is blocking code: run it in a worker thread.  On any failure ``dest`` is
    emptied again and :class:`ServiceInstallationError` is raised, its ``code``
    saying which rule was broken and its message naming the member.
    """
    dest = Path(dest)
    if not dest.is_dir():
        raise ValueError(f"unpack destination {dest} is not a directory")
    with os.scandir(dest) as entries:
        if any(True for _ in entries):
            raise ValueError(f"unpack destination {dest} is not empty")
    stream = BoundedGunzip(source, limits, copy_to)
    try:
        unpacker = _Unpacker(dest, limits, stream)
        unpacker.run()
        name, manifest = unpacker.result()
    except BaseException as exc:
        try:
            _empty(dest)
        except OSError as cleanup_exc:
            raise ServiceInstallationError(
                f"cannot clean up {dest} after a failed unpack ({exc}): {cleanup_exc}",
                code="cleanup_failed",
            ) from cleanup_exc
        raise
    return UnpackedArchive(
        service_name=name,
        manifest=manifest,
        archive_hash=stream.hexdigest(),
        archive_size=stream.compressed_bytes,
        files_count=unpacker.files,
        root=dest,
    )
