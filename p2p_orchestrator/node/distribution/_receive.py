"""``ReceiveSession``: receive one archive from its sender(s), verify it, and hand it over.

It drives one :class:`~p2p_orchestrator.transfer.TransferReceiver` (one per archive) over one
transfer stream per sender ("source", named by its peer ID):

* a **reader** task per source reads its messages and queues them, within a deadline whenever
  the receiver waits for that source (:meth:`TransferReceiver.waiting_for` is ``offer``,
  ``have`` or ``chunks``: ``read_timeout`` per message; ``nothing``: none);
* one **processor** task feeds the queue to ``receiver.receive`` in arrival order -- chunks in a
  worker thread (a sha256 and a write each) while the readers keep draining their streams (a
  Yamux stream left unread for 5 s is reset) -- and does what the receiver answers: queues
  ``have``/``want``/``cancel`` for the source's **writer** task (an ``Outbox``: a peer that
  stops reading never blocks the processor), closes sources that ended, and on
  :class:`~p2p_orchestrator.transfer.TransferComplete` checks the whole file, calls
  ``complete(path)`` (the install) and sends every source the ``result``.

A source that breaks the rules is answered ``result {error}`` and dropped; one whose stream
ends (EOF, reset, deadline) is dropped; the receiver asks the others for its chunks.  When no
source is left before the end, the session ends with the last error.  The partial transfer
keeps every verified chunk either way: the caller closes it (to resume later) or discards it.

Calls into the receiver never overlap (only the processor makes them; others go through
:meth:`ReceiveSession.apply`).  Memory: the queue holds at most :data:`QUEUE` messages, so a
session holds at most ``QUEUE + 2`` frames and one read per source.  For a swarm (issue 6):
sources are added while it runs with :meth:`ReceiveSession.add_source` (once :attr:`started`
is set), ``on_stored(source, index)`` hears of every verified chunk (to announce it to the
peers this node serves), and :meth:`ReceiveSession.apply` runs receiver calls such as
``forget``/``unstick`` in turn with the messages.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from p2p_orchestrator.errors import OrchestratorError, ProtocolError, RemoteError, ServiceDistributionError
from p2p_orchestrator.node.distribution._transfer_stream import Outbox, TransferStream
from p2p_orchestrator.node.host._read_deadline import MessageDeadline
from p2p_orchestrator.node.host._stream import StreamBroken
from p2p_orchestrator.transfer import (
    Action,
    Awaiting,
    Chunk,
    ChunkRejected,
    ChunkStored,
    Offer,
    ReceiverState,
    Result,
    Send,
    SourceEnded,
    TransferComplete,
    TransferMessage,
    TransferReceiver,
)

__all__ = [
    "DISK_FAILURES",
    "QUEUE",
    "CompleteArchive",
    "CutHook",
    "ReceiveSession",
    "ReceiverCall",
    "SessionOutcome",
    "StoredHook",
]

log = logging.getLogger("p2p_orchestrator.transfer")

QUEUE = 2
"""Messages read ahead of the processor (all sources together)."""

CompleteArchive = Callable[[Path], Awaitable[dict[str, Any]]]
"""What to do with the verified archive (install it); its result is sent to the sources."""

CutHook = Callable[[str, int], bool]
"""Test seam: ``(source, verified bytes)`` after each stored chunk; ``True`` resets that stream."""

StoredHook = Callable[[str, int], None]
"""``(source, chunk index)`` after each chunk verified and written."""

ReceiverCall = Callable[[TransferReceiver], list[Action]]
"""A call on the receiver (e.g. ``lambda rx: rx.unstick()``); its actions are carried out."""

SessionOutcome = dict[str, Any] | OrchestratorError

DISK_FAILURES = frozenset({"storage_failed", "write_failed"})
"""Error codes of a disk that refused to be read or written."""


@dataclass
class _SourceStream:
    """One source's transfer stream, with its read deadline, its reader task's scope and its
    writer's outbox."""

    stream: TransferStream
    deadline: MessageDeadline
    reader: trio.CancelScope
    outbox: Outbox


@dataclass(frozen=True)
class _Apply:
    """A receiver call queued by :meth:`ReceiveSession.apply`."""

    call: ReceiverCall
    done: trio.Event


@dataclass(frozen=True)
class _Ended:
    """A source's stream ended without a message (EOF, reset, deadline, unreadable bytes)."""

    error: OrchestratorError
    protocol: bool = False
    """The source sent bytes that break the protocol (answer it ``result {error}``)."""


class ReceiveSession:
    """One archive from one or more sources; see the module docstring."""

    def __init__(
        self,
        receiver: TransferReceiver,
        *,
        complete: CompleteArchive,
        read_timeout: float,
        cut_hook: CutHook | None = None,
        on_stored: StoredHook | None = None,
    ) -> None:
        self._rx = receiver
        self._complete = complete
        self._read_timeout = read_timeout
        self._cut_hook = cut_hook
        self._on_stored = on_stored
        self._sources: dict[str, _SourceStream] = {}
        self._send, self._inbox = trio.open_memory_channel[tuple[str, TransferMessage | _Ended | _Apply]](
            QUEUE
        )
        self.started = trio.Event()
        """Set once the session runs: :meth:`add_source` and :meth:`apply` may be used."""
        self.refused: dict[str, OrchestratorError] = {}
        """Sources dropped for breaking the rules (e.g. too many corrupt chunks), with the error."""
        self._nursery: trio.Nursery | None = None
        self._outcome: SessionOutcome | None = None
        self._last_error: OrchestratorError | None = None
        self._failed_here: OrchestratorError | None = None
        """This node's own failure (its disk, its install), as opposed to a source's."""

    @property
    def partial_spent(self) -> bool:
        """Whether the partial transfer is not worth keeping now the session ended.

        After an install the store has the archive.  After this node's disk failed
        (``storage_failed``, ``write_failed``) the partial holds the very space it lacks, and a retry
        would fail the same way.  Any other end -- a source's abort, even one that says its *own*
        disk failed, a cut, a refusal -- keeps it, so the next attempt resumes.
        """
        if self._outcome is None:
            return False
        if not isinstance(self._outcome, OrchestratorError):
            return True
        return self._failed_here is not None and self._failed_here.code in DISK_FAILURES

    @property
    def receiver(self) -> TransferReceiver:
        return self._rx

    @property
    def bytes_received(self) -> int:
        """Verified chunk bytes received in this session, from all sources."""
        return sum(self._rx.bytes_from.values())

    async def run(self, stream: TransferStream, offer: Offer) -> SessionOutcome:
        """Receive from ``stream`` (whose ``offer`` was read already) and others added meanwhile.

        Returns ``complete``'s result, or the error the transfer ended with (never raises for
        anything a source does).
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.add_source(stream, offer)
            self.started.set()
            await self._process()
            for source in list(self._sources):
                await self._forget(source)
            # the writers write the last words (results), then end; a peer that stopped reading
            # holds its writer back at most this long (and the Noise guard's limit)
            nursery.cancel_scope.deadline = trio.current_time() + self._read_timeout
        for source in list(self._sources):
            await self._forget(source)
        while True:  # calls queued too late: release their callers
            try:
                _, item = self._inbox.receive_nowait()
            except trio.WouldBlock:
                break
            if isinstance(item, _Apply):
                item.done.set()
        self._inbox.close()  # later apply() calls return at once
        assert self._outcome is not None
        return self._outcome

    def add_source(self, stream: TransferStream, offer: Offer) -> None:
        """Take chunks from one more sender too (its ``offer`` was read already)."""
        if self._nursery is None or self._outcome is not None:
            raise RuntimeError("the receive session is not running")
        source = stream.peer_id
        if source in self._sources:
            raise ValueError(f"{source} is already a source of this transfer")
        entry = self._sources[source] = _SourceStream(
            stream, MessageDeadline(), trio.CancelScope(), Outbox(stream)
        )
        self._nursery.start_soon(self._read_source, source, entry, offer)
        self._nursery.start_soon(self._write_source, source, entry.outbox)

    async def apply(self, call: ReceiverCall) -> None:
        """Run ``call`` on the receiver in turn with the messages, and carry out its actions.

        Returns once done (at once if the session is over; then ``call`` is not run).
        """
        if self._outcome is not None:
            return
        item = _Apply(call, trio.Event())
        try:
            await self._send.send(("", item))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return
        await item.done.wait()

    # -- reading ------------------------------------------------------------------------------

    async def _write_source(self, source: str, outbox: Outbox) -> None:
        broken = await outbox.run()
        if broken is not None and self._outcome is None:
            with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
                await self._send.send((source, _Ended(_cut(source, str(broken)))))

    async def _read_source(self, source: str, entry: _SourceStream, offer: Offer) -> None:
        with entry.reader:
            await self._read_messages(source, entry.stream, entry.deadline, offer)

    async def _read_messages(
        self, source: str, stream: TransferStream, deadline: MessageDeadline, offer: Offer
    ) -> None:
        await self._send.send((source, offer))
        while True:
            with deadline.reading() as scope:
                try:
                    message = await stream.receive()
                except StreamBroken as exc:
                    ended = _Ended(_cut(source, stream.failure or str(exc)))
                    break
                except (ProtocolError, ServiceDistributionError) as exc:
                    ended = _Ended(exc, protocol=True)
                    break
            if scope.cancelled_caught:
                ended = _Ended(self._timeout(source, deadline.seconds))
                break
            if message is None:
                ended = _Ended(_cut(source, "it closed the stream"))
                break
            await self._send.send((source, message))
        await self._send.send((source, ended))

    def _timeout(self, source: str, seconds: float) -> ServiceDistributionError:
        awaiting = self._rx.waiting_for(source)
        what = {Awaiting.OFFER: "no offer", Awaiting.HAVE: "no have"}.get(
            awaiting, "none of the chunks asked for"
        )
        return ServiceDistributionError(f"{source} sent {what} within {seconds:g} s", code="transfer_timeout")

    # -- processing ---------------------------------------------------------------------------

    async def _process(self) -> None:
        while self._outcome is None:
            source, item = await self._inbox.receive()
            if isinstance(item, _Apply):
                try:
                    await self._act(item.call(self._rx))
                finally:
                    item.done.set()
            elif source not in self._sources:
                continue  # left over from a source already dropped
            elif isinstance(item, _Ended):
                await self._source_ended(source, item)
            else:
                await self._feed(source, item)
            if self._outcome is None:
                await self._check_progress()

    async def _feed(self, source: str, message: TransferMessage) -> None:
        rx = self._rx
        try:
            if isinstance(message, Chunk):
                actions = await trio.to_thread.run_sync(rx.receive, source, message)
            else:
                actions = rx.receive(source, message)
        except (ProtocolError, ServiceDistributionError) as exc:
            if rx.state is ReceiverState.FAILED:  # our disk failed: nobody's fault, the end for all
                log.error("Receiving %s failed: %s", rx.manifest.archive_hash[:12], exc)  # noqa: TRY400
                self._failed_here = exc
                await self._conclude(exc)
            else:
                await self._refuse(source, exc)
            return
        await self._act(actions)

    async def _act(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                await self._write(action.source, action.message)
            elif isinstance(action, ChunkStored):
                if self._on_stored is not None:
                    self._on_stored(str(action.source), action.index)
                await self._maybe_cut(str(action.source))
            elif isinstance(action, ChunkRejected):
                log.warning("Chunk %d from %s was refused: %s", action.index, action.source, action.error)
            elif isinstance(action, SourceEnded):
                if action.error is not None:
                    self._last_error = action.error
                    log.info("Sender %s aborted the transfer: %s", action.source, action.error)
                await self._forget(str(action.source))
            elif isinstance(action, TransferComplete):
                await self._finish()
            if self._outcome is not None:
                return

    async def _check_progress(self) -> None:
        rx = self._rx
        if rx.state is ReceiverState.RECEIVING and not rx.sources:
            error = self._last_error or ServiceDistributionError(
                "every sender left before the transfer was complete", code="transfer_failed"
            )
            await self._conclude(error)
        elif rx.stalled:
            missing = len(rx.have().missing())
            await self._conclude(
                ServiceDistributionError(
                    f"no sender holds the {missing} chunks still missing", code="transfer_failed"
                )
            )
        for source, entry in self._sources.items():
            waits = rx.waiting_for(source) in (Awaiting.OFFER, Awaiting.HAVE, Awaiting.CHUNKS)
            entry.deadline.expect(self._read_timeout if waits and self._outcome is None else math.inf)

    async def _maybe_cut(self, source: str) -> None:
        entry = self._sources.get(source)
        hook = self._cut_hook
        if hook is not None and entry is not None and hook(source, self._rx.verified_bytes):
            log.info("Test hook: cutting the transfer stream of %s", source)
            await entry.stream.reset()

    # -- sources ending -----------------------------------------------------------------------

    async def _source_ended(self, source: str, ended: _Ended) -> None:
        if ended.protocol:
            await self._refuse(source, ended.error)
            return
        log.info(
            "Transfer of %s from %s ended early: %s", self._rx.manifest.archive_hash[:12], source, ended.error
        )
        self._last_error = ended.error
        await self._forget(source)
        await self._act(self._rx.source_closed(source))

    async def _refuse(self, source: str, error: OrchestratorError) -> None:
        """``source`` broke the rules: tell it why, drop it, and ask the others for its chunks."""
        log.info("Refusing sender %s: %s", source, error)
        self._last_error = error
        self.refused[source] = error
        await self._write(source, Result.failure(error))
        await self._forget(source)
        await self._act(self._rx.source_closed(source))

    async def _write(self, source: object, message: TransferMessage) -> None:
        """Queue ``message`` for ``source``'s writer (never waits on the peer: see ``Outbox``)."""
        entry = self._sources.get(str(source))
        if entry is None or entry.outbox.put(message):
            return
        log.info("Sender %s does not take what is written to it; dropping it", source)
        self._last_error = _cut(str(source), "it stopped reading")
        await self._forget(str(source))
        if self._outcome is None:
            await self._act(self._rx.source_closed(source))

    async def _forget(self, source: str) -> None:
        entry = self._sources.pop(source, None)
        if entry is not None:
            entry.reader.cancel()
            entry.outbox.close()  # its writer writes what is queued, then closes the stream

    # -- the end ------------------------------------------------------------------------------

    async def _finish(self) -> None:
        archive = self._rx.manifest.archive_hash[:12]
        try:
            path = await trio.to_thread.run_sync(self._rx.finish)
        except OrchestratorError as exc:
            log.warning("The transfer of %s failed its final check: %s", archive, exc)
            self._failed_here = exc
            await self._conclude(exc)
            return
        try:
            outcome: SessionOutcome = await self._complete(path)
        except OrchestratorError as exc:
            self._failed_here = outcome = exc
        except Exception as exc:
            log.exception("Handling the received archive %s failed unexpectedly", archive)
            outcome = RemoteError(f"{type(exc).__name__}: {exc}", code="internal_error")
        await self._conclude(outcome)

    async def _conclude(self, outcome: SessionOutcome) -> None:
        """Send every source the last word, close the streams, and end the session."""
        self._outcome = outcome
        if isinstance(outcome, OrchestratorError):
            self._last_error = outcome
        for action in self._rx.conclude(outcome):
            if isinstance(action, Send):
                await self._write(action.source, action.message)
        for source in list(self._sources):
            await self._forget(source)


def _cut(source: str, why: str) -> ServiceDistributionError:
    return ServiceDistributionError(
        f"the stream of {source} ended before the transfer was complete ({why})", code="transfer_cut"
    )
