"""The sending side of a transfer: a sans-IO state machine that answers a receiver's wants.

The sender speaks first -- :meth:`TransferSender.start` gives the ``offer`` and the ``have``
(what it holds: everything, for an origin; the verified part, for a swarm peer still receiving)
-- then serves whatever the receiver asks for, one chunk at a time, read from disk only when
the adapter is ready to write it::

    sender = TransferSender(manifest, read_chunk)
    for message in sender.start():
        await write(channel.send(message))
    # reader task:  sender.receive(message) for every message that arrives
    # writer task:  while (chunk := sender.next_chunk()) is not None: await write(channel.send(chunk))
    # until sender.state is SenderState.CLOSED: sender.outcome is the receiver's Result

Per stream, the receiver's messages must come in this order (anything else is
``unexpected_message``)::

    have  { want | cancel | have }*  result

What it refuses (raised; the adapter answers ``Abort(error)`` and closes): a ``want`` for a
chunk past the end (``chunk_out_of_range``), one it does not hold (``chunk_unavailable``), one
already asked and unsent (``duplicate_want``), or beyond ``max_in_flight`` unsent chunks
(``too_many_wants``); a ``have`` that is malformed (``bad_bitfield``) or shrinks
(``have_regressed``).  ``cancel`` of a chunk already sent (or never asked) is ignored: it crossed
the chunk on the wire.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterable

from ..errors import ProtocolError
from ._constants import MAX_IN_FLIGHT
from .bitfield import Bitfield
from .errors import (
    CHUNK_OUT_OF_RANGE,
    CHUNK_UNAVAILABLE,
    CHUNKS_PENDING,
    DUPLICATE_WANT,
    HAVE_REGRESSED,
    SOURCE_CHANGED,
    TOO_MANY_WANTS,
    fail,
)
from .manifest import TransferManifest
from .messages import (
    CancelChunks,
    Chunk,
    Done,
    Have,
    Offer,
    Purpose,
    Result,
    TransferMessage,
    TransferOptions,
    Want,
)

__all__ = ["SenderAwaiting", "SenderState", "TransferSender"]


class SenderState(enum.Enum):
    """``IDLE`` -> ``OFFERED`` -> ``SERVING`` -> ``CLOSED`` (result received); ``DONE`` after
    :meth:`TransferSender.finish`; ``FAILED`` after a refusal or a failed read."""

    IDLE = "idle"
    OFFERED = "offered"
    SERVING = "serving"
    DONE = "done"
    CLOSED = "closed"
    FAILED = "failed"


class SenderAwaiting(enum.Enum):
    """What the sender waits for (the adapter puts deadlines on it)."""

    HAVE = "have"
    """The receiver's first have (what it already holds)."""
    WANTS = "wants"
    """Requests: the receiver lacks chunks, nothing is queued."""
    RESULT = "result"
    """The receiver holds everything; its result (e.g. an install) is due."""
    NOTHING = "nothing"
    """Chunks are queued (the sender owes them: keep writing), or the stream is over."""


def _unexpected(message: str) -> ProtocolError:
    return ProtocolError(message, code="unexpected_message")


class TransferSender:
    """Serve one archive described by ``manifest`` to one receiver (see the module docstring).

    ``read_chunk(index) -> bytes`` reads a chunk from disk (blocking).  ``have``: the chunks this
    side holds (default: all).  ``max_in_flight``: unsent chunks a receiver may have asked for.
    ``verify``: re-hash each chunk before sending (guards against a file that changed on disk;
    the receiver checks every chunk anyway).
    """

    def __init__(
        self,
        manifest: TransferManifest,
        read_chunk: Callable[[int], bytes],
        *,
        purpose: Purpose = "install",
        options: TransferOptions | None = None,
        peers: Iterable[str] = (),
        have: Bitfield | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
        verify: bool = False,
        release: bytes | None = None,
    ) -> None:
        if have is not None and have.size != manifest.chunk_count:
            raise ValueError(f"have covers {have.size} chunks; the manifest has {manifest.chunk_count}")
        self.manifest = manifest
        self._read_chunk = read_chunk
        self._offer = Offer(manifest, purpose, options or TransferOptions(), tuple(peers), release)
        self._have = have.copy() if have is not None else Bitfield.full(manifest.chunk_count)
        self._max_in_flight = max_in_flight
        self._verify = verify
        self._queue: dict[int, None] = {}  # asked, not yet sent, in the order asked
        self._peer_have: Bitfield | None = None
        self._state = SenderState.IDLE
        self._outcome: Result | None = None
        self.bytes_sent = 0
        """Chunk bytes handed out by :meth:`next_chunk` (for progress events)."""

    # -- what it knows -----------------------------------------------------------------------

    @property
    def state(self) -> SenderState:
        return self._state

    @property
    def outcome(self) -> Result | None:
        """The receiver's :class:`Result`, once it arrived."""
        return self._outcome

    @property
    def pending(self) -> tuple[int, ...]:
        """Chunks asked for and not sent yet, in the order they will go."""
        return tuple(self._queue)

    @property
    def receiver_have(self) -> Bitfield | None:
        """What the receiver said it holds (a copy), once it said so."""
        return None if self._peer_have is None else self._peer_have.copy()

    @property
    def waiting_for(self) -> SenderAwaiting:
        if self._state is SenderState.OFFERED:
            return SenderAwaiting.HAVE
        if self._state not in (SenderState.SERVING, SenderState.DONE) or self._queue:
            return SenderAwaiting.NOTHING
        if self._peer_have is not None and self._peer_have.is_full:
            return SenderAwaiting.RESULT
        return SenderAwaiting.WANTS if self._state is SenderState.SERVING else SenderAwaiting.RESULT

    # -- output ------------------------------------------------------------------------------

    def start(self) -> list[TransferMessage]:
        """The first messages to write: the offer, then what this side holds."""
        if self._state is not SenderState.IDLE:
            raise _unexpected("the sender has already started")
        self._state = SenderState.OFFERED
        return [self._offer, Have(self._have.to_bytes())]

    def next_chunk(self) -> Chunk | None:
        """Read and return the next chunk asked for, or ``None`` when nothing is queued.

        Blocking disk read (run it in a worker thread from async code).  ``source_changed`` if
        the file no longer matches the manifest; read errors propagate as they are.
        """
        if self._state is not SenderState.SERVING or not self._queue:
            return None
        index = next(iter(self._queue))
        del self._queue[index]
        try:
            data = self._read_chunk(index)
            length = self.manifest.chunk_length(index)
            if len(data) != length:
                fail(
                    SOURCE_CHANGED,
                    f"chunk {index} read {len(data)} bytes from disk; the manifest says {length}",
                )
            if self._verify and hashlib.sha256(data).digest() != self.manifest.chunk_hashes[index]:
                fail(SOURCE_CHANGED, f"chunk {index} on disk no longer matches the manifest")
        except BaseException:
            self._state = SenderState.FAILED
            raise
        self.bytes_sent += length
        return Chunk(index, bytes(data))

    def announce(self, indices: Iterable[int]) -> list[TransferMessage]:
        """This side verified more chunks (a swarm peer still receiving): a ``have`` update, if new."""
        added = [index for index in indices if self._have.add(index)]
        if not added or self._state not in (SenderState.OFFERED, SenderState.SERVING):
            return []
        return [Have(self._have.to_bytes())]

    def finish(self) -> list[TransferMessage]:
        """End serving gracefully: the ``done`` message.  ``chunks_pending`` if chunks are owed."""
        if self._state not in (SenderState.OFFERED, SenderState.SERVING):
            raise _unexpected(f"the sender is {self._state.value}; it cannot say done")
        if self._queue:
            fail(CHUNKS_PENDING, f"{len(self._queue)} chunks asked for are still unsent")
        self._state = SenderState.DONE
        return [Done()]

    # -- input -------------------------------------------------------------------------------

    def receive(self, message: TransferMessage) -> list[TransferMessage]:
        """Take a message from the receiver; return messages to write (currently always none).

        Raises ``ProtocolError``/``ServiceDistributionError`` (state ``FAILED``) if the
        receiver broke the rules; see the module docstring.
        """
        state = self._state
        if state in (SenderState.IDLE, SenderState.CLOSED, SenderState.FAILED):
            raise _unexpected(f"the sender is {state.value}; it accepts no {message.TYPE!r}")
        try:
            self._dispatch(state, message)
        except BaseException:
            self._state = SenderState.FAILED
            raise
        return []

    def _dispatch(self, state: SenderState, message: TransferMessage) -> None:
        if isinstance(message, Result):
            self._outcome = message
            self._queue.clear()
            self._state = SenderState.CLOSED
        elif isinstance(message, Have):
            self._on_have(message)
        elif state is SenderState.OFFERED:
            raise _unexpected(f"the receiver's first message must be a have, not {message.TYPE!r}")
        elif isinstance(message, Want):
            self._on_want(message)
        elif isinstance(message, CancelChunks):
            self._on_cancel(message)
        else:
            raise _unexpected(f"a sender does not accept {message.TYPE!r}")

    def _on_have(self, message: Have) -> None:
        have = Bitfield.from_bytes(message.bits, self.manifest.chunk_count)
        if self._peer_have is not None and not have.issuperset(self._peer_have):
            fail(HAVE_REGRESSED, "the receiver's have update drops chunks it announced before")
        self._peer_have = have
        if self._state is SenderState.OFFERED:
            self._state = SenderState.SERVING

    def _on_want(self, message: Want) -> None:
        if self._state is SenderState.DONE:
            raise _unexpected("the sender said done; it serves no more wants")
        count = self.manifest.chunk_count
        for index in message.indices:
            if index >= count:
                fail(CHUNK_OUT_OF_RANGE, f"chunk {index} is past the last chunk ({count - 1})")
            if index not in self._have:
                fail(CHUNK_UNAVAILABLE, f"chunk {index} is not held here (see our have)")
            if index in self._queue:
                fail(DUPLICATE_WANT, f"chunk {index} is already asked for and not yet sent")
        if len(self._queue) + len(message.indices) > self._max_in_flight:
            fail(TOO_MANY_WANTS, f"more than {self._max_in_flight} chunks asked for and unsent")
        self._queue.update(dict.fromkeys(message.indices))

    def _on_cancel(self, message: CancelChunks) -> None:
        count = self.manifest.chunk_count
        for index in message.indices:
            if index >= count:
                fail(CHUNK_OUT_OF_RANGE, f"chunk {index} is past the last chunk ({count - 1})")
            self._queue.pop(index, None)
