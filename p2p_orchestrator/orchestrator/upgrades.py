"""``Upgrades``: installing over a running service -- its environment, the restart, the automatic revert.

The installer (:mod:`~p2p_orchestrator.orchestrator.installs`) validates and switches
versions; this part decides what happens to the *running* service when its version
changes.  The rules of upgrade trials are in :mod:`p2p_orchestrator.runtime.revert`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from p2p_orchestrator._clock import utc_now_iso
from p2p_orchestrator.archive import Version
from p2p_orchestrator.errors import OrchestratorError, ServiceInstallationError
from p2p_orchestrator.orchestrator.running import ServiceRunner
from p2p_orchestrator.orchestrator.shared import Part, Shared
from p2p_orchestrator.runtime.health import HealthPolicy
from p2p_orchestrator.runtime.policy import RestartPolicy
from p2p_orchestrator.runtime.revert import RevertRecord, Trial, UpgradeTrials
from p2p_orchestrator.runtime.venvs import read_requirements
from p2p_orchestrator.store import ServiceRecord, StagedArchive, VersionRecord

__all__ = ["AutoStart", "Upgrades"]

log = logging.getLogger("p2p_orchestrator")


@dataclass(frozen=True)
class AutoStart:
    """What an install did to the running service: the result keys it adds."""

    started: bool = False
    error: str | None = None
    revert: RevertRecord | None = None

    def to_result(self) -> dict[str, Any]:
        """``auto_started`` (always), ``auto_start_error``, ``reverted`` and ``revert_reason`` (when so)."""
        result: dict[str, Any] = {"auto_started": self.started}
        if self.error:
            result["auto_start_error"] = self.error
        if self.revert is not None:
            result.update(reverted=True, revert_reason=self.revert.reason)
        return result


class Upgrades(Part):
    """Environment building, auto-start and auto-revert for installs; see the module docstring."""

    def __init__(self, shared: Shared, runner: ServiceRunner) -> None:
        super().__init__(shared)
        self._runner = runner
        self._trials = UpgradeTrials()

    def end_trial(self, name: str) -> None:
        """Forget ``name``'s upgrade trial (it was uninstalled or rolled back by hand)."""
        self._trials.end(name)

    async def prepare_install(self, staged: StagedArchive, *, force: bool) -> None:
        """Refuse what would fail later, then build the service's environment (before anything switches).

        The staged archive is discarded when this raises.
        """
        manifest = staged.unpacked.manifest
        try:
            try:
                RestartPolicy.from_layers(manifest.restart, where="manifest.json: restart")
            except ValueError as exc:
                raise ServiceInstallationError(str(exc), code="bad_restart_policy") from exc
            try:
                HealthPolicy.from_layers(manifest.health, where="manifest.json: health")
            except ValueError as exc:
                raise ServiceInstallationError(str(exc), code="bad_health_policy") from exc
            self._store.check_policy(staged, force=force)
            self.refuse_breaking_upgrade(staged, force=force)
            requirements = read_requirements(staged.staging_dir / "tree")
            await self._catalog.venvs.ensure(staged.service_name, requirements)
        except BaseException:
            self._store.discard(staged)
            raise

    def refuse_breaking_upgrade(self, staged: StagedArchive, *, force: bool) -> None:
        """``breaks_dependents`` when running services need this one in a range the new version leaves.

        Checked before the environment is built (fail early) and again, with no await, right before
        the switch (a dependent may have started meanwhile).  Forced, the install goes ahead and the
        dependents keep running, against a version they did not ask for (logged); a restart by
        their policy does not check again, while an operator's start is refused with
        ``dependency_version``.
        """
        name, version = staged.service_name, staged.unpacked.manifest.version
        try:
            broken = self._runner.dependents_left_out(name, version)
        except OrchestratorError as exc:  # another service's manifest no longer parses
            raise ServiceInstallationError(exc.message, code=exc.code) from exc
        if not broken:
            return
        if force:
            log.warning(
                "Installing %s %s although running services need another version: %s", name, version, broken
            )
            return
        raise ServiceInstallationError(
            f"cannot install {name} {version}: running service(s) need another version: "
            f"{broken}; upgrade or stop them first, or pass force_reinstall=True",
            code="breaks_dependents",
        )

    async def auto_start(
        self,
        record: ServiceRecord,
        before: VersionRecord | None,
        was_running: bool,
        *,
        wanted: bool | None = None,
    ) -> AutoStart:
        """Restart an upgraded running service, or auto-start a new one; revert a failed upgrade.

        ``wanted`` overrides the auto-start policy (``None``: the policy decides).

        The lock of the service is held.  When the new version does not start
        and it replaced another version, the service goes back to that version
        (running again if it was running), and a successful start of an
        upgrade begins its trial (see :mod:`~p2p_orchestrator.runtime.revert`).
        """
        name = record.name
        if wanted is None:
            wanted = self._catalog.config.service(name).auto_start
        if wanted is None:
            said = record.current.manifest.get("auto_start")
            wanted = said if isinstance(said, bool) else self._catalog.config.runtime.auto_start
        if not (was_running or wanted):
            return AutoStart()
        trial = self._trial_of(record, before)
        try:
            if was_running:
                await self._runner.restart_locked(name)
            else:
                await self._runner.start_locked(name)
        except OrchestratorError as exc:
            log.warning("Service %s was installed but did not start: %s", name, exc)
            error = exc.message
        else:
            if trial is not None:
                self._trials.begin(name, trial)
            return AutoStart(started=True)
        if trial is None:
            return AutoStart(error=error)
        return await self._revert_failed_start(name, trial, error, was_running)

    async def _revert_failed_start(self, name: str, trial: Trial, error: str, was_running: bool) -> AutoStart:
        """Revert a version that did not start; the revert's own failure is reported, not raised."""
        reason = f"version {trial.new_version} did not start: {error}"
        try:
            return AutoStart(error=error, revert=await self._revert_locked(name, trial, reason, was_running))
        except OrchestratorError as exc:  # e.g. the files of the good version are gone
            failure = exc
        log.error("Service %s could not be reverted to %s: %s", name, trial.good_version, failure)
        return AutoStart(error=f"{error} (reverting to {trial.good_version} failed: {failure.message})")

    def _trial_of(self, record: ServiceRecord, before: VersionRecord | None) -> Trial | None:
        """The trial of the version ``record`` just got, if it replaced one and auto-revert is on."""
        if before is None or before.id == record.current.id:
            return None
        settings, runtime = self._catalog.config.service(record.name), self._catalog.config.runtime
        enabled = settings.auto_revert if settings.auto_revert is not None else runtime.auto_revert
        window = settings.revert_window if settings.revert_window is not None else runtime.revert_window
        if not enabled:
            return None
        return Trial(
            new_version=record.current.version,
            new_version_id=record.current.id,
            good_version=before.version,
            good_version_id=before.id,
            until=time.monotonic() + window,
        )

    async def _revert_locked(self, name: str, trial: Trial, reason: str, restart: bool) -> RevertRecord:
        """Switch ``name`` back to its good version and start it if ``restart`` (its lock is held)."""
        log.warning(
            "Reverting service %s from %s to %s: %s", name, trial.new_version, trial.good_version, reason
        )
        self._trials.end(name)
        await self._supervisor.stop(name)
        record = RevertRecord(
            from_version=trial.new_version, to_version=trial.good_version, reason=reason, at=utc_now_iso()
        )
        self._store.set_current(name, trial.good_version_id, revert=record.to_dict())
        self._counters.reverts += 1
        try:  # a revert is not refused for them (a broken upgrade is worse), but it is said
            left_out = self._runner.dependents_left_out(name, Version.parse(trial.good_version))
        except OrchestratorError as exc:
            left_out = f"(the dependency graph is unreadable: {exc.message})"
        if left_out:
            log.warning(
                "Service %s was reverted to %s, which running services do not accept: %s",
                name,
                trial.good_version,
                left_out,
            )
        error = None
        if restart:
            try:
                await self._runner.start_locked(name)
            except OrchestratorError as exc:
                error = exc.message
        if error is not None:
            log.error(
                "Service %s was reverted to %s, which did not start either: %s",
                name,
                record.to_version,
                error,
            )
        self._events.publish(
            "service_reverted",
            name,
            trial.good_version,
            from_version=record.from_version,
            to_version=record.to_version,
            reason=reason,
            restarted=restart and error is None,
            **({"error": error} if error else {}),
            **({"dependents_left_out": left_out} if left_out else {}),
        )
        return record

    def on_service_failure(self, name: str, version: str | None, reason: str) -> None:
        """The supervisor's failure hook: revert an upgrade on trial (in the background)."""
        trial = self._trials.failed(name, version)
        if trial is not None:
            self._supervisor.spawn(self._revert_in_background, name, trial, reason)

    async def _revert_in_background(self, name: str, trial: Trial, reason: str) -> None:
        async with self._locks.hold(name):
            record = self._store.records.get(name)
            if record is None or record.current.id != trial.new_version_id:
                return  # uninstalled, rolled back or upgraded again meanwhile: nothing to revert
            failure: OrchestratorError | None = None
            try:
                await self._revert_locked(name, trial, f"version {trial.new_version} failed: {reason}", True)
            except OrchestratorError as exc:  # nobody waits for this task: the log is where it goes
                failure = exc
            if failure is not None:
                log.error("Could not revert service %s to %s: %s", name, trial.good_version, failure)
