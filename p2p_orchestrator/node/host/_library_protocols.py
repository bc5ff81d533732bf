"""Bound the protocols py-libp2p registers on its own: identify, identify/push, ping.

py-libp2p serves each inbound stream of these in a task of its own, as many as a peer opens,
and leaves a stream half-closed when its handler is done (identify/push reads one message of
up to 1 MiB, then closes and forgets the stream; whatever the peer sends after it used to stay
buffered).  :func:`bound_library_protocols` wraps each of their handlers so that:

* a peer holds at most ``per_peer`` streams of each protocol at once, and all peers
  ``total`` (peers without a role three quarters of it); one more is reset at once;
* an exception escaping a handler is logged, not left to take the host down;
* when the handler is done, the stream is closed and what the peer still sends is dropped
  until its EOF, for at most 64 KiB and 5 seconds, after which the stream is reset.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any, cast

from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol

from p2p_orchestrator.node.host._limits import StreamLimiter
from p2p_orchestrator.node.host._stream import NetStream, RawStream

__all__ = ["bound_library_protocols"]

log = logging.getLogger("p2p_orchestrator.node")

_DISCARD_BYTES = 64 * 1024
_DISCARD_SECONDS = 5.0

Handler = Callable[[INetStream], Awaitable[None]]


def bound_library_protocols(
    host: IHost,
    is_known: Callable[[str], bool],
    *,
    ours: Collection[str] = (),
    per_peer: int = 2,
    total: int = 32,
) -> None:
    """Wrap every handler registered on ``host`` now, except ``ours``; see the module docstring."""
    handlers: dict[TProtocol | None, Any] = host.get_mux().handlers
    for protocol, handler in list(handlers.items()):
        if protocol is None or protocol in ours or handler is None:
            continue
        limiter = StreamLimiter(per_peer=per_peer, total=total)
        host.set_stream_handler(protocol, _bounded(str(protocol), handler, limiter, is_known))


def _bounded(
    protocol: str, handler: Handler, limiter: StreamLimiter, is_known: Callable[[str], bool]
) -> Handler:
    async def bounded(raw: INetStream) -> None:
        stream = NetStream(cast(RawStream, raw))
        with limiter.slot(stream.peer_id, known=is_known(stream.peer_id)) as admitted:
            if not admitted:
                log.info("Refusing a %s stream of %s: too many open", protocol, stream.peer_id)
                await stream.reset()
                return
            try:
                await handler(raw)
            except Exception:
                log.exception("py-libp2p's %s handler failed on a stream of %s", protocol, stream.peer_id)
                await stream.reset()
                return
            await stream.close_and_discard(max_bytes=_DISCARD_BYTES, time_limit=_DISCARD_SECONDS)

    return bounded
