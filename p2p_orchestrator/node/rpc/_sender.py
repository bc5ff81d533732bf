"""``frame_sender``: the writer of an :class:`~p2p_orchestrator.wire.RpcConnection`'s frames on a libp2p stream.

It is the shared :class:`~p2p_orchestrator._rpc_session.StreamWriter` (frames whole and in
order under one lock, each write shielded from cancellation and bounded by a deadline), on a
:class:`~p2p_orchestrator.node.host._stream.NetStream`: a peer that stops reading (so Yamux's
window stays shut) gets its stream reset after ``write_timeout`` seconds, and the writer sees
:class:`~p2p_orchestrator.node.host._stream.StreamBroken`.
"""

from __future__ import annotations

from p2p_orchestrator._rpc_session import StreamWriter
from p2p_orchestrator.node.host._stream import NetStream, frame_writer
from p2p_orchestrator.wire import Message, RpcConnection

__all__ = ["frame_sender"]


def frame_sender(stream: NetStream, conn: RpcConnection, *, write_timeout: float) -> StreamWriter[Message]:
    """Serialised, deadline-bound writes of ``conn``'s frames to ``stream``; see the module docstring.

    ``send(msg)`` raises :class:`~p2p_orchestrator.errors.ProtocolError` (nothing was sent, the
    connection is unchanged) when the codec refuses it; ``write(conn.data_to_send())`` writes what
    the connection produced on its own (``busy`` refusals, a final error notice).
    """
    return frame_writer(
        stream,
        conn.send,
        timeout=write_timeout,
        stalled=lambda _: f"{stream.peer_id} did not read a frame within {write_timeout:g} s",
    )
