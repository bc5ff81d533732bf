"""``StreamLimiter``: how many inbound RPC streams one peer, and all peers, may hold open.

Each open stream costs a task, a codec and up to one frame of buffer (4 MiB by
default), so the node bounds them: at most ``per_peer`` streams per peer and
``total`` overall.  A stream over either limit is answered ``busy`` and
closed without being read (see ``Node``); the peer's other streams, and every
other peer, carry on.  Worst-case buffer memory is ``total`` frames.
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
        self._open: Counter[str] = Counter()
        self._count = 0
        self.peak = 0
        """The most streams open at once so far."""
        self.refused = 0
        """Streams refused so far for being over a limit."""

    def open_streams(self, peer_id: str | None = None) -> int:
        """Streams open now, of ``peer_id`` or of everyone."""
        return self._count if peer_id is None else self._open[peer_id]

    @contextmanager
    def slot(self, peer_id: str) -> Iterator[bool]:
        """Hold a slot for a stream of ``peer_id`` while inside; yields whether one was free."""
        if self._count >= self.total or self._open[peer_id] >= self.per_peer:
            self.refused += 1
            yield False
            return
        self._open[peer_id] += 1
        self._count += 1
        self.peak = max(self.peak, self._count)
        try:
            yield True
        finally:
            self._count -= 1
            self._open[peer_id] -= 1
            if not self._open[peer_id]:
                del self._open[peer_id]
