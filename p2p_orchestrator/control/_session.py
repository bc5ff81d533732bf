"""``ControlSession``: serves one control-socket connection over the sans-IO :class:`RpcConnection`.

A server-only sibling of :class:`~p2p_orchestrator.runtime._channel.FramedChannel`
that can also answer with a stream: a handler returns a plain result (one
:class:`Response`) or :class:`Streaming` (any number of :class:`StreamItem`,
then :class:`StreamEnd`); an :class:`OrchestratorError` it raises, before or
during a stream, becomes the :class:`ErrorReply`.

* Both sides send a :class:`Hello` first (the node's carries its peer ID).
* Each request runs in its own task; a :class:`Cancel` cancels it, and the
  client closing the connection cancels everything it asked for.
* Frames are written whole (shielded); a client that stops reading for
  ``send_timeout`` seconds has its connection closed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from p2p_orchestrator.errors import OrchestratorError, ProtocolError, RemoteError, ServiceCallError
from p2p_orchestrator.wire import (
    CLOSED,
    NEED_DATA,
    Cancel,
    ConnectionState,
    ErrorReply,
    Hello,
    Message,
    Request,
    Response,
    RpcConnection,
    StreamEnd,
    StreamItem,
)

__all__ = ["Emit", "Handler", "ControlSession", "Streaming"]

log = logging.getLogger("p2p_orchestrator.control")

Emit = Callable[[Any], Awaitable[None]]
"""Sends one item of a streamed answer (waits while the client is slow to read)."""


@dataclass(frozen=True)
class Streaming:
    """A streamed answer: ``await run(emit)`` emits the items; returning ends the stream."""

    run: Callable[[Emit], Awaitable[None]]


Handler = Callable[[Request], Awaitable[Any]]
"""Serves one request: a result, :class:`Streaming`, or an :class:`OrchestratorError` raised."""

_RECEIVE_SIZE = 65536


class ControlSession:
    """One client connection of the control socket; see the module docstring."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        handler: Handler,
        *,
        hello: Hello,
        send_timeout: float = 10.0,
    ) -> None:
        self._stream = stream
        self._handler = handler
        self._hello = hello
        self._send_timeout = send_timeout
        self._conn = RpcConnection("server", exchange_hello=True)
        self._send_lock = trio.Lock()
        self._serving: dict[int, trio.CancelScope] = {}

    async def run(self) -> None:
        """Serve the connection until the client closes it or breaks the protocol; then close it."""
        try:
            await self._send(self._hello)
            async with trio.open_nursery() as nursery:
                try:
                    await self._read_loop(nursery)
                finally:
                    nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            log.debug("control client went away: %s", exc)
        finally:
            await self._stream.aclose()

    async def _read_loop(self, nursery: trio.Nursery) -> None:
        conn = self._conn
        while True:
            try:
                event = conn.next_event()
            except ProtocolError as exc:
                log.info("a control client broke the protocol: %s", exc)
                await self._flush()
                return
            await self._flush()
            if event is NEED_DATA:
                try:
                    data = await self._stream.receive_some(_RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                try:
                    conn.receive_data(data)
                except ProtocolError as exc:
                    log.info("a control client broke the protocol: %s", exc)
                    await self._flush()
                    return
            elif event is CLOSED:
                return
            elif isinstance(event, Request):
                scope = self._serving[event.id] = trio.CancelScope()
                nursery.start_soon(self._serve, event, scope, name=f"control {event.method}")
            elif isinstance(event, Cancel):
                if (serving := self._serving.get(event.id)) is not None:
                    serving.cancel()
            elif isinstance(event, ErrorReply):
                log.info("a control client gave up: %s", event.error)
                return
            # its Hello needs no action: the codec checked the version

    async def _serve(self, request: Request, scope: trio.CancelScope) -> None:
        reply: Response | StreamEnd | ErrorReply
        try:
            with scope:
                reply = await self._answer(request)
            if scope.cancelled_caught:
                reply = ErrorReply(
                    request.id, ServiceCallError(f"{request.method} was cancelled", code="cancelled")
                )
            await self._reply(request, reply)
        finally:
            if self._serving.get(request.id) is scope:
                del self._serving[request.id]

    async def _answer(self, request: Request) -> Response | StreamEnd | ErrorReply:
        try:
            result = await self._handler(request)
            if isinstance(result, Streaming):

                async def emit(item: Any) -> None:
                    await self._send(StreamItem(request.id, item))

                await result.run(emit)
                return StreamEnd(request.id)
            return Response(request.id, result)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise  # the client is gone: the session ends
        except OrchestratorError as exc:
            return ErrorReply(request.id, exc)
        except Exception as exc:
            log.exception("control method %s failed", request.method)
            return ErrorReply(request.id, RemoteError(f"{type(exc).__name__}: {exc}", code="internal_error"))

    async def _reply(self, request: Request, reply: Message) -> None:
        try:
            await self._send(reply)
        except ProtocolError as exc:
            if self._conn.state is not ConnectionState.OPEN:
                return  # the client is gone: nobody waits for this answer
            error = ServiceCallError(
                f"{request.method} returned a result that cannot be sent: {exc.message}",
                code="unencodable_result",
            )
            await self._send(ErrorReply(request.id, error))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client is gone: nobody waits for this answer

    async def _send(self, msg: Message) -> None:
        async with self._send_lock:
            await self._write(self._conn.send(msg))

    async def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data:
            async with self._send_lock:
                await self._write(data)

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(self._send_timeout) as timer:
            await self._stream.send_all(data)
        if timer.cancelled_caught:
            await self._stream.aclose()
            raise trio.BrokenResourceError(f"the control client did not read for {self._send_timeout:g} s")
