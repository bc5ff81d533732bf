"""The chunk fast path (``transfer._chunk_frames``) decides exactly as the general decoder does."""

from __future__ import annotations

import itertools
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p_orchestrator.errors import ProtocolError
from p2p_orchestrator.transfer import MAX_CHUNK_SIZE, MAX_CHUNKS, Chunk, TransferChannel, Want
from p2p_orchestrator.transfer._chunk_frames import chunk_from_pieces
from p2p_orchestrator.transfer.messages import message_from_wire
from p2p_orchestrator.transfer.protocol import encode_message
from p2p_orchestrator.wire import decode_payload, encode_frame

FAST = settings(max_examples=200, deadline=None, database=None)


def general(payload: bytes) -> Any:
    """What the general path makes of a payload: the message, or the error's code and text."""
    try:
        return message_from_wire(decode_payload(payload))
    except ProtocolError as exc:
        return (exc.code, exc.message)


def fast(pieces: list[bytes]) -> Any:
    try:
        return chunk_from_pieces(pieces)
    except ProtocolError as exc:
        return (exc.code, exc.message)


def cut(payload: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({0, len(payload), *(p for p in points if 0 < p < len(payload))})
    return [payload[a:b] for a, b in itertools.pairwise(marks)]


def argument(major: int, value: int, width: int) -> bytes:
    """A CBOR head with ``value`` in ``width`` extra bytes (0: in the initial byte), minimal or not."""
    info = {0: value, 1: 24, 2: 25, 4: 26, 8: 27}[width]
    return bytes([major << 5 | info]) + (value.to_bytes(width, "big") if width else b"")


def chunk_payload(index: int, data: bytes, index_width: int = 8, length_width: int = 4) -> bytes:
    return (
        b"\xa3\x61t\x65chunk\x65index"
        + argument(0, index, index_width)
        + b"\x64data"
        + argument(2, len(data), length_width)
        + data
    )


@FAST
@given(
    index=st.integers(min_value=0, max_value=MAX_CHUNKS + 5),
    data=st.binary(min_size=1, max_size=2000),
    points=st.lists(st.integers(min_value=0, max_value=2100), max_size=8),
)
def test_an_encoded_chunk_in_any_pieces_decodes_as_the_general_path_does(
    index: int, data: bytes, points: list[int]
) -> None:
    payload = cbor2.dumps({"t": "chunk", "index": index, "data": data})
    expected = general(payload)
    got = fast(cut(payload, points))
    assert got == expected
    if isinstance(expected, Chunk):
        assert type(got.data) is bytes


@FAST
@given(
    index=st.integers(min_value=0, max_value=255),
    data=st.binary(min_size=0, max_size=64),
    widths=st.tuples(st.sampled_from([1, 2, 4, 8]), st.sampled_from([1, 2, 4, 8])),
)
def test_non_minimal_encodings_are_read_as_the_general_path_reads_them(
    index: int, data: bytes, widths: tuple[int, int]
) -> None:
    payload = chunk_payload(index, data, *widths)
    assert fast([payload]) == general(payload)


@FAST
@given(
    index=st.integers(min_value=0, max_value=70000),
    data=st.binary(min_size=1, max_size=100),
    position=st.integers(min_value=0, max_value=40),
    byte=st.integers(min_value=0, max_value=255),
    tail=st.sampled_from([b"", b"\x00", b"\xff\xff"]),
    drop=st.integers(min_value=0, max_value=3),
)
def test_a_damaged_chunk_is_refused_or_read_exactly_as_the_general_path_does(
    *, index: int, data: bytes, position: int, byte: int, tail: bytes, drop: int
) -> None:
    payload = bytearray(cbor2.dumps({"t": "chunk", "index": index, "data": data}) + tail)
    if position < len(payload):
        payload[position] = byte
    damaged = bytes(payload[: len(payload) - drop] if drop < len(payload) else payload)
    got = fast([damaged])
    if got is not None:  # accepted or refused here: exactly as the general path would
        assert got == general(damaged)
    channel = TransferChannel()
    channel.receive_data(encode_frame(damaged, 1 << 20))
    try:
        result: Any = channel.next_message()
    except ProtocolError as exc:
        result = (exc.code, exc.message)
    assert result == general(damaged)


def test_other_messages_and_layouts_take_the_general_path() -> None:
    want = cbor2.dumps(Want((1, 2)).to_wire())
    reordered = cbor2.dumps({"index": 1, "t": "chunk", "data": b"x"})
    extra = cbor2.dumps({"t": "chunk", "index": 1, "data": b"x", "more": 1})
    for payload in (want, reordered, extra):
        assert chunk_from_pieces([payload]) is None


def test_chunk_size_limits_are_checked_as_before() -> None:
    too_big = chunk_payload(0, b"\x00" * (MAX_CHUNK_SIZE + 1))
    assert fast([too_big]) == general(too_big)
    assert isinstance(fast([too_big]), tuple)
    empty = chunk_payload(0, b"")
    assert fast([empty]) == general(empty)
    assert isinstance(fast([empty]), tuple)


@pytest.mark.parametrize("split", [0, 1, 5, 30, 31, 40])
def test_a_one_mib_chunk_through_the_channel(split: int) -> None:
    data = bytes(range(256)) * 4096
    frame = encode_message(Chunk(7, data))
    channel = TransferChannel()
    channel.receive_data(frame[: 4 + split])
    assert channel.bytes_needed == len(frame) - 4 - split
    channel.receive_data(frame[4 + split :])
    message = channel.next_message()
    assert message == Chunk(7, data)
