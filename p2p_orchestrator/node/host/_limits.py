"""``StreamLimiter``: how many inbound RPC streams one peer, and all peers, may hold open.

Each open stream costs a task, a codec and up to one frame of buffer (4 MiB by
default), so the node bounds them: at most ``per_peer`` streams per peer and
``total`` overall.  A stream over either limit is answered ``busy`` and
closed without being read (see ``Node``); the peer's other streams, and every
other peer, carry on.  Worst-case buffer memory is ``total`` frames.

Peer IDs cost nothing to make, so strangers could otherwise take the whole
``total`` between them and lock out the peers this node trusts.  Peers without
a role (*unknown* peers) therefore share at most three quarters of ``total``
(:attr:`StreamLimiter.unknown_total`); the rest is always there for peers with
a role.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["StreamLimiter"]


class StreamLimiter:
    """Counts open streams per peer and in total; see the module docstring."""

    def __init__(self, *, per_peer: int, total: int) -> None:
        if per_peer < 1 or total < 1:
            raise ValueError("stream limits must be positive")
        self.per_peer = per_peer
        self.total = total
        self.unknown_total = max(1, total * 3 // 4)
        """Streams all peers without a role together may hold open."""
        self._open: Counter[str] = Counter()
        self._count = 0
        self._unknown = 0
        self.peak = 0
        """The most streams open at once so far."""
        self.refused = 0
        """Streams refused so far for being over a limit."""

    def open_streams(self, peer_id: str | None = None) -> int:
        """Streams open now, of ``peer_id`` or of everyone."""
        return self._count if peer_id is None else self._open[peer_id]

    def open_unknown_streams(self) -> int:
        """Streams of peers without a role open now."""
        return self._unknown

    @contextmanager
    def slot(self, peer_id: str, *, known: bool = True) -> Iterator[bool]:
        """Hold a slot for a stream of ``peer_id`` while inside; yields whether one was free.

        ``known``: whether the peer has a role (else it counts against :attr:`unknown_total` too).
        """
        if (
            self._count >= self.total
            or self._open[peer_id] >= self.per_peer
            or (not known and self._unknown >= self.unknown_total)
        ):
            self.refused += 1
            yield False
            return
        self._open[peer_id] += 1
        self._count += 1
        self._unknown += not known
        self.peak = max(self.peak, self._count)
        try:
            yield True
        finally:
            self._count -= 1
            self._unknown -= not known
            self._open[peer_id] -= 1
            if not self._open[peer_id]:
                del self._open[peer_id]
