"""``ServiceStore``: install, switch, roll back and remove service versions atomically.

The store's methods are blocking.  The orchestrator runs :meth:`ServiceStore.stage`
(unpacking, hashing, fsync) and :meth:`ServiceStore.empty_trash` (deleting) in
worker threads, and every other method, which only renames directories and
writes one sqlite transaction, on its event loop thread: the database connection
is used by that one thread only.  Callers serialise operations on the same
service.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from p2p_orchestrator._clock import utc_now_iso
from p2p_orchestrator._files import fsync_dir, remove_tree
from p2p_orchestrator.archive import ArchiveLimits, UnpackedArchive, Version, unpack_archive
from p2p_orchestrator.config import StoreSettings
from p2p_orchestrator.crashpoints import crashpoint
from p2p_orchestrator.errors import ServiceInstallationError, ServiceManagementError
from p2p_orchestrator.store import _db
from p2p_orchestrator.store._fs import fsync_file, fsync_tree, point_symlink
from p2p_orchestrator.store.records import ServiceRecord, VersionRecord

__all__ = ["ServiceStore", "StagedArchive"]

log = logging.getLogger("p2p_orchestrator.store")


@dataclass(frozen=True)
class StagedArchive:
    """A validated archive unpacked into a private staging directory, not yet installed."""

    unpacked: UnpackedArchive
    staging_dir: Path
    archive_file: Path

    @property
    def service_name(self) -> str:
        return self.unpacked.service_name

    @property
    def archive_hash(self) -> str:
        return self.unpacked.archive_hash


def _lock_home(home: Path) -> int:
    """Take the home directory's exclusive lock, so two processes never share one store."""
    fd = os.open(home / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ServiceManagementError(
            f"{home} is in use by another process (a running node?); talk to that node, "
            "or use another home directory",
            code="home_locked",
        ) from None
    return fd


def _linked(source: Path, target: Path) -> bool:
    """Whether ``target`` could be made a hard link of ``source`` (else the caller copies it)."""
    try:
        os.link(source, target)
    except OSError as exc:
        log.debug("Copying %s instead of linking it: %s", source, exc)
        return False
    return True


def _staging_failed(where: Path, exc: OSError) -> ServiceInstallationError:
    return ServiceInstallationError(
        f"cannot stage the archive in {where}: {exc} (is the disk full?); nothing was installed",
        code="write_failed",
    )


def _switch_failed(target: Path, exc: OSError) -> ServiceInstallationError:
    return ServiceInstallationError(f"cannot move the new version into {target}: {exc}", code="write_failed")


class ServiceStore:
    """The versioned store under one node home directory (see the package docstring)."""

    def __init__(self, home: Path, *, limits: ArchiveLimits, settings: StoreSettings) -> None:
        self.home = home
        self.limits = limits
        self.settings = settings
        self.services_dir = home / "services"
        self.archives_dir = home / "archives"
        self.staging_root = home / "staging"
        self.trash_dir = home / "trash"
        self._trash_lock = threading.Lock()
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_fd = _lock_home(home)
        try:
            for directory in (self.services_dir, self.archives_dir, self.staging_root, self.trash_dir):
                directory.mkdir(mode=0o700, exist_ok=True)
            self._db = _db.Database(home / "state.db")
        except BaseException:
            os.close(self._lock_fd)
            raise
        try:
            self._records: dict[str, ServiceRecord] = self._db.load()
            self._floors = self._db.release_floors()
            self._recover()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the database and release the home directory's lock."""
        self._db.close()
        os.close(self._lock_fd)

    # -- reads (memory only) -------------------------------------------------

    @property
    def records(self) -> Mapping[str, ServiceRecord]:
        """Every installed service, by name."""
        return self._records

    def release_floor(self, name: str) -> str | None:
        """The highest signed version of ``name`` ever installed here; an older release is a rollback.

        Kept when the service is uninstalled, so that uninstalling cannot open the way back.
        """
        return self._floors.get(name)

    def get(self, name: str) -> ServiceRecord:
        """The record of ``name``; :class:`ServiceManagementError` if it is not installed."""
        record = self._records.get(name)
        if record is None:
            raise ServiceManagementError(f"service {name!r} is not installed", code="not_installed")
        return record

    def version_dir(self, version: VersionRecord) -> Path:
        """Where the files of ``version`` live."""
        return self.services_dir / version.directory

    def archive_path(self, archive_hash: str) -> Path:
        """The cached archive with this sha256."""
        return self.archives_dir / f"{archive_hash}.tar.gz"

    # -- install -------------------------------------------------------------

    def stage(self, source: BinaryIO, *, link_from: Path | None = None) -> StagedArchive:
        """Validate and unpack ``source`` into a fresh staging directory (blocking).

        Touches nothing outside its own staging directory, so it may run in a
        worker thread while the service keeps running its current version.
        ``link_from``: the file ``source`` reads, when it is the node's own and
        nothing writes it again (a verified transfer): the store keeps it by a hard
        link instead of writing a copy of every byte (a copy where no link can be
        made, e.g. across filesystems).
        """
        try:
            staging_dir = Path(tempfile.mkdtemp(prefix="install-", dir=self.staging_root))
        except OSError as exc:
            raise _staging_failed(self.staging_root, exc) from exc
        try:
            tree = staging_dir / "tree"
            tree.mkdir(mode=0o755)
            kept = staging_dir / "archive.tar.gz"
            if link_from is not None and _linked(link_from, kept):
                unpacked = unpack_archive(source, tree, limits=self.limits)
                if self.settings.fsync:
                    fsync_file(kept)  # its data is on disk already; this makes its link count so
            else:
                with open(kept, "xb") as copy:
                    unpacked = unpack_archive(source, tree, limits=self.limits, copy_to=copy)
                    if self.settings.fsync:
                        copy.flush()
                        os.fsync(copy.fileno())
            if self.settings.fsync:
                fsync_tree(tree)
            staging_dir = self._beside_services(staging_dir)
            crashpoint("store.stage.done")
        except OSError as exc:  # the disk is full or failing (unpack_archive types its own writes)
            remove_tree(staging_dir)
            raise _staging_failed(self.staging_root, exc) from exc
        except BaseException:
            remove_tree(staging_dir)
            raise
        return StagedArchive(
            unpacked=unpacked, staging_dir=staging_dir, archive_file=staging_dir / "archive.tar.gz"
        )

    def _beside_services(self, staging_dir: Path) -> Path:
        """``staging_dir``, or a copy of it on the filesystem of ``services/`` if ``staging/`` is elsewhere.

        Switching to a version renames its tree into ``services/``, which works
        only within one filesystem; an operator may mount ``staging/`` apart (a
        fast or a separate disk).  The copy is a hidden ``services/.staged-*``
        directory, which the recovery at the next open removes if the node dies
        with it.  Blocking, like :meth:`stage`.
        """
        if os.stat(staging_dir).st_dev == os.stat(self.services_dir).st_dev:
            return staging_dir
        near = Path(tempfile.mkdtemp(prefix=".staged-", dir=self.services_dir))
        try:
            shutil.copytree(staging_dir / "tree", near / "tree", symlinks=True)
            shutil.copy2(staging_dir / "archive.tar.gz", near / "archive.tar.gz")
            if self.settings.fsync:
                fsync_tree(near)
        except BaseException:
            remove_tree(near)
            raise
        remove_tree(staging_dir)
        return near

    def discard(self, staged: StagedArchive) -> None:
        """Forget a staged archive that will not be installed."""
        remove_tree(staged.staging_dir)

    def check_policy(self, staged: StagedArchive, *, force: bool) -> None:
        """Refuse a reinstall, downgrade or same-version change unless ``force``.

        An upgrade (a strictly newer semantic version) needs no force.  Installing
        an older version is treated as a downgrade attack unless the operator forces it.
        """
        current = self._records.get(staged.service_name)
        if current is None or force:
            return
        name = staged.service_name
        new = staged.unpacked.manifest.version
        old = Version.parse(current.current.version)
        if new > old:
            return
        if new == old and staged.archive_hash == current.current.archive_hash:
            raise ServiceInstallationError(
                f"service {name!r} {old} is already installed with this archive; "
                "pass force_reinstall=True to reinstall it",
                code="already_installed",
            )
        if new == old:
            raise ServiceInstallationError(
                f"service {name!r} {old} is installed from a different archive "
                f"({current.current.archive_hash[:12]}); a changed service needs a new version, "
                "or force_reinstall=True to replace it",
                code="version_conflict",
            )
        raise ServiceInstallationError(
            f"refusing to downgrade {name!r} from {old} to {new}; pass force_reinstall=True to allow it",
            code="downgrade_refused",
        )

    def install(self, staged: StagedArchive, *, force: bool, release: bytes | None = None) -> ServiceRecord:
        """Switch the service to the staged version atomically and keep the old one.

        The staging directory is consumed whatever happens.  On any failure before
        the switch, the service stays at its current version and nothing of the
        new one remains.  ``release``: the verified statement it was signed with, kept with
        the version; in the same transaction the service's release floor
        (:meth:`release_floor`) rises to this version if it is higher.
        """
        try:
            self.check_policy(staged, force=force)
            record = self._switch_to_staged(staged, release)
        finally:
            remove_tree(staged.staging_dir)
        self._prune(record.name)
        return self._records[record.name]

    def _switch_to_staged(self, staged: StagedArchive, release: bytes | None) -> ServiceRecord:
        name = staged.service_name
        unpacked = staged.unpacked
        versions_dir = self.services_dir / name / "versions"
        versions_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        relative = (
            f"{name}/versions/{unpacked.manifest.version}-{unpacked.archive_hash[:12]}-{secrets.token_hex(3)}"
        )
        target = self.services_dir / relative
        cached = self.archive_path(unpacked.archive_hash)
        crashpoint("store.install.before_move")
        try:
            os.rename(staged.staging_dir / "tree", target)
        except OSError as exc:
            raise _switch_failed(target, exc) from exc
        try:
            if not cached.exists():
                try:
                    os.rename(staged.archive_file, cached)
                except OSError as exc:
                    raise _switch_failed(cached, exc) from exc
            if self.settings.fsync:
                fsync_dir(versions_dir)
                fsync_dir(self.archives_dir)
            crashpoint("store.install.after_move")
            previous = self._records.get(name)
            draft = VersionRecord(
                id=0,
                service=name,
                version=str(unpacked.manifest.version),
                archive_hash=unpacked.archive_hash,
                archive_size=unpacked.archive_size,
                manifest=unpacked.manifest.to_dict(),
                files_count=unpacked.files_count,
                directory=relative,
                installed_at=utc_now_iso(),
                release=release,
            )
            floor = self._floors.get(name)
            raises_floor = release is not None and (
                floor is None or unpacked.manifest.version > Version.parse(floor)
            )
            with self._db.transaction(ServiceInstallationError) as cur:
                version_id = _db.insert_version(cur, draft)
                _db.set_current(cur, name, version_id)
                if raises_floor:
                    _db.set_release_floor(cur, name, draft.version)
                crashpoint("store.install.before_commit")
        except BaseException:
            remove_tree(target)
            if not self._archive_in_use(unpacked.archive_hash):
                remove_tree(cached)
            raise
        if raises_floor:
            self._floors[name] = draft.version
        installed = VersionRecord(**{**draft.__dict__, "id": version_id})
        kept = (*previous.versions, installed) if previous else (installed,)
        if previous is not None:
            record = replace(previous, current=installed, versions=kept)
        else:
            record = ServiceRecord(name=name, current=installed, versions=kept, desired_state="stopped")
        self._records[name] = record
        crashpoint("store.install.after_commit")
        point_symlink(self.services_dir / name / "current", f"versions/{Path(relative).name}")
        return record

    def _archive_in_use(self, archive_hash: str) -> bool:
        return any(v.archive_hash == archive_hash for r in self._records.values() for v in r.versions)

    def _prune(self, name: str) -> None:
        """Forget versions beyond ``keep_versions`` (oldest first, never the current one)."""
        record = self._records[name]
        excess = len(record.versions) - self.settings.keep_versions
        if excess <= 0:
            return
        doomed = [v for v in record.versions if v.id != record.current.id][:excess]
        with self._db.transaction() as cur:
            _db.delete_versions(cur, [v.id for v in doomed])
        kept = tuple(v for v in record.versions if v not in doomed)
        self._records[name] = replace(record, versions=kept)
        for version in doomed:
            self._to_trash(self.version_dir(version))
            if not self._archive_in_use(version.archive_hash):
                self.archive_path(version.archive_hash).unlink(missing_ok=True)

    # -- other changes ---------------------------------------------------------

    def rollback(self, name: str) -> ServiceRecord:
        """Make the previously installed version current again."""
        record = self.get(name)
        previous = record.previous()
        if previous is None:
            raise ServiceManagementError(
                f"service {name!r} has no earlier version to roll back to (only {record.current.version} is kept)",
                code="no_previous_version",
            )
        return self._make_current(record, previous)

    def set_current(self, name: str, version_id: int, *, revert: Mapping[str, Any]) -> ServiceRecord:
        """Make the kept version ``version_id`` current again: an automatic revert, recorded as ``revert``.

        The switch and the record of why are one transaction.
        """
        record = self.get(name)
        target = next((v for v in record.versions if v.id == version_id), None)
        if target is None:
            raise ServiceManagementError(
                f"the version of {name!r} to switch back to is no longer kept (see [store] keep_versions)",
                code="version_missing",
            )
        return self._make_current(record, target, revert=revert)

    def _make_current(
        self, record: ServiceRecord, previous: VersionRecord, *, revert: Mapping[str, Any] | None = None
    ) -> ServiceRecord:
        name = record.name
        if not self.version_dir(previous).is_dir():
            raise ServiceManagementError(
                f"the files of {name!r} {previous.version} are missing from {self.version_dir(previous)}",
                code="version_missing",
            )
        with self._db.transaction() as cur:
            _db.set_current(cur, name, previous.id)
            if revert is not None:
                _db.set_last_revert(cur, name, revert)
            crashpoint("store.rollback.before_commit")
        updated = replace(
            record, current=previous, last_revert=revert if revert is not None else record.last_revert
        )
        self._records[name] = updated
        point_symlink(self.services_dir / name / "current", f"versions/{Path(previous.directory).name}")
        return updated

    def uninstall(self, name: str) -> ServiceRecord:
        """Forget ``name`` and delete its versions and cached archives."""
        record = self.get(name)
        with self._db.transaction() as cur:
            _db.delete_service(cur, name)
            crashpoint("store.uninstall.before_commit")
        del self._records[name]
        crashpoint("store.uninstall.after_commit")
        self._to_trash(self.services_dir / name)
        for version in record.versions:
            if not self._archive_in_use(version.archive_hash):
                self.archive_path(version.archive_hash).unlink(missing_ok=True)
        return record

    def _to_trash(self, path: Path) -> None:
        """Take ``path`` out of the store at once (a rename); :meth:`empty_trash` deletes it."""
        if path.exists():
            os.rename(path, self.trash_dir / f"{path.name}-{secrets.token_hex(4)}")

    def empty_trash(self) -> None:
        """Delete what uninstall and pruning moved aside (blocking; safe in a worker thread).

        It touches only ``trash/``, never the database, so it may run while the
        event loop thread goes on with other operations.
        """
        with self._trash_lock:
            for doomed in list(self.trash_dir.iterdir()):
                remove_tree(doomed)

    def set_desired_state(self, name: str, state: str) -> None:
        """Record whether ``name`` should be running after a node restart."""
        if state not in ("running", "stopped"):
            raise ValueError(f"desired state must be 'running' or 'stopped', not {state!r}")
        record = self.get(name)
        if record.desired_state == state:
            return
        with self._db.transaction() as cur:
            _db.set_desired_state(cur, name, state)
        self._records[name] = replace(record, desired_state=state)

    # -- recovery ---------------------------------------------------------------

    def _dead_temp_files(self) -> list[Path]:
        """Temporary files of the home's atomic writes (``.peers.json.<pid>.tmp``...) whose writer is gone.

        The identity key, the peer book and the roles file are each written to a
        temporary file named with the writer's pid, then renamed; a process killed
        in between leaves the temporary file behind.
        """
        dead = []
        for path in self.home.glob(".*.tmp"):
            pid = path.name.rsplit(".", 2)[-2]
            if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
                dead.append(path)
        return dead

    def _recover(self) -> None:
        """Remove what an interrupted operation left behind and repair derived state.

        The database is the truth: version directories and archives it does not
        reference are debris of an install that never committed (or of an
        uninstall or prune that committed but did not finish deleting).
        """
        removed = 0
        for debris in [*self.staging_root.iterdir(), *self.trash_dir.iterdir(), *self._dead_temp_files()]:
            remove_tree(debris)
            removed += 1
        referenced = {v.directory for r in self._records.values() for v in r.versions}
        for service_dir in self.services_dir.iterdir():
            name = service_dir.name
            if name not in self._records:
                remove_tree(service_dir)
                removed += 1
                continue
            versions_dir = service_dir / "versions"
            if versions_dir.is_dir():
                for version_dir in versions_dir.iterdir():
                    if f"{name}/versions/{version_dir.name}" not in referenced:
                        remove_tree(version_dir)
                        removed += 1
            current = self._records[name].current
            point_symlink(service_dir / "current", f"versions/{Path(current.directory).name}")
        hashes = {v.archive_hash for r in self._records.values() for v in r.versions}
        for archive in self.archives_dir.iterdir():
            if archive.name.removesuffix(".tar.gz") not in hashes:
                remove_tree(archive)
                removed += 1
        orphans = self._db.orphan_version_ids()
        if orphans:
            with self._db.transaction() as cur:
                _db.delete_versions(cur, orphans)
        if removed:
            log.info(
                "Recovered store at %s: removed %d leftover item(s) of interrupted operations",
                self.home,
                removed,
            )
        for record in self._records.values():
            if not self.version_dir(record.current).is_dir():
                log.error(
                    "Service %s: files of the current version %s are missing from %s",
                    record.name,
                    record.current.version,
                    self.version_dir(record.current),
                )
