"""``Installer``: validate an archive and switch versions -- install, uninstall, roll back.

Blocking work (unpacking, hashing, fsync) runs in worker threads so the event loop
stays responsive.  What happens to the running service when its version changes
is :class:`~p2p_orchestrator.orchestrator.upgrades.Upgrades`' business.
"""

from __future__ import annotations

import io
import logging
import os
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import trio

from p2p_orchestrator._clock import utc_now_iso
from p2p_orchestrator.errors import (
    OrchestratorError,
    ReleaseError,
    ServiceInstallationError,
    ServiceManagementError,
)
from p2p_orchestrator.orchestrator.release_gate import ReleaseGate
from p2p_orchestrator.orchestrator.running import ServiceRunner
from p2p_orchestrator.orchestrator.shared import Part, Shared
from p2p_orchestrator.orchestrator.upgrades import Upgrades
from p2p_orchestrator.release import MAX_STATEMENT_BYTES, RELEASE_SUFFIX, ReleaseStatement
from p2p_orchestrator.store import StagedArchive

__all__ = ["ArchiveSource", "Installer", "ReleaseSource", "read_release"]

log = logging.getLogger("p2p_orchestrator")

ArchiveSource = bytes | bytearray | memoryview | str | os.PathLike[str]
"""Archive bytes, or the path of an archive file (read in a stream, never whole)."""

ReleaseSource = bytes | str | os.PathLike[str]
"""A release statement's bytes, or the path of its file."""


class Installer(Part):
    """Install, uninstall and roll back; see the module docstring."""

    def __init__(
        self, shared: Shared, runner: ServiceRunner, upgrades: Upgrades, releases: ReleaseGate
    ) -> None:
        super().__init__(shared)
        self._runner = runner
        self._upgrades = upgrades
        self._releases = releases

    async def install(
        self,
        archive_data: ArchiveSource,
        force_reinstall: bool,
        *,
        release: ReleaseSource | None = None,
        allow_unsigned: bool = False,
        allow_rollback: bool = False,
        start: bool | None = None,
        received: bool = False,
    ) -> dict[str, Any]:
        """``install_service``: check the release, stage, check, switch, then start as the policies say.

        ``start=True`` starts the service whatever its auto-start policy (an update follower's
        install), with the same revert of an upgrade that does not start.  ``received``: the
        archive is a file the node received and verified, which nothing writes again: the store
        keeps it by a link, not a copy (never for a caller's file, which its owner may rewrite).
        """
        log.info("Installing service from %s", _describe_source(archive_data))
        try:
            statement = await read_release(archive_data, release)
            statement = self._releases.offered(statement, allow_unsigned=allow_unsigned)
            staged = await self.stage(archive_data, received=received)
            name = staged.service_name
            warnings = list(staged.unpacked.manifest.warnings)
            for warning in warnings:
                log.warning("Installing %s: %s", name, warning)
            log.info("Installing service: %s", name)
            try:
                async with self._locks.hold(name):
                    if statement is not None:
                        self._releases.check_staged(statement, staged, allow_rollback=allow_rollback)
                    await self._upgrades.prepare_install(staged, force=force_reinstall)
                    was_running = self._runner.is_up(name)
                    before = self._store.records.get(name)
                    self._upgrades.refuse_breaking_upgrade(staged, force=force_reinstall)
                    record = self._store.install(
                        staged, force=force_reinstall, release=statement.to_bytes() if statement else None
                    )
                    self._counters.installs += 1
                    log.info("Service %s installed successfully", name)
                    self._events.publish(
                        "service_installed",
                        name,
                        record.current.version,
                        archive_hash=record.current.archive_hash,
                    )
                    started = await self._upgrades.auto_start(
                        record, before.current if before else None, was_running, wanted=start
                    )
            finally:
                self._store.discard(staged)  # nothing left to do once installed; else nothing of it stays
            await self._catalog.prune_environments()
            await trio.to_thread.run_sync(self._store.empty_trash)
        except OrchestratorError as exc:
            self._counters.failed_installs += 1
            log.warning("Install refused: %s", exc)
            self._events.publish("service_install_failed", None, None, code=exc.code, message=exc.message)
            raise
        return {
            "success": True,
            "service_name": name,
            "installed_at": record.current.installed_at,
            "archive_hash": record.current.archive_hash,
            **started.to_result(),
            **({"warnings": warnings} if warnings else {}),
        }

    async def stage(self, archive_data: ArchiveSource, *, received: bool = False) -> StagedArchive:
        """Validate and unpack an archive into the store's staging area (in a worker thread).

        ``received``: as :meth:`install` takes it.
        """
        link_from = None
        if received and not isinstance(archive_data, bytes | bytearray | memoryview):
            link_from = Path(archive_data)
        with _open_source(archive_data) as source:
            return await trio.to_thread.run_sync(partial(self._store.stage, source, link_from=link_from))

    async def uninstall(self, service_name: str, force: bool) -> dict[str, Any]:
        """``uninstall_service``: stop it if it runs, then remove every kept version and archive."""
        log.info("Uninstalling service: %s", service_name)
        self._store.get(service_name)
        if force:
            await self._runner.stop_dependents(service_name)
        async with self._locks.hold(service_name):
            record = self._store.get(service_name)
            self._runner.refuse_if_needed(service_name, "stop" if force else "uninstall")
            await self._supervisor.stop(service_name)
            self._store.uninstall(service_name)
            self._supervisor.forget(service_name)
            self._upgrades.end_trial(service_name)
        await self._catalog.prune_environments()
        await trio.to_thread.run_sync(self._store.empty_trash)
        self._counters.uninstalls += 1
        log.info("Service %s uninstalled", service_name)
        self._events.publish("service_uninstalled", service_name, record.current.version)
        return {"success": True, "service_name": service_name, "uninstalled_at": utc_now_iso()}

    async def rollback(self, service_name: str, force: bool) -> dict[str, Any]:
        """``rollback_service``: switch back to the version installed before the current one."""
        async with self._locks.hold(service_name):
            current = self._store.get(service_name)
            before = current.current
            was_running = self._runner.is_up(service_name)
            previous = current.previous()
            if previous is not None and not force:
                broken = self._runner.dependents_left_out(service_name, previous.semver)
                if broken:
                    raise ServiceManagementError(
                        f"cannot roll {service_name} back to {previous.version}: running service(s) need "
                        f"another version: {broken}; stop them first, or pass force=True",
                        code="breaks_dependents",
                    )
            record = self._store.rollback(service_name)
            self._upgrades.end_trial(service_name)
            self._counters.rollbacks += 1
            log.info(
                "Service %s rolled back from %s to %s", service_name, before.version, record.current.version
            )
            self._events.publish(
                "service_rolled_back", service_name, record.current.version, from_version=before.version
            )
            if was_running:
                await self._runner.restart_locked(service_name)
        return {
            "success": True,
            "service_name": service_name,
            "rolled_back_at": utc_now_iso(),
            "from_version": before.version,
            "to_version": record.current.version,
            "archive_hash": record.current.archive_hash,
        }


async def read_release(archive_data: ArchiveSource, release: ReleaseSource | None) -> ReleaseStatement | None:
    """The statement given (bytes or a file), or the one lying next to an archive file, parsed."""
    if release is None:
        if isinstance(archive_data, bytes | bytearray | memoryview):
            return None
        beside = trio.Path(os.fspath(archive_data) + RELEASE_SUFFIX)
        if not await beside.is_file():
            return None
        release = os.fspath(beside)
    if isinstance(release, bytes):
        return ReleaseStatement.from_bytes(release)
    try:
        async with await trio.open_file(os.fspath(release), "rb") as file:
            data = await file.read(MAX_STATEMENT_BYTES + 1)
    except OSError as exc:
        raise ReleaseError(
            f"cannot read release statement {os.fspath(release)}: {exc}", code="bad_release"
        ) from exc
    return ReleaseStatement.from_bytes(data)


def _describe_source(source: ArchiveSource) -> str:
    if isinstance(source, bytes | bytearray | memoryview):
        return f"archive data ({len(source)} bytes)"
    return f"archive file {os.fspath(source)}"


def _open_source(source: ArchiveSource) -> AbstractContextManager[BinaryIO]:
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source))
    try:
        return open(os.fspath(source), "rb")
    except OSError as exc:
        raise ServiceInstallationError(
            f"cannot read archive {os.fspath(source)}: {exc}", code="unreadable_archive"
        ) from exc
