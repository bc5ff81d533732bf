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

from p2p_orchestrator._rpc_session import (
    Answer,
    MessageReader,
    RequestTasks,
    StreamWriter,
    receive_or_eof,
    send_answer,
)
from p2p_orchestrator.errors import ProtocolError, RemoteError
from p2p_orchestrator.wire import (
    ErrorReply,
    Hello,
    Request,
    Response,
    RpcConnection,
    StreamEnd,
    StreamItem,
)

__all__ = ["Emit", "Handler", "ControlSession", "Streaming"]

log = logging.getLogger("p2p_orchestrator.control")

STREAM_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)
"""What the client's :class:`trio.abc.Stream` raises once it is gone (or we closed it)."""

Emit = Callable[[Any], Awaitable[None]]
"""Sends one item of a streamed answer (waits while the client is slow to read)."""


@dataclass(frozen=True)
class Streaming:
    """A streamed answer: ``await run(emit)`` emits the items; returning ends the stream."""

    run: Callable[[Emit], Awaitable[None]]


Handler = Callable[[Request], Awaitable[Any]]
"""Serves one request: a result, :class:`Streaming`, or an :class:`OrchestratorError` raised."""


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
        self._conn = RpcConnection("server", exchange_hello=True)
        self._writer = StreamWriter(
            stream.send_all,
            stream.aclose,
            self._conn.send,
            timeout=send_timeout,
            stalled=lambda _: f"the control client did not read for {send_timeout:g} s",
            broken=trio.BrokenResourceError,
        )
        self._requests = RequestTasks(
            self._respond,
            self._reply,
            internal_error=RemoteError,
            log_failure=lambda request: log.exception("control method %s failed", request.method),
            gone=STREAM_GONE,  # the client is gone: the session ends
            task_prefix="control",
        )

    async def run(self) -> None:
        """Serve the connection until the client closes it or breaks the protocol; then close it."""
        try:
            await self._writer.send(self._hello)
            await self._requests.run(self._read_loop)
        except STREAM_GONE as exc:
            log.debug("control client went away: %s", exc)
        finally:
            await self._stream.aclose()

    async def _read_loop(self) -> None:
        reader = MessageReader(
            self._conn,
            receive=lambda: receive_or_eof(self._stream, STREAM_GONE),
            flush=self._flush,
            on_violation=lambda exc: log.info("a control client broke the protocol: %s", exc),
        )
        try:
            async for event in reader:
                if self._requests.route(event):  # a Request or a Cancel
                    continue
                if isinstance(event, ErrorReply):
                    log.info("a control client gave up: %s", event.error)
                    return
                # its Hello needs no action: the codec checked the version
        except ProtocolError:
            return  # the notice telling the client why is sent

    async def _respond(self, request: Request) -> Response | StreamEnd:
        result = await self._handler(request)
        if isinstance(result, Streaming):

            async def emit(item: Any) -> None:
                await self._writer.send(StreamItem(request.id, item))

            await result.run(emit)
            return StreamEnd(request.id)
        return Response(request.id, result)

    async def _reply(self, request: Request, answer: Answer) -> None:
        await send_answer(self._conn, self._writer.send, request, answer, gone=STREAM_GONE)

    async def _flush(self) -> bool:
        await self._writer.write(self._conn.data_to_send())  # a client that is gone ends the session
        return True
