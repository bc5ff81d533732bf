"""``Rollouts``: upgrade a fleet in waves; a target counts only once it has run healthy.

``rollout_service`` (``p2p-orchestrator rollout``) upgrades a list of target nodes to one
release, in waves: first ``canary`` targets, then waves of ``wave`` targets, in the order given.
Within a wave:

1. each target is asked for its current version of the service (``get_service_info``; a target
   that cannot be reached is reported ``unreachable`` and skipped, never counted as a failure;
   one already at the version is ``already`` there);
2. the archive (and its release statement) is pushed to the others at once -- the swarm when
   there are several -- and installed and started there, exactly as ``distribute_service``
   installs (the target's roles, release checks and automatic revert all apply);
3. after ``health_wait`` seconds each upgraded target is asked again, and counts as ``healthy``
   only if it runs the new version, its health is not failing and it has not restarted since.

A target that fails any step is ``failed`` and is reverted at once: to the version it had
(``rollback_service``; needs the ``admin`` role there), or uninstalled if it had none; a target
that already reverted itself (its own ``auto_revert``) is only checked.  When more than
``max_failures`` targets have failed, or the operator aborts, the rollout **halts**: every target
it upgraded goes back to the version it had, latest wave first, and the targets of later waves
are never touched (``untouched``).

A rollout's state is a JSON file in ``<home>/rollouts/`` (written atomically after every step)
with its own copy of the archive, so a coordinator that stops or is killed mid-rollout takes it
up again when it restarts: a rollout that was advancing goes on from the wave it was in
(re-asking each target where it stands), one that was reverting finishes reverting.  Nothing
else coordinates: the targets need no knowledge of the rollout.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import shutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

from p2p_orchestrator._clock import utc_now_iso
from p2p_orchestrator._files import write_atomically
from p2p_orchestrator.errors import (
    OrchestratorError,
    ServiceCallError,
    ServiceDistributionError,
    ServiceManagementError,
)
from p2p_orchestrator.orchestrator.distribution import Distribution, DistributionRequest
from p2p_orchestrator.orchestrator.installs import ArchiveSource, Installer, ReleaseSource, read_release
from p2p_orchestrator.orchestrator.reports import Reports
from p2p_orchestrator.orchestrator.shared import Part, Shared

__all__ = ["ROLLOUTS_DIR", "RolloutPlan", "Rollouts"]

log = logging.getLogger("p2p_orchestrator")

ROLLOUTS_DIR = "rollouts"
"""In the node's home: one ``<id>.json`` per rollout, and ``<id>.tar.gz`` while it runs."""
KEPT_FINISHED = 20
"""Finished rollouts whose account is kept (the oldest are forgotten)."""
MAX_TARGETS = 1024
_MAX_REASON = 500

Call = Callable[[str, str, dict[str, Any]], Awaitable[Any]]

_UNREACHABLE = frozenset({"peer_unreachable", "no_route", "dial_failed", "transfer_cut", "connection_lost"})
"""Error codes that mean the target could not be reached (not that it refused or failed)."""


@dataclass(frozen=True)
class RolloutPlan:
    """How a rollout goes: wave sizes, the health wait and how many failures it tolerates."""

    canary: int = 1
    wave: int = 1
    health_wait: float = 30.0
    max_failures: int = 0


@dataclass
class RolloutTarget:
    """One target of a rollout and where it stands."""

    peer: str
    wave: int
    state: str = "pending"
    """``pending``, ``upgrading``, ``upgraded`` (waiting out ``health_wait``), ``healthy``,
    ``already`` (it ran the version before), ``failed``, ``reverted``, ``revert_failed``,
    ``unreachable`` or ``untouched`` (a halted rollout never reached it)."""
    previous_version: str | None = None
    failed: bool = False
    """It failed (``reverted``/``revert_failed`` say what became of it then); counts toward the limit."""
    reason: str | None = None
    restarts: int | None = None
    """Its restart count of the service right after the install (a crash loop raises it)."""

    def account(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("peer", "restarts")}


@dataclass
class Rollout:
    """A rollout's plan and state: what the JSON file holds."""

    id: str
    service: str
    version: str
    archive_hash: str
    release: str | None
    """The release statement, base64 (``None``: unsigned)."""
    canary: int
    wave: int
    health_wait: float
    max_failures: int
    targets: list[RolloutTarget]
    phase: str = "advancing"
    """``advancing``, ``reverting``, then ``succeeded``, ``halted`` or ``aborted``."""
    abort_requested: bool = False
    reason: str | None = None
    started_at: str = field(default_factory=utc_now_iso)
    ended_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.phase in ("succeeded", "halted", "aborted")

    @property
    def failures(self) -> int:
        return sum(1 for target in self.targets if target.failed)

    def waves(self) -> list[list[str]]:
        count = max((target.wave for target in self.targets), default=-1) + 1
        return [[t.peer for t in self.targets if t.wave == w] for w in range(count)]

    def account(self) -> dict[str, Any]:
        """What ``rollout_service`` and ``rollout_status`` answer."""
        counts: dict[str, int] = {}
        for target in self.targets:
            counts[target.state] = counts.get(target.state, 0) + 1
        return {
            "id": self.id,
            "service_name": self.service,
            "version": self.version,
            "phase": self.phase,
            "reason": self.reason,
            "failures": self.failures,
            "max_failures": self.max_failures,
            "canary": self.canary,
            "wave": self.wave,
            "health_wait": self.health_wait,
            "waves": self.waves(),
            "targets": {target.peer: target.account() for target in self.targets},
            "counts": counts,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Rollout:
        raw = json.loads(data)
        raw["targets"] = [RolloutTarget(**target) for target in raw["targets"]]
        return cls(**raw)


def plan_waves(count: int, canary: int, wave: int) -> list[int]:
    """The wave of each of ``count`` targets: ``canary`` in wave 0, then ``wave`` per wave."""
    waves = []
    for index in range(count):
        if index < canary:
            waves.append(0)
        else:
            waves.append((1 if canary else 0) + (index - canary) // wave)
    return waves


class Rollouts(Part):
    """Runs this node's rollouts; see the module docstring."""

    def __init__(
        self,
        shared: Shared,
        *,
        installer: Installer,
        distribution: Distribution,
        reports: Reports,
        call_peer: Call,
    ) -> None:
        super().__init__(shared)
        self._installer = installer
        self._reports = reports
        self._distribution = distribution
        self._call_peer = call_peer
        self._dir = self._catalog.home / ROLLOUTS_DIR
        self._rollouts: dict[str, Rollout] = {}
        self._done: dict[str, trio.Event] = {}
        self._wake_abort: dict[str, trio.Event] = {}
        self._nursery: trio.Nursery | None = None
        self._load()

    # -- the owner's loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Drive this node's rollouts until cancelled, taking up those a restart interrupted.

        A node runs it in its nursery while it is linked (rollouts need the network).
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for rollout in self._rollouts.values():
                    if not rollout.finished:
                        log.info(
                            "Taking up rollout %s of %s (%s)", rollout.id, rollout.service, rollout.phase
                        )
                        nursery.start_soon(self._drive, rollout)
                await trio.sleep_forever()
        finally:
            self._nursery = None

    # -- the API --------------------------------------------------------------------------------

    async def start(
        self,
        targets: Sequence[str],
        *,
        service_name: str | None,
        archive: ArchiveSource | None,
        release: ReleaseSource | None,
        plan: RolloutPlan,
        wait: bool,
    ) -> dict[str, Any]:
        """``rollout_service``: plan, keep, start; the final account (``wait``) or the first one."""
        canary, wave, health_wait, max_failures = plan.canary, plan.wave, plan.health_wait, plan.max_failures
        peers = _check_plan(targets, canary, wave, health_wait, max_failures)
        nursery = self._nursery
        if nursery is None:
            raise ServiceDistributionError(
                "cannot roll out: this orchestrator runs without a network node "
                "(start it as a node: p2p-orchestrator node)",
                code="no_network",
            )
        if (service_name is None) == (archive is None):
            raise ServiceCallError("give either service_name or an archive to roll out", code="bad_params")
        rollout_id = "r" + secrets.token_hex(4)
        self._dir.mkdir(parents=True, exist_ok=True)
        copy = self._dir / f"{rollout_id}.tar.gz"
        if archive is not None:
            statement = await read_release(archive, release)
            staged = await self._installer.stage(archive)
            try:
                name, version = staged.service_name, str(staged.unpacked.manifest.version)
                archive_hash = staged.archive_hash
                await trio.to_thread.run_sync(shutil.copyfile, staged.archive_file, copy)
            finally:
                self._store.discard(staged)
            statement_bytes = statement.to_bytes() if statement is not None else None
        else:
            assert service_name is not None
            record = self._store.get(service_name)
            name, version = record.name, record.current.version
            archive_hash, statement_bytes = record.current.archive_hash, record.current.release
            source = self._reports.export_path(name)
            await trio.to_thread.run_sync(shutil.copyfile, source, copy)
        waves = plan_waves(len(peers), canary, wave)
        rollout = Rollout(
            id=rollout_id,
            service=name,
            version=version,
            archive_hash=archive_hash,
            release=base64.b64encode(statement_bytes).decode() if statement_bytes is not None else None,
            canary=canary,
            wave=wave,
            health_wait=health_wait,
            max_failures=max_failures,
            targets=[RolloutTarget(peer, w) for peer, w in zip(peers, waves, strict=True)],
        )
        self._rollouts[rollout_id] = rollout
        await self._save(rollout)
        log.info(
            "Rollout %s: %s %s to %d targets in %d waves",
            rollout_id,
            name,
            version,
            len(peers),
            max(waves) + 1,
        )
        self._events.publish("rollout_started", name, version, rollout_id=rollout_id, waves=rollout.waves())
        nursery.start_soon(self._drive, rollout)
        if wait:
            await self._done_event(rollout_id).wait()
        return rollout.account()

    def status(self, rollout_id: str | None) -> dict[str, Any]:
        """``rollout_status``: one rollout's account, or every kept rollout's, newest first."""
        if rollout_id is not None:
            return self._get(rollout_id).account()
        ordered = sorted(self._rollouts.values(), key=lambda r: r.started_at, reverse=True)
        return {"rollouts": [rollout.account() for rollout in ordered]}

    async def abort(self, rollout_id: str) -> dict[str, Any]:
        """``abort_rollout``: halt a running rollout and revert what it upgraded; its account."""
        rollout = self._get(rollout_id)
        if rollout.finished:
            raise ServiceManagementError(
                f"rollout {rollout_id} has already ended ({rollout.phase})", code="rollout_finished"
            )
        rollout.abort_requested = True
        await self._save(rollout)
        self._abort_event(rollout_id).set()
        return rollout.account()

    async def wait(self, rollout_id: str) -> dict[str, Any]:
        """Until the rollout has ended; its account."""
        self._get(rollout_id)
        await self._done_event(rollout_id).wait()
        return self._get(rollout_id).account()

    def _get(self, rollout_id: str) -> Rollout:
        rollout = self._rollouts.get(rollout_id) if isinstance(rollout_id, str) else None
        if rollout is None:
            raise ServiceManagementError(f"no rollout {rollout_id!r} on this node", code="rollout_not_found")
        return rollout

    def _done_event(self, rollout_id: str) -> trio.Event:
        event = self._done.setdefault(rollout_id, trio.Event())
        if self._rollouts[rollout_id].finished:
            event.set()
        return event

    def _abort_event(self, rollout_id: str) -> trio.Event:
        return self._wake_abort.setdefault(rollout_id, trio.Event())

    # -- driving one rollout ----------------------------------------------------------------------

    async def _drive(self, rollout: Rollout) -> None:
        try:
            if rollout.phase == "advancing":
                await self._advance(rollout)
            if rollout.phase == "reverting":
                await self._halt(rollout)
        except OrchestratorError as exc:  # this node's own failure (its disk); the state file says where
            log.warning("Rollout %s stopped: %s", rollout.id, exc)
            rollout.reason = f"[{exc.code}] {exc.message}"[:_MAX_REASON]
            return
        except Exception:  # a bug must stop this rollout (kept, taken up at restart), not the node
            log.exception(
                "Rollout %s stopped by an unexpected error; it is taken up again at restart", rollout.id
            )
            return
        finally:
            if rollout.finished:
                self._done_event(rollout.id).set()
        log.info("Rollout %s ended: %s (%s)", rollout.id, rollout.phase, rollout.reason or "")
        self._events.publish(
            "rollout_finished",
            rollout.service,
            rollout.version,
            rollout_id=rollout.id,
            phase=rollout.phase,
            failures=rollout.failures,
        )
        self._archive_file(rollout).unlink(missing_ok=True)
        await self._forget_old()

    async def _advance(self, rollout: Rollout) -> None:
        for wave, _ in enumerate(rollout.waves()):
            batch = [
                t
                for t in rollout.targets
                if t.wave == wave and t.state in ("pending", "upgrading", "upgraded")
            ]
            if not batch:
                continue
            if rollout.abort_requested:
                break
            await self._upgrade_wave(rollout, batch)
            if rollout.failures > rollout.max_failures:
                rollout.reason = (
                    f"{rollout.failures} target(s) failed (at most {rollout.max_failures} allowed)"
                )
                break
        if rollout.abort_requested or rollout.failures > rollout.max_failures:
            if rollout.abort_requested and rollout.reason is None:
                rollout.reason = "aborted by the operator"
            rollout.phase = "reverting"
            await self._save(rollout)
            return
        rollout.phase, rollout.ended_at = "succeeded", utc_now_iso()
        await self._save(rollout)

    async def _upgrade_wave(self, rollout: Rollout, batch: list[RolloutTarget]) -> None:
        async with trio.open_nursery() as nursery:
            for target in batch:
                if target.state in ("pending", "upgrading"):
                    nursery.start_soon(self._probe, rollout, target)
        to_push = [t for t in batch if t.state == "upgrading"]
        if to_push:
            await self._save(rollout)
            await self._push(rollout, to_push)
        waiting = [t for t in batch if t.state == "upgraded"]
        if waiting:
            with trio.move_on_after(rollout.health_wait):
                await self._abort_event(rollout.id).wait()
            async with trio.open_nursery() as nursery:
                for target in waiting:
                    nursery.start_soon(self._check, rollout, target)
        await self._save(rollout)

    async def _probe(self, rollout: Rollout, target: RolloutTarget) -> None:
        """Where ``target`` stands: its version (first time), or whether an interrupted push landed."""
        try:
            info = await self._call(target.peer, "get_service_info", {"service_name": rollout.service})
        except OrchestratorError as exc:
            if exc.code != "not_installed":
                self._unreachable_or_failed(rollout, target, exc)
                return
            info = None
        version = info.get("version") if isinstance(info, Mapping) else None
        if target.state == "pending":
            target.previous_version = version
            if version == rollout.version:
                self._set(rollout, target, "already")
                return
            self._set(rollout, target, "upgrading")
        elif version == rollout.version and isinstance(info, Mapping):  # a push this node did not see end
            target.restarts = info.get("restart_count")
            self._set(rollout, target, "upgraded")

    async def _push(self, rollout: Rollout, targets: list[RolloutTarget]) -> None:
        release = base64.b64decode(rollout.release) if rollout.release is not None else None
        path = self._archive_file(rollout)
        request = DistributionRequest(
            service_name=rollout.service,
            version=rollout.version,
            archive_hash=rollout.archive_hash,
            archive_path=path,
            archive_size=path.stat().st_size,
            targets=tuple(t.peer for t in targets),
            force_reinstall=False,
            auto_start=True,
            strategy="swarm" if len(targets) > 1 else "push",
            concurrency=len(targets),
            release=release,
        )
        outcomes = await self._distribution.send(request)
        async with trio.open_nursery() as nursery:
            for target in targets:
                outcome = outcomes.get(target.peer)
                if isinstance(outcome, OrchestratorError) or outcome is None:
                    error = outcome or ServiceDistributionError("no outcome", code="transfer_failed")
                    if error.code in _UNREACHABLE:
                        self._set(rollout, target, "unreachable", f"[{error.code}] {error.message}")
                    else:
                        nursery.start_soon(self._fail, rollout, target, f"[{error.code}] {error.message}")
                elif outcome.get("reverted") or outcome.get("auto_start_error") or not _started(outcome):
                    why = (
                        outcome.get("revert_reason") or outcome.get("auto_start_error") or "it did not start"
                    )
                    nursery.start_soon(self._fail, rollout, target, f"did not start: {why}")
                else:
                    nursery.start_soon(self._note_restarts, rollout, target)

    async def _note_restarts(self, rollout: Rollout, target: RolloutTarget) -> None:
        try:
            info = await self._call(target.peer, "get_service_info", {"service_name": rollout.service})
            target.restarts = info.get("restart_count") if isinstance(info, Mapping) else None
        except OrchestratorError as exc:
            log.info("Rollout %s: %s did not answer after its install: %s", rollout.id, target.peer, exc)
        self._set(rollout, target, "upgraded")

    async def _check(self, rollout: Rollout, target: RolloutTarget) -> None:
        """After ``health_wait``: healthy, or failed (and reverted)."""
        try:
            info = await self._call(target.peer, "get_service_info", {"service_name": rollout.service})
        except OrchestratorError as exc:
            await self._fail(rollout, target, f"did not answer after {rollout.health_wait:g} s: {exc}")
            return
        problem = _health_problem(info, rollout.version, target.restarts)
        if problem is None:
            self._set(rollout, target, "healthy")
        else:
            await self._fail(rollout, target, problem)

    async def _fail(self, rollout: Rollout, target: RolloutTarget, reason: str) -> None:
        target.failed = True
        log.warning("Rollout %s: %s failed: %s", rollout.id, target.peer, reason)
        self._set(rollout, target, "failed", reason)
        await self._revert(rollout, target)

    async def _revert(self, rollout: Rollout, target: RolloutTarget) -> None:
        """Back to the version ``target`` had (or uninstalled, if it had none)."""
        name, previous = rollout.service, target.previous_version
        try:
            try:
                info = await self._call(target.peer, "get_service_info", {"service_name": name})
                version = info.get("version") if isinstance(info, Mapping) else None
            except OrchestratorError as exc:
                if exc.code != "not_installed":
                    raise
                version = None
            if version != previous:
                if previous is None:
                    await self._call(target.peer, "uninstall_service", {"service_name": name})
                else:
                    await self._call(target.peer, "rollback_service", {"service_name": name})
                    info = await self._call(target.peer, "get_service_info", {"service_name": name})
                    version = info.get("version") if isinstance(info, Mapping) else None
                    if version != previous:
                        raise ServiceManagementError(
                            f"after rollback_service it runs {version}, not {previous}", code="revert_failed"
                        )
        except OrchestratorError as exc:
            why = f"could not go back to {previous or 'nothing'}: [{exc.code}] {exc.message}"
            log.warning("Rollout %s: %s %s", rollout.id, target.peer, why)
            self._set(rollout, target, "revert_failed", _joined(target.reason, why))
            return
        self._set(rollout, target, "reverted", target.reason)

    async def _halt(self, rollout: Rollout) -> None:
        """Every target this rollout upgraded goes back, latest wave first; the rest stay untouched."""
        for target in rollout.targets:
            if target.state == "pending":
                self._set(rollout, target, "untouched")
        await self._save(rollout)
        for wave in reversed(range(len(rollout.waves()))):
            batch = [
                t
                for t in rollout.targets
                if t.wave == wave and t.state in ("upgrading", "upgraded", "healthy", "failed")
            ]
            async with trio.open_nursery() as nursery:
                for target in batch:
                    if not target.failed:
                        target.reason = rollout.reason
                    nursery.start_soon(self._revert, rollout, target)
            await self._save(rollout)
        rollout.phase = "aborted" if rollout.abort_requested else "halted"
        rollout.ended_at = utc_now_iso()
        await self._save(rollout)

    # -- helpers ------------------------------------------------------------------------------------

    async def _call(self, peer: str, method: str, params: dict[str, Any]) -> Any:
        return await self._call_peer(peer, f"orchestrator/{method}", params)

    def _unreachable_or_failed(self, rollout: Rollout, target: RolloutTarget, exc: OrchestratorError) -> None:
        reason = f"[{exc.code}] {exc.message}"[:_MAX_REASON]
        if exc.code in _UNREACHABLE or target.state == "pending":
            self._set(rollout, target, "unreachable", reason)  # never touched: skipped
        else:  # mid-push: it may run the new version; the halt or a later check will tell
            target.failed = True
            self._set(rollout, target, "failed", reason)

    def _set(self, rollout: Rollout, target: RolloutTarget, state: str, reason: str | None = None) -> None:
        target.state = state
        if reason is not None:
            target.reason = reason[:_MAX_REASON]
        self._events.publish(
            "rollout_progress",
            rollout.service,
            rollout.version,
            rollout_id=rollout.id,
            peer=target.peer,
            wave=target.wave,
            state=state,
            reason=target.reason,
        )

    def _archive_file(self, rollout: Rollout) -> Path:
        return self._dir / f"{rollout.id}.tar.gz"

    async def _save(self, rollout: Rollout) -> None:
        data = rollout.to_json()
        path = self._dir / f"{rollout.id}.json"
        fsync = self._catalog.config.store.fsync
        await trio.to_thread.run_sync(lambda: write_atomically(path, data, fsync=fsync))

    def _load(self) -> None:
        if not self._dir.is_dir():
            return
        for path in sorted(self._dir.glob("*.json")):
            try:
                rollout = Rollout.from_json(path.read_bytes())
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.warning("Ignoring the damaged rollout file %s: %s", path, exc)
                continue
            if not rollout.finished and not self._archive_file(rollout).is_file():
                rollout.phase, rollout.reason = "halted", "its archive copy is gone; nothing more was done"
            self._rollouts[rollout.id] = rollout

    async def _forget_old(self) -> None:
        finished = sorted((r for r in self._rollouts.values() if r.finished), key=lambda r: r.started_at)
        for rollout in finished[:-KEPT_FINISHED]:
            del self._rollouts[rollout.id]
            (self._dir / f"{rollout.id}.json").unlink(missing_ok=True)


def _check_plan(
    targets: Sequence[str], canary: int, wave: int, health_wait: float, max_failures: int
) -> list[str]:
    if isinstance(targets, str | bytes) or not isinstance(targets, Sequence):
        raise ServiceCallError("targets must be a list of peer IDs", code="bad_params")
    peers = list(dict.fromkeys(targets))
    if not peers or not all(isinstance(peer, str) and peer for peer in peers):
        raise ServiceCallError("targets must be a non-empty list of peer IDs", code="bad_params")
    if len(peers) > MAX_TARGETS:
        raise ServiceCallError(f"at most {MAX_TARGETS} targets per rollout", code="bad_params")
    for label, value, least in (("canary", canary, 0), ("wave", wave, 1), ("max_failures", max_failures, 0)):
        if type(value) is not int or value < least:
            raise ServiceCallError(
                f"{label} must be a whole number >= {least}, got {value!r}", code="bad_params"
            )
    if not isinstance(health_wait, int | float) or not 0 <= health_wait <= 86_400:
        raise ServiceCallError("health_wait must be between 0 and 86400 seconds", code="bad_params")
    return peers


def _started(outcome: Mapping[str, Any]) -> bool:
    return bool(outcome.get("auto_started") or outcome.get("started"))


def _health_problem(info: Any, version: str, restarts: int | None) -> str | None:
    """Why a target does not count as healthy on ``version`` (``None``: it does)."""
    if not isinstance(info, Mapping):
        return "get_service_info answered no map"
    if info.get("version") != version:
        revert = info.get("last_revert")
        why = revert.get("reason") if isinstance(revert, Mapping) else None
        return (
            f"it runs {info.get('version')}, not {version}: it reverted itself ({why or 'no reason given'})"
        )
    if not info.get("running"):
        return f"the service is not running ({info.get('state')}: {info.get('last_error')})"
    health = info.get("health")
    status = health.get("status") if isinstance(health, Mapping) else None
    if status == "unhealthy":
        return f"its health check fails: {health.get('last_error') if isinstance(health, Mapping) else ''}"
    count = info.get("restart_count")
    if isinstance(restarts, int) and isinstance(count, int) and count > restarts:
        return f"it restarted {count - restarts} time(s) since it was upgraded"
    return None


def _joined(first: str | None, second: str) -> str:
    return f"{first}; {second}" if first else second
