"""Service logs: each service's stdout and stderr in a size-capped, rotated file.

The node reads each child's output pipe and appends what arrives to
``home/logs/<service>.log``.  When the file would grow past ``max_bytes`` it is
renamed to ``<service>.log.1`` (shifting older ones up to ``.log.<backups>``,
the oldest dropped), so a service that spams output costs at most
``max_bytes * (backups + 1)`` of disk; and because the node always drains the
pipe, the child never blocks on a full pipe.  Writes go to the page cache from
the event loop thread; they are small and never fsynced.  A full or failing
disk loses output (counted and logged), never the node.

Followers (:meth:`LogBook.follow`) get the bytes written after they subscribed,
through a bounded buffer; a follower that falls behind loses chunks and is told
so by a marker line.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType

import trio

__all__ = ["LogBook", "LogFollower", "RotatingLog"]

log = logging.getLogger("p2p_orchestrator.runtime")

_FOLLOW_BUFFER = 256
_MAX_LINE = 64 * 1024


class RotatingLog:
    """An append-only log file of one service, rotated by size."""

    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._fd: int | None = None
        self._size = 0
        self._followers: set[trio.MemorySendChannel[bytes]] = set()
        self.dropped = 0
        """Chunks followers missed because they fell behind."""
        self.lost_bytes = 0
        """Bytes of output the disk refused (see :meth:`write`)."""
        self._failure: str | None = None

    def write(self, data: bytes) -> None:
        """Append ``data`` (rotating first when it would not fit) and hand it to followers.

        A write the disk refuses (full, read-only, failing) never raises: a
        service's output must not stop the node.  The bytes are counted in
        :attr:`lost_bytes` and the failure is logged once per streak (and its
        end too); followers still get everything.
        """
        if not data:
            return
        # a single chunk larger than the cap is truncated to its tail
        data = data[-self.max_bytes :]
        try:
            self._append(data)
        except OSError as exc:
            self.lost_bytes += len(data)
            if self._failure is None:
                self._failure = str(exc)
                log.warning("Cannot write %s (%s): this output of the service is lost", self.path, exc)
        else:
            if self._failure is not None:
                log.warning(
                    "%s is writable again (%d byte(s) of output were lost)", self.path, self.lost_bytes
                )
                self._failure = None
        for send in list(self._followers):
            try:
                send.send_nowait(data)
            except trio.WouldBlock:
                self.dropped += 1
            except trio.BrokenResourceError:
                self._followers.discard(send)

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._size = os.fstat(self._fd).st_size
        if self._size and self._size + len(data) > self.max_bytes:
            self._rotate()
        view = memoryview(data)
        while view:  # a nearly full disk takes part of a write, then refuses the rest
            written = os.write(self._fd, view)
            self._size += written
            view = view[written:]

    def _rotate(self) -> None:
        self.close_file()
        for index in range(self.backups, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            newer = self.path.with_name(f"{self.path.name}.{index - 1}") if index > 1 else self.path
            with contextlib.suppress(FileNotFoundError):
                os.replace(newer, older)
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._size = 0

    def close_file(self) -> None:
        """Close the file (reopened by the next write)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def files(self) -> list[Path]:
        """The log's files, newest first (those that exist)."""
        names = [
            self.path,
            *(self.path.with_name(f"{self.path.name}.{i}") for i in range(1, self.backups + 1)),
        ]
        return [p for p in names if p.exists()]

    def tail(self, lines: int) -> list[str]:
        """The last ``lines`` lines, oldest first, across rotated files (blocking)."""
        collected: list[bytes] = []
        for path in self.files():
            with contextlib.suppress(FileNotFoundError):
                chunk = path.read_bytes().splitlines()
                collected[:0] = chunk
            if len(collected) >= lines:
                break
        return [line.decode("utf-8", "replace") for line in collected[-lines:]] if lines > 0 else []

    def subscribe(self) -> trio.MemoryReceiveChannel[bytes]:
        """A channel receiving every chunk written from now on (closed by :meth:`unsubscribe`)."""
        send, receive = trio.open_memory_channel[bytes](_FOLLOW_BUFFER)
        self._followers.add(send)
        return receive

    def close_followers(self) -> None:
        """End every follower's iteration (the node is closing)."""
        for send in self._followers:
            send.close()
        self._followers.clear()


class LogBook:
    """The logs of every service of one node, under ``home/logs``."""

    def __init__(self, directory: Path, *, max_bytes: int, backups: int) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._max_bytes = max_bytes
        self._backups = backups
        self._logs: dict[str, RotatingLog] = {}

    def log(self, service: str) -> RotatingLog:
        """The log of ``service`` (created on first use)."""
        log = self._logs.get(service)
        if log is None:
            path = self.directory / f"{service}.log"
            log = self._logs[service] = RotatingLog(path, max_bytes=self._max_bytes, backups=self._backups)
        return log

    async def tail(self, service: str, lines: int = 100) -> list[str]:
        """The last ``lines`` lines of the service's output, oldest first."""
        return await trio.to_thread.run_sync(self.log(service).tail, lines)

    def follow(self, service: str, *, lines: int = 0) -> LogFollower:
        """Follow the service's output; see :class:`LogFollower`."""
        return LogFollower(self, service, lines)

    def close(self) -> None:
        """Close every file and end every follower."""
        for log in self._logs.values():
            log.close_followers()
            log.close_file()


class LogFollower:
    """An async iterator over lines of a service's output as they are written.

    It first yields the last ``lines`` lines already in the file, then each new
    line.  Use it with ``async with`` so it unsubscribes deterministically::

        async with orch.follow_logs("hello", lines=10) as follower:
            async for line in follower:
                print(line)

    Iteration ends when the node closes.
    """

    def __init__(self, book: LogBook, service: str, lines: int) -> None:
        self._log = book.log(service)
        self._receive = self._log.subscribe()
        self._backlog = self._log.tail(lines) if lines > 0 else []
        self._partial = b""

    async def __aenter__(self) -> LogFollower:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop following."""
        self._receive.close()

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        while not self._backlog:
            try:
                chunk = await self._receive.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                raise StopAsyncIteration from None
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            if len(self._partial) > _MAX_LINE:  # output without newlines: hand it over in pieces
                complete.append(self._partial)
                self._partial = b""
            self._backlog = [line.decode("utf-8", "replace") for line in complete]
        return self._backlog.pop(0)
