"""``TransferStreamHandler``: the py-libp2p stream handler of ``/p2p-orchestrator/transfer/1.0.0``.

An inbound transfer stream is either a **push** (the peer's first message is an ``offer`` with
purpose ``install``: it sends us an archive to install) or a **pull** (a ``fetch``: it asks us
for an archive).  Like the RPC handler, this one contains every failure -- an exception escaping
a py-libp2p handler takes the whole host down (trap 1 of ``py-libp2p-notes.md``):

1. **Admission.**  A peer without a role here may do nothing on this protocol: its stream is
   answered, before anything is read, with one ``abort`` carrying ``PermissionDenied``, and
   closed.  Peers with a role get at most ``[node] max_transfers_per_peer`` streams each and
   ``max_transfers_total`` in all; a stream over either is answered, unread, with one ``abort``
   carrying a ``Busy`` error.  (The opener of a transfer stream always speaks first, so an
   ``abort`` as the first message is unambiguous in both roles.)  What a refused peer still
   sends is dropped until its EOF; one that goes on past 256 KiB or 5 s has the stream reset.
2. **First message** within ``read_timeout``; anything but an ``offer`` or a ``fetch`` (or bytes
   that are no message) is answered ``abort`` with the error, and the stream closed.
3. **Roles**, by the peer ID the connection authenticated: a push needs the ``deploy``
   permission, a fetch ``read``; a refusal is ``result``/``abort`` with ``PermissionDenied``.
   An update delivery (purpose ``update``) needs only a role: it is accepted when this node
   follows the service and agreed to be sent that very release (``update_delivery``), and is
   installed as the update follower installs.
4. **Push**: the partial transfer of the archive is opened (resumed, or borrowed whole from the
   store's cache: dedup), a :class:`~p2p_orchestrator.node.distribution._receive.ReceiveSession` receives the
   rest, and the verified archive is installed by
   :meth:`~p2p_orchestrator.Orchestrator.install_received` -- exactly a local install.  The
   result (or the error) goes back to the sender; the partial is discarded after an install or
   a failure of this node's disk (see :attr:`ReceiveSession.partial_spent`), and kept otherwise,
   so the sender's retry resumes it.  A peer that offers an archive
   whose transfer from that same peer is still open (it reconnected after a cut we have not
   noticed yet) replaces the old stream.
5. **Fetch**: the service's current archive (or the archive named by hash, from the store's
   cache) is served by a :class:`~p2p_orchestrator.node.distribution._send.SendSession`.

:meth:`TransferStreamHandler.close` cancels every stream being served and refuses new ones.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import trio

from p2p_orchestrator.callers import Permission
from p2p_orchestrator.errors import (
    Busy,
    OrchestratorError,
    PermissionDenied,
    ProtocolError,
    ServiceDistributionError,
)
from p2p_orchestrator.node.distribution._archives import ArchiveFile
from p2p_orchestrator.node.distribution._receive import ReceiveSession, SessionOutcome
from p2p_orchestrator.node.distribution._send import SendSession
from p2p_orchestrator.node.distribution._transfer_stream import TransferStream
from p2p_orchestrator.node.distribution.context import TransferContext
from p2p_orchestrator.node.distribution.swarm_member import SwarmMembership
from p2p_orchestrator.node.distribution.swarm_origin import SWARM_CHUNK_SIZE
from p2p_orchestrator.node.distribution.swarm_registry import SwarmMembers
from p2p_orchestrator.node.host._read_deadline import MessageDeadline
from p2p_orchestrator.node.host._stream import NetStream, RawStream, StreamBroken, reset_raw
from p2p_orchestrator.transfer import (
    Abort,
    Fetch,
    Offer,
    PartialTransfer,
    Result,
    TransferMessage,
    TransferReceiver,
    TransferSender,
)

__all__ = ["TransferStreamHandler"]

log = logging.getLogger("p2p_orchestrator.transfer")

TAKEOVER_SECONDS = 5.0
"""How long a re-offer waits for the same peer's earlier stream of that archive to wind down."""


@dataclass
class _Inbound:
    """A push being received: who sends it, and how to stop it."""

    peer_id: str
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)


class TransferStreamHandler:
    """Admits, serves and contains inbound transfer streams; see the module docstring."""

    def __init__(self, transfers: TransferContext, swarms: SwarmMembers) -> None:
        self._transfers = transfers
        self._swarms = swarms
        self._serving: set[trio.CancelScope] = set()
        self._inbound: dict[str, _Inbound] = {}
        self._closed = False

    def close(self) -> None:
        """Cancel every stream being served and refuse new ones."""
        self._closed = True
        for scope in self._serving:
            scope.cancel()

    async def __call__(self, raw: Any) -> None:
        """Handle one stream; never raises (except the host's own cancellation)."""
        net: NetStream | None = None
        try:
            net = NetStream(cast(RawStream, raw))
            await self._handle(self._transfers.wrap(net))
        except Exception:
            who = net.peer_id if net is not None else "an unknown peer"
            log.exception("The transfer stream handler failed on a stream of %s; resetting it", who)
        finally:
            if net is not None:
                await net.reset()  # a no-op once closed cleanly
            else:
                await reset_raw(raw)

    async def _handle(self, stream: TransferStream) -> None:
        if self._closed:
            return
        caller = self._transfers.access.caller_for(stream.peer_id)
        if caller is None or not caller.permissions & {Permission.READ, Permission.DEPLOY}:
            stranger = PermissionDenied(
                f"peer {stream.peer_id} has no role on this node: it may neither push nor fetch archives"
            )
            log.info("Refusing a transfer stream of %s: no role", stream.peer_id)
            await stream.refuse(Abort(stranger))
            return
        limiter = self._transfers.limiter
        with limiter.slot(stream.peer_id) as admitted:
            if not admitted:
                busy = Busy(
                    f"this node takes {limiter.per_peer} transfer streams per peer and {limiter.total} "
                    "in all; retry later"
                )
                log.info("Refusing a transfer stream of %s: %s", stream.peer_id, busy.message)
                await stream.refuse(Abort(busy))
                return
            with trio.CancelScope() as scope:
                self._serving.add(scope)
                try:
                    await self._serve(stream)
                finally:
                    self._serving.discard(scope)

    async def _serve(self, stream: TransferStream) -> None:
        first = await self._first_message(stream)
        if isinstance(first, Offer):
            await self._receive_push(stream, first)
        elif isinstance(first, Fetch):
            await self._serve_fetch(stream, first)
        elif first is not None:
            error = ProtocolError(
                f"a transfer stream must begin with an offer or a fetch, not {first.TYPE!r}",
                code="unexpected_message",
            )
            log.info("Refusing a transfer stream of %s: %s", stream.peer_id, error)
            await stream.send_last(Abort(error))

    async def _first_message(self, stream: TransferStream) -> TransferMessage | None:
        seconds = self._transfers.settings.read_timeout
        deadline = MessageDeadline(seconds)
        with deadline.reading() as scope:
            try:
                message = await stream.receive()
            except StreamBroken as exc:
                log.info("A transfer stream of %s broke before its first message: %s", stream.peer_id, exc)
                return None
            except (ProtocolError, ServiceDistributionError) as exc:
                log.info("Refusing a transfer stream of %s: %s", stream.peer_id, exc)
                await stream.send_last(Abort(exc))
                return None
        if scope.cancelled_caught:
            log.info(
                "%s sent nothing on a transfer stream within %g s; resetting it", stream.peer_id, seconds
            )
            return None
        if message is None:
            log.info("%s closed a transfer stream before its first message", stream.peer_id)
        return message

    # -- push: receive and install ------------------------------------------------------------

    async def _receive_push(self, stream: TransferStream, offer: Offer) -> None:
        peer, manifest = stream.peer_id, offer.manifest
        name = manifest.archive_hash[:12]
        with contextlib.ExitStack() as delivery:
            refusal = self._refuse_push(peer, offer)
            if refusal is None and offer.purpose == "update":
                try:  # the follower agreed to it; it fetches nothing itself meanwhile
                    delivery.enter_context(
                        self._transfers.update_delivery(offer.release, archive_sha256=manifest.archive_hash)
                    )
                except OrchestratorError as exc:
                    refusal = exc
            if refusal is None:
                await self._take_over(peer, manifest.archive_hash)
                try:
                    partial = await self._transfers.open_partial(manifest)
                except OrchestratorError as exc:
                    refusal = exc
            if refusal is not None:
                log.info("Refusing the archive %s offered by %s: %s", name, peer, refusal)
                await stream.send_last(Result.failure(refusal))
                return
            log.info(
                "Receiving archive %s (%d bytes, %d already here) from %s%s",
                name,
                manifest.total_size,
                partial.verified_bytes,
                peer,
                " as an update" if offer.purpose == "update" else "",
            )
            outcome = await self._receive(stream, offer, partial)
        if isinstance(outcome, OrchestratorError):
            log.warning("Receiving archive %s from %s failed: %s", name, peer, outcome)
        else:
            log.info(
                "Installed service %s from archive %s sent by %s", outcome.get("service_name"), name, peer
            )

    def _refuse_push(self, peer: str, offer: Offer) -> OrchestratorError | None:
        caller = self._transfers.access.caller_for(peer)
        if caller is None:  # admitted moments ago; its role was removed since
            return PermissionDenied(f"peer {peer} has no role on this node")
        if offer.purpose == "update":  # any role: what installs is this node's choice (update_delivery)
            if offer.options.force_reinstall:
                return PermissionDenied(f"peer {peer} may not force a reinstall with an update delivery")
        elif Permission.DEPLOY not in caller.permissions:
            role = self._transfers.access.role_of(peer)
            return PermissionDenied(
                f"peer {peer} may not install services on this node "
                f"(its role, {role.value if role else 'none'}, lacks the deploy permission)"
            )
        if offer.options.force_reinstall and Permission.ADMIN not in caller.permissions:
            return PermissionDenied(
                f"peer {peer} may not force a reinstall or a downgrade on this node "
                "(force_reinstall needs the admin role)"
            )
        if offer.purpose not in ("install", "update"):
            return ServiceDistributionError(
                f"this node accepts pushed archives only to install them, not {offer.purpose!r}",
                code="unsupported_purpose",
            )
        try:  # before a byte of the archive is written
            self._transfers.check_offered_release(
                offer.release,
                archive_sha256=offer.manifest.archive_hash,
                archive_size=offer.manifest.total_size,
            )
        except OrchestratorError as exc:
            return exc
        return None

    async def _take_over(self, peer: str, archive_hash: str) -> None:
        """End the same peer's earlier push of this archive (it gave up on that stream)."""
        earlier = self._inbound.get(archive_hash)
        if earlier is None or earlier.peer_id != peer:
            return  # another peer's transfer: the partial store answers transfer_in_progress
        log.info("%s offers %s again: ending its earlier stream", peer, archive_hash[:12])
        earlier.scope.cancel()
        with trio.move_on_after(TAKEOVER_SECONDS):
            await earlier.done.wait()

    async def _receive(
        self, stream: TransferStream, offer: Offer, partial: PartialTransfer
    ) -> SessionOutcome:
        transfers = self._transfers
        entry = self._inbound[partial.archive_hash] = _Inbound(stream.peer_id)
        member = self._swarms.join(offer, stream.peer_id, partial)  # None: a plain push
        session = ReceiveSession(
            TransferReceiver(partial, plan=member.plan if member else None),
            complete=lambda path: self._install(session, path, offer, member, stream.peer_id),
            read_timeout=transfers.settings.read_timeout,
            cut_hook=transfers.hooks.chunk_stored,
            on_stored=member.stored if member else None,
        )
        outcome: SessionOutcome = ServiceDistributionError(
            "a newer stream of the same sender replaced this one", code="transfer_cut"
        )
        try:
            with entry.scope:
                if member is None:
                    outcome = await session.run(stream, offer)
                else:
                    outcome = await member.receive(session, stream, offer)
        finally:
            with trio.CancelScope(shield=True):
                await transfers.release_partial(partial, discard=session.partial_spent)
            if self._inbound.get(partial.archive_hash) is entry:
                del self._inbound[partial.archive_hash]
            entry.done.set()
        return outcome

    async def _install(
        self, session: ReceiveSession, path: Path, offer: Offer, member: SwarmMembership | None, peer: str
    ) -> dict[str, Any]:
        started = time.monotonic()
        if offer.purpose == "update" and offer.release is not None:
            result = await self._transfers.install_update(path, offer.release, from_peer=peer)
        else:
            result = await self._transfers.install_received(
                path,
                force_reinstall=offer.options.force_reinstall,
                auto_start=offer.options.auto_start,
                release=offer.release,
            )
        received = {"bytes": session.bytes_received, "install_seconds": round(time.monotonic() - started, 4)}
        if member is not None:
            received.update(member.figures(session))
        return {**result, "received": received}

    # -- fetch: serve an archive ----------------------------------------------------------------

    async def _serve_fetch(self, stream: TransferStream, fetch: Fetch) -> None:
        transfers, peer = self._transfers, stream.peer_id
        what = f"service {fetch.service}" if fetch.service is not None else f"archive {fetch.archive_hash}"
        if fetch.archive_hash is not None and (member := await self._swarms.serving(peer, fetch)):
            await member.serve(stream)  # a swarm peer fetching what this target verified so far
            return
        try:
            path = await self._fetch_source(peer, fetch)
            manifest = await transfers.manifest_of(path, SWARM_CHUNK_SIZE if fetch.archive_hash else None)
            archive = ArchiveFile(path, manifest)
        except OrchestratorError as exc:
            log.info("Refusing to serve %s to %s: %s", what, peer, exc)
            await stream.send_last(Abort(exc))
            return
        log.info(
            "Serving %s (%s, %d bytes) to %s", what, manifest.archive_hash[:12], manifest.total_size, peer
        )
        hook = transfers.hooks.chunk_sent

        async def on_chunk(size: int) -> None:
            if hook is not None and hook(peer, session.bytes_sent):
                await stream.reset()

        with archive:
            release = transfers.release_of(manifest.archive_hash)
            sender = TransferSender(manifest, archive.read_chunk, purpose="fetch", release=release)
            session = SendSession(
                stream,
                sender,
                read_timeout=transfers.settings.read_timeout,
                install_timeout=transfers.settings.install_timeout,
                on_chunk=on_chunk,
            )
            try:
                result = await session.run()
            except OrchestratorError as exc:
                log.info("Serving %s to %s failed after %d bytes: %s", what, peer, session.bytes_sent, exc)
                return
        await stream.close()
        if result.ok:
            log.info("Served %s to %s (%d bytes sent)", what, peer, session.bytes_sent)
        else:
            log.info("%s fetched %s but refused it: %s", peer, what, result.error)

    async def _fetch_source(self, peer: str, fetch: Fetch) -> Path:
        access = self._transfers.access
        caller = access.caller_for(peer)
        if caller is None or Permission.READ not in caller.permissions:
            raise PermissionDenied(
                f"peer {peer} may not fetch archives from this node (needs the read permission)"
            )
        if fetch.service is not None:
            return self._transfers.export_path(fetch.service)
        assert fetch.archive_hash is not None
        path = await self._transfers.cached_archive(fetch.archive_hash)
        if path is None:
            raise ServiceDistributionError(
                f"this node holds no archive with sha256 {fetch.archive_hash}", code="archive_not_found"
            )
        return path
