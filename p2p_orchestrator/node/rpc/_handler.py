"""``RpcStreamHandler``: the py-libp2p stream handler of ``/p2p-orchestrator/rpc/1.0.0``.

py-libp2p runs a handler in its own task for each inbound stream, and an
exception escaping a handler takes the whole host down (trap 1 of
``py-libp2p-notes.md``).  So this handler contains everything:

1. it admits the stream under the :class:`StreamLimiter` (over the limit: one
   ``ErrorReply(None, Busy)``, then the stream is closed unread, and reset if the peer goes on
   sending);
2. it serves it with :class:`ServerStream` (frames from a peer without a role may be at most
   :data:`STRANGER_FRAME_BYTES`), each request as the caller the
   access table gives the stream's *authenticated* remote peer ID (looked up
   per request, so :meth:`Node.set_role` applies at once);
3. whatever escapes is logged with the peer's ID and the stream is reset.

:meth:`RpcStreamHandler.close` cancels every stream it serves (the node is
shutting down) and refuses new ones.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import trio

from p2p_orchestrator.callers import Caller
from p2p_orchestrator.errors import Busy, PermissionDenied
from p2p_orchestrator.node.access import AccessControl
from p2p_orchestrator.node.host._limits import StreamLimiter
from p2p_orchestrator.node.host._stream import NetStream, RawStream, StreamBroken, reset_raw
from p2p_orchestrator.node.rpc._server import Deadlines, ServerStream
from p2p_orchestrator.wire import ErrorReply, Request, RpcConnection

__all__ = ["STRANGER_FRAME_BYTES", "CallRpc", "RpcStreamHandler"]

log = logging.getLogger("p2p_orchestrator.node")

STRANGER_FRAME_BYTES = 256 * 1024
"""The largest frame a peer without a role may send (a partial frame is held per stream)."""

_DISCARD_BYTES = 256 * 1024
"""What a refused stream may still send (one Yamux window) before it is reset."""

CallRpc = Callable[[str, dict[str, Any], Caller], Awaitable[Any]]
"""``(method, params, caller) -> result``: the node's RPC table (``Rpc.call``)."""


class RpcStreamHandler:
    """Admits, serves and contains inbound RPC streams; see the module docstring."""

    def __init__(
        self,
        call: CallRpc,
        access: AccessControl,
        limiter: StreamLimiter,
        *,
        deadlines: Deadlines,
        max_in_flight: int,
    ) -> None:
        self._call = call
        self._access = access
        self._limiter = limiter
        self._deadlines = deadlines
        self._max_in_flight = max_in_flight
        self._serving: set[trio.CancelScope] = set()
        self._closed = False

    @property
    def limiter(self) -> StreamLimiter:
        """The stream counts (open, peak, refused) and limits."""
        return self._limiter

    async def __call__(self, raw: Any) -> None:
        """Handle one stream; never raises (except the host's own cancellation)."""
        stream: NetStream | None = None
        try:
            stream = NetStream(cast(RawStream, raw))
            await self._handle(stream)
        except Exception:
            who = stream.peer_id if stream is not None else "an unknown peer"
            log.exception("The RPC stream handler failed on a stream of %s; resetting it", who)
            if stream is not None:
                await stream.reset()
            else:
                await reset_raw(raw)

    async def _handle(self, stream: NetStream) -> None:
        if self._closed:
            await stream.reset()
            return
        known = self._access.role_of(stream.peer_id) is not None
        with self._limiter.slot(stream.peer_id, known=known) as admitted:
            if not admitted:
                await self._refuse_busy(stream, known=known)
                return
            server = ServerStream(
                stream,
                lambda request: self._serve(stream.peer_id, request),
                deadlines=self._deadlines,
                max_in_flight=self._max_in_flight,
                max_received_frame_bytes=None if known else STRANGER_FRAME_BYTES,
            )
            with trio.CancelScope() as scope:
                self._serving.add(scope)
                try:
                    await server.serve()
                finally:
                    self._serving.discard(scope)

    async def _serve(self, peer_id: str, request: Request) -> Any:
        caller = self._access.caller_for(peer_id)
        if caller is None:
            raise PermissionDenied(
                f"peer {peer_id} has no role on this node and unknown peers may call nothing"
            )
        return await self._call(request.method, request.params, caller)

    async def _refuse_busy(self, stream: NetStream, *, known: bool) -> None:
        limiter = self._limiter
        log.info(
            "Refusing an RPC stream of %s: %d of its streams, %d of peers without a role and %d in all "
            "are open (limits %d, %d, %d)",
            stream.peer_id,
            limiter.open_streams(stream.peer_id),
            limiter.open_unknown_streams(),
            limiter.open_streams(),
            limiter.per_peer,
            limiter.unknown_total,
            limiter.total,
        )
        unknown = "" if known else f", {limiter.unknown_total} to peers without a role"
        busy = Busy(
            f"this node serves {limiter.per_peer} streams per peer and {limiter.total} in all{unknown}; "
            "retry later"
        )
        notice = RpcConnection("server").send(ErrorReply(None, busy))
        with trio.move_on_after(self._deadlines.write):
            try:
                await stream.send(notice)
            except StreamBroken as exc:
                log.debug("could not tell %s it is busy: %s", stream.peer_id, exc)
        await stream.close_and_discard(max_bytes=_DISCARD_BYTES, time_limit=self._deadlines.read)

    def close(self) -> None:
        """Cancel every stream being served and refuse new ones."""
        self._closed = True
        for scope in self._serving:
            scope.cancel()
