"""``ClientChannel``: our calls to one peer, multiplexed over one outbound RPC stream.

Many calls share the stream at once: each :meth:`ClientChannel.call` sends a
``req`` with a fresh id and waits for the answer :meth:`ClientChannel.run` (the
only reader) hands it.  A call that is cancelled, or runs out of time in the
caller's scope, sends ``cancel`` so the peer can stop working on it.

The channel ends when the peer closes or resets the stream, breaks the
protocol, or sends a connection-level error (``busy`` when it already serves
too many of our streams); every pending call then fails with that reason.  It
also closes itself after resting ``idle_close`` seconds with nothing in flight,
before the peer's own idle deadline can cut it mid-request.

A call that never reached the wire raises :class:`NotSent`, which the pool
(:mod:`p2p_orchestrator.node.rpc._pool`) may retry safely on a fresh stream.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import trio

from p2p_orchestrator._rpc_session import MessageReader, PendingCalls
from p2p_orchestrator.errors import OrchestratorError, ProtocolError, ServiceCallError
from p2p_orchestrator.node.host._read_deadline import ReadDeadline
from p2p_orchestrator.node.host._stream import NetStream, StreamBroken
from p2p_orchestrator.node.rpc._sender import frame_sender
from p2p_orchestrator.wire import Cancel, ConnectionState, ErrorReply, Request, Response, RpcConnection

__all__ = ["ClientChannel", "NotSent"]

log = logging.getLogger("p2p_orchestrator.node")


class NotSent(Exception):
    """The request never left: the channel had ended (or ended while we wrote it)."""


class ClientChannel:
    """Calls to one peer over one stream; see the module docstring."""

    def __init__(
        self,
        stream: NetStream,
        *,
        max_in_flight: int,
        write_timeout: float,
        read_timeout: float,
        idle_close: float,
    ) -> None:
        self._stream = stream
        self._conn = RpcConnection("client")
        self._sender = frame_sender(stream, self._conn, write_timeout=write_timeout)
        self._slots = trio.Semaphore(max_in_flight)
        self._read_timeout = read_timeout
        self._idle_close = idle_close
        self._pending = PendingCalls()
        self._idle_since = trio.current_time()
        self._reads = ReadDeadline(self._deadline)
        self._closing = False
        self._closed = trio.Event()
        self.close_reason: OrchestratorError | None = None

    @property
    def peer_id(self) -> str:
        return self._stream.peer_id

    @property
    def usable(self) -> bool:
        """Whether new calls may use this channel."""
        return not (self._closing or self._closed.is_set())

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    # -- calling ----------------------------------------------------------------------------

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """Send one request and wait for its answer (the caller's scope bounds the wait).

        Raises the peer's error as its own class, :class:`NotSent`, or
        ``ServiceCallError`` (``unencodable_params``, ``channel_closed``).
        """
        async with self._slots:
            if not self.usable:
                raise NotSent(self._describe_end())
            rid = self._conn.next_request_id()
            pending = self._pending.add(rid)
            self._lift_idle_deadline()
            try:
                await self._send_request(rid, method, params)
                try:
                    await pending.done.wait()
                except trio.Cancelled:
                    if not pending.done.is_set():
                        await self._cancel_remote(rid)
                    raise
            finally:
                self._pending.discard(rid)
                self._maybe_idle()
        return pending.outcome()

    async def _send_request(self, rid: int, method: str, params: dict[str, Any]) -> None:
        try:
            await self._sender.send(Request(rid, method, params))
        except ProtocolError as exc:
            if self.usable and self._conn.state is ConnectionState.OPEN:
                raise ServiceCallError(f"{method}: {exc.message}", code="unencodable_params") from exc
            # The stream ended (the reader saw it, and will say so): nothing left, retry elsewhere.
            self._closing = True
            raise NotSent(self._describe_end()) from exc
        except StreamBroken as exc:
            # The frame may have left whole before the stream broke: never retry this one.
            self._closing = True
            await self._stream.reset()  # ends run(), which fails the other pending calls
            raise ServiceCallError(f"{method}: {exc}", code="channel_closed") from exc

    async def _cancel_remote(self, rid: int) -> None:
        with trio.CancelScope(shield=True):
            try:
                await self._sender.send(Cancel(rid))
            except (ProtocolError, StreamBroken) as exc:
                log.debug("could not cancel request %d to %s: %s", rid, self.peer_id, exc)

    def _lift_idle_deadline(self) -> None:
        """A call is in flight: the reader must not close the stream for resting (see :meth:`_receive`)."""
        self._reads.move()

    def _maybe_idle(self) -> None:
        if not self._pending:
            self._idle_since = trio.current_time()
            self._reads.move()

    # -- reading ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Read answers until the stream ends; then fail whatever is still pending."""
        try:
            await self._read_loop()
        finally:
            await self._stream.reset()  # no-op after a clean close
            self._finish()

    async def _read_loop(self) -> None:
        reader = MessageReader(
            self._conn, receive=self._receive, flush=self._flush, on_violation=self._violated
        )
        try:
            async for event in reader:
                if isinstance(event, Response | ErrorReply) and event.id is not None:
                    self._pending.resolve(event)
                elif isinstance(event, ErrorReply):  # id None: the peer is ending the stream
                    log.info("peer %s ended our RPC stream: %s", self.peer_id, event.error)
                    self.close_reason = event.error
                    return
                else:
                    log.warning("peer %s sent an unexpected %s; ignored", self.peer_id, type(event).__name__)
        except ProtocolError:
            return  # _violated() said why

    def _violated(self, exc: ProtocolError) -> None:
        log.info("peer %s broke the RPC protocol: %s", self.peer_id, exc)
        self.close_reason = exc

    async def _receive(self) -> bytes | None:
        try:
            data = await self._reads.receive(self._stream)
        except StreamBroken as exc:
            log.debug("our RPC stream to %s broke: %s", self.peer_id, exc)
            return None
        if data is not None:
            return data
        if self._closing:
            return None  # the peer did not finish closing in time: the reset follows
        if self._pending:  # a call began just as the idle deadline passed: not idle after all
            return await self._receive()
        # Idle: close our side; the peer closes its side and the next read sees EOF.
        self._closing = True
        await self._stream.close()
        self._idle_since = trio.current_time()
        return await self._receive()

    def _deadline(self) -> float:
        if self._closing:
            return self._idle_since + self._read_timeout
        if self._pending:
            return math.inf
        return self._idle_since + self._idle_close

    async def _flush(self) -> bool:
        try:
            await self._sender.write(self._conn.data_to_send())
        except StreamBroken as exc:
            log.debug("our RPC stream to %s broke: %s", self.peer_id, exc)
        return True  # a broken stream ends at the next read

    def _describe_end(self) -> str:
        if self.close_reason is not None:
            return str(self.close_reason)
        return f"the RPC stream to {self.peer_id} has ended"

    def _finish(self) -> None:
        reason = self.close_reason or ServiceCallError(
            f"the RPC stream to {self.peer_id} ended before the answer", code="channel_closed"
        )
        self.close_reason = reason
        self._closing = True
        self._pending.fail_all(reason)
        self._closed.set()

    async def aclose(self) -> None:
        """Stop taking calls and close our side of the stream; :meth:`run` then ends."""
        self._closing = True
        await self._stream.close()
        if self._reads.waiting:
            self._idle_since = trio.current_time()
            self._reads.move()
