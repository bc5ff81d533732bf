"""Shared helpers of the transfer tests: archives, manifests, and an in-memory stream."""

from __future__ import annotations

import hashlib
import random
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2p_orchestrator.errors import OrchestratorError, ProtocolError
from p2p_orchestrator.transfer import (
    MIN_CHUNK_SIZE,
    Action,
    Chunk,
    PartialStore,
    Result,
    Send,
    TransferChannel,
    TransferComplete,
    TransferManifest,
    TransferMessage,
    TransferReceiver,
    TransferSender,
    build_manifest,
    compute_root,
    encode_message,
)
from p2p_orchestrator.wire import CLOSED, NEED_DATA

CHUNK = MIN_CHUNK_SIZE
"""Chunk size of most tests (the smallest allowed, so archives of a few chunks stay small)."""


def write_archive(path: Path, size: int, seed: int = 0) -> bytes:
    """A file of ``size`` pseudo-random bytes; returns them."""
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def archive(
    tmp_path: Path, size: int = 5 * CHUNK + 1234, seed: int = 0, chunk: int = CHUNK
) -> tuple[Path, bytes, TransferManifest]:
    """An archive file under ``tmp_path`` with its bytes and manifest."""
    path = tmp_path / f"archive-{seed}-{size}.bin"
    data = write_archive(path, size, seed)
    return path, data, build_manifest(path, chunk)


def reader(path: Path, manifest: TransferManifest) -> Callable[[int], bytes]:
    """``read_chunk`` for a sender serving the file at ``path``."""

    def read_chunk(index: int) -> bytes:
        with open(path, "rb") as file:
            file.seek(manifest.chunk_offset(index))
            return file.read(manifest.chunk_length(index))

    return read_chunk


def lying_manifest(data: bytes, chunk: int, archive_hash: str) -> TransferManifest:
    """A self-consistent manifest of ``data``'s chunks that claims another ``archive_hash``."""
    hashes = tuple(hashlib.sha256(data[i : i + chunk]).digest() for i in range(0, len(data), chunk))
    root = compute_root(archive_hash, len(data), chunk, b"".join(hashes))
    return TransferManifest(archive_hash, len(data), chunk, hashes, root)


def store(tmp_path: Path, **kwargs: Any) -> PartialStore:
    """A partial store under ``tmp_path/home/partial`` (no fsync unless asked: tests are fast)."""
    kwargs.setdefault("fsync", False)
    return PartialStore(tmp_path / "home" / "partial", **kwargs)


def sends(actions: list[Action], source: Hashable | None = None) -> list[TransferMessage]:
    """The messages of the ``Send`` actions (to ``source``, if given)."""
    return [a.message for a in actions if isinstance(a, Send) and (source is None or a.source == source)]


def roundtrip(message: TransferMessage) -> TransferMessage:
    """``message`` encoded into a frame and parsed back by a fresh channel."""
    channel = TransferChannel()
    channel.receive_data(encode_message(message))
    parsed = channel.next_message()
    assert parsed is not NEED_DATA and parsed is not CLOSED
    return parsed  # type: ignore[return-value]


@dataclass
class Link:
    """One sender and one receiver joined by an in-memory stream, through the real codec.

    Messages each way are encoded to frames and parsed back, in stream order.  ``cut_at`` ends
    the sender-to-receiver byte stream after that many bytes (mid-frame if it falls there), as a
    dropped connection would; the receiver then sees EOF and the link stops.  ``install`` is
    what the receiver reports after ``finish()`` (its ``Result``).
    """

    sender: TransferSender
    receiver: TransferReceiver
    source: Hashable = "origin"
    cut_at: int | None = None
    install: Callable[[Path], dict[str, Any]] = lambda path: {"archive_hash": "x"}
    bytes_down: int = 0
    chunk_bytes: int = 0
    chunks: list[int] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    cut: bool = False
    error: OrchestratorError | None = None

    def __post_init__(self) -> None:
        self.down = TransferChannel()
        self.up = TransferChannel()
        self.to_receiver: deque[TransferMessage] = deque(self.sender.start())
        self.to_sender: deque[TransferMessage] = deque()

    def run(self) -> Link:
        """Move messages until nothing moves (finished, cut, or stuck)."""
        while not self.cut:
            if self.to_receiver:
                self._deliver_down(self.to_receiver.popleft())
            elif self.to_sender:
                self._deliver_up(self.to_sender.popleft())
            elif (chunk := self.sender.next_chunk()) is not None:
                self.to_receiver.append(chunk)
            else:
                break
        return self

    def _deliver_down(self, message: TransferMessage) -> None:
        frame = encode_message(message)
        if isinstance(message, Chunk):
            self.chunk_bytes += len(message.data)
            self.chunks.append(message.index)
        del message
        if self.cut_at is not None and self.bytes_down + len(frame) > self.cut_at:
            self.down.receive_data(frame[: self.cut_at - self.bytes_down])
            self.down.receive_data(b"")
            self.bytes_down = self.cut_at
            self._drain_after_cut()
            self.cut = True
            self._handle(self.receiver.source_closed(self.source))
            return
        self.bytes_down += len(frame)
        with memoryview(frame) as view:
            for start in range(0, len(frame), 65536):
                self.down.receive_data(bytes(view[start : start + 65536]))
        del frame
        while (parsed := self.down.next_message()) is not NEED_DATA:
            assert parsed is not CLOSED
            self._react(parsed)  # type: ignore[arg-type]
            del parsed

    def _drain_after_cut(self) -> None:
        """Messages whole before the cut still count; the cut one ends the stream."""
        try:
            while (parsed := self.down.next_message()) not in (NEED_DATA, CLOSED):
                self._react(parsed)  # type: ignore[arg-type]
        except ProtocolError as exc:
            if exc.code != "truncated_frame":
                raise

    def _react(self, message: TransferMessage) -> None:
        try:
            actions = self.receiver.receive(self.source, message)
        except OrchestratorError as exc:
            self.error = exc
            self.to_sender.append(_failure(exc))
            self._handle(self.receiver.source_closed(self.source))
            return
        self._handle(actions)

    def _handle(self, actions: list[Action]) -> None:
        for action in actions:
            if not isinstance(action, Send | TransferComplete):
                self.actions.append(action)
            if isinstance(action, Send):
                assert action.source == self.source
                self.to_sender.append(action.message)
            elif isinstance(action, TransferComplete):
                self.actions.append(action)
                path = self.receiver.finish()
                self._handle(self.receiver.conclude(self.install(path)))

    def _deliver_up(self, message: TransferMessage) -> None:
        self.up.receive_data(encode_message(message))
        parsed = self.up.next_message()
        assert parsed is not NEED_DATA and parsed is not CLOSED
        self.sender.receive(parsed)  # type: ignore[arg-type]


def _failure(error: OrchestratorError) -> TransferMessage:
    return Result.failure(error)
