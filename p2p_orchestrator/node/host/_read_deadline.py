"""``ReadDeadline``: reads of a :class:`NetStream` under a deadline that moves while a read waits.

An RPC stream's read deadline depends on what is in flight: none while a call
is outstanding, an idle deadline once the last one ends.  A call starts or ends
in another task while the reader is blocked, so the deadline of the waiting read
must move with it::

    reads = ReadDeadline(stream, self._deadline)  # the deadline as things stand now
    data = await reads.receive()                  # bytes, b"" at EOF, None when it passed
    ...
    reads.move()                                  # in a task that changed what _deadline() says
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from p2p_orchestrator.node.host._stream import NetStream

__all__ = ["ReadDeadline"]


class ReadDeadline:
    """Deadline-bound reads of one stream; see the module docstring."""

    def __init__(self, stream: NetStream, deadline: Callable[[], float]) -> None:
        self._stream = stream
        self._deadline = deadline
        self._scope: trio.CancelScope | None = None

    @property
    def waiting(self) -> bool:
        """Whether a :meth:`receive` is waiting now."""
        return self._scope is not None

    async def receive(self) -> bytes | None:
        """The next bytes (``b""`` at EOF), or ``None`` if the deadline passed first.

        Raises :class:`~p2p_orchestrator.node.host._stream.StreamBroken` as the stream does.
        """
        with trio.CancelScope(deadline=self._deadline()) as scope:
            self._scope = scope
            try:
                return await self._stream.receive()
            finally:
                self._scope = None
        return None

    def move(self) -> None:
        """Give the waiting read, if any, the deadline as it stands now."""
        if self._scope is not None:
            self._scope.deadline = self._deadline()
