"""``NodeTransfers``: a node's side of moving archives -- ``distribute_service`` and ``fetch_service``.

The node opens one while it runs (``node.transfers``); it owns, and tears down with the node:

* the partial transfers under ``<home>/partial``
  (:class:`~p2p_orchestrator.transfer.PartialStore`: bounded in size and age, dedup against the
  store's archive cache), collected every :data:`COLLECT_INTERVAL` seconds;
* the handler of ``/p2p-orchestrator/transfer/1.0.0``
  (:class:`~p2p_orchestrator.node.distribution.handler.TransferStreamHandler`): pushes to install,
  fetches to serve;
* the outbound side: :class:`~p2p_orchestrator.node.distribution.pusher.ArchivePusher` and
  :class:`~p2p_orchestrator.node.distribution.fetcher.ArchiveFetcher`;
* the manifests of the archives it sends (:class:`~p2p_orchestrator.node.distribution._archives.ManifestCache`).

While it runs it is the orchestrator's
:class:`~p2p_orchestrator.orchestrator.distribution.Distributor` (the node lends it in its
:class:`~p2p_orchestrator.orchestrator.NetworkLink`).  The rules it applies -- deadlines, limits,
roles, retries -- are in ``docs/protocol.md``, "Transfer protocol", "The node's rules".

:class:`TransferHooks` lets tests and benchmarks cut streams at chosen points.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Protocol, TypeVar, cast

import trio
from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.network.exceptions import SwarmException

from p2p_orchestrator.errors import OrchestratorError, ServiceCallError, ServiceDistributionError
from p2p_orchestrator.node.access import AccessControl
from p2p_orchestrator.node.distribution._archives import ManifestCache
from p2p_orchestrator.node.distribution._transfer_stream import TransferBytes, TransferStream
from p2p_orchestrator.node.distribution.context import TransferHooks, TransferSettings
from p2p_orchestrator.node.distribution.fetcher import ArchiveFetcher
from p2p_orchestrator.node.distribution.handler import TransferStreamHandler
from p2p_orchestrator.node.distribution.pusher import ArchivePusher
from p2p_orchestrator.node.distribution.swarm_origin import SwarmPusher
from p2p_orchestrator.node.distribution.swarm_registry import SwarmMembers
from p2p_orchestrator.node.host._build import parse_peer_id
from p2p_orchestrator.node.host._limits import StreamLimiter
from p2p_orchestrator.node.host._stream import NetStream, RawStream
from p2p_orchestrator.orchestrator import Orchestrator
from p2p_orchestrator.orchestrator.distribution import (
    DistributionProgress,
    DistributionRequest,
    InstallArchive,
    TargetOutcome,
)
from p2p_orchestrator.transfer import (
    DEFAULT_CHUNK_SIZE,
    TRANSFER_PROTOCOL_ID,
    PartialStore,
    PartialTransfer,
    TransferManifest,
)


class NodeView(Protocol):
    """What the transfer side needs of its :class:`~p2p_orchestrator.node.Node`."""

    @property
    def orchestrator(self) -> Orchestrator: ...

    @property
    def access(self) -> AccessControl: ...

    @property
    def host(self) -> IHost: ...

    @property
    def peer_id(self) -> str: ...

    async def connect(self, target: str) -> str: ...


__all__ = ["COLLECT_INTERVAL", "NodeTransfers", "TransferHooks", "TransferSettings"]

log = logging.getLogger("p2p_orchestrator.transfer")

_T = TypeVar("_T")

TRANSFER_PROTOCOL = TProtocol(TRANSFER_PROTOCOL_ID)
COLLECT_INTERVAL = 3600.0
"""Seconds between two collections of expired partial transfers (each open also collects)."""


@dataclass
class NodeTransfers:
    """The transfer side of one running :class:`~p2p_orchestrator.node.Node`; see the module docstring."""

    STRATEGIES: ClassVar[frozenset[str]] = frozenset({"push", "swarm"})
    """The ``distribute_service`` strategies this node implements (``swarm``: issue 6)."""

    node: NodeView
    nursery: trio.Nursery
    hooks: TransferHooks = field(default_factory=TransferHooks)
    chunk_size: int = DEFAULT_CHUNK_SIZE
    """Chunk size of the manifests this node builds for what it sends."""

    def __post_init__(self) -> None:
        orchestrator, config = self.node.orchestrator, self.node.orchestrator.config
        node = config.node
        self.settings = TransferSettings(
            read_timeout=node.read_timeout,
            write_timeout=node.write_timeout,
            dial_timeout=node.dial_timeout,
            install_timeout=node.install_timeout,
            attempts=node.transfer_attempts,
            max_archive_bytes=config.archive.max_compressed_bytes,
            max_per_peer=node.max_transfers_per_peer,
            max_total=node.max_transfers_total,
            fsync=config.store.fsync,
        )
        self.orchestrator = orchestrator
        self.access = self.node.access
        self.manifests = ManifestCache(max_archive_bytes=self.settings.max_archive_bytes)
        self.bytes_moved = TransferBytes()
        """Bytes this node's transfer streams sent and received (its metrics)."""
        self.limiter = StreamLimiter(per_peer=self.settings.max_per_peer, total=self.settings.max_total)
        self.swarms = SwarmMembers(self)
        self.handler = TransferStreamHandler(self, self.swarms)
        self.pusher = ArchivePusher(self)
        self.swarm_pusher = SwarmPusher(self)
        self.fetcher = ArchiveFetcher(self)
        self._partials: PartialStore | None = None
        self._partials_lock = trio.Lock()
        self._collector = trio.CancelScope()

    # -- life ---------------------------------------------------------------------------------

    async def __aenter__(self) -> NodeTransfers:
        orchestrator = self.orchestrator
        self._partials = await trio.to_thread.run_sync(
            lambda: PartialStore(
                orchestrator.home / "partial",
                archive_cache=orchestrator.store.archives_dir,
                max_transfer_bytes=self.settings.max_archive_bytes,
                fsync=self.settings.fsync,
            )
        )
        self.node.host.set_stream_handler(TRANSFER_PROTOCOL, self.handler)
        self.nursery.start_soon(self._collect_forever, name="collect partial transfers")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._collector.cancel()
        self.handler.close()

    async def _collect_forever(self) -> None:
        with self._collector:
            while True:
                await trio.sleep(COLLECT_INTERVAL)
                try:
                    removed = await self._with_partials(lambda store: store.collect())
                except OrchestratorError as exc:
                    log.warning("Collecting stale partial transfers failed: %s", exc)
                    continue
                if removed:
                    log.info("Removed %d stale partial transfer(s)", len(removed))

    # -- the orchestrator's seam (a Distributor) ----------------------

    @property
    def strategies(self) -> frozenset[str]:
        return self.STRATEGIES

    async def distribute(
        self, request: DistributionRequest, progress: DistributionProgress
    ) -> dict[str, TargetOutcome]:
        swarm = request.strategy == "swarm" and len(request.targets) > 1  # a swarm of one is a push
        return await (self.swarm_pusher if swarm else self.pusher).distribute(request, progress)

    async def fetch(self, service_name: str, from_peer: str, install: InstallArchive) -> dict[str, Any]:
        return await self.fetcher.fetch(service_name, from_peer, install)

    # -- shared by the handler, the pusher and the fetcher --------------------------------------

    async def install_received(
        self, path: Path, *, force_reinstall: bool, auto_start: bool, release: bytes | None
    ) -> dict[str, Any]:
        return await self.orchestrator.install_received(
            path, force_reinstall=force_reinstall, auto_start=auto_start, release=release
        )

    def check_offered_release(self, release: bytes | None, *, archive_sha256: str, archive_size: int) -> None:
        self.orchestrator.check_offered_release(
            release, archive_sha256=archive_sha256, archive_size=archive_size
        )

    def release_of(self, archive_hash: str) -> bytes | None:
        return self.orchestrator.release_of(archive_hash)

    def update_delivery(self, release: bytes | None, *, archive_sha256: str) -> AbstractContextManager[None]:
        return self.orchestrator.update_delivery(release, archive_sha256=archive_sha256)

    async def install_update(self, path: Path, release: bytes, *, from_peer: str) -> dict[str, Any]:
        return await self.orchestrator.install_update(path, release, from_peer=from_peer)

    def export_path(self, service_name: str) -> Path:
        return self.orchestrator.export_path(service_name)

    @property
    def peer_id(self) -> str:
        return self.node.peer_id

    def check_target(self, peer_id: str) -> None:
        """Refuse a malformed peer ID (``bad_peer_id``) or this node's own (``bad_target``)."""
        if not isinstance(peer_id, str) or peer_id.startswith("/"):
            raise ServiceDistributionError(f"{peer_id!r:.80} is not a peer ID", code="bad_peer_id")
        try:
            parse_peer_id(peer_id)
        except ServiceCallError as exc:
            raise ServiceDistributionError(exc.message, code=exc.code) from exc
        if peer_id == self.peer_id:
            raise ServiceDistributionError(f"{peer_id} is this node itself", code="bad_target")

    async def open_stream(self, peer_id: str) -> TransferStream:
        """A new transfer stream to ``peer_id`` (connecting first); ``peer_unreachable`` if not.

        A connection that closes between the connect and the stream (py-libp2p then says "no valid
        connections") is dialled again once.
        """
        self.check_target(peer_id)
        timeout = self.settings.dial_timeout
        for attempt in (1, 2):
            try:
                await self.node.connect(peer_id)
            except ServiceCallError as exc:
                raise ServiceDistributionError(exc.message, code=exc.code) from exc
            with trio.move_on_after(timeout):
                try:
                    raw = await self.node.host.new_stream(parse_peer_id(peer_id), [TRANSFER_PROTOCOL])
                except SwarmException as exc:
                    if attempt == 1:
                        log.info(
                            "The connection to %s closed as a stream opened (%s); dialling again",
                            peer_id,
                            exc,
                        )
                        continue
                    raise _no_stream(peer_id, exc) from exc
                except Exception as exc:
                    raise _no_stream(peer_id, exc) from exc
                return self.wrap(NetStream(cast(RawStream, raw)))
            break
        raise ServiceDistributionError(
            f"opening a transfer stream to {peer_id} took longer than {timeout:g} s", code="peer_unreachable"
        )

    def wrap(self, stream: NetStream) -> TransferStream:
        return TransferStream(
            stream,
            write_timeout=self.settings.write_timeout,
            max_archive_bytes=self.settings.max_archive_bytes,
            counted=self.bytes_moved,
        )

    async def manifest_of(self, path: Path, chunk_size: int | None = None) -> TransferManifest:
        return await self.manifests.manifest_of(path, chunk_size or self.chunk_size)

    async def open_partial(self, manifest: TransferManifest) -> PartialTransfer:
        """The partial transfer of ``manifest``'s archive (resumed, new, or borrowed from the cache)."""
        return await self._with_partials(lambda store: store.open(manifest))

    async def release_partial(self, partial: PartialTransfer, *, discard: bool) -> None:
        """Close ``partial`` (kept, to resume) or discard it (installed: the store has it now).

        Never raises: a failure is logged (the partial store's collection cleans up later).
        """
        try:
            await self._with_partials(lambda store: partial.discard() if discard else partial.close())
        except (OrchestratorError, OSError) as exc:
            log.warning("Releasing the partial transfer of %s failed: %s", partial.archive_hash[:12], exc)

    async def cached_archive(self, archive_hash: str) -> Path | None:
        """A complete copy of the archive with this sha256 on this node, if there is one."""
        return await self._with_partials(lambda store: store.archive_path(archive_hash))

    async def _with_partials(self, work: Callable[[PartialStore], _T]) -> _T:
        """Run ``work`` on the partial store in a worker thread, one call at a time."""
        store = self._partials
        if store is None:
            raise ServiceDistributionError("the node's transfers are not running", code="node_closed")
        async with self._partials_lock:
            return await trio.to_thread.run_sync(work, store)


def _no_stream(peer_id: str, exc: Exception) -> ServiceDistributionError:
    return ServiceDistributionError(
        f"cannot open a transfer stream to {peer_id} (does it speak {TRANSFER_PROTOCOL_ID}?): "
        f"{type(exc).__name__}: {exc}",
        code="peer_unreachable",
    )
