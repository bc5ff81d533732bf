"""A target's side of a swarm distribution: pull from the other targets, serve them what it verified.

When an origin pushes an archive with a non-empty ``peers`` list in its ``offer`` (``distribute_service``
with ``strategy="swarm"``), this node is one target of a swarm.  Next to the origin's push
stream, :class:`SwarmMembership` then

* **pulls** from every other target of the list: one transfer stream each, opened here, first
  message ``fetch {archive_hash}``; each answer (an ``offer`` to fetch the same manifest) becomes
  one more source of the same :class:`~p2p_orchestrator.node.distribution._receive.ReceiveSession`, whose
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
:data:`JOIN_SECONDS` for the membership to exist
(:meth:`~p2p_orchestrator.node.distribution.swarm_registry.SwarmMembers.wait`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio

from p2p_orchestrator.errors import OrchestratorError, ProtocolError, ServiceDistributionError
from p2p_orchestrator.node.distribution._receive import ReceiveSession, SessionOutcome
from p2p_orchestrator.node.distribution._send import SendSession
from p2p_orchestrator.node.distribution._transfer_stream import TransferStream
from p2p_orchestrator.node.distribution.context import TransferContext
from p2p_orchestrator.node.host._read_deadline import MessageDeadline
from p2p_orchestrator.node.host._stream import StreamBroken
from p2p_orchestrator.transfer import (
    Abort,
    Action,
    Bitfield,
    Fetch,
    Have,
    Offer,
    PartialTransfer,
    Result,
    Send,
    SwarmPlan,
    TransferManifest,
    TransferReceiver,
    TransferSender,
)
from p2p_orchestrator.transfer.errors import CHUNK_UNAVAILABLE, fail

__all__ = ["ANNOUNCE_SECONDS", "JOIN_SECONDS", "PROGRESS_SECONDS", "STALL_SECONDS", "SwarmMembership"]

log = logging.getLogger("p2p_orchestrator.transfer")

STALL_SECONDS = 3.0
"""No chunk from anyone for this long: the receiver may ask the origin for anything (unstick)."""
JOIN_SECONDS = 10.0
"""How long a fetch from a swarm peer waits for this node to learn of that swarm."""
ANNOUNCE_SECONDS = 0.5
"""Chunks a target got from its peers are announced to the peers it serves this often (batched)."""
PROGRESS_SECONDS = 1.0
"""At most this often (and a quarter of ``read_timeout``), a target tells the origin what it holds."""


class SwarmMembership:
    """This node as one target of one swarm distribution (see the module docstring)."""

    def __init__(
        self,
        transfers: TransferContext,
        offer: Offer,
        origin: str,
        partial: PartialTransfer,
        forget: Callable[[SwarmMembership], None],
    ) -> None:
        self._transfers = transfers
        self._forget = forget
        """Called once the membership neither receives nor serves any more."""
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
        self._unannounced: list[int] = []
        self._batch = trio.Event()
        self._users = 1  # the receive; each serving stream adds one
        self._receiving = True

    @property
    def archive_hash(self) -> str:
        return self.manifest.archive_hash

    @property
    def peers(self) -> tuple[str, ...]:
        """The other targets of the distribution."""
        return tuple(str(t) for t in self.plan.targets if t != self.plan.me)

    @property
    def pulls(self) -> tuple[str, ...]:
        """The targets this one pulls from: all the others, or in a swarm larger than a node takes
        transfer streams (``[node] max_transfers_total``, less two for the push and a retry), the
        next ones in ring order -- so that every target is pulled from by as many as it pulls from."""
        targets, me = [str(t) for t in self.plan.targets], str(self.plan.me)
        room = max(1, self._transfers.settings.max_total - 2)
        if len(targets) - 1 <= room:
            return self.peers
        start = targets.index(me)
        return tuple(targets[(start + step) % len(targets)] for step in range(1, room + 1))

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
        """Chunk ``index`` (from ``source``) was verified and written here: tell the peers served.

        A chunk from the origin is this target's to pass on (its share of the plan): announced
        at once.  A chunk from a peer is announced in a batch within :data:`ANNOUNCE_SECONDS`:
        the others mostly get it from its owner, and one ``have`` per chunk per peer (960 frames
        per target with 16 targets and 64 chunks) cost more CPU than it saved.
        """
        if not self._have.add(index):
            return
        if source == self.origin:
            self._announce((index,))
        else:
            self._unannounced.append(index)
            self._batch.set()

    def _announce(self, indices: tuple[int, ...] | list[int]) -> None:
        for session in self._serving:
            session.announce(indices)

    async def _announce_batches(self) -> None:
        while True:
            await self._batch.wait()
            await trio.sleep(ANNOUNCE_SECONDS)
            self._batch = trio.Event()
            self._flush()

    def _flush(self) -> None:
        batch, self._unannounced = self._unannounced, []
        if batch:
            self._announce(batch)

    async def serve(self, stream: TransferStream) -> None:
        """Serve a peer's fetch with the chunks verified here so far, and those still to come."""
        settings, peer = self._transfers.settings, stream.peer_id
        sender = TransferSender(self.manifest, self.read_chunk, purpose="fetch", have=self.have())
        session = SendSession(
            stream,
            sender,
            read_timeout=settings.read_timeout,
            install_timeout=settings.install_timeout,
            wants_timeout=math.inf,  # a peer may rightly ask for nothing while others feed it
        )
        with self.serving(session):  # entered before any await: no stored chunk goes unannounced
            try:
                result = await session.run()
            except OrchestratorError as exc:
                log.info("Serving swarm peer %s ended after %d bytes: %s", peer, session.bytes_sent, exc)
                return
        await stream.close()
        log.info("Served %d bytes of %s to swarm peer %s (%s)", session.bytes_sent, self.archive_hash[:12],
                 peer, "done" if result.ok else result.error)  # fmt: skip

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

    def begin_receive(self) -> None:
        """The origin pushes again (a retry after a cut): receiving resumes in this membership."""
        if not self._receiving:
            self._receiving = True
            self._users += 1

    def receive_ended(self) -> None:
        """The receive session is over (installed or failed); serving may go on."""
        self._flush()
        if self._receiving:
            self._receiving = False
            self._release()

    def _release(self) -> None:
        self._users -= 1
        if self._users == 0:
            self._forget(self)
        if self._users == 0 and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- the receive side ---------------------------------------------------------------------

    async def receive(self, session: ReceiveSession, stream: TransferStream, offer: Offer) -> SessionOutcome:
        """Run ``session`` (the origin's push on ``stream``) with pulls from the other targets."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.run, session, name="swarm membership")
                outcome = await session.run(stream, offer)
                nursery.cancel_scope.cancel()
        finally:
            self.receive_ended()
        return outcome

    def figures(self, session: ReceiveSession) -> dict[str, Any]:
        """What came from the origin and from each peer, what came too late (endgame duplicates it
        had cancelled), and who was dropped for lying (for the result)."""
        received = session.receiver.bytes_from
        peers = {str(peer): count for peer, count in received.items() if peer != self.origin and count}
        return {
            "bytes_from_origin": received.get(self.origin, 0),
            "bytes_from_peers": sum(peers.values()),
            "from_peers": peers,
            "bytes_cancelled": session.receiver.bytes_cancelled,
            "dropped_peers": {
                peer: str(error) for peer, error in session.refused.items() if peer != self.origin
            },
        }

    async def run(self, session: ReceiveSession) -> None:
        """Pull from every other target and watch for stalls, until cancelled (the session's end)."""
        await session.started.wait()
        async with trio.open_nursery() as nursery:
            for peer in self.pulls:
                nursery.start_soon(self._pull, session, peer, name=f"swarm pull from {peer}")
            nursery.start_soon(self._watch, session, name="swarm stall watch")
            nursery.start_soon(self._report, session, name="swarm progress to the origin")
            nursery.start_soon(self._announce_batches, name="swarm have batches")

    async def _report(self, session: ReceiveSession) -> None:
        """Tell the origin what this target holds as it grows (``have``), so the origin, asked
        for nothing while peers feed this target, sees progress instead of a stalled receiver."""
        seconds = min(PROGRESS_SECONDS, self._transfers.settings.read_timeout / 4)
        reported = self._have.count
        while True:
            await trio.sleep(seconds)
            if self._have.count != reported:
                reported = self._have.count
                await session.apply(self._progress(Have(self._have.to_bytes())))

    def _progress(self, update: Have) -> Callable[[TransferReceiver], list[Action]]:
        return lambda rx: [Send(self.origin, update)]

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
        with MessageDeadline(seconds).reading() as scope:
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
