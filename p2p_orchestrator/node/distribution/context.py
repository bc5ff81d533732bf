"""``TransferContext``: what the parts of a node's transfer side need of it, and no more.

The handler, the pushers, the fetcher and the swarm registry are given one at construction
(:class:`~p2p_orchestrator.node.distribution.transfers.NodeTransfers` is the one a running node has), so none
of them reaches through to the whole node; and :class:`TransferHooks` and
:class:`TransferSettings`, the numbers and test seams they share.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from p2p_orchestrator.node.access import AccessControl
from p2p_orchestrator.node.distribution._receive import CutHook
from p2p_orchestrator.node.distribution._transfer_stream import TransferStream
from p2p_orchestrator.node.host._limits import StreamLimiter
from p2p_orchestrator.node.host._stream import NetStream
from p2p_orchestrator.transfer import PartialTransfer, TransferManifest

__all__ = ["TransferContext", "TransferHooks", "TransferSettings"]


@dataclass
class TransferHooks:
    """Test seams: return ``True`` to reset the stream right there, as a dropped connection would."""

    chunk_sent: Callable[[str, int], bool] | None = None
    """``(receiver peer, chunk bytes written on this stream)`` after each chunk a sender writes."""
    chunk_stored: CutHook | None = None
    """``(sender peer, verified bytes of the archive)`` after each chunk a receiver stores."""


@dataclass(frozen=True)
class TransferSettings:
    """The numbers the transfer adapter works with (from ``[node]``, ``[archive]`` and ``[store]``)."""

    read_timeout: float
    write_timeout: float
    dial_timeout: float
    install_timeout: float
    attempts: int
    max_archive_bytes: int
    max_per_peer: int
    max_total: int
    fsync: bool
    retry_delay: float = 0.1
    """First pause before a retry; multiplied by 4 for each further one (at most 2 s)."""


class TransferContext(Protocol):
    """The transfer side of a running node, as its parts see it."""

    @property
    def settings(self) -> TransferSettings: ...

    @property
    def hooks(self) -> TransferHooks: ...

    @property
    def limiter(self) -> StreamLimiter:
        """Inbound transfer streams open, per peer and in all."""
        ...

    async def install_received(
        self, path: Path, *, force_reinstall: bool, auto_start: bool, release: bytes | None
    ) -> dict[str, Any]:
        """Install an archive a peer pushed (``install_service`` and the start it asked for)."""
        ...

    def check_offered_release(self, release: bytes | None, *, archive_sha256: str, archive_size: int) -> None:
        """Refuse an offer whose release statement is not trusted here (before a byte is written)."""

    def update_delivery(self, release: bytes | None, *, archive_sha256: str) -> AbstractContextManager[None]:
        """While an update this node follows and agreed to is delivered; raises if it did not agree."""
        ...

    async def install_update(self, path: Path, release: bytes, *, from_peer: str) -> dict[str, Any]:
        """Install and start a delivered update as the update follower does."""
        ...

    def release_of(self, archive_hash: str) -> bytes | None:
        """The release statement this node installed an archive with, to send with it."""
        ...

    def export_path(self, service_name: str) -> Path:
        """The cached archive of the service's current version (refused if not installed)."""
        ...

    @property
    def access(self) -> AccessControl:
        """Who may push and fetch here."""
        ...

    @property
    def peer_id(self) -> str:
        """This node's peer ID."""
        ...

    def check_target(self, peer_id: str) -> None:
        """Refuse a malformed peer ID (``bad_peer_id``) or this node's own (``bad_target``)."""

    async def open_stream(self, peer_id: str) -> TransferStream:
        """A new transfer stream to ``peer_id`` (connecting first); ``peer_unreachable`` if not."""
        ...

    def wrap(self, stream: NetStream) -> TransferStream:
        """An inbound stream as a transfer stream (counted, with the node's limits)."""
        ...

    async def manifest_of(self, path: Path, chunk_size: int | None = None) -> TransferManifest:
        """The manifest of the archive at ``path`` (cached; ``None``: the node's chunk size)."""
        ...

    async def open_partial(self, manifest: TransferManifest) -> PartialTransfer:
        """The partial transfer of ``manifest``'s archive (resumed, new, or borrowed from the cache)."""
        ...

    async def release_partial(self, partial: PartialTransfer, *, discard: bool) -> None:
        """Close ``partial`` (kept, to resume) or discard it; never raises."""

    async def cached_archive(self, archive_hash: str) -> Path | None:
        """A complete copy of the archive with this sha256 on this node, if there is one."""
        ...
