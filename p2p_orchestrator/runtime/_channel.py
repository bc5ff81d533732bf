"""``FramedChannel``: the adapter that drives a sans-IO :class:`RpcConnection` over a byte stream.

The wire package knows messages and bytes; this module adds the I/O: one reader
task, request/response matching, concurrent handling of incoming requests,
deadlines and cancellation, from the parts in :mod:`p2p_orchestrator._rpc_session`
(which the node's and the control socket's adapters share).  It is written with
anyio and works over any :class:`anyio.abc.ByteStream` (the socketpair between
the node and a service's child process): the node runs it on trio, a service's
child on the service's own event loop, asyncio or trio::

    stream = await anyio.abc.UNIXSocketStream.from_socket(sock)
    channel = FramedChannel(stream, RpcConnection("peer", exchange_hello=True), handler=serve)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(channel.run)
        await channel.send(Hello("orchestrator"))
        hello = await channel.wait_hello()
        result = await channel.call("service/greet", {"name": "Ada"}, time_limit=5)

Rules:

* :meth:`run` is the only reader.  It serves each incoming :class:`Request` in
  its own task (``handler(request) -> result``; an :class:`OrchestratorError` it
  raises becomes the :class:`ErrorReply`), and ends when the peer closes the
  stream; then every pending :meth:`call` fails with ``channel_closed`` and every
  handler is cancelled.
* :meth:`call` raises the peer's error rebuilt as its own class
  (:func:`~p2p_orchestrator.errors.error_from_wire`).  When it times out or is
  cancelled it sends a :class:`Cancel`, so the peer can stop working.
* Sends are serialised and shielded: a frame is never cut in half by a
  cancellation (which would corrupt the stream); a peer that stops reading for
  ``send_timeout`` seconds breaks the channel instead.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc

from p2p_orchestrator._rpc_session import (
    ANYIO_STREAM_GONE,
    Answer,
    AnyioStream,
    MessageReader,
    PendingCalls,
    RequestTasks,
    StreamWriter,
    receive_or_eof,
    send_answer,
)
from p2p_orchestrator.errors import OrchestratorError, ProtocolError, ServiceCallError
from p2p_orchestrator.wire import Cancel, ErrorReply, Hello, Message, Request, Response, RpcConnection

__all__ = ["FramedChannel", "RequestHandler"]

log = logging.getLogger("p2p_orchestrator.runtime")

RequestHandler = Callable[[Request], Awaitable[Any]]
"""Serves one incoming request: returns the result or raises an :class:`OrchestratorError`."""


async def _serves_nothing(request: Request) -> Any:
    raise ServiceCallError(f"{request.method}: this side serves no requests", code="unknown_method")


class FramedChannel:
    """Requests and answers both ways over one byte stream; see the module docstring."""

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        conn: RpcConnection,
        *,
        handler: RequestHandler | None = None,
        on_notice: Callable[[OrchestratorError], None] | None = None,
        name: str = "peer",
        send_timeout: float = 10.0,
    ) -> None:
        self.stream = AnyioStream(stream)
        self.conn = conn
        self.name = name
        self.handler = handler
        """Serves incoming requests (settable until :meth:`run` starts)."""
        self.on_notice = on_notice
        """Called with the error of a connection-level ``ErrorReply(None, ...)`` from the peer."""
        self._writer = StreamWriter(
            self.stream.send_all,
            self.stream.aclose,
            conn.send,
            timeout=send_timeout,
            stalled=lambda _: f"{name} did not read for {send_timeout} s",
        )
        self._pending = PendingCalls()
        self._requests = RequestTasks(
            self._respond,
            self._reply,
            internal_error=ServiceCallError,
            log_failure=lambda request: log.exception("Handler of %s failed", request.method),
        )
        self._hello_received = anyio.Event()
        self._closed = anyio.Event()
        self.close_reason: OrchestratorError | None = None
        """Why the channel ended, when known; pending and later calls fail with it."""

    # -- reading -----------------------------------------------------------------------

    async def run(self) -> None:
        """Read and dispatch until the peer closes the stream; serve requests meanwhile.

        Raises :class:`ProtocolError` if the peer breaks the protocol (after telling
        it why).  Whatever the outcome, pending calls fail and handlers are cancelled.
        """
        try:
            await self._requests.run(self._read_loop)
        finally:
            self._finish()

    async def _read_loop(self) -> None:
        reader = MessageReader(
            self.conn,
            receive=lambda: receive_or_eof(self.stream, ANYIO_STREAM_GONE),
            flush=self._flush_outbox,
            on_violation=self._violated,
        )
        async for msg in reader:
            self._dispatch(msg)

    def _violated(self, exc: ProtocolError) -> None:
        log.warning("%s broke the protocol: %s", self.name, exc)
        self.close_reason = exc

    def _dispatch(self, msg: Message) -> None:
        if self._requests.route(msg):  # a Request or a Cancel
            return
        if isinstance(msg, Hello):
            self._hello_received.set()
        elif isinstance(msg, ErrorReply) and msg.id is None:
            log.info("%s reported: %s", self.name, msg.error)
            if self.on_notice is not None:
                self.on_notice(msg.error)
        elif isinstance(msg, Response | ErrorReply) and self._pending.resolve(msg):
            pass
        elif isinstance(msg, Response | ErrorReply) and msg.id is not None and self.conn.issued(msg.id):
            # the answer crossed our Cancel (the call timed out or was given up): nothing to do
            log.debug("%s answered request %d after it was given up", self.name, msg.id)
        else:
            log.warning("%s sent an unexpected %s; ignored", self.name, type(msg).__name__)

    def _finish(self) -> None:
        reason = self.close_reason or ServiceCallError(
            f"the channel to {self.name} closed", code="channel_closed"
        )
        self.close_reason = reason
        self._pending.fail_all(reason)
        self._closed.set()
        self._hello_received.set()  # wake wait_hello(), which then sees the channel closed

    # -- serving -------------------------------------------------------------------------

    async def _respond(self, request: Request) -> Response:
        handler = self.handler or _serves_nothing
        return Response(request.id, await handler(request))

    async def _reply(self, request: Request, answer: Answer) -> None:
        await send_answer(self.conn, self.send, request, answer, gone=ANYIO_STREAM_GONE)

    # -- sending -------------------------------------------------------------------------

    async def send(self, msg: Message) -> None:
        """Send one message; :class:`ProtocolError` (nothing sent) if it is not allowed now."""
        await self._writer.send(msg)

    async def _flush_outbox(self) -> bool:
        with contextlib.suppress(*ANYIO_STREAM_GONE):
            await self._writer.write(self.conn.data_to_send())
        return True  # if the peer is gone, the reader sees the EOF next

    async def wait_hello(self) -> Hello:
        """Wait for the peer's :class:`Hello`; the channel's close reason if it closes first."""
        await self._hello_received.wait()
        hello = self.conn.peer_hello
        if hello is None:
            assert self.close_reason is not None
            raise self.close_reason
        return hello

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, time_limit: float | None = None
    ) -> Any:
        """Send a request and wait for its answer, at most ``time_limit`` seconds.

        Raises the peer's error, ``ServiceCallError`` with code ``call_timeout``,
        ``unencodable_params`` or ``channel_closed``.
        """
        if self._closed.is_set():
            assert self.close_reason is not None
            raise type(self.close_reason)(self.close_reason.message, code=self.close_reason.code)
        rid = self.conn.next_request_id()
        pending = self._pending.add(rid)
        try:
            try:
                await self.send(Request(rid, method, params or {}))
            except ProtocolError as exc:
                if self.close_reason is not None:
                    raise self.close_reason from exc
                raise ServiceCallError(f"{method}: {exc.message}", code="unencodable_params") from exc
            except ANYIO_STREAM_GONE as exc:
                raise ServiceCallError(
                    f"{method}: the channel to {self.name} is broken", code="channel_closed"
                ) from exc
            with anyio.move_on_after(math.inf if time_limit is None else time_limit):
                await pending.done.wait()
            if not pending.done.is_set():
                await self._cancel_remote(rid)
                raise ServiceCallError(
                    f"{method} did not answer within {time_limit:g} s", code="call_timeout"
                )
        except anyio.get_cancelled_exc_class():
            if not pending.done.is_set():
                await self._cancel_remote(rid)
            raise
        finally:
            self._pending.discard(rid)
        return pending.outcome()

    async def _cancel_remote(self, rid: int) -> None:
        # the peer may be gone or have answered already: then there is nothing left to cancel
        with (
            anyio.CancelScope(shield=True),
            contextlib.suppress(ProtocolError, *ANYIO_STREAM_GONE),
        ):
            await self.send(Cancel(rid))

    @property
    def closed(self) -> bool:
        """Whether :meth:`run` has ended."""
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        """Wait until :meth:`run` has ended."""
        await self._closed.wait()

    async def aclose(self) -> None:
        """Close the stream; :meth:`run` then ends."""
        await self.stream.aclose()
