"""``Distribution``: the API's half that moves archives -- push to other nodes, pull from one.

``distribute_service`` sends a service's current archive to other nodes and installs it there;
``fetch_service`` asks one node for its current archive of a service and installs it here.
The orchestrator knows nothing of the network.  It checks the arguments, finds the archive,
logs, publishes the events and shapes the result; the moving is done by a :class:`Distributor`,
which the node layer gives the orchestrator while it runs, with the rest of its
:class:`~p2p_orchestrator.orchestrator.network.NetworkLink`
(:mod:`p2p_orchestrator.node.distribution.transfers` is the one a node has).  An orchestrator
without a node refuses both with ``ServiceDistributionError(code="no_network")``.

A received archive is installed by :meth:`Distribution.install_received`, which is
``install_service`` itself (same validation, version policy, auto-start, revert and
events), plus the start the sender may have asked for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from p2p_orchestrator.errors import (
    OrchestratorError,
    ServiceCallError,
    ServiceDistributionError,
)
from p2p_orchestrator.events import EventBus
from p2p_orchestrator.orchestrator.installs import ArchiveSource, Installer, ReleaseSource, read_release
from p2p_orchestrator.orchestrator.reports import Reports
from p2p_orchestrator.orchestrator.running import ServiceRunner
from p2p_orchestrator.orchestrator.shared import Part, Shared

__all__ = [
    "Distribution",
    "DistributionProgress",
    "DistributionRequest",
    "Distributor",
    "InstallArchive",
    "TargetOutcome",
]

log = logging.getLogger("p2p_orchestrator")

TargetOutcome = dict[str, Any] | OrchestratorError
"""What one target of a distribution came to: its install result, or the error."""

InstallArchive = Callable[[Path, bytes | None], Awaitable[dict[str, Any]]]
"""Install the archive file at a path on this node with its release statement (``None``:
unsigned); returns the ``install_service`` result."""

PROGRESS_INTERVAL = 0.25
"""Seconds between two ``distribution_progress`` events (each target's end is always reported)."""


@dataclass(frozen=True)
class DistributionRequest:
    """One ``distribute_service`` call, as the :class:`Distributor` gets it."""

    service_name: str
    version: str
    archive_hash: str
    archive_path: Path
    """The service's cached archive (content-addressed: ``archives/<archive_hash>.tar.gz``)."""
    archive_size: int
    targets: tuple[str, ...]
    """Peer IDs, distinct, in the caller's order (checked by the distributor, one result each)."""
    force_reinstall: bool
    auto_start: bool
    """Start the service on each target after installing it (if its install did not already)."""
    strategy: str
    concurrency: int
    """Targets served at once (>= 1)."""
    release: bytes | None = None
    """The archive's release statement, sent with it (``None``: unsigned)."""
    purpose: Literal["install", "update"] = "install"
    """``install``: each target installs it if this node may deploy there; ``update``: a delivery to
    followers that agreed to be sent this release (``release`` is then required)."""


class Distributor(Protocol):
    """Moves archives between this node and others (implemented by the node layer)."""

    @property
    def strategies(self) -> frozenset[str]:
        """The ``strategy`` values :meth:`distribute` accepts (``"push"`` and ``"swarm"``)."""
        ...

    async def distribute(
        self, request: DistributionRequest, progress: DistributionProgress
    ) -> Mapping[str, TargetOutcome]:
        """Send the archive to every target and have it installed there; one outcome per target.

        Never raises for one target's failure (it becomes that target's outcome).  Reports bytes
        and finished targets to ``progress`` as they happen.  The request's ``release`` statement
        travels with the archive.
        """
        ...

    async def fetch(self, service_name: str, from_peer: str, install: InstallArchive) -> dict[str, Any]:
        """Fetch ``from_peer``'s current archive of ``service_name``, install it with ``install``.

        The peer's release statement of it (if any) is checked before a byte is written and
        handed to ``install`` with the archive.  Returns ``install``'s result with a
        ``"transfer"`` map added; raises the typed error of a refusal (``PermissionDenied``,
        ``ServiceManagementError``, ``ReleaseError``...), of the install, or a
        ``ServiceDistributionError`` for the transfer itself.
        """
        ...


class DistributionProgress:
    """Where a distributor reports progress: publishes ``distribution_progress``, logs each target.

    ``sent(target, n)`` after each chunk the origin sends; ``received(target, n)`` when what
    ``target`` holds grows (its reports, the chunks written to it); ``finished(target,
    outcome)`` once per target.  Events are throttled to one per :data:`PROGRESS_INTERVAL`
    seconds, except that every finished target publishes one.  Their data:

    * ``archive_hash``, ``archive_size``;
    * ``bytes_sent``: every chunk byte the origin sent so far, to all targets, retries included;
    * ``bytes_received``: the sum over the targets of the bytes of the archive each holds, from
      any source (the origin, the other targets of a swarm, an earlier transfer);
    * ``bytes_total``: the archive's size times the targets (what ``bytes_received`` reaches
      when every target succeeded; also what a push without dedup or resume sends);
    * ``targets_done``, ``targets_failed``, ``targets_total``;
    * ``targets``: ``{peer ID: {"bytes_received", "bytes_sent", "state"}}`` for the targets whose
      figures changed since the previous event (``state``: ``transferring``, ``succeeded`` or
      ``failed``); a watcher keeps each target's latest figures.
    """

    def __init__(self, events: EventBus, request: DistributionRequest, *, clock: Callable[[], float]) -> None:
        self._events = events
        self._request = request
        self._clock = clock
        self.bytes_sent = 0
        self.bytes_received = 0
        self.succeeded = 0
        self.failed = 0
        self._targets: dict[str, _TargetProgress] = {}
        self._changed: dict[str, _TargetProgress] = {}
        self._last = -PROGRESS_INTERVAL

    def _target(self, target: str) -> _TargetProgress:
        figures = self._targets.get(target)
        if figures is None:
            figures = self._targets[target] = _TargetProgress()
        self._changed[target] = figures
        return figures

    def sent(self, target: str, count: int) -> None:
        """``count`` more chunk bytes went to ``target``."""
        self.bytes_sent += count
        self._target(target).sent += count
        self._tick()

    def received(self, target: str, count: int) -> None:
        """``target`` holds ``count`` bytes of the archive now (never less than it said before)."""
        count = min(count, self._request.archive_size)
        figures = self._targets.get(target)
        if figures is not None and count <= figures.received:
            return
        figures = self._target(target)
        self.bytes_received += count - figures.received
        figures.received = count
        self._tick()

    def _tick(self) -> None:
        if self._clock() - self._last >= PROGRESS_INTERVAL:
            self._publish()

    def finished(self, target: str, outcome: TargetOutcome) -> None:
        """``target`` is done: log it and publish the progress."""
        name = self._request.service_name
        figures = self._target(target)
        if isinstance(outcome, OrchestratorError):
            self.failed += 1
            figures.state = "failed"
            log.warning("Distributing service %s to node %s failed: %s", name, target, outcome)
        else:
            self.succeeded += 1
            figures.state = "succeeded"
            self.bytes_received += self._request.archive_size - figures.received
            figures.received = self._request.archive_size  # it installed the whole archive
            log.info("Successfully distributed service %s to node %s", name, target)
        self._publish()

    def _publish(self) -> None:
        request = self._request
        self._last = self._clock()
        changed, self._changed = self._changed, {}
        self._events.publish(
            "distribution_progress",
            request.service_name,
            request.version,
            archive_hash=request.archive_hash,
            archive_size=request.archive_size,
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received,
            bytes_total=request.archive_size * len(request.targets),
            targets_done=self.succeeded + self.failed,
            targets_failed=self.failed,
            targets_total=len(request.targets),
            targets={target: figures.to_dict() for target, figures in changed.items()},
        )


@dataclass
class _TargetProgress:
    """One target's figures in ``distribution_progress`` events."""

    sent: int = 0
    received: int = 0
    state: str = "transferring"

    def to_dict(self) -> dict[str, Any]:
        return {"bytes_received": self.received, "bytes_sent": self.sent, "state": self.state}


def _entry(outcome: TargetOutcome) -> dict[str, Any]:
    if isinstance(outcome, OrchestratorError):
        return {"success": False, "error": str(outcome)}
    return {"success": True, "result": outcome}


def _targets(target_nodes: Sequence[str]) -> tuple[str, ...]:
    if isinstance(target_nodes, str | bytes) or not isinstance(target_nodes, Sequence):
        raise ServiceCallError("target_nodes must be a list of peer IDs", code="bad_params")
    if not all(isinstance(node, str) for node in target_nodes):
        raise ServiceCallError("target_nodes must be a list of peer IDs (text)", code="bad_params")
    return tuple(dict.fromkeys(target_nodes))  # distinct, in the caller's order


class Distribution(Part):
    """``distribute_service``, ``fetch_service`` and their helpers; see the module docstring."""

    def __init__(
        self,
        shared: Shared,
        *,
        installer: Installer,
        runner: ServiceRunner,
        reports: Reports,
        network: Callable[[], Distributor | None],
    ) -> None:
        super().__init__(shared)
        self._installer = installer
        self._runner = runner
        self._reports = reports
        self._network_of = network

    def _network(self, what: str) -> Distributor:
        distributor = self._network_of()
        if distributor is None:
            raise ServiceDistributionError(
                f"cannot {what}: this orchestrator runs without a network node "
                "(start it as a node: p2p-orchestrator node, or Node(orchestrator))",
                code="no_network",
            )
        return distributor

    async def distribute(
        self,
        service_name: str,
        target_nodes: Sequence[str],
        *,
        force_reinstall: bool,
        auto_start: bool | None,
        strategy: str,
        concurrency: int | None,
        purpose: Literal["install", "update"] = "install",
    ) -> dict[str, Any]:
        """``distribute_service``: check the call, hand it to the distributor, shape the result.

        ``purpose="update"`` delivers the current version's release to followers that agreed to it
        (:meth:`UpdateFollower.announced <p2p_orchestrator.orchestrator.updates.UpdateFollower.announced>`).
        """
        targets = _targets(target_nodes)
        if type(concurrency) is not int and concurrency is not None:
            raise ServiceCallError("concurrency must be a whole number >= 1", code="bad_params")
        limit = self._catalog.config.node.distribute_concurrency if concurrency is None else concurrency
        if limit < 1:
            raise ServiceCallError(f"concurrency must be >= 1, got {limit}", code="bad_params")
        distributor = self._network(f"distribute {service_name}")
        if strategy not in distributor.strategies:
            known = ", ".join(sorted(distributor.strategies))
            raise ServiceDistributionError(
                f"unknown distribution strategy {strategy!r}; this node supports: {known}",
                code="unknown_strategy",
            )
        record = self._store.get(service_name)
        path = self._reports.export_path(service_name)
        request = DistributionRequest(
            service_name=service_name,
            version=record.current.version,
            archive_hash=record.current.archive_hash,
            archive_path=path,
            archive_size=path.stat().st_size,
            targets=targets,
            force_reinstall=force_reinstall,
            auto_start=bool(auto_start),
            strategy=strategy,
            concurrency=limit,
            release=record.current.release,
            purpose=purpose,
        )
        if purpose == "update" and request.release is None:
            raise ServiceDistributionError(
                f"{service_name} {request.version} is unsigned: only signed releases are delivered as updates",
                code="release_required",
            )
        log.info("Distributing service %s to %d nodes", service_name, len(targets))
        started = time.monotonic()
        progress = DistributionProgress(self._events, request, clock=time.monotonic)
        outcomes = await distributor.distribute(request, progress) if targets else {}
        missing = [target for target in targets if target not in outcomes]
        if missing:  # a distributor bug must not turn into a result with holes
            raise ServiceDistributionError(
                f"the distributor returned no outcome for {', '.join(missing)}", code="transfer_failed"
            )
        results = {target: _entry(outcomes[target]) for target in targets}
        succeeded = sum(1 for entry in results.values() if entry["success"])
        seconds = time.monotonic() - started
        log.info(
            "Distributed service %s to %d of %d nodes in %.2f s",
            service_name,
            succeeded,
            len(targets),
            seconds,
        )
        self._events.publish(
            "service_distributed",
            service_name,
            request.version,
            archive_hash=request.archive_hash,
            targets_total=len(targets),
            successful=succeeded,
            failed=len(targets) - succeeded,
            bytes_sent=progress.bytes_sent,
            seconds=round(seconds, 3),
        )
        return {
            "service_name": service_name,
            "total_nodes": len(targets),
            "successful_distributions": succeeded,
            "failed_distributions": len(targets) - succeeded,
            "results": results,
        }

    async def send(self, request: DistributionRequest) -> Mapping[str, TargetOutcome]:
        """Hand a prepared request to the distributor (progress reported as events); one outcome per target."""
        distributor = self._network(f"send {request.service_name}")
        progress = DistributionProgress(self._events, request, clock=time.monotonic)
        return await distributor.distribute(request, progress)

    async def install_on_peer(
        self,
        archive: ArchiveSource,
        peer: str,
        *,
        force_reinstall: bool = False,
        auto_start: bool = False,
        release: ReleaseSource | None = None,
    ) -> dict[str, Any]:
        """Check an archive here, then push it to ``peer`` to install (a one-target push)."""
        distributor = self._network(f"install on {peer}")
        targets = _targets([peer])
        statement = await read_release(archive, release)
        staged = await self._installer.stage(archive)
        try:
            copy = staged.archive_file
            request = DistributionRequest(
                service_name=staged.service_name,
                version=str(staged.unpacked.manifest.version),
                archive_hash=staged.archive_hash,
                archive_path=copy,
                archive_size=copy.stat().st_size,
                targets=targets,
                force_reinstall=force_reinstall,
                auto_start=auto_start,
                strategy="push",
                concurrency=1,
                release=statement.to_bytes() if statement is not None else None,
            )
            log.info("Installing service %s %s on node %s", request.service_name, request.version, peer)
            progress = DistributionProgress(self._events, request, clock=time.monotonic)
            outcome = (await distributor.distribute(request, progress)).get(targets[0])
        finally:
            self._store.discard(staged)
        if outcome is None:
            raise ServiceDistributionError(
                f"the distributor returned no outcome for {peer}", code="transfer_failed"
            )
        if isinstance(outcome, OrchestratorError):
            raise outcome
        return outcome

    async def fetch(
        self,
        service_name: str,
        from_peer: str,
        *,
        force_reinstall: bool,
        expect: bytes | None = None,
        start: bool | None = None,
    ) -> dict[str, Any]:
        """``fetch_service``: the distributor fetches, the installer installs.

        ``expect``: install only if the peer sends this very release statement (an update
        follower chose it); anything else it holds now is refused (``release_changed``), and
        nothing is installed.  ``start``: as :meth:`Installer.install` takes it.
        """
        if not isinstance(from_peer, str):
            raise ServiceCallError("from_peer must be a peer ID", code="bad_params")
        distributor = self._network(f"fetch {service_name}")
        log.info("Fetching service %s from node %s", service_name, from_peer)

        async def install(path: Path, release: bytes | None) -> dict[str, Any]:
            if expect is not None and release != expect:
                raise ServiceDistributionError(
                    f"node {from_peer} no longer holds the release of {service_name} asked for "
                    "(its current version is another)",
                    code="release_changed",
                )
            return await self._installer.install(
                path, force_reinstall, release=release, start=start, received=True
            )

        result = await distributor.fetch(service_name, from_peer, install)
        log.info("Fetched service %s from node %s", service_name, from_peer)
        return {**result, "fetched_from": from_peer}

    async def install_update(self, path: Path, release: bytes) -> dict[str, Any]:
        """Install an update delivered to this follower, and start it (whatever its auto-start policy)."""
        return await self._installer.install(path, False, release=release, start=True, received=True)

    async def install_received(
        self, path: Path, *, force_reinstall: bool, auto_start: bool, release: bytes | None = None
    ) -> dict[str, Any]:
        """``install_service`` of an archive a peer pushed, then the start it asked for."""
        result = await self._installer.install(path, force_reinstall, release=release, received=True)
        if auto_start and not result.get("auto_started"):
            name = result["service_name"]
            try:
                await self._runner.start(name)
            except OrchestratorError as exc:
                log.warning("Service %s was installed from a peer but did not start: %s", name, exc)
                return {**result, "auto_start_error": exc.message}
            result = {**result, "auto_started": True}
        return result
