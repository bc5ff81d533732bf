"""Pieces shared by the adapters that drive a sans-IO :class:`~p2p_orchestrator.wire.RpcConnection`.

The codec knows messages and bytes; each adapter adds one transport and its own
rules (deadlines, retries, hellos, streamed answers).  What they all do the same
way lives here, as small parts an adapter composes rather than a base class:

* :class:`MessageReader` -- the read loop: pull events from the codec, flush the
  bytes it wrote on its own, feed it what the transport reads, stop at the end::

      async for msg in MessageReader(conn, receive=..., flush=..., on_violation=...):
          dispatch(msg)

* :class:`PendingCalls` -- our requests waiting for their answer, by id.
* :class:`RequestTasks` -- the peer's requests, each served in its own task under
  a cancel scope that the peer's :class:`~p2p_orchestrator.wire.Cancel` reaches,
  and :func:`send_answer`, which sends a final answer or, if the codec cannot
  encode it, an ``unencodable_result`` error in its place.
* :class:`StreamWriter` -- whole, ordered, deadline-bound frame writes to any
  transport (the node's libp2p streams and transfer streams use it too).

Users: ``runtime._channel.FramedChannel`` (all four), ``node.rpc._client.ClientChannel``
(reader, pending calls, writer), ``node.rpc._server.ServerStream`` (reader, request tasks,
writer), ``control._session.ControlSession`` (reader, request tasks, writer) and
``node.distribution._transfer_stream.TransferStream`` (writer, for the transfer codec's frames).

Everything here is written with anyio, so it runs on trio (the node) and on
asyncio (a service's child process, which never imports trio).  A transport is
a :class:`ByteStream`: a :class:`trio.abc.Stream` is one, and
:class:`AnyioStream` makes one of an :class:`anyio.abc.ByteStream`.  Which
exceptions mean "the other side is gone" depends on the transport, so the
adapter passes them in (``gone``).  Nothing here imports libp2p or trio.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

import anyio
import anyio.abc

from p2p_orchestrator.errors import OrchestratorError, ProtocolError, ServiceCallError
from p2p_orchestrator.wire import (
    CLOSED,
    NEED_DATA,
    Cancel,
    ConnectionState,
    ErrorReply,
    Message,
    Request,
    Response,
    RpcConnection,
    StreamEnd,
)

__all__ = [
    "ANYIO_STREAM_GONE",
    "Answer",
    "AnyioStream",
    "ByteStream",
    "MessageReader",
    "PendingCall",
    "PendingCalls",
    "RequestTasks",
    "StreamWriter",
    "receive_or_eof",
    "send_answer",
]

_RECEIVE_SIZE = 65536

M = TypeVar("M")

ANYIO_STREAM_GONE: tuple[type[Exception], ...] = (anyio.BrokenResourceError, anyio.ClosedResourceError)
"""What an :class:`AnyioStream` raises once the other side is gone (or we closed it)."""


class ByteStream(Protocol):
    """A byte transport as the adapters use it (:class:`trio.abc.Stream` is one)."""

    async def send_all(self, data: bytes) -> None:
        """Send every byte of ``data``."""

    async def receive_some(self, max_bytes: int) -> bytes:
        """Some bytes; ``b""`` at the end of the stream."""

    async def aclose(self) -> None:
        """Close the stream."""


class AnyioStream:
    """An :class:`anyio.abc.ByteStream` as a :class:`ByteStream` (its errors: :data:`ANYIO_STREAM_GONE`)."""

    __slots__ = ("_stream",)

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream

    async def send_all(self, data: bytes) -> None:
        await self._stream.send(data)

    async def receive_some(self, max_bytes: int) -> bytes:
        try:
            return await self._stream.receive(max_bytes)
        except anyio.EndOfStream:
            return b""

    async def aclose(self) -> None:
        await self._stream.aclose()


Answer: TypeAlias = Response | StreamEnd | ErrorReply
"""A final answer to one request."""


# -- reading -----------------------------------------------------------------------------------


class MessageReader:
    """The messages ``conn`` receives, as an async iterator that does the reading.

    Each step takes the codec's next event: a message is yielded; :data:`NEED_DATA`
    reads (``receive() -> bytes``, ``b""`` at EOF, or ``None`` to stop now);
    :data:`CLOSED` stops.  After every event the codec's own bytes (``busy``
    refusals, a final error notice) are written by ``flush()``, which returns
    ``False`` when the transport is gone and reading should stop.

    A protocol violation is passed to ``on_violation`` first (before the notice is
    flushed, so the adapter can record why it ends before any other task runs),
    then raised as :class:`ProtocolError`.  A clean end sets :attr:`closed`; a stop
    by ``receive`` or ``flush`` does not.
    """

    def __init__(
        self,
        conn: RpcConnection,
        *,
        receive: Callable[[], Awaitable[bytes | None]],
        flush: Callable[[], Awaitable[bool]],
        on_violation: Callable[[ProtocolError], None],
    ) -> None:
        self._conn = conn
        self._receive = receive
        self._flush = flush
        self._on_violation = on_violation
        self.closed = False
        """Whether reading ended at :data:`CLOSED`: the peer's EOF, at a frame boundary."""

    def __aiter__(self) -> MessageReader:
        return self

    async def __anext__(self) -> Message:
        conn = self._conn
        while True:
            try:
                event = conn.next_event()
            except ProtocolError as exc:
                await self._violated(exc)
                raise
            if not await self._flush():
                raise StopAsyncIteration
            if event is NEED_DATA:
                data = await self._receive()
                if data is None:
                    raise StopAsyncIteration
                try:
                    conn.receive_data(data)
                except ProtocolError as exc:
                    await self._violated(exc)
                    raise
            elif event is CLOSED:
                self.closed = True
                raise StopAsyncIteration
            else:
                return event

    async def _violated(self, exc: ProtocolError) -> None:
        self._on_violation(exc)
        await self._flush()  # the codec queued a notice telling the peer why


async def receive_or_eof(stream: ByteStream, gone: tuple[type[Exception], ...]) -> bytes:
    """Read some bytes; a broken or closed stream (``gone``) reads as EOF (``b""``), which the codec judges."""
    try:
        return await stream.receive_some(_RECEIVE_SIZE)
    except gone:
        return b""


# -- our calls ---------------------------------------------------------------------------------


class PendingCall:
    """One request of ours, until its answer (or the end of the connection) sets :attr:`done`."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: Any = None
        self.error: OrchestratorError | None = None

    def outcome(self) -> Any:
        """The result, or raise the error (a copy: one close reason may fail many calls)."""
        if self.error is not None:
            error = self.error
            raise type(error)(error.message, code=error.code)
        return self.result


class PendingCalls:
    """Our requests waiting for an answer, by request id.

    A call is added before its request is sent and discarded whatever happens; in
    between it waits on its ``done`` event, which the reader sets by resolving the
    answer or, when the connection ends, by failing every call still waiting.
    """

    def __init__(self) -> None:
        self._calls: dict[int, PendingCall] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def add(self, request_id: int) -> PendingCall:
        """Track the request we are about to send."""
        self._calls[request_id] = call = PendingCall()
        return call

    def discard(self, request_id: int) -> None:
        self._calls.pop(request_id, None)

    def resolve(self, answer: Response | ErrorReply) -> bool:
        """Hand ``answer`` to the call waiting for it; ``False`` if none is."""
        if answer.id is None or (call := self._calls.get(answer.id)) is None:
            return False
        if isinstance(answer, ErrorReply):
            call.error = answer.error
        else:
            call.result = answer.result
        call.done.set()
        return True

    def fail_all(self, reason: OrchestratorError) -> None:
        """The connection ended: every call still waiting fails with ``reason``."""
        for call in self._calls.values():
            if not call.done.is_set():
                call.error = reason
                call.done.set()


# -- the peer's requests -----------------------------------------------------------------------


class RequestTasks:
    """Serves the peer's requests, each in its own task under its own cancel scope.

    :meth:`run` runs the adapter's read loop with the tasks beside it; when the loop
    ends, every task still running is cancelled.  The loop passes each message to
    :meth:`route`, which starts a task for a :class:`Request` and cancels the task
    of a :class:`Cancel`.

    A task's final answer is what ``respond(request)`` returns: a :class:`Response`,
    or a :class:`StreamEnd` once it streamed its items itself.  If it raises, the
    answer is an :class:`ErrorReply`: an :class:`OrchestratorError` as it is, any
    other exception as an ``internal_error`` of the adapter's ``internal_error``
    class, after ``log_failure(request)`` logged it (it runs inside the ``except``
    block, so ``log.exception`` works).  The ``gone`` exceptions (the transport
    failed) are not answered: they end the task and propagate.  A request the peer
    cancelled is answered ``"<method> <cancelled>"`` (code ``cancelled``).
    ``reply(request, answer)`` sends the answer (usually with :func:`send_answer`);
    then ``on_done()`` runs, if given.
    """

    def __init__(
        self,
        respond: Callable[[Request], Awaitable[Response | StreamEnd]],
        reply: Callable[[Request, Answer], Awaitable[None]],
        *,
        internal_error: type[OrchestratorError],
        log_failure: Callable[[Request], None],
        cancelled: str = "was cancelled",
        gone: tuple[type[Exception], ...] = (),
        task_prefix: str | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        self._respond = respond
        self._reply = reply
        self._internal_error = internal_error
        self._log_failure = log_failure
        self._cancelled = cancelled
        self._gone = gone
        self._task_prefix = task_prefix
        self._on_done = on_done
        self._scopes: dict[int, anyio.CancelScope] = {}
        self._tasks: anyio.abc.TaskGroup | None = None

    def __len__(self) -> int:
        """How many requests are being served."""
        return len(self._scopes)

    async def run(self, read_loop: Callable[[], Awaitable[None]]) -> None:
        """Await ``read_loop()`` while serving what it routes; then cancel what still runs."""
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            try:
                await read_loop()
            finally:
                tasks.cancel_scope.cancel()

    def route(self, msg: Message) -> bool:
        """Serve a :class:`Request`, or cancel the one a :class:`Cancel` names; ``False`` for other messages."""
        if isinstance(msg, Request):
            assert self._tasks is not None, "route() is for the read loop that run() awaits"
            scope = self._scopes[msg.id] = anyio.CancelScope()
            name = None if self._task_prefix is None else f"{self._task_prefix} {msg.method}"
            self._tasks.start_soon(self._serve, msg, scope, name=name)
            return True
        if isinstance(msg, Cancel):
            if (serving := self._scopes.get(msg.id)) is not None:
                serving.cancel()
            return True
        return False

    async def _serve(self, request: Request, scope: anyio.CancelScope) -> None:
        answer: Answer
        try:
            with scope:
                answer = await self._answer(request)
            if scope.cancelled_caught:
                cancelled = ServiceCallError(f"{request.method} {self._cancelled}", code="cancelled")
                answer = ErrorReply(request.id, cancelled)
            await self._reply(request, answer)
        finally:
            if self._scopes.get(request.id) is scope:  # the id may already serve a new request
                del self._scopes[request.id]
            if self._on_done is not None:
                self._on_done()

    async def _answer(self, request: Request) -> Answer:
        try:
            return await self._respond(request)
        except self._gone:
            raise
        except OrchestratorError as exc:
            return ErrorReply(request.id, exc)
        except Exception as exc:
            self._log_failure(request)
            error = self._internal_error(f"{type(exc).__name__}: {exc}", code="internal_error")
            return ErrorReply(request.id, error)


async def send_answer(
    conn: RpcConnection,
    send: Callable[[Message], Awaitable[None]],
    request: Request,
    answer: Answer,
    *,
    gone: tuple[type[Exception], ...] = (),
    on_unencodable: Callable[[ProtocolError], None] | None = None,
) -> None:
    """Send ``answer`` to ``request``; if the codec refuses it, say why in an :class:`ErrorReply`.

    The codec refuses a result it cannot encode without changing any state, so an
    ``unencodable_result`` error can take its place (``on_unencodable`` hears of it
    first).  If it refuses because the connection is ending, nobody waits for the
    answer and nothing is sent.  A ``gone`` exception from sending ``answer`` means
    the same and is swallowed; one from sending the error propagates.
    """
    try:
        await send(answer)
    except ProtocolError as exc:
        if conn.state is not ConnectionState.OPEN:
            return  # the peer is gone: nobody is waiting for this answer
        if on_unencodable is not None:
            on_unencodable(exc)
        error = ServiceCallError(
            f"{request.method} returned a result that cannot be sent: {exc.message}",
            code="unencodable_result",
        )
        await send(ErrorReply(request.id, error))
    except gone:
        pass  # the peer is gone: nobody is waiting for this answer


# -- writing -----------------------------------------------------------------------------------


class StreamWriter(Generic[M]):
    """Writes one codec's frames to a transport, whole, in order and within a deadline.

    ``send_all(data)`` writes bytes; ``abort()`` ends the transport when a write
    stalls; ``encode(msg)`` is the codec's frame of a message (for the RPC codec,
    :meth:`RpcConnection.send`).

    * Encoding and writing happen under one lock, so two tasks never interleave
      their bytes and frames leave in the order the codec made them.
    * A write is shielded from cancellation (half a frame would corrupt the
      stream) and bounded by ``timeout`` instead: a peer that does not take a
      frame in time has the transport aborted, :attr:`failure` says why
      (``stalled(frame_bytes)``), and the writer raises ``broken`` (the
      transport's own "broken resource" class) with that message.

    The adapters pass their transport's pieces: an :class:`anyio.abc.ByteStream`'s
    (:class:`AnyioStream`), a :class:`trio.abc.Stream`'s, or a libp2p stream's
    (``node.host._stream.frame_writer``, which resets the stream).
    """

    def __init__(
        self,
        send_all: Callable[[bytes], Awaitable[None]],
        abort: Callable[[], Awaitable[None]],
        encode: Callable[[M], bytes],
        *,
        timeout: float,
        stalled: Callable[[int], str],
        broken: type[Exception] = anyio.BrokenResourceError,
    ) -> None:
        self._send_all = send_all
        self._abort = abort
        self._encode = encode
        self._timeout = timeout
        self._stalled = stalled
        self._broken = broken
        self._lock = anyio.Lock()
        self.failure: str | None = None
        """Why this writer aborted the transport, once a write stalled."""

    async def send(self, msg: M) -> None:
        """Encode and write ``msg``; the codec's error (nothing written) if it refuses it."""
        async with self._lock:
            await self._write(self._encode(msg))

    async def write(self, frame: bytes) -> None:
        """Write bytes the codec already made (a frame, or the RPC codec's own
        :meth:`~RpcConnection.data_to_send`).

        ``b""`` writes nothing but still takes the lock, which is a checkpoint: a read loop
        that flushes after each message it takes in so lets the tasks that message woke run
        before it reads on (skipping it made 50 concurrent callers on one stream ~1.5x slower).
        """
        async with self._lock:
            await self._write(frame)

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._timeout) as timer:
            await self._send_all(data)
        if timer.cancelled_caught:
            self.failure = self._stalled(len(data))
            await self._abort()
            raise self._broken(self.failure)
