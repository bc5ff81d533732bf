"""Deadlines on the wait for a stream's next bytes that move while the wait is on.

What a peer owes changes in other tasks while the reader is blocked -- an RPC call starts or
ends, a transfer's state machine starts waiting for a chunk -- so the deadline of the read in
progress must move with it.  :class:`ReadDeadline` takes a function giving the deadline as
things stand now and applies it to the wait in progress whenever :meth:`~ReadDeadline.move` is
called::

    reads = ReadDeadline(self._deadline)        # the deadline as things stand now
    data = await reads.receive(stream)          # bytes, b"" at EOF, None when it passed
    ...
    reads.move()                                # in a task that changed what _deadline() says

:class:`MessageDeadline` is the common case of a fixed number of seconds per message, counted
from when each wait began (``with deadline.reading() as scope:``, then ``scope.cancelled_caught``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trio

from p2p_orchestrator.node.host._stream import NetStream

__all__ = ["MessageDeadline", "ReadDeadline"]


class ReadDeadline:
    """Deadline-bound waits for a stream's data; see the module docstring."""

    def __init__(self, deadline: Callable[[], float]) -> None:
        self._deadline = deadline
        self._scope: trio.CancelScope | None = None

    @property
    def waiting(self) -> bool:
        """Whether a wait is on now."""
        return self._scope is not None

    @contextmanager
    def reading(self) -> Iterator[trio.CancelScope]:
        """A cancel scope around one wait, with the deadline as it stands now."""
        with trio.CancelScope(deadline=self._deadline()) as scope:
            self._scope = scope
            try:
                yield scope
            finally:
                self._scope = None

    async def receive(self, stream: NetStream) -> bytes | None:
        """The next bytes of ``stream`` (``b""`` at EOF), or ``None`` if the deadline passed first.

        Raises :class:`~p2p_orchestrator.node.host._stream.StreamBroken` as the stream does.
        """
        with self.reading():
            return await stream.receive()
        return None

    def move(self) -> None:
        """Give the wait in progress, if any, the deadline as it stands now."""
        if self._scope is not None:
            self._scope.deadline = self._deadline()


class MessageDeadline(ReadDeadline):
    """``seconds`` per message, from when its wait began (``math.inf``: no deadline).

    Whoever changes what the peer owes calls :meth:`expect`; a changed expectation restarts the
    clock of the wait in progress.
    """

    def __init__(self, seconds: float = math.inf) -> None:
        super().__init__(self._from_now)
        self._seconds = seconds

    @property
    def seconds(self) -> float:
        """What the peer has now, per message."""
        return self._seconds

    def expect(self, seconds: float) -> None:
        """From now on the peer has ``seconds`` per message (``math.inf``: no deadline)."""
        if seconds != self._seconds:
            self._seconds = seconds
            self.move()

    def _from_now(self) -> float:
        return math.inf if math.isinf(self._seconds) else trio.current_time() + self._seconds
