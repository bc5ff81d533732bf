"""``ServerStream``: answers the requests a peer sends on one inbound RPC stream.

One task reads; each request is served in its own task, so one stream carries
many concurrent calls (the codec matches answers to requests by id and answers
``busy`` beyond ``max_in_flight``).  The stream ends, and everything still
running for it is cancelled, when:

* the peer closes it at a frame boundary (or resets it, which py-libp2p may
  also report as a clean EOF: either way nobody is left to answer);
* the peer breaks the protocol: it is sent one ``ErrorReply(None, ...)`` saying
  why, then the stream is reset;
* a read deadline passes (see :class:`Deadlines`): the stream is reset;
* the peer stops reading our answers for ``write_timeout``: the stream is reset.

Nothing here raises for anything the peer does; the node's stream handler
still guards it (an exception escaping a py-libp2p handler kills the host).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from p2p_orchestrator._rpc_session import Answer, MessageReader, RequestTasks, send_answer
from p2p_orchestrator.errors import ProtocolError, RemoteError
from p2p_orchestrator.node.host._read_deadline import ReadDeadline
from p2p_orchestrator.node.host._stream import NetStream, StreamBroken
from p2p_orchestrator.node.rpc._sender import frame_sender
from p2p_orchestrator.wire import Request, Response, RpcConnection

__all__ = ["Deadlines", "RequestHandler", "ServerStream"]

log = logging.getLogger("p2p_orchestrator.node")

RequestHandler = Callable[[Request], Awaitable[Any]]
"""Serves one request: returns the result or raises (an :class:`OrchestratorError` crosses as is)."""


@dataclass(frozen=True)
class Deadlines:
    """How long a stream may keep us waiting, in seconds.

    * ``read``: for the first frame of a stream, and for the rest of a frame once
      its first bytes arrived (a slow or silent peer cannot hold a stream open).
    * ``idle``: for the next frame while no request of the stream is in flight
      (a reused stream may rest between calls, but not forever).
    * ``write``: for the peer to take a frame we write.

    While requests are in flight there is no read deadline: the peer is waiting
    for us, and the caller's own timeout (and ``Cancel``) bounds the call.
    """

    read: float = 10.0
    idle: float = 60.0
    write: float = 10.0


class ServerStream:
    """Serves one inbound stream until it ends; see the module docstring."""

    def __init__(
        self,
        stream: NetStream,
        handler: RequestHandler,
        *,
        deadlines: Deadlines,
        max_in_flight: int,
        max_received_frame_bytes: int | None = None,
    ) -> None:
        self._stream = stream
        self._handler = handler
        self._deadlines = deadlines
        self._conn = RpcConnection(
            "server", max_in_flight=max_in_flight, max_received_frame_bytes=max_received_frame_bytes
        )
        self._sender = frame_sender(stream, self._conn, write_timeout=deadlines.write)
        self._requests = RequestTasks(
            self._respond,
            self._reply,
            internal_error=RemoteError,
            log_failure=self._log_failure,
            cancelled="was cancelled by the caller",
            task_prefix="rpc",
            on_done=self._request_done,
        )
        self._opened_at = trio.current_time()
        self._got_frame = False
        self._frame_started: float | None = None
        self._idle_since = self._opened_at
        self._reads = ReadDeadline(self._deadline)

    @property
    def peer_id(self) -> str:
        return self._stream.peer_id

    async def serve(self) -> None:
        """Read and answer until the stream ends; then reset or close it."""
        try:
            await self._requests.run(self._read_loop)
        finally:
            await self._stream.reset()  # no-op when already closed; frees the stream

    # -- reading --------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        reader = MessageReader(
            self._conn, receive=self._receive, flush=self._flush, on_violation=self._violated
        )
        try:
            async for event in reader:
                self._got_frame = True
                self._idle_since = trio.current_time()
                if not self._requests.route(event):  # ErrorReply(None, ...): the peer gave up on the stream
                    log.info("peer %s ended an RPC stream: %s", self.peer_id, event)
                    return
        except ProtocolError:
            await self._stream.reset()  # after the notice saying why
            return
        if reader.closed:
            await self._stream.close()

    async def _receive(self) -> bytes | None:
        """The next bytes (``b""`` at EOF), or ``None`` when the stream must end now."""
        now = trio.current_time()
        if self._conn.buffered_bytes == 0:
            self._frame_started = None
        elif self._frame_started is None:
            self._frame_started = now
        try:
            data = await self._reads.receive(self._stream)
        except StreamBroken as exc:
            log.debug("RPC stream of %s broke: %s", self.peer_id, exc)
            return None
        if data is not None:
            return data
        if self._frame_started is not None:
            why = f"did not finish a frame within {self._deadlines.read:g} s"
        elif not self._got_frame:
            why = f"sent no frame within {self._deadlines.read:g} s"
        else:
            why = f"left it idle for {self._deadlines.idle:g} s"
        log.info("peer %s %s on an RPC stream; resetting it", self.peer_id, why)
        return None

    def _deadline(self) -> float:
        if self._frame_started is not None:
            return self._frame_started + self._deadlines.read
        if not self._got_frame:
            return self._opened_at + self._deadlines.read
        if self._requests:
            return math.inf
        return self._idle_since + self._deadlines.idle

    def _violated(self, exc: ProtocolError) -> None:
        log.info("peer %s broke the RPC protocol: %s", self.peer_id, exc)

    async def _flush(self) -> bool:
        try:
            await self._sender.write(self._conn.data_to_send())
        except StreamBroken as exc:
            log.debug("RPC stream of %s broke: %s", self.peer_id, exc)
            return False
        return True

    # -- serving --------------------------------------------------------------------------

    async def _respond(self, request: Request) -> Response:
        return Response(request.id, await self._handler(request))

    def _log_failure(self, request: Request) -> None:
        log.exception("%s failed unexpectedly for peer %s", request.method, self.peer_id)

    async def _reply(self, request: Request, answer: Answer) -> None:
        def unencodable(exc: ProtocolError) -> None:
            log.warning("%s for %s: cannot send its result: %s", request.method, self.peer_id, exc)

        try:
            await send_answer(self._conn, self._sender.send, request, answer, on_unencodable=unencodable)
        except StreamBroken as exc:
            log.info("could not answer %s to %s: %s", request.method, self.peer_id, exc)
            await self._stream.reset()  # ends the read loop with an EOF or an error

    def _request_done(self) -> None:
        if not self._requests:
            self._idle_since = trio.current_time()
            self._reads.move()
