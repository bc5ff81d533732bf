"""Framing: length prefix, caps checked early, any split of the input, linear-time buffering."""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p_orchestrator.errors import ProtocolError
from p2p_orchestrator.wire import DEFAULT_MAX_FRAME_BYTES, FrameDecoder, encode_frame
from tests.wire.reference_framing import ReferenceFrameDecoder

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
        assert decoder.bytes_copied == size  # assembled once, at the end
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
    assert decoder.bytes_copied <= 2 * len(stream)


def test_feeding_while_frames_stay_unread() -> None:
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
    assert decoder.bytes_copied <= 2 * len(stream)


def test_bytes_needed_follows_the_header_then_the_payload() -> None:
    decoder = FrameDecoder()
    assert decoder.bytes_needed == 4
    decoder.feed(b"\x00\x00")
    assert decoder.bytes_needed == 2
    decoder.feed(b"\x00\x05ab")
    assert decoder.bytes_needed == 3
    decoder.feed(b"cde\x00")  # the frame completes; a complete frame waits
    assert decoder.bytes_needed == 0
    assert decoder.next_frame() == b"abcde"
    assert decoder.bytes_needed == 3  # the rest of the next header


def test_a_payload_fed_whole_is_returned_without_a_copy() -> None:
    """What an adapter reading exactly ``bytes_needed`` gets: the piece itself."""
    body = bytes(range(256)) * 4096  # 1 MiB
    decoder = FrameDecoder()
    decoder.feed(len(body).to_bytes(4, "big"))
    assert decoder.bytes_needed == len(body)
    decoder.feed(body)
    assert decoder.next_frame() is body
    assert decoder.bytes_copied == 0


def test_a_payload_read_in_pieces_of_bytes_needed() -> None:
    body = b"\x5a" * 300_000
    stream = encode_frame(body) + encode_frame(b"tail")
    decoder = FrameDecoder()
    decoder.feed(stream[:65536])  # a first read: the header and the start of the payload
    rest = stream[65536:]
    wanted = decoder.bytes_needed
    assert wanted == len(body) - (65536 - 4)
    decoder.feed(rest[:wanted])
    decoder.feed(rest[wanted:])
    assert drain(decoder) == [body, b"tail"]
    assert decoder.bytes_copied == len(body) + 4  # each payload byte copied once


def test_a_mutable_piece_is_not_kept_by_reference() -> None:
    decoder = FrameDecoder()
    piece = bytearray(encode_frame(b"abc"))
    decoder.feed(piece)  # type: ignore[arg-type]
    piece[4:7] = b"xyz"
    assert decoder.next_frame() == b"abc"


def _run_both(stream: bytes, points: list[int], cap: int, read_every: int) -> None:
    """Feed both decoders the same pieces; they must agree on everything, errors included."""
    new, old = FrameDecoder(cap), ReferenceFrameDecoder(cap)
    for number, (start, end) in enumerate(itertools.pairwise(points)):
        outcomes = []
        for decoder in (new, old):
            try:
                decoder.feed(stream[start:end])
                frames = drain(decoder) if number % read_every == 0 else []
                outcomes.append(("ok", frames, decoder.buffered_bytes, decoder.at_frame_boundary))
            except ProtocolError as exc:
                outcomes.append(("error", exc.code))
        assert outcomes[0] == outcomes[1]
        if outcomes[0][0] == "error":
            return
    assert drain(new) == drain(old)
    assert (new.buffered_bytes, new.at_frame_boundary) == (old.buffered_bytes, old.at_frame_boundary)


_FRAME_PIECES = st.one_of(
    st.binary(min_size=1, max_size=300).map(lambda p: len(p).to_bytes(4, "big") + p),
    st.sampled_from([b"\x00\x00\x00\x00", b"\x00\x00\x01\x2d", b"\xff\xff\xff\xff"]),  # bad headers
    st.binary(min_size=1, max_size=8),  # raw bytes: half headers, garbage
)


@FAST
@given(
    pieces=st.lists(_FRAME_PIECES, max_size=10),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=20),
    read_every=st.integers(min_value=1, max_value=3),
)
def test_the_decoder_agrees_with_the_reference_on_any_split(
    pieces: list[bytes], cuts: list[int], read_every: int
) -> None:
    stream = b"".join(pieces)
    _run_both(stream, sorted({0, len(stream), *(c for c in cuts if c < len(stream))}), 300, read_every)


def test_the_decoder_agrees_with_the_reference_split_at_every_point() -> None:
    payloads = [b"a", b"\x01" * 70_000, b"bc" * 10, b"\x02" * 20_000, b"z"]
    stream = b"".join(encode_frame(p) for p in payloads) + b"\x00\x00"
    for cut in range(len(stream) + 1):
        _run_both(stream, sorted({0, cut, len(stream)}), DEFAULT_MAX_FRAME_BYTES, 1)
    for cut in range(0, len(stream) - 7, 997):  # three pieces, the middle one small
        _run_both(stream, [0, cut, cut + 7, len(stream)], DEFAULT_MAX_FRAME_BYTES, 1)
