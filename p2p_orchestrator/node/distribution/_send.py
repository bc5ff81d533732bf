"""``SendSession``: serve one archive to one receiver over a transfer stream.

It drives a :class:`~p2p_orchestrator.transfer.TransferSender` with two tasks, as its docstring
describes:

* the **reader** feeds every message of the receiver to ``sender.receive`` (its ``have``, its
  ``want``/``cancel`` requests, finally its ``result``);
* the **writer** takes each chunk asked for with ``sender.next_chunk`` -- read from disk and
  framed in a worker thread -- and writes it, and reports its bytes to ``on_chunk``.

What the receiver holds, as far as this side knows (its ``have``s and every chunk written to
it), is :attr:`SendSession.delivered`; ``on_delivered`` hears of each time it grows (progress).

Calls into the sender never overlap (a lock: the reader may wait for one chunk read).  A swarm
peer still receiving the archive serves what it verified so far and calls :meth:`SendSession.announce`
as it verifies more: the writer sends the ``have`` update between two chunks.  The
receiver owes something within a deadline whenever :attr:`TransferSender.waiting_for` says so:
its first ``have`` and its next ``want`` within ``read_timeout`` (``transfer_timeout``), its
``result`` within ``install_timeout`` once it holds every chunk (``install_timeout``: it is
installing).  While we owe chunks there is no read deadline; each write has its own
(``write_timeout``, see :class:`~p2p_orchestrator.node.distribution._transfer_stream.TransferStream`).

:meth:`SendSession.run` returns the receiver's :class:`~p2p_orchestrator.transfer.Result` (ok or
not), or raises ``ServiceDistributionError``: ``transfer_cut`` (the stream ended before the
result: the caller may retry, and the receiver resumes), ``transfer_timeout``,
``install_timeout``, or the receiver's protocol fault, after telling it with ``abort``.  A
first message that is an ``abort`` is the receiving node refusing the stream before reading
it (``busy``); its error is raised as is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable

import trio

from p2p_orchestrator.errors import OrchestratorError, ProtocolError, ServiceDistributionError
from p2p_orchestrator.node.distribution._transfer_stream import TransferStream
from p2p_orchestrator.node.host._read_deadline import MessageDeadline
from p2p_orchestrator.node.host._stream import StreamBroken
from p2p_orchestrator.transfer import (
    Abort,
    Bitfield,
    Have,
    Result,
    SenderAwaiting,
    SenderState,
    TransferMessage,
    TransferSender,
)

__all__ = ["ChunkSent", "Delivered", "SendSession"]

log = logging.getLogger("p2p_orchestrator.transfer")

ChunkSent = Callable[[int], Awaitable[None]]
"""Awaited after each chunk written, with its size in bytes (progress; test hooks may cut here)."""

Delivered = Callable[[Bitfield], None]
"""Called with :attr:`SendSession.delivered` each time it grows."""


class SendSession:
    """One archive to one receiver on one stream; see the module docstring."""

    def __init__(
        self,
        stream: TransferStream,
        sender: TransferSender,
        *,
        read_timeout: float,
        install_timeout: float,
        on_chunk: ChunkSent | None = None,
        wants_timeout: float | None = None,
        on_delivered: Delivered | None = None,
    ) -> None:
        self._stream = stream
        self._wants_timeout = read_timeout if wants_timeout is None else wants_timeout
        self._tx = sender
        self._read_timeout = read_timeout
        self._install_timeout = install_timeout
        self._on_chunk = on_chunk
        self._on_delivered = on_delivered
        self._lock = trio.Lock()
        self._bell = trio.Event()
        self._deadline = MessageDeadline()
        self._failure: BaseException | None = None
        self._result: Result | None = None
        self._announced: list[int] = []
        self.bytes_sent = 0
        """Chunk bytes written on this stream."""
        self.receiver_had = 0
        """Bytes of the archive the receiver held already, by its first ``have`` (resume, dedup)."""
        self.delivered = Bitfield(sender.manifest.chunk_count)
        """Chunks the receiver holds as far as this side knows: its ``have``s, and every chunk written."""

    @property
    def peer_id(self) -> str:
        return self._stream.peer_id

    async def run(self) -> Result:
        """Serve until the receiver's result; see the module docstring for what it raises."""
        try:
            for message in self._tx.start():
                await self._stream.send(message)
        except StreamBroken as exc:
            raise self._cut(exc) from exc
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._contained, self._write_loop, nursery.cancel_scope)
            await self._contained(self._read_loop, nursery.cancel_scope)
            nursery.cancel_scope.cancel()
        if self._failure is not None:
            raise self._failure
        assert self._result is not None
        return self._result

    async def _contained(self, loop: Callable[[], Awaitable[None]], scope: trio.CancelScope) -> None:
        """Run one loop; its failure (the first of the two) ends both and is raised by run()."""
        try:
            await loop()
        except (OrchestratorError, StreamBroken, OSError) as exc:
            if self._failure is None:
                self._failure = exc
        finally:
            scope.cancel()
        if isinstance(self._failure, StreamBroken):
            self._failure = self._cut(self._failure)

    def announce(self, indices: Iterable[int]) -> None:
        """This side verified more chunks: the writer tells the receiver (a ``have`` update)."""
        self._announced.extend(indices)
        self._bell.set()

    # -- reading ------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        tx, first = self._tx, True
        while True:
            self._deadline.expect(self._read_seconds())
            with self._deadline.reading() as scope:
                try:
                    message = await self._stream.receive()
                except (ProtocolError, ServiceDistributionError) as exc:
                    await self._abort(exc)
                    raise
            if scope.cancelled_caught:
                raise await self._timed_out()
            if message is None:
                raise self._cut(None)
            if first and isinstance(message, Abort):
                raise message.error  # refused before it read anything (e.g. busy)
            first = False
            await self._take(message)
            if tx.state is SenderState.CLOSED:
                self._result = tx.outcome
                return
            if tx.pending:
                self._bell.set()

    async def _take(self, message: TransferMessage) -> None:
        tx = self._tx
        had_have = tx.receiver_have is not None
        async with self._lock:
            try:
                tx.receive(message)
            except (ProtocolError, ServiceDistributionError) as exc:
                log.info("Receiver %s broke the transfer protocol: %s", self.peer_id, exc)
                await self._abort(exc)
                raise
        have = tx.receiver_have
        if not had_have and have is not None:
            self.receiver_had = sum(tx.manifest.chunk_length(index) for index in have)
        if isinstance(message, Have) and have is not None and self.delivered.merge(have):
            self._delivered()

    def _delivered(self) -> None:
        if self._on_delivered is not None:
            self._on_delivered(self.delivered)

    def _read_seconds(self) -> float:
        awaiting = self._tx.waiting_for
        if awaiting is SenderAwaiting.RESULT:
            return self._install_timeout
        if awaiting is SenderAwaiting.HAVE:
            return self._read_timeout
        if awaiting is SenderAwaiting.WANTS:
            return self._wants_timeout  # a swarm peer may rightly ask for nothing for a while
        return math.inf

    async def _timed_out(self) -> ServiceDistributionError:
        awaiting, peer = self._tx.waiting_for, self.peer_id
        seconds = self._deadline.seconds
        if awaiting is SenderAwaiting.RESULT:
            error = ServiceDistributionError(
                f"{peer} holds the whole archive but gave no result within {seconds:g} s "
                "(its install takes longer than [node] install_timeout)",
                code="install_timeout",
            )
        elif awaiting is SenderAwaiting.HAVE:
            error = ServiceDistributionError(
                f"{peer} did not answer the offer within {seconds:g} s", code="transfer_timeout"
            )
        else:
            error = ServiceDistributionError(
                f"{peer} lacks chunks but asked for none within {seconds:g} s", code="transfer_timeout"
            )
        await self._abort(error)
        return error

    # -- writing ------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        tx = self._tx
        while True:
            while not tx.pending and not self._announced:
                await self._bell.wait()
                self._bell = trio.Event()
            if self._announced:
                indices, self._announced = self._announced, []
                async with self._lock:
                    updates = tx.announce(indices)
                for update in updates:
                    await self._stream.send(update)
                self._deadline.expect(self._read_seconds())
                continue
            async with self._lock:
                try:
                    frame, size, index = await trio.to_thread.run_sync(self._next_frame)
                except (OrchestratorError, OSError) as exc:
                    error = _read_failure(exc)
                    log.warning(
                        "Cannot serve %s to %s: %s", tx.manifest.archive_hash[:12], self.peer_id, error
                    )
                    await self._abort(error)
                    raise error from exc
            if frame is None:
                continue
            await self._stream.send_frame(frame)
            self.bytes_sent += size
            if self._on_chunk is not None:
                await self._on_chunk(size)
            if self.delivered.add(index):
                self._delivered()
            self._deadline.expect(self._read_seconds())

    def _next_frame(self) -> tuple[bytes | None, int, int]:
        """The next chunk asked for, read and framed, its size and index (in a worker thread, under the lock)."""
        chunk = self._tx.next_chunk()
        if chunk is None:
            return None, 0, -1
        return self._stream.channel.send(chunk), len(chunk.data), chunk.index

    # -- endings ------------------------------------------------------------------------------

    async def _abort(self, error: OrchestratorError) -> None:
        """Tell the receiver why we stop (best effort), then end the stream."""
        try:
            await self._stream.send(Abort(error))
        except (StreamBroken, ProtocolError) as exc:
            log.debug("could not send abort to %s: %s", self.peer_id, exc)
        await self._stream.close()

    def _cut(self, cause: BaseException | None) -> ServiceDistributionError:
        reason = self._stream.failure or cause
        why = f" ({reason})" if reason is not None else ""
        return ServiceDistributionError(
            f"the stream to {self.peer_id} ended before its result, after {self.bytes_sent} chunk bytes{why}",
            code="transfer_cut",
        )


def _read_failure(exc: BaseException) -> OrchestratorError:
    if isinstance(exc, OrchestratorError):
        return exc
    return ServiceDistributionError(f"cannot read the archive: {exc}", code="storage_failed")
