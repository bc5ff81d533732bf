"""A Yamux stream's receive buffer (``_yamux_guard._StreamBuffer``): the bytearray operations
py-libp2p uses, payloads kept uncopied, and every byte accounted against the budget."""

from __future__ import annotations

import os
from typing import Any

from p2p_orchestrator.node.host._yamux_guard import _SMALL_PIECE, Budget, _StreamBuffer


class Owner:
    """What a buffer asks of its connection: admission and the budget."""

    def __init__(self, admit: bool = True) -> None:
        self._budget = Budget(1 << 30)
        self.admit = admit

    def _admit(self, stream_id: int, n: int) -> bool:
        return self.admit


def buffer(owner: Any) -> _StreamBuffer:
    return _StreamBuffer(owner, 1)


def test_it_behaves_as_the_bytearray_py_libp2p_reads() -> None:
    owner = Owner()
    buf, mirror = buffer(owner), bytearray()
    payloads = [os.urandom(n) for n in (65507, 3, 10, 70000, 1)]
    for payload in payloads:
        buf.extend(payload)
        mirror.extend(payload)
    assert len(buf) == len(mirror) == owner._budget.used and buf
    assert bytes(buf[:100]) == bytes(mirror[:100])
    assert bytes(buf[:65510]) == bytes(mirror[:65510])
    del buf[:65508]
    del mirror[:65508]
    assert bytes(buf) == bytes(mirror) and len(buf) == owner._budget.used
    assert buf[5] == mirror[5]
    del buf[1:3]
    del mirror[1:3]
    assert bytes(buf) == bytes(mirror) and len(buf) == owner._budget.used
    buf.clear()
    assert not buf and len(buf) == 0 and owner._budget.used == 0 and bytes(buf) == b""


def test_payloads_are_kept_and_taken_without_copies() -> None:
    owner = Owner()
    buf = buffer(owner)
    message = os.urandom(65519)
    body = memoryview(message)[12:]  # a Yamux payload in its decrypted Noise message
    whole = os.urandom(50000)
    buf.extend(body)
    buf.extend(whole)
    taken = buf.take(65507 + 100)
    assert taken[0] is body and taken[1].obj is whole  # type: ignore[union-attr]
    assert b"".join(taken) == message[12:] + whole[:100]
    rest = buf.take(1 << 20)
    assert b"".join(rest) == whole[100:] and not buf and owner._budget.used == 0


def test_small_and_borrowed_payloads_are_copied() -> None:
    owner = Owner()
    buf = buffer(owner)
    for _ in range(1000):
        buf.extend(b"x")  # tiny frames: one piece, not a thousand
    assert len(buf._pieces) == 1
    big = os.urandom(60000)
    buf.extend(memoryview(big)[: _SMALL_PIECE * 2])  # a small part of a large object: copied
    piece = buf._pieces[-1]
    assert type(piece) is bytes and piece == big[: _SMALL_PIECE * 2]
    buf.extend(memoryview(big)[:40000])  # two thirds of it: still copied (at most 8/7 held per byte)
    assert type(buf._pieces[-1]) is bytes
    buf.extend(memoryview(big)[:59000])  # nearly all of it: kept as the view
    assert type(buf._pieces[-1]) is memoryview
    scratch = bytearray(os.urandom(20000))
    buf.extend(scratch)  # mutable: copied, so later changes do not reach the buffer
    scratch[:] = bytes(20000)
    taken = buf.take(len(buf))
    assert all(type(p) in (bytes, memoryview) for p in taken)
    assert b"".join(taken)[-20000:] != bytes(20000)


def test_refused_payloads_are_not_kept() -> None:
    owner = Owner(admit=False)
    buf = buffer(owner)
    buf.extend(os.urandom(100000))
    assert not buf and owner._budget.used == 0
