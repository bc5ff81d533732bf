"""A target's side of a swarm distribution: pull from the other targets, serve them what it verified.

When an origin pushes an archive with a non-empty ``peers`` list in its ``offer`` (``distribute_service``
with ``strategy="swarm"``), this node is one target of a swarm.  Next to the origin's push
stream, :class:`SwarmMembership` then

* **pulls** from every other target of the list: one transfer stream each, opened here, first
  message ``fetch {archive_hash}``; each answer (an ``offer`` to fetch the same manifest) becomes
  one more source of the same :class:`~p2p_orchestrator.node._receive.ReceiveSession`, whose
  receiver follows the :class:`~p2p_orchestrator.transfer.SwarmPlan` (the origin only for this
  node's share of the chunks, the other targets for the rest, rarest first).  A target that
  cannot be reached or refuses is forgotten: its share passes to the next target in the plan;
* **serves** the other targets of the list -- and only them -- the chunks it has verified so far:
  their ``fetch {archive_hash}`` streams get a :class:`~p2p_orchestrator.transfer.TransferSender`
  whose ``have`` grows (an ``announce``) with every chunk this node stores.  Chunks are read with
  a file descriptor of its own, so they stay readable after the partial transfer is installed
  and deleted, for as long as the other targets still fetch;
* **unsticks** its receiver when no chunk arrived for :data:`STALL_SECONDS` (a target that stays
  connected but delivers nothing must not hold the rest up): the origin may then be asked for
  anything until a peer delivers again.

Every chunk, from anyone, is verified against the manifest before it is written or served on;
a target that sends a corrupt one is refused, dropped from the sources and reported (in the
result the origin gets: ``received.dropped_peers``).  A fetch may arrive before this node has the
origin's offer (the targets start at about the same time): the handler then waits up to
:data:`JOIN_SECONDS` for the membership to exist (:meth:`SwarmMembers.wait`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import trio

from p2p_orchestrator.errors import OrchestratorError, ProtocolError, ServiceDistributionError
from p2p_orchestrator.node._receive import ReceiveSession
from p2p_orchestrator.node._send import SendSession
from p2p_orchestrator.node._stream import StreamBroken
from p2p_orchestrator.node._transfer_stream import ReadDeadline, TransferStream
from p2p_orchestrator.transfer import (
    Abort,
    Bitfield,
    Fetch,
    Offer,
    PartialTransfer,
    Result,
    SwarmPlan,
    TransferManifest,
)
from p2p_orchestrator.transfer.errors import CHUNK_UNAVAILABLE, fail

if TYPE_CHECKING:
    from p2p_orchestrator.node.transfers import NodeTransfers

__all__ = ["JOIN_SECONDS", "STALL_SECONDS", "SwarmMembers", "SwarmMembership"]

log = logging.getLogger("p2p_orchestrator.transfer")

STALL_SECONDS = 3.0
"""No chunk from anyone for this long: the receiver may ask the origin for anything (unstick)."""
JOIN_SECONDS = 10.0
"""How long a fetch from a swarm peer waits for this node to learn of that swarm."""


class SwarmMembership:
    """This node as one target of one swarm distribution (see the module docstring)."""

    def __init__(self, transfers: NodeTransfers, offer: Offer, origin: str, partial: PartialTransfer) -> None:
        self._transfers = transfers
        self.manifest: TransferManifest = offer.manifest
        self.origin = origin
        self.plan = SwarmPlan.of(offer.peers, origin, transfers.peer_id)
        self._have = partial.have()
        try:
            self._fd = os.open(partial.data_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise ServiceDistributionError(
                f"cannot open {partial.data_path} to serve it: {exc.strerror or exc}", code="storage_failed"
            ) from exc
        self._serving: set[SendSession] = set()
        self._users = 1  # the receive; each serving stream adds one
        self._receiving = True

    @property
    def archive_hash(self) -> str:
        return self.manifest.archive_hash

    @property
    def peers(self) -> tuple[str, ...]:
        """The other targets of the distribution."""
        return tuple(str(t) for t in self.plan.targets if t != self.plan.me)

    def may_fetch(self, peer: str) -> bool:
        """Only the other targets of this distribution may fetch its chunks from this node."""
        return peer in self.peers

    # -- the chunks ---------------------------------------------------------------------------

    def have(self) -> Bitfield:
        return self._have.copy()

    def read_chunk(self, index: int) -> bytes:
        """A verified chunk (blocking; ``chunk_unavailable`` for one not verified here)."""
        if index not in self._have:
            fail(CHUNK_UNAVAILABLE, f"chunk {index} of {self.archive_hash[:12]} is not verified here")
        length, offset = self.manifest.chunk_length(index), self.manifest.chunk_offset(index)
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise ServiceDistributionError(
                f"chunk {index} read {len(data)} of {length} bytes", code="storage_failed"
            )
        return data

    def stored(self, source: str, index: int) -> None:
        """Chunk ``index`` (from ``source``) was verified and written here: tell every peer served."""
        if self._have.add(index):
            for session in self._serving:
                session.announce((index,))

    @contextmanager
    def serving(self, session: SendSession) -> Iterator[None]:
        """While a peer is served: its announcements, and the file kept open."""
        self._serving.add(session)
        self._users += 1
        try:
            yield
        finally:
            self._serving.discard(session)
            self._release()

    def receive_ended(self) -> None:
        """The receive session is over (installed or failed); serving may go on."""
        if self._receiving:
            self._receiving = False
            self._release()

    def _release(self) -> None:
        self._users -= 1
        if self._users == 0 and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- the receive side ---------------------------------------------------------------------

    async def run(self, session: ReceiveSession) -> None:
        """Pull from every other target and watch for stalls, until cancelled (the session's end)."""
        await session.started.wait()
        async with trio.open_nursery() as nursery:
            for peer in self.peers:
                nursery.start_soon(self._pull, session, peer, name=f"swarm pull from {peer}")
            nursery.start_soon(self._watch, session, name="swarm stall watch")

    async def _watch(self, session: ReceiveSession) -> None:
        last = -1
        while True:
            await trio.sleep(STALL_SECONDS)
            now = session.bytes_received
            if now == last:
                log.info("No chunk of %s for %g s: the origin may serve anything", self.archive_hash[:12],
                         STALL_SECONDS)  # fmt: skip
                await session.apply(lambda rx: rx.unstick())
            last = now

    async def _pull(self, session: ReceiveSession, peer: str) -> None:
        transfers = self._transfers
        try:
            stream = await transfers.open_stream(peer)
        except OrchestratorError as exc:
            log.info("Swarm peer %s cannot be reached: %s", peer, exc)
            await session.apply(lambda rx: rx.forget(peer))
            return
        try:
            await stream.send(Fetch(archive_hash=self.archive_hash))
            offer = await self._offer(stream)
        except (OrchestratorError, StreamBroken) as exc:
            log.info("Swarm peer %s does not serve %s: %s", peer, self.archive_hash[:12], exc)
            await stream.reset()
            await session.apply(lambda rx: rx.forget(peer))
            return
        try:
            session.add_source(stream, offer)
        except (RuntimeError, ValueError):  # the session ended meanwhile, or the peer pushed too
            await stream.reset()

    async def _offer(self, stream: TransferStream) -> Offer:
        seconds = self._transfers.settings.read_timeout + JOIN_SECONDS
        with ReadDeadline(seconds).reading() as scope:
            message = await stream.receive()
        if scope.cancelled_caught or message is None:
            raise ServiceDistributionError("no answer to the swarm fetch", code="transfer_timeout")
        if isinstance(message, Abort):
            raise message.error
        if not isinstance(message, Offer) or message.purpose != "fetch" or message.manifest != self.manifest:
            error = ProtocolError("a swarm peer offered something else than the swarm's archive",
                                  code="unexpected_message")  # fmt: skip
            with contextlib.suppress(StreamBroken, ProtocolError):  # best effort: it is dropped anyway
                await stream.send(Result.failure(error))
            raise error
        return message


class SwarmMembers:
    """The swarms this node is a target of, by archive hash (a fetch finds its swarm here)."""

    def __init__(self) -> None:
        self._members: dict[str, SwarmMembership] = {}
        self._changed = trio.Event()

    def get(self, archive_hash: str) -> SwarmMembership | None:
        return self._members.get(archive_hash)

    def add(self, membership: SwarmMembership) -> None:
        self._members[membership.archive_hash] = membership
        self._changed.set()
        self._changed = trio.Event()

    def remove(self, membership: SwarmMembership) -> None:
        if self._members.get(membership.archive_hash) is membership:
            del self._members[membership.archive_hash]

    async def wait(self, archive_hash: str, seconds: float = JOIN_SECONDS) -> SwarmMembership | None:
        """The membership of ``archive_hash``, waiting up to ``seconds`` for it to appear."""
        with trio.move_on_after(seconds):
            while (found := self._members.get(archive_hash)) is None:
                await self._changed.wait()
            return found
        return None
