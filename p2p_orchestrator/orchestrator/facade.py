"""``Orchestrator``: the local life-cycle manager of one node's services.

This is the public API of the spec (``install_service``, ``list_services``...),
with its parameters and result shapes.  It knows nothing of the network: the
node layer serves the same methods to peers through :attr:`Orchestrator.rpc`,
whose table is these methods' own signatures (:func:`~p2p_orchestrator.rpc.api_method`).

Services run in child processes supervised by :mod:`p2p_orchestrator.runtime`;
the orchestrator owns the nursery their supervising tasks live in, so it must
be used as a trio async context manager::

    async with Orchestrator(home="/var/lib/p2p-orchestrator") as orch:
        result = await orch.install_service(archive_bytes)
        await orch.start_service("hello")
        answer = await orch.rpc.call("hello/greet", {"name": "Ada"})

Opening it kills processes a killed predecessor left behind and starts the
services whose desired state is ``running``; closing it stops every service
(politely, then by force) without changing their desired state.

The class is a façade: opening it builds the parts, each given what it needs,
and each method below hands its call to one of them::

    ServiceCatalog (store, settings, environments)
      ├── ServiceRunner   start, stop, restart, logs          (running.py)
      ├── Upgrades        environments, auto-start, revert     (upgrades.py)
      ├── Installer       install, uninstall, rollback         (installs.py)
      ├── Reports         list, describe, export, events...    (reports.py)
      ├── Distribution    distribute, fetch                    (distribution.py)
      ├── UpdateFollower  [updates] follow: announce, poll, update  (updates.py)
      ├── Rollouts        waves, canaries, health gate, revert      (rollouts.py)
      └── ReplicaKeeper   COUNT copies across the fleet, no leader  (replicas.py)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import trio

from p2p_orchestrator._keyed_locks import KeyedLocks
from p2p_orchestrator.callers import LOCAL_CALLER, Caller, Permission
from p2p_orchestrator.config import OrchestratorConfig, default_home, load_config
from p2p_orchestrator.errors import ServiceCallError
from p2p_orchestrator.events import EventBus
from p2p_orchestrator.orchestrator.catalog import ServiceCatalog
from p2p_orchestrator.orchestrator.distribution import Distribution, Distributor
from p2p_orchestrator.orchestrator.installs import ArchiveSource, Installer, ReleaseSource
from p2p_orchestrator.orchestrator.network import NetworkLink
from p2p_orchestrator.orchestrator.release_gate import ReleaseGate
from p2p_orchestrator.orchestrator.replicas import ReplicaKeeper, ReplicaNetwork, Scaling
from p2p_orchestrator.orchestrator.reports import Reports
from p2p_orchestrator.orchestrator.rollouts import RolloutPlan, Rollouts
from p2p_orchestrator.orchestrator.running import ServiceRunner
from p2p_orchestrator.orchestrator.shared import Counters, Shared
from p2p_orchestrator.orchestrator.updates import UpdateFollower, UpdateNetwork
from p2p_orchestrator.orchestrator.upgrades import Upgrades
from p2p_orchestrator.rpc import Rpc, api_method
from p2p_orchestrator.runtime.logs import LogFollower
from p2p_orchestrator.runtime.supervisor import Supervisor, open_supervisor
from p2p_orchestrator.runtime.venvs import VenvCache
from p2p_orchestrator.store import ServiceRecord, ServiceStore

__all__ = ["Orchestrator"]

log = logging.getLogger("p2p_orchestrator")

READ, DEPLOY, ADMIN = Permission.READ, Permission.DEPLOY, Permission.ADMIN


@dataclass(frozen=True)
class _Parts:
    """The parts of an open orchestrator, each built with what it needs."""

    catalog: ServiceCatalog
    supervisor: Supervisor
    runner: ServiceRunner
    upgrades: Upgrades
    releases: ReleaseGate
    installer: Installer
    reports: Reports
    distribution: Distribution
    updates: UpdateFollower
    rollouts: Rollouts
    replicas: ReplicaKeeper


class Orchestrator:
    """The local life-cycle manager; see the module docstring."""

    def __init__(
        self, home: str | os.PathLike[str] | None = None, *, config: OrchestratorConfig | None = None
    ):
        self.home = Path(home).expanduser() if home is not None else default_home()
        self._config = config
        self.events = EventBus()
        self.rpc = Rpc(self)
        self._parts: _Parts | None = None
        self._stack: AsyncExitStack | None = None
        self._link: NetworkLink | None = None

    # -- life of the orchestrator itself ------------------------------------------

    @property
    def config(self) -> OrchestratorConfig:
        """The configuration in force (read from ``home/config.toml`` when opened)."""
        if self._config is None:
            self._config = load_config(self.home)
        return self._config

    @property
    def _open(self) -> _Parts:
        if self._parts is None:
            raise RuntimeError("the orchestrator is not open: use 'async with Orchestrator(...)'")
        return self._parts

    @property
    def store(self) -> ServiceStore:
        """The versioned store of the installed services (see :mod:`p2p_orchestrator.store`)."""
        return self._open.catalog.store

    @property
    def supervisor(self) -> Supervisor:
        """The runtime that runs the services (see :mod:`p2p_orchestrator.runtime`)."""
        return self._open.supervisor

    async def __aenter__(self) -> Orchestrator:
        config = self.config
        venvs = VenvCache(
            self.home / "venvs",
            wheel_dir=config.runtime.wheel_dir,
            timeout=config.runtime.requirements_timeout,
        )
        store = await trio.to_thread.run_sync(
            lambda: ServiceStore(self.home, limits=config.archive, settings=config.store)
        )
        async with AsyncExitStack() as stack:
            stack.callback(self._close, store)
            catalog = ServiceCatalog(self.home, store, config, venvs)
            upgrades: Upgrades | None = None

            def on_failure(name: str, version: str | None, reason: str) -> None:
                if upgrades is not None:  # the supervisor exists before the part that reverts
                    upgrades.on_service_failure(name, version, reason)

            supervisor = await stack.enter_async_context(
                open_supervisor(
                    self.home,
                    config.runtime,
                    plan=catalog.launch_plan,
                    local_call=self._call_as_service,
                    events=self.events,
                    on_failure=on_failure,
                    stop_layers=catalog.shutdown_layers,
                )
            )
            shared = Shared(catalog, supervisor, KeyedLocks(), self.events, Counters())
            runner = ServiceRunner(shared)
            upgrades = Upgrades(shared, runner)
            releases = ReleaseGate(shared)
            installer = Installer(shared, runner, upgrades, releases)
            reports = Reports(shared, self._network_metrics)
            distribution = Distribution(
                shared, installer=installer, runner=runner, reports=reports, network=self._distributor
            )
            updates = UpdateFollower(
                shared,
                distribution=distribution,
                releases=releases,
                network=self._update_network,
            )
            rollouts = Rollouts(
                shared,
                installer=installer,
                distribution=distribution,
                reports=reports,
                call_peer=self.call_peer,
            )
            replicas = ReplicaKeeper(
                shared, runner=runner, distribution=distribution, network=self._replica_network
            )
            self._parts = _Parts(
                catalog,
                supervisor,
                runner,
                upgrades,
                releases,
                installer,
                reports,
                distribution,
                updates,
                rollouts,
                replicas,
            )
            log.info("Orchestrator started with %d installed service(s) in %s", len(store.records), self.home)
            await catalog.prune_environments()
            await runner.restore_desired_state()
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, tb)

    def _close(self, store: ServiceStore) -> None:
        self._parts = None
        store.close()

    # -- the network, while a node runs -----------------------------------------------

    @contextmanager
    def linked(self, link: NetworkLink) -> Iterator[None]:
        """Put the orchestrator on a network for the block: calls to peers, distribution, metrics.

        A node does this while it runs (:mod:`p2p_orchestrator.orchestrator.network`); one
        link at a time.
        """
        if self._link is not None:
            raise RuntimeError("this orchestrator is already on a network (one node per orchestrator)")
        self._link = link
        try:
            yield
        finally:
            self._link = None

    def _distributor(self) -> Distributor | None:
        return self._link.distributor if self._link is not None else None

    def _update_network(self) -> UpdateNetwork | None:
        link = self._link
        return UpdateNetwork(peers=link.peers, call_peer=link.call_peer) if link is not None else None

    def _replica_network(self) -> ReplicaNetwork | None:
        link = self._link
        if link is None or link.sign is None or link.verify is None or link.permissions_of is None:
            return None
        return ReplicaNetwork(
            peer_id=link.peer_id,
            peers=link.peers,
            call_peer=link.call_peer,
            sign=link.sign,
            verify=link.verify,
            permissions_of=link.permissions_of,
        )

    def _network_metrics(self) -> dict[str, Any]:
        return self._link.metrics() if self._link is not None else {}

    async def call_peer(self, peer: str, method: str, params: dict[str, Any]) -> Any:
        """Send a call to the node ``peer`` (a peer ID or a name of ``[peers]``): the RPC table's seam."""
        if self._link is None:
            raise ServiceCallError(
                f"cannot call {method} on peer {peer}: this node runs no network layer", code="no_network"
            )
        return await self._link.call_peer(self.config.resolve_peer(peer), method, params)

    async def call_service(self, service: str, method: str, params: dict[str, Any], caller: Caller) -> Any:
        """Call ``method`` of the running ``service`` as ``caller``: the RPC table's seam."""
        if self._parts is None:
            raise ServiceCallError(
                f"cannot call {service}/{method}: service {service!r} is not running",
                code="service_not_running",
            )
        return await self._parts.supervisor.call(service, method, params, caller)

    async def _call_as_service(
        self, service: str, method: str, params: dict[str, Any], peer: str | None
    ) -> Any:
        """A service's proxy call: the RPC table, as that service (which may relay to ``peer``).

        A service acts with its own rights, not the node's: it may call public methods
        of this node's services, ``orchestrator/*`` methods that only read, and what the
        operator grants it more (``[services.<name>] may = ["deploy"]``); on other nodes,
        what they grant this node.
        """
        granted = frozenset(Permission(p) for p in self.config.service(service).may)
        caller = Caller(
            peer_id=None,
            permissions=frozenset({Permission.READ}) | granted,
            public_only=True,
            service=service,
        )
        return await self.rpc.call(method, params, caller=caller, peer=peer)

    # -- install, uninstall, rollback ------------------------------------------------

    @api_method(
        DEPLOY,
        wire={"archive_data": bytes, "release": (bytes, type(None))},
        local_only=("allow_unsigned", "allow_rollback"),
    )
    async def install_service(
        self,
        archive_data: ArchiveSource,
        force_reinstall: bool = False,
        release: ReleaseSource | None = None,
        allow_unsigned: bool = False,
        allow_rollback: bool = False,
    ) -> dict[str, Any]:
        """Validate an archive and make it the service's current version.

        ``archive_data`` is the archive's bytes or a path to it.  A newer version
        than the installed one is an upgrade; the same or an older version needs
        ``force_reinstall=True``.  The previous version stays on disk for
        :meth:`rollback_service`.  Raises
        :class:`~p2p_orchestrator.ServiceInstallationError` and leaves the node
        exactly as it was when the archive or the install is refused.

        A running service is restarted on the new version; a stopped one is
        started unless the operator (``[services.<name>] auto_start``, then
        ``[runtime] auto_start``) or its manifest's ``auto_start: false`` says
        otherwise (the operator's per-service setting wins over the manifest, the
        manifest over ``[runtime]``).  ``warnings`` lists what the manifest said
        that was accepted but looks like a mistake (a ``name`` that differs from
        the archive's directory).  ``auto_started`` says whether it runs the new version now; if
        that start failed, ``auto_start_error`` says why.  When the new version
        replaced another and does not start, the service is reverted to that
        version (``reverted: true``, ``revert_reason``); when it fails within
        ``revert_window`` after this returns, the revert happens in the background
        (``service_reverted``, ``last_revert`` in :meth:`get_service_info`).

        A ``requirements.txt`` that lists packages gets the service a virtual
        environment first; if it cannot be built (``requirements_failed``),
        nothing is installed.

        ``release`` is the archive's release statement (its bytes, or from this node's own
        callers the path of its file; an archive *file* with a ``.release`` file beside it
        brings that one).  It is verified before the archive is read, and the archive must
        be the one it names; with ``[security] require_signed`` an archive without one is
        refused (``release_required``) unless this node's operator passes
        ``allow_unsigned``, and a signed release older than the highest this node ever
        installed is refused (``release_rollback``) unless the operator passes
        ``allow_rollback``.  Both flags are refused from peers and services.  See
        :mod:`p2p_orchestrator.orchestrator.release_gate`.
        """
        return await self._open.installer.install(
            archive_data,
            force_reinstall,
            release=release,
            allow_unsigned=allow_unsigned,
            allow_rollback=allow_rollback,
        )

    @api_method(DEPLOY)
    async def uninstall_service(self, service_name: str, force: bool = False) -> dict[str, Any]:
        """Stop a service if it runs, then remove it, all its kept versions and its cached archives.

        A service that installed services need is not uninstalled
        (``has_dependents``) unless ``force``: then the running ones are stopped
        first (see :meth:`stop_service`); they stay installed, and will not start
        until what they need is installed again.
        """
        return await self._open.installer.uninstall(service_name, force)

    # a rollback is a downgrade: only an admin (or the local operator) may force one
    @api_method(ADMIN)
    async def rollback_service(self, service_name: str, force: bool = False) -> dict[str, Any]:
        """Switch a service back to the version installed before the current one.

        A running service is restarted on that version.  Refused (``breaks_dependents``) when
        running services need this one in a range that version leaves out, unless ``force``.
        """
        return await self._open.installer.rollback(service_name, force)

    # -- running ------------------------------------------------------------------------

    @api_method(DEPLOY)
    async def start_service(self, service_name: str) -> dict[str, Any]:
        """Start the service's process and wait until it is running.

        What the service needs (its manifest's ``dependencies``) is started
        first, dependencies before dependents, and each must be running and
        healthy within ``[runtime] dependency_timeout``.  Raises
        :class:`~p2p_orchestrator.ServiceManagementError` when it cannot be
        loaded or initialized, exceeds the start timeout (the service is then
        ``failed`` and ``last_error`` says why), or a dependency is missing, of
        the wrong version, part of a cycle or fails.  Starting a running service
        is a no-op that succeeds.  The node starts it again after a restart.
        """
        return await self._open.runner.start(service_name)

    @api_method(DEPLOY)
    async def stop_service(self, service_name: str, force: bool = False) -> dict[str, Any]:
        """Stop the service: ``cleanup()`` within the grace period, then SIGTERM, then SIGKILL.

        It stays stopped after a node restart.  Stopping a stopped service succeeds.
        A service that running services need is not stopped (``has_dependents``)
        unless ``force``: then those services are stopped first, each before
        what it needs, and stay stopped after a node restart too.
        """
        return await self._open.runner.stop(service_name, force)

    @api_method(DEPLOY)
    async def restart_service(self, service_name: str) -> dict[str, Any]:
        """Stop the service if it runs, then start it (on its current version).

        Services that need it keep running; their calls to it fail while it restarts.
        """
        return await self._open.runner.restart(service_name)

    def is_running(self, service_name: str) -> bool:
        """Whether the service's process is up and serving (state ``running``)."""
        return self._parts is not None and self._parts.runner.is_running(service_name)

    async def service_logs(self, service_name: str, lines: int = 100) -> list[str]:
        """The last ``lines`` lines of the service's output (stdout and stderr), oldest first."""
        return await self._open.runner.logs(service_name, lines)

    @api_method(READ)
    async def get_service_logs(self, service_name: str, lines: int = 100) -> dict[str, Any]:
        """The last ``lines`` (at most 1000) lines of the service's output, as a peer may read them.

        ``{"service_name", "lines", "truncated"}``: the newest lines that fit in
        :data:`~p2p_orchestrator._replies.REPLY_BYTES`; ``truncated`` says whether older ones
        were left out for that.
        """
        return await self._open.runner.peer_logs(service_name, lines)

    def follow_logs(self, service_name: str, lines: int = 0) -> LogFollower:
        """Follow the service's output: an async iterator of lines (see :class:`LogFollower`)."""
        return self._open.runner.follow(service_name, lines)

    def data_directory(self, service_name: str, *, create: bool = True) -> Path:
        """Where ``service_name`` keeps its files: its working directory, shared by all its versions.

        ``home/data/<name>/``, made (mode 0700) on first use unless ``create`` is
        false.  It outlives upgrades, rollbacks and uninstalls (a service reinstalled
        finds its data again).
        """
        return self._open.catalog.data_directory(service_name, create=create)

    # -- reads ----------------------------------------------------------------------

    @api_method(READ)
    async def list_services(self) -> dict[str, Any]:
        """Every installed service with its state, from memory (``replicas``: its replica rule, if any)."""
        listed = await self._open.reports.list_services()
        for name, entry in listed["services"].items():
            if (replicas := self._open.replicas.summary(name)) is not None:
                entry["replicas"] = replicas
        return listed

    @api_method(READ)
    async def get_service_info(self, service_name: str) -> dict[str, Any]:
        """Everything known of one service: what ``list_services`` has, and more.

        ``metrics`` is what the service keeps in ``self.metrics`` (``counters``,
        ``gauges``, ``timers``), or ``None`` while it does not run.
        """
        info = await self._open.reports.service_info(service_name)
        if (replicas := self._open.replicas.summary(service_name)) is not None:
            info["replicas"] = replicas
        return info

    def service_configuration(
        self, record: ServiceRecord, *, redact_operator: bool = False
    ) -> dict[str, Any]:
        """The merged configuration: manifest, then ``config/default.json``, then the operator's.

        ``redact_operator``: the operator's values read ``"<redacted>"`` (for another node).
        """
        return self._open.catalog.configuration(record, redact_operator=redact_operator)

    def remote_view(self, method: str, result: Any) -> Any:
        """What another node may see of ``method``'s ``result``: no paths, no operator configuration.

        The operator's ``[services.<name>.config]`` values (tokens, passwords...) are
        replaced by ``"<redacted>"`` in ``get_service_info``'s ``configuration``, and so
        are the node's filesystem paths in ``get_service_info`` and
        ``get_orchestrator_status`` (the keys stay: the results keep their shape).
        """
        return self._open.reports.remote_view(method, result)

    @api_method(READ)
    async def export_service(self, service_name: str) -> bytes:
        """The ``.tar.gz`` of the current version, byte for byte as it was installed."""
        return await self._open.reports.export(service_name)

    def export_path(self, service_name: str) -> Path:
        """Where the current version's archive is cached (for streaming it without loading it)."""
        return self._open.reports.export_path(service_name)

    @api_method(READ)
    async def get_events(self, limit: int = 20, types: list[Any] | None = None) -> dict[str, Any]:
        """The node's recent events, oldest first: ``{"events": [...], "truncated": bool}``.

        The last ``limit`` (at most 1000) events, then only those whose type is in ``types``
        when given, then the newest that fit in :data:`~p2p_orchestrator._replies.REPLY_BYTES`
        (``truncated`` says whether older ones were left out for that).  Each is ``{type,
        service, version, time, data}``, as ``events`` prints them.
        """
        return await self._open.reports.recent_events(limit, types)

    @api_method(READ)
    async def get_metrics(self, service_name: str | None = None) -> dict[str, Any]:
        """Every service's metrics (or one's), and the node's: what ``metrics`` and Prometheus show.

        ``{"node": {...}, "services": {name: {"state", "version", "restart_count",
        "health", "calls", "call_errors", "call_seconds", "metrics"}}}``, where
        ``metrics`` is what the service keeps in ``self.metrics`` (``counters``,
        ``gauges``, ``timers``), or ``None`` while it does not run.
        """
        return await self._open.reports.metrics(service_name)

    @api_method(READ)
    async def get_orchestrator_status(self) -> dict[str, Any]:
        """The orchestrator's own state and counters."""
        return self._open.reports.status()

    # -- distribution ---------------------------------------------------------------------

    @api_method(DEPLOY)
    async def distribute_service(
        self,
        service_name: str,
        target_nodes: Sequence[str],
        *,
        force_reinstall: bool = False,
        auto_start: bool | None = None,
        strategy: str = "swarm",
        concurrency: int | None = None,
    ) -> dict[str, Any]:
        """Send the service's current archive to every node in ``target_nodes`` and install it there.

        Targets are peer IDs.  ``strategy="swarm"`` (the default): every target also fetches
        chunks from the other targets and serves them what it verified, so the origin sends the
        archive about once whatever the number of targets (issue 6; each target's ``transfer``
        then says what came from the origin and from its peers).  ``"push"``: the origin sends
        the whole archive to each target, up to ``concurrency`` (default ``[node]
        distribute_concurrency``) at once.  A swarm of one target is a push.  Each target installs
        the archive exactly as a local ``install_service`` would (``force_reinstall`` as given);
        ``auto_start=True`` also starts the service there if its install did not, while ``None``
        and ``False`` leave it to the target's own policy (manifest ``auto_start``, its
        operator's settings).  An archive a target already holds is not sent again, and a
        transfer cut mid-way resumes where it stopped (up to
        ``[node] transfer_attempts`` tries).

        Returns the spec's shape, one entry per distinct target::

            {"service_name", "total_nodes", "successful_distributions", "failed_distributions",
             "results": {node: {"success": True, "result": {...install result, "transfer"}}
                               | {"success": False, "error": "[code] message"}}}

        A failed target (unreachable, refused, rejected, timed out) does not stop the others,
        and the ones that succeeded are not rolled back.  Raises only for the call itself:
        ``no_network``, ``not_installed``, ``unknown_strategy``, ``bad_params``.
        """
        return await self._open.distribution.distribute(
            service_name,
            target_nodes,
            force_reinstall=force_reinstall,
            auto_start=auto_start,
            strategy=strategy,
            concurrency=concurrency,
        )

    @api_method(DEPLOY)
    async def fetch_service(
        self, service_name: str, from_peer: str, *, force_reinstall: bool = False
    ) -> dict[str, Any]:
        """Ask ``from_peer`` for its current archive of ``service_name`` and install it here.

        The peer serves it if this node has the ``read`` permission there.  The archive is
        installed exactly as ``install_service`` would (``force_reinstall`` as given); an
        archive this node already holds is not sent again.  Returns the install result with
        ``"fetched_from"`` and a ``"transfer"`` map.  Raises the peer's refusal as its own type
        (``PermissionDenied``, ``ServiceManagementError`` ``not_installed``), the install's
        ``ServiceInstallationError``, or ``ServiceDistributionError`` (``no_network``,
        ``peer_unreachable``, ``transfer_timeout``...).
        """
        return await self._open.distribution.fetch(service_name, from_peer, force_reinstall=force_reinstall)

    async def install_on_peer(
        self,
        archive: ArchiveSource,
        peer: str,
        *,
        force_reinstall: bool = False,
        auto_start: bool = False,
        release: ReleaseSource | None = None,
    ) -> dict[str, Any]:
        """Install an archive (bytes, or a path as for ``install_service``) on the node ``peer``, not here.

        The archive is checked here first (a bad one fails before a byte travels), then pushed
        from that checked copy by the transfer protocol, like a one-target ``distribute_service``
        with ``strategy="push"``: chunked, hash-verified, resumed after a cut, whatever its size.
        Returns the peer's install result with a ``"transfer"`` map; raises its refusal as its own
        type, or ``ServiceDistributionError`` (``no_network``, ``peer_unreachable``...).
        Not a method of the peer protocol: only this node's own callers may send its files.
        """
        return await self._open.distribution.install_on_peer(
            archive, peer, force_reinstall=force_reinstall, auto_start=auto_start, release=release
        )

    async def install_received(
        self, path: Path, *, force_reinstall: bool, auto_start: bool, release: bytes | None = None
    ) -> dict[str, Any]:
        """Install an archive a peer pushed: ``install_service`` itself, then the asked-for start.

        With ``auto_start`` and an install that did not start the service, it is started; a
        start that fails leaves the install in place and says why in ``auto_start_error``.
        """
        return await self._open.distribution.install_received(
            path, force_reinstall=force_reinstall, auto_start=auto_start, release=release
        )

    # -- releases, for the transfer side ---------------------------------------------------

    def check_offered_release(self, release: bytes | None, *, archive_sha256: str, archive_size: int) -> None:
        """Refuse a transfer's offer before a byte is written: its statement is not trusted, names
        another archive, or is missing where ``[security] require_signed`` wants one."""
        self._open.releases.offered_bytes(release, archive_sha256=archive_sha256, archive_size=archive_size)

    def release_of(self, archive_hash: str) -> bytes | None:
        """The release statement an installed archive came with (``None``: unsigned or unknown)."""
        return self._open.releases.statement_of(archive_hash)

    def update_delivery(self, release: bytes | None, *, archive_sha256: str) -> AbstractContextManager[None]:
        """While a peer delivers an update this node follows and agreed to (refused otherwise, before a
        byte is written: ``update_not_expected``); see :meth:`UpdateFollower.delivery`."""
        return self._open.updates.delivery(release, archive_sha256=archive_sha256)

    async def install_update(self, path: Path, release: bytes, *, from_peer: str) -> dict[str, Any]:
        """Install and start a delivered update, health-gated as a fetched one (``update_*`` events)."""
        return await self._open.updates.install_delivered(path, release, peer=from_peer)

    # -- releases and following services (orchestrator/updates.py) -----------------------------

    @api_method(READ)
    async def list_releases(self, names: list[str] | None = None) -> dict[str, Any]:
        """The release statements of this node's current versions: ``{"releases": {name: bytes},
        "truncated": bool}``.

        Only signed versions are listed (an unsigned one has no statement); ``names`` keeps only
        those services; at most :data:`~p2p_orchestrator._replies.REPLY_BYTES` of statements are
        sent (``truncated``: some were left out).  A follower asks its peers this every ``[updates] check_interval``.
        """
        return self._open.updates.releases(names)

    @api_method(READ, takes_caller=True)
    async def announce_release(
        self, release: bytes, deliver: bool = False, *, caller: Caller = LOCAL_CALLER
    ) -> dict[str, Any]:
        """Tell this node of a release (its statement's bytes): ``{"accepted": bool, "reason", "delivery"}``.

        Kept only when it is a release of a service this node follows (``[updates] follow``),
        newer than its installed version and than any release it knows, not a version that
        failed here, and signed by a publisher this node trusts for it; then the node installs
        it (from the announcer or another peer that holds it).  ``reason`` says why not:
        ``not_followed``, ``older_than_known``, ``known``, ``conflicting_statement``,
        ``not_newer``, ``below_release_floor``, ``failed_before``.  A statement that is malformed
        or untrusted is refused with its ``ReleaseError``; a peer that announces faster than
        ``ANNOUNCE_RATE`` (bursts of ``ANNOUNCE_BURST``) is refused ``busy``/``rate_limited``
        before its statement is read (services of this node too, each with a budget of its own).
        Peers without a role may not call it (read permission).  ``deliver`` (from a peer): it
        offers to send the release; ``delivery`` says this node wants it sent and waits for it
        (``DELIVERY_WAIT`` seconds to begin) rather than fetch it.
        """
        updates = self._open.updates
        if caller.peer_id is not None:
            return updates.announced(release, budget=caller.peer_id, holder=caller.peer_id, deliver=deliver)
        if caller.service is not None:  # someone else's code: a budget of its own, no holder
            return updates.announced(release, budget=f"service:{caller.service}", holder=None)
        return updates.announced(release, budget=None, holder=None)  # this node's operator

    @api_method(READ)
    async def get_updates(self) -> dict[str, Any]:
        """Where each followed service stands, for ``p2p-orchestrator updates``.

        ``{"services": {name: {"current_version", "newest_version", "publisher", "from_peer",
        "holders", "last_attempt": {"version", "from_peer", "outcome", "reason", "at"} | None,
        "failed_versions"}}, "check_interval", "window", "in_window", "last_check",
        "announcements_refused"}``; ``outcome`` is ``on_trial`` (within ``revert_window``),
        ``succeeded``, ``failed`` (never tried again) or ``refused`` (the statement no longer
        held when installed: expired, publisher removed; the release is forgotten).
        """
        return self._open.updates.report()

    async def publish_release(self, archive: ArchiveSource, release: ReleaseSource) -> dict[str, Any]:
        """Install a signed release here (``install_service``), announce it to the connected peers,
        and deliver it to those that follow it and want it.

        ``release`` is required: only signed releases are announced.  The followers that answer
        ``delivery`` get the archive from this node by a swarm distribution (purpose ``update``:
        they pass chunks to each other, so this node's uplink carries it about once) and install
        and start it as an update.  Returns the install result with ``"announced"``: ``{peer:
        {"accepted", "reason", "delivery"} | {"error"}}`` and ``"delivered"``: the distribution's
        result (``distribute_service``'s shape), or ``None`` when nobody asked for it (both empty
        when the upgrade did not start here and was reverted: it is not announced).  Not a method
        of the peer protocol: only this node's operator publishes from it (``p2p-orchestrator publish``).
        """
        result = await self.install_service(archive, release=release)
        if result.get("reverted"):  # it is not this node's current version: nobody could fetch it here
            return {**result, "announced": {}, "delivered": None}
        statement = self.release_of(result["archive_hash"])
        if statement is None:  # cannot happen: the install verified and kept it
            raise ServiceCallError("the published release kept no statement", code="internal_error")
        announced = await self._open.updates.announce(statement, deliver=True)
        wanting = [
            peer for peer, answer in announced.items() if isinstance(answer, dict) and answer.get("delivery")
        ]
        delivered = None
        if wanting:
            delivered = await self._open.distribution.distribute(
                result["service_name"],
                wanting,
                force_reinstall=False,
                auto_start=True,
                strategy="swarm",
                concurrency=None,
                purpose="update",
            )
        return {**result, "announced": announced, "delivered": delivered}

    def peer_connected(self, peer_id: str) -> None:
        """The network's word that a peer with a role here connected (the update follower asks it)."""
        if self._parts is not None:
            self._parts.updates.peer_connected(peer_id)

    async def follow_updates(self) -> None:
        """Follow ``[updates] follow`` until cancelled (a node runs it while it is linked)."""
        await self._open.updates.run()

    # -- rollouts (orchestrator/rollouts.py) ------------------------------------------------------

    @api_method(ADMIN)
    async def rollout_service(
        self,
        targets: list[str],
        *,
        service_name: str | None = None,
        archive_data: bytes | None = None,
        release: bytes | None = None,
        canary: int = 1,
        wave: int = 1,
        health_wait: float = 30.0,
        max_failures: int = 0,
        wait: bool = True,
    ) -> dict[str, Any]:
        """Upgrade ``targets`` to a release in waves, each target counted once it ran healthy.

        The release is this node's current version of ``service_name``, or ``archive_data`` (with
        its ``release`` statement, if signed).  First ``canary`` targets, then waves of ``wave``;
        each target is pushed the archive, installs and starts it, and must run it healthy (same
        version, not unhealthy, no restart) ``health_wait`` seconds later; a target that does not
        is reverted to the version it had.  Past ``max_failures`` failed targets the rollout halts:
        every target it upgraded goes back, later waves are never touched.  Returns the account
        (``id``, ``phase``: ``succeeded``/``halted``/``aborted``, ``targets``: ``{peer: {"wave",
        "state", "previous_version", "failed", "reason"}}``, ``waves``, ``counts``); with
        ``wait=False`` at once, the rollout going on (``rollout_status``).  The state is kept in
        ``<home>/rollouts/``: a coordinator that restarts takes the rollout up again.  Reverting
        an upgraded target needs the ``admin`` role on it (``rollback_service``).
        """
        plan = RolloutPlan(canary, wave, health_wait, max_failures)
        return await self._open.rollouts.start(
            targets, service_name=service_name, archive=archive_data, release=release, plan=plan, wait=wait
        )

    async def rollout_archive(
        self,
        archive: ArchiveSource,
        targets: list[str],
        *,
        release: ReleaseSource | None = None,
        canary: int = 1,
        wave: int = 1,
        health_wait: float = 30.0,
        max_failures: int = 0,
        wait: bool = True,
    ) -> dict[str, Any]:
        """:meth:`rollout_service` of an archive file or bytes (its ``.release`` beside it is read)."""
        plan = RolloutPlan(canary, wave, health_wait, max_failures)
        return await self._open.rollouts.start(
            targets, service_name=None, archive=archive, release=release, plan=plan, wait=wait
        )

    @api_method(READ)
    async def rollout_status(self, rollout_id: str | None = None) -> dict[str, Any]:
        """One rollout's account, or ``{"rollouts": [...]}``: every kept one, newest first."""
        return self._open.rollouts.status(rollout_id)

    @api_method(ADMIN)
    async def abort_rollout(self, rollout_id: str) -> dict[str, Any]:
        """Halt a running rollout: what it upgraded goes back, the rest stays untouched; its account."""
        return await self._open.rollouts.abort(rollout_id)

    async def wait_rollout(self, rollout_id: str) -> dict[str, Any]:
        """Until the rollout has ended; its account."""
        return await self._open.rollouts.wait(rollout_id)

    async def run_rollouts(self) -> None:
        """Drive this node's rollouts until cancelled (a node runs it while it is linked)."""
        await self._open.rollouts.run()

    # -- replicas (orchestrator/replicas.py) ------------------------------------------------------

    @api_method(DEPLOY)
    async def set_replicas(
        self,
        service_name: str,
        count: int | None = None,
        *,
        peers: list[str] | None = None,
        label: str | None = None,
        clear: bool = False,
        min_count: int | None = None,
        max_count: int | None = None,
        metric: str | None = None,
        target: float | None = None,
        cooldown: float = 30.0,
    ) -> dict[str, Any]:
        """Keep ``count`` copies of a service running across the eligible nodes (``clear``: no rule).

        Eligible: the ``peers`` listed, or the nodes with ``label`` (``KEY=VALUE`` of ``[node]
        labels``), or every node that knows the rule.  The rule (versioned, signed by this node)
        spreads to the connected peers; each node places the copies alike (rendezvous hashing over
        the live eligible nodes) and starts or stops its own.  ``count=0`` stops them all.  With
        ``metric`` and ``target`` (and ``min_count``/``max_count``), the count moves within those
        bounds so that the metric per running copy stays near the target, at most once per
        ``cooldown`` seconds.  Returns :meth:`get_replicas`' view.
        """
        scaling = None
        if metric is not None or target is not None:
            if metric is None or target is None:
                raise ServiceCallError("auto-scaling needs both metric and target", code="bad_params")
            low = min_count if min_count is not None else 1
            scaling = Scaling(
                low, max_count if max_count is not None else max(low, count or low), metric, target, cooldown
            )
        return await self._open.replicas.set_rule(
            service_name, count, peers=peers, label=label, clear=clear, scaling=scaling
        )

    @api_method(READ)
    async def get_replicas(self, service_name: str) -> dict[str, Any]:
        """The replica rule of a service and its placement as this node sees it: ``{"service_name",
        "rule": {"count", "version", "set_by", "peers", "label"} | None, "desired", "running", "live"}``."""
        return self._open.replicas.placement(service_name)

    @api_method(READ, takes_caller=True)
    async def replica_rule(self, rule: dict[str, Any], *, caller: Caller = LOCAL_CALLER) -> dict[str, Any]:
        """A replica rule from a peer: kept and passed on if signed by its setter, who may deploy here,
        and newer than the one held: ``{"accepted", "version"}``."""
        return self._open.replicas.receive(rule, relayer=caller.peer_id)

    @api_method(READ)
    async def replica_rules(self, services: list[str]) -> dict[str, Any]:
        """The replica rules this node holds of ``services``: ``{"rules": {name: rule}}``."""
        return self._open.replicas.rules_of(services)

    @api_method(READ, takes_caller=True)
    async def replica_heartbeat(
        self, beat: dict[str, Any], *, caller: Caller = LOCAL_CALLER
    ) -> dict[str, Any]:
        """A peer's heartbeat (its labels, rule versions, running copies); answered with this node's."""
        if caller.peer_id is None:
            raise ServiceCallError("replica heartbeats come from peers", code="bad_params")
        return self._open.replicas.heartbeat(beat, peer=caller.peer_id)

    async def keep_replicas(self) -> None:
        """Heartbeat and keep this node's replicas until cancelled (a node runs it while it is linked)."""
        await self._open.replicas.run()
