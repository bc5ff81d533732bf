"""Framing: length prefix, caps checked early, any split of the input, linear-time buffering."""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p_orchestrator.errors import ProtocolError
from p2p_orchestrator.wire import DEFAULT_MAX_FRAME_BYTES, FrameDecoder, encode_frame

FAST = settings(max_examples=150, deadline=None, database=None)


def drain(decoder: FrameDecoder) -> list[bytes]:
    frames = []
    while (frame := decoder.next_frame()) is not None:
        frames.append(frame)
    return frames


def test_encode_frame_prefixes_big_endian_length() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"x" * 258)[:4] == b"\x00\x00\x01\x02"


def test_encode_frame_refuses_empty_and_oversized_payloads() -> None:
    with pytest.raises(ProtocolError) as empty:
        encode_frame(b"")
    assert empty.value.code == "empty_frame"
    with pytest.raises(ProtocolError) as big:
        encode_frame(b"x" * 11, max_frame_bytes=10)
    assert big.value.code == "frame_too_large"
    assert encode_frame(b"x" * 10, max_frame_bytes=10)[:4] == b"\x00\x00\x00\x0a"


@pytest.mark.parametrize("cap", [0, -1, 2**32, 1.5])
def test_invalid_caps_are_configuration_errors(cap: object) -> None:
    with pytest.raises(ValueError, match="max_frame_bytes"):
        FrameDecoder(cap)  # type: ignore[arg-type]


def test_one_byte_at_a_time() -> None:
    payloads = [b"a", b"bc" * 100, b"\x00" * 5, b"last"]
    stream = b"".join(encode_frame(p) for p in payloads)
    decoder = FrameDecoder()
    got = []
    for i in range(len(stream)):
        decoder.feed(stream[i : i + 1])
        got.extend(drain(decoder))
        assert decoder.buffered_bytes <= 4 + 200
    assert got == payloads
    assert decoder.at_frame_boundary
    assert decoder.buffered_bytes == 0


def test_boundary_and_buffered_bytes_track_partial_frames() -> None:
    decoder = FrameDecoder()
    assert decoder.at_frame_boundary
    decoder.feed(b"\x00\x00")
    assert not decoder.at_frame_boundary
    decoder.feed(b"\x00\x02a")
    assert decoder.buffered_bytes == 5
    assert decoder.next_frame() is None
    decoder.feed(b"b\x00\x00\x00\x01c")
    assert decoder.at_frame_boundary  # two complete frames buffered, nothing partial
    assert drain(decoder) == [b"ab", b"c"]
    assert decoder.buffered_bytes == 0


def test_feeding_nothing_is_a_no_op() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"")
    assert decoder.next_frame() is None
    assert decoder.at_frame_boundary


def test_oversized_length_is_refused_as_soon_as_the_header_arrives() -> None:
    decoder = FrameDecoder(max_frame_bytes=100)
    decoder.feed(b"\x00\x00")
    with pytest.raises(ProtocolError) as exc:
        decoder.feed(b"\x00\x65")  # 101: refused before a single payload byte
    assert exc.value.code == "frame_too_large"
    assert decoder.buffered_bytes == 0


def test_oversized_length_behind_good_frames_is_refused_in_the_same_feed() -> None:
    decoder = FrameDecoder(max_frame_bytes=100)
    with pytest.raises(ProtocolError) as exc:
        decoder.feed(encode_frame(b"ok") + b"\xff\xff\xff\xff" + b"x" * 50)
    assert exc.value.code == "frame_too_large"


def test_huge_declared_length_with_default_cap() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError) as exc:
        decoder.feed((DEFAULT_MAX_FRAME_BYTES + 1).to_bytes(4, "big"))
    assert exc.value.code == "frame_too_large"


def test_zero_length_frame_is_refused() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError) as exc:
        decoder.feed(b"\x00\x00\x00\x00")
    assert exc.value.code == "empty_frame"


def test_broken_decoder_keeps_raising() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x00\x00\x00\x00")
    for call in (lambda: decoder.feed(encode_frame(b"x")), decoder.next_frame):
        with pytest.raises(ProtocolError) as exc:
            call()
        assert exc.value.code == "empty_frame"


@FAST
@given(
    payloads=st.lists(st.binary(min_size=1, max_size=300), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=20),
)
def test_any_split_yields_the_same_frames(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(p, max_frame_bytes=300) for p in payloads)
    points = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    decoder = FrameDecoder(max_frame_bytes=300)
    got = []
    for start, end in itertools.pairwise(points):
        decoder.feed(stream[start:end])
        got.extend(drain(decoder))
        assert decoder.buffered_bytes < 4 + 300  # only a partial frame is ever left over
    assert got == payloads
    assert decoder.at_frame_boundary


def test_large_frame_in_64k_pieces_is_linear() -> None:
    """A 4 MiB frame arriving as Yamux delivers it: no re-copying of what is buffered."""

    def feed_time(size: int) -> float:
        stream = encode_frame(b"\xab" * size)
        decoder = FrameDecoder()
        began = time.perf_counter()
        for i in range(0, len(stream), 65536):
            decoder.feed(stream[i : i + 65536])
            if i + 65536 < len(stream):
                assert decoder.next_frame() is None
        frame = decoder.next_frame()
        elapsed = time.perf_counter() - began
        assert frame is not None
        assert len(frame) == size
        assert decoder.bytes_moved == 0  # compaction never copied the partial frame
        return elapsed

    small = min(feed_time(1024 * 1024) for _ in range(3))
    big = min(feed_time(DEFAULT_MAX_FRAME_BYTES) for _ in range(3))
    # Linear means ~4x; quadratic would be ~16x.  Loose on purpose: a shared machine is noisy.
    assert big < max(small * 12, 0.5)


def test_many_small_feeds_of_many_small_frames_copy_linearly() -> None:
    stream = b"".join(encode_frame(bytes([i % 256]) * (1 + i % 40)) for i in range(5000))
    decoder = FrameDecoder()
    count = 0
    for i in range(0, len(stream), 7):  # pieces that straddle frame boundaries
        decoder.feed(stream[i : i + 7])
        while decoder.next_frame() is not None:
            count += 1
    assert count == 5000
    assert decoder.bytes_moved <= len(stream)


def test_compaction_while_frames_stay_unread() -> None:
    """Feeding before reading everything still keeps copying linear and frames intact."""
    payloads = [bytes([i % 256]) * (50 + i % 30) for i in range(2000)]
    stream = b"".join(encode_frame(p) for p in payloads)
    decoder = FrameDecoder()
    got = []
    for i in range(0, len(stream), 1000):
        decoder.feed(stream[i : i + 1000])
        frame = decoder.next_frame()  # read at most one frame per feed: a backlog builds
        if frame is not None:
            got.append(frame)
    got.extend(drain(decoder))
    assert got == payloads
    assert decoder.bytes_moved <= len(stream)
