"""``guarded_yamux``: py-libp2p's Yamux with its receive windows and buffers enforced.

The hole.  py-libp2p 0.8.1's Yamux appends every DATA payload a peer sends to its stream's
buffer, and a peer that sends past the receive window it was granted only gets a log line
("peer exceeded receive window").  A stream nobody reads -- one refused ``busy``, one whose
handler is done with it (py-libp2p's own identify/push handler half-closes and leaves) -- then
holds whatever the peer keeps sending: a peer without a role grew a node by 600 MiB for 600 MiB
sent.  Nothing bounded the number of streams a peer opens on a connection either.

The guard.  Every byte that enters a stream's buffer passes :meth:`_GuardedYamux._admit` (the
muxer's buffers are replaced by :class:`_StreamBuffers`, whose ``extend`` asks first), so:

* a payload larger than what is left of its stream's receive window is dropped and the stream
  reset (RST to the peer; its reader sees a reset); each such overrun is a *strike*, and a
  connection whose peer collects :attr:`BufferLimits.strikes` is closed (GO_AWAY, protocol
  error) -- an honest Yamux peer never overruns, so this costs only the peers that cheat;
* a payload that would take its connection over its buffer budget is dropped and its stream
  reset (no strike: an honest peer whose streams nobody reads yet can get there).  A connection
  of a peer with a role may buffer :attr:`BufferLimits.connection` bytes; one of a peer without
  a role :attr:`BufferLimits.stranger_connection`, and all of those together
  :attr:`BufferLimits.strangers`, so strangers cannot spend the memory the node keeps for the
  peers it trusts;
* a connection holds at most :attr:`BufferLimits.inbound_streams` open streams the peer opened;
  the SYN of one more is answered RST.

Whether a peer has a role is asked at each decision (``is_known``), so ``set_role`` applies at
once; whose share a connection's bytes are counted against (the strangers' or not) is fixed when
it opens.  The rest of Yamux -- framing, windows granted, flow control, closing -- is
py-libp2p's, unchanged; a guarded connection only takes two shortcuts through it, with the same
frames and the same bytes: its plain DATA frames are delivered without the library's per-frame
work (``_yamux_incoming``), and its streams write DATA frames with one copy (``_yamux_writes``).
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, SupportsIndex, cast

import trio
from libp2p.abc import IHost
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.yamux.yamux import (
    FLAG_RST,
    GO_AWAY_PROTOCOL_ERROR,
    TYPE_WINDOW_UPDATE,
    YAMUX_HEADER_FORMAT,
    Yamux,
    YamuxStream,
    _yamux_data_read_timeout,
)

from p2p_orchestrator.node.host._frame_reads import incomplete_read
from p2p_orchestrator.node.host._secure_reads import route_yamux_reads, take_exact, take_ready
from p2p_orchestrator.node.host._yamux_incoming import next_header
from p2p_orchestrator.node.host._yamux_writes import FittedStream

__all__ = ["Budget", "BufferLimits", "install_guard"]

log = logging.getLogger("p2p_orchestrator.node")

_MiB = 1024 * 1024


@dataclass(frozen=True)
class BufferLimits:
    """How much one connection, and all connections of peers without a role, may have buffered."""

    connection: int = 64 * _MiB
    """Bytes a connection of a peer with a role may hold in its streams' buffers."""
    stranger_connection: int = 4 * _MiB
    """Bytes a connection of a peer without a role may hold."""
    strangers: int = 32 * _MiB
    """Bytes all connections of peers without a role may hold together."""
    inbound_streams: int = 64
    """Streams the peer opened that one connection may hold open at once."""
    strikes: int = 3
    """Receive-window overruns after which the connection is closed."""


class Budget:
    """Bytes in use against a limit, and against a parent budget's too (sans I/O)."""

    def __init__(self, limit: int, parent: Budget | None = None) -> None:
        self.limit = limit
        self.parent = parent
        self.used = 0

    def fits(self, n: int) -> bool:
        """Whether ``n`` more bytes stay within this limit."""
        return self.used + n <= self.limit

    def charge(self, n: int) -> None:
        """Count ``n`` bytes as in use, here and in the parent."""
        self.used += n
        if self.parent is not None:
            self.parent.charge(n)

    def release(self, n: int) -> None:
        """Count ``n`` bytes as freed, here and in the parent."""
        self.used -= n
        if self.parent is not None:
            self.parent.release(n)


_SMALL_PIECE = 4096
"""Payloads shorter than this are gathered in one ``bytearray`` piece rather than kept one by one,
so that a peer sending tiny frames costs a byte per byte buffered, not an object per frame."""


class _StreamBuffer:
    """One stream's receive buffer: admits what enters, accounts what enters and leaves.

    It stands in for the ``bytearray`` py-libp2p's Yamux keeps per stream, and offers what that
    code uses of one -- ``len``, ``extend``, ``bytes()``, ``buffer[:n]``, ``del buffer[:n]``,
    ``clear`` -- but keeps the payloads as they arrived: a DATA payload is stored, not copied
    (``bytes``, or a view of a decrypted Noise message that it fills at least 7/8 of: see
    ``_secure_reads``), and :meth:`take` hands the pieces over as they are (``_yamux_reads``).
    A payload that is a smaller part of a larger object is copied, so that what is held stays
    within 8/7 of what is charged against the budget; small payloads are gathered
    (:data:`_SMALL_PIECE`), so a peer's tiny frames cost no object each.
    """

    __slots__ = ("_owner", "_pieces", "_size", "_stream_id")

    def __init__(self, owner: _GuardedYamux, stream_id: int) -> None:
        self._owner = owner
        self._stream_id = stream_id
        self._pieces: deque[bytes | bytearray | memoryview] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def extend(self, data: Any) -> None:
        n = len(data)
        if not n or not self._owner._admit(self._stream_id, n):
            return
        pieces = self._pieces
        if n < _SMALL_PIECE:
            last = pieces[-1] if pieces else None
            if type(last) is bytearray:
                last += data
            else:
                pieces.append(bytearray(data))
        elif type(data) is bytes or (
            type(data) is memoryview and type(data.obj) is bytes and 8 * n >= 7 * len(data.obj)
        ):
            pieces.append(data)
        else:
            pieces.append(bytes(data))
        self._size += n
        self._owner._budget.charge(n)

    def take(self, n: int) -> list[bytes | memoryview]:
        """Remove the first ``n`` bytes (all there are, if fewer) and return them as read-only pieces."""
        pieces = self._pieces
        taken: list[bytes | memoryview] = []
        got = 0
        while pieces and got < n:
            piece = pieces[0]
            if got + len(piece) <= n:
                pieces.popleft()
                got += len(piece)
                taken.append(bytes(piece) if isinstance(piece, bytearray) else piece)
                continue
            cut = n - got
            if type(piece) is bytearray:
                taken.append(bytes(piece[:cut]))
                del piece[:cut]
            else:
                view = memoryview(piece)
                taken.append(view[:cut])
                pieces[0] = view[cut:]
            got = n
        self._size -= got
        self._owner._budget.release(got)
        return taken

    def _peek(self, n: int) -> bytes:
        """The first ``n`` bytes, copied, left in place."""
        head: list[bytes | bytearray | memoryview] = []
        got = 0
        for piece in self._pieces:
            if got >= n:
                break
            head.append(piece if got + len(piece) <= n else memoryview(piece)[: n - got])
            got += len(head[-1])
        return b"".join(head)

    def __bytes__(self) -> bytes:
        return b"".join(self._pieces)

    def __getitem__(self, key: SupportsIndex | slice) -> Any:
        if isinstance(key, slice) and key.step is None and not key.start and (key.stop or 0) >= 0:
            return self._peek(self._size if key.stop is None else key.stop)
        return bytes(self)[key]

    def __delitem__(self, key: SupportsIndex | slice) -> None:
        if isinstance(key, slice) and key.step is None and not key.start and (key.stop or 0) >= 0:
            self.take(self._size if key.stop is None else key.stop)
            return
        rest = bytearray(bytes(self))
        del rest[key]
        self._owner._budget.release(self._size - len(rest))
        self._pieces = deque([rest] if rest else [])
        self._size = len(rest)

    def clear(self) -> None:
        self._owner._budget.release(self._size)
        self._pieces.clear()
        self._size = 0


class _StreamBuffers(dict[int, Any]):
    """The muxer's ``stream_buffers``: every buffer put in is a :class:`_StreamBuffer`."""

    def __init__(self, owner: _GuardedYamux) -> None:
        super().__init__()
        self._owner = owner

    def __setitem__(self, stream_id: int, value: bytearray) -> None:
        self._forget(super().get(stream_id))
        buffer = _StreamBuffer(self._owner, stream_id)
        super().__setitem__(stream_id, buffer)
        buffer.extend(value)
        self._owner._opened(stream_id)

    def __delitem__(self, stream_id: int) -> None:
        self._forget(super().get(stream_id))
        super().__delitem__(stream_id)

    def pop(self, stream_id: int, *default: Any) -> Any:
        buffer = super().pop(stream_id, *default)
        self._forget(buffer)
        return buffer

    def clear(self) -> None:
        for buffer in self.values():
            self._forget(buffer)
        super().clear()

    def _forget(self, buffer: object) -> None:
        if isinstance(buffer, _StreamBuffer):
            self._owner._budget.release(len(buffer))


class _GuardedYamux(Yamux):
    """Yamux whose buffers pass :meth:`_admit`; see the module docstring.  Made by :func:`install_guard`."""

    _limits: BufferLimits
    _is_known: Callable[[str], bool]
    _strangers: Budget

    def _guard(self) -> None:
        """Start guarding this connection (before it is started: no stream exists yet)."""
        self._peer = self.peer_id.to_base58()
        self._stranger = not self._is_known(self._peer)
        self._budget = Budget(self._limits.connection, self._strangers if self._stranger else None)
        self._strikes = 0
        self.stream_buffers = _StreamBuffers(self)
        if isinstance(self.secured_conn, SecureSession):
            route_yamux_reads(self.secured_conn, self._next_header)

    async def _read_data_body(self, length: int) -> Any:
        # A payload already read ahead (see _secure_reads) is taken without the library's read
        # deadline: it cannot stall, and the deadline's cancel scope cost more than the read.
        # Bodies are read here, never with the module's read_exactly, which reads headers only
        # on a guarded session (route_yamux_reads).
        session = self.secured_conn
        if not isinstance(session, SecureSession):
            return await super()._read_data_body(length)
        data = take_ready(session, length)
        if data is None:
            with trio.fail_after(_yamux_data_read_timeout()):
                return await take_exact(session, length)
        if len(data) < length:
            raise incomplete_read(length, len(data))
        return data

    async def _next_header(self, n: int) -> Any:
        return await next_header(self, n)

    def _inbound(self, stream_id: int) -> bool:
        # Yamux: the side that dialled opens odd stream IDs, the other even ones.
        return (stream_id % 2 == 1) != bool(self.is_initiator_value)

    def _opened(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if type(stream) is YamuxStream:
            stream.__class__ = FittedStream
        if not self._inbound(stream_id):
            return
        open_inbound = sum(
            1 for sid, stream in self.streams.items() if self._inbound(sid) and not stream.closed
        )
        if open_inbound > self._limits.inbound_streams:
            self._refuse(stream_id, f"opened more than {self._limits.inbound_streams} streams at once")

    def _admit(self, stream_id: int, n: int) -> bool:
        stream = self.streams.get(stream_id)
        if stream is None:
            return True
        if n > stream.recv_window:  # also on a stream reset already: the peer had no more window
            self._strikes += 1
            self._refuse(
                stream_id,
                f"sent {n} bytes with {stream.recv_window} left of the receive window "
                f"(overrun {self._strikes} of {self._limits.strikes})",
            )
            if self._strikes >= self._limits.strikes:
                self._spawn(self._close_for_overruns)
            return False
        if stream.reset_received:
            return False  # in flight when the reset went out: dropped
        known = self._is_known(self._peer)
        limit = self._limits.connection if known else self._limits.stranger_connection
        if self._budget.used + n > limit or (not known and not self._strangers.fits(n)):
            self._refuse(stream_id, "went over the buffer budget of its connection")
            return False
        return True

    def _refuse(self, stream_id: int, why: str) -> None:
        """Reset ``stream_id`` here at once and tell the peer (RST); its buffered bytes are dropped."""
        log.info("Resetting stream %d of %s: it %s", stream_id, self._peer, why)
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.closed = stream.send_closed = stream.recv_closed = True
            stream.reset_received = True
        buffer = self.stream_buffers.get(stream_id)
        if buffer is not None:
            buffer.clear()
        event = self.stream_events.get(stream_id)
        if event is not None:
            event.set()
        self._spawn(self._send_reset, stream_id)

    def _spawn(self, task: Callable[..., Any], *args: Any) -> None:
        # The checks run inside handle_incoming, under streams_lock, in start()'s nursery.
        if self._nursery is not None:
            self._nursery.start_soon(task, *args)

    async def _send_reset(self, stream_id: int) -> None:
        header = struct.pack(YAMUX_HEADER_FORMAT, 0, TYPE_WINDOW_UPDATE, FLAG_RST, stream_id, 0)
        try:
            await self._write_frame(header)
        except Exception as exc:  # the connection is going away: nothing left to reset
            log.debug("could not send RST on stream %d of %s: %s", stream_id, self._peer, exc)

    async def _close_for_overruns(self) -> None:
        log.warning(
            "Closing the connection of %s: it overran its streams' receive windows %d times",
            self._peer,
            self._strikes,
        )
        try:
            await self.close(GO_AWAY_PROTOCOL_ERROR)
        except Exception as exc:
            log.debug("closing the connection of %s failed: %s", self._peer, exc)


def install_guard(host: IHost, limits: BufferLimits, is_known: Callable[[str], bool]) -> None:
    """Guard every Yamux connection ``host`` makes from now on; see the module docstring.

    ``is_known(peer_id)``: whether the peer has a role on the node (base58 peer ID).
    py-libp2p builds its ``Yamux`` itself whatever ``muxer_opt`` names, so the connection the
    host's muxer negotiation returns, not yet started, becomes a guarded one in place.
    """
    guarded = type(
        "GuardedYamux",
        (_GuardedYamux,),
        {"_limits": limits, "_is_known": staticmethod(is_known), "_strangers": Budget(limits.strangers)},
    )
    network: Any = host.get_network()
    negotiation = network.upgrader.muxer_multistream
    new_conn: Callable[[Any, Any], Awaitable[Any]] = negotiation.new_conn

    async def guarded_new_conn(conn: Any, peer_id: Any) -> Any:
        muxed = await new_conn(conn, peer_id)
        if type(muxed) is Yamux:
            muxed.__class__ = guarded
            cast(_GuardedYamux, muxed)._guard()
        return muxed

    negotiation.new_conn = guarded_new_conn
