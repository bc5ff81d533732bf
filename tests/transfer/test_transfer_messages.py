"""Transfer messages and the channel: wire forms, strict decoding, framing."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from p2p_orchestrator.errors import PermissionDenied, ProtocolError, ServiceDistributionError
from p2p_orchestrator.transfer import (
    MAX_IN_FLIGHT,
    Abort,
    CancelChunks,
    Chunk,
    Done,
    Fetch,
    Have,
    Offer,
    Result,
    TransferChannel,
    TransferMessage,
    TransferOptions,
    Want,
    encode_message,
    message_from_wire,
)
from p2p_orchestrator.transfer.manifest import compute_root
from p2p_orchestrator.wire import CLOSED, NEED_DATA, encode_frame, encode_payload
from tests.transfer.support import archive, roundtrip


@pytest.fixture
def offer(tmp_path: Path) -> Offer:
    manifest = archive(tmp_path)[2]
    return Offer(
        manifest, "install", TransferOptions(force_reinstall=True, auto_start=True), ("QmPeer1", "12D3KooWx")
    )


def all_messages(offer: Offer) -> list[TransferMessage]:
    return [
        Fetch(archive_hash="ab" * 32),
        Fetch(service="echo_service"),
        offer,
        Offer(offer.manifest, "fetch"),
        Offer(offer.manifest, "fetch", release=b"\xa1statement"),
        Have(b"\xf8"),
        Want((0, 3, 2)),
        CancelChunks((1,)),
        Chunk(4, b"data"),
        Done(),
        Abort(PermissionDenied("no", code="permission_denied")),
        Result.success({"success": True, "archive_hash": "ab" * 32}),
        Result.failure(ServiceDistributionError("bad", code="chunk_hash_mismatch")),
    ]


def test_every_message_round_trips(offer: Offer) -> None:
    for message in all_messages(offer):
        assert roundtrip(message) == message
        assert message_from_wire(message.to_wire()) == message


def test_error_messages_keep_the_error_class(offer: Offer) -> None:
    abort = roundtrip(Abort(PermissionDenied("role", code="permission_denied")))
    assert isinstance(abort, Abort) and isinstance(abort.error, PermissionDenied)
    result = roundtrip(Result.failure(ServiceDistributionError("x", code="too_many_corrupt_chunks")))
    assert isinstance(result, Result) and isinstance(result.error, ServiceDistributionError)
    assert result.error.code == "too_many_corrupt_chunks"
    assert hash(abort) == hash(Abort(PermissionDenied("role", code="permission_denied")))
    assert hash(result) and result != abort


def test_chunk_repr_does_not_dump_data() -> None:
    assert repr(Chunk(1, b"x" * 100_000)) == "Chunk(index=1, data=<100000 bytes>)"


BAD: list[dict[str, Any]] = [
    {},
    {"t": "nope"},
    {"t": 5},
    {"t": "done", "extra": 1},
    {"t": "have"},
    {"t": "have", "bits": b""},
    {"t": "have", "bits": "ff"},
    {"t": "have", "bits": b"\x00" * 8193},
    {"t": "want", "indices": []},
    {"t": "want", "indices": [1, 1]},
    {"t": "want", "indices": [-1]},
    {"t": "want", "indices": [True]},
    {"t": "want", "indices": [65536]},
    {"t": "want", "indices": list(range(MAX_IN_FLIGHT + 1))},
    {"t": "want", "indices": {"0": 1}},
    {"t": "cancel", "indices": [0.0]},
    {"t": "cancel", "indices": "1"},
    {"t": "chunk", "index": 0, "data": b""},
    {"t": "chunk", "index": 0, "data": "text"},
    {"t": "chunk", "index": None, "data": b"x"},
    {"t": "chunk", "index": 0, "data": b"x" * (4 * 1024 * 1024 + 1)},
    {"t": "fetch", "archive_hash": None, "service": None},
    {"t": "fetch", "archive_hash": "ab" * 32, "service": "svc"},
    {"t": "fetch", "archive_hash": "AB" * 32, "service": None},
    {"t": "fetch", "archive_hash": None, "service": "Bad-Name"},
    {"t": "abort", "error": "boom"},
    {"t": "abort", "error": {"code": "x", "type": "Busy"}},
    {"t": "abort", "error": {"code": "x", "type": "Busy", "message": 1}},
    {"t": "result", "ok": True, "result": None, "error": None},
    {"t": "result", "ok": True, "result": {}, "error": {"code": "x", "type": "Busy", "message": "m"}},
    {"t": "result", "ok": False, "result": {}, "error": {"code": "x", "type": "Busy", "message": "m"}},
    {"t": "result", "ok": False, "result": None, "error": None},
    {"t": "result", "ok": 1, "result": {}, "error": None},
]


@pytest.mark.parametrize("obj", BAD, ids=lambda obj: repr(obj)[:60])
def test_malformed_messages_are_bad_message(obj: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        message_from_wire(obj)
    assert info.value.code == "bad_message"


def test_offer_fields_are_strict(offer: Offer) -> None:
    good = offer.to_wire()
    for key, value in [
        ("purpose", "steal"),
        ("options", {"force_reinstall": True}),
        ("options", {"force_reinstall": 1, "auto_start": False}),
        ("peers", "QmPeer"),
        ("peers", ["QmPeer", "QmPeer"]),
        ("peers", ["not/a/peer"]),
        ("peers", ["0OIl"]),  # not base58
        ("peers", ["Qm"] * 0 + [f"Qm{i}" for i in range(1025)]),
        ("release", "text"),
        ("release", None),
        ("release", b"x" * 4097),
    ]:
        with pytest.raises(ProtocolError) as info:
            message_from_wire({**good, key: value})
        assert info.value.code == "bad_message", (key, value)
    with pytest.raises(ServiceDistributionError) as err:
        message_from_wire({**good, "manifest": {**good["manifest"], "root": b"\x00" * 32}})
    assert err.value.code == "bad_manifest"
    with pytest.raises(ServiceDistributionError) as err:
        message_from_wire(good, max_total_bytes=100)
    assert err.value.code == "transfer_too_large"


def test_an_offer_without_a_release_has_the_bytes_it_always_had(offer: Offer) -> None:
    """The release statement is an optional field: left out when unsigned, so a node that
    predates releases reads the offer, and an offer from such a node reads as unsigned."""
    assert "release" not in offer.to_wire()
    assert set(offer.to_wire()) == {"t", "manifest", "purpose", "options", "peers"}
    assert message_from_wire(offer.to_wire()) == offer
    signed = Offer(offer.manifest, "install", release=b"statement")
    assert message_from_wire(signed.to_wire()).release == b"statement"  # type: ignore[union-attr]


def test_constructors_refuse_what_decoding_refuses(offer: Offer) -> None:
    with pytest.raises(ProtocolError):
        Want((1, 2, 2))
    with pytest.raises(ProtocolError):
        Offer(offer.manifest, "install", TransferOptions(), ["QmPeer"])  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        Offer(offer.manifest.to_wire(), "install")  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        Result.success([1])  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        Abort("boom")  # type: ignore[arg-type]


# -- the channel ----------------------------------------------------------------------------


def test_channel_reassembles_frames_from_any_pieces(offer: Offer) -> None:
    stream = b"".join(encode_message(m) for m in all_messages(offer))
    for piece in (1, 7, 4096, len(stream)):
        channel = TransferChannel()
        got: list[Any] = []
        for start in range(0, len(stream), piece):
            channel.receive_data(stream[start : start + piece])
            while (message := channel.next_message()) is not NEED_DATA:
                got.append(message)
        channel.receive_data(b"")
        assert channel.next_message() is CLOSED
        assert got == all_messages(offer)
        assert channel.buffered_bytes == 0


def test_channel_eof_inside_a_frame_is_truncated() -> None:
    channel = TransferChannel()
    channel.receive_data(encode_message(Done())[:-1])
    assert channel.next_message() is NEED_DATA
    channel.receive_data(b"")
    with pytest.raises(ProtocolError) as info:
        channel.next_message()
    assert info.value.code == "truncated_frame"
    with pytest.raises(ProtocolError) as again:
        channel.next_message()
    assert again.value.code == "truncated_frame"


def test_channel_refuses_data_after_eof_and_oversized_frames() -> None:
    channel = TransferChannel()
    channel.receive_data(b"")
    with pytest.raises(ProtocolError) as info:
        channel.receive_data(b"x")
    assert info.value.code == "data_after_eof"
    small = TransferChannel(max_frame_bytes=1024)
    with pytest.raises(ProtocolError) as info:
        small.receive_data((5000).to_bytes(4, "big"))
    assert info.value.code == "frame_too_large"
    with pytest.raises(ProtocolError):
        small.send(Chunk(0, b"x" * 2000))


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xa1\x61t\xc0\x00", "cbor_tag_forbidden"),
        (b"\x80", "cbor_not_map"),
        (encode_payload({"t": "done", "x": 1}), "bad_message"),
        (encode_payload({"t": "req", "id": 1}), "bad_message"),
    ],
)
def test_channel_applies_the_strict_cbor_profile(payload: bytes, code: str) -> None:
    channel = TransferChannel()
    channel.receive_data(encode_frame(payload))
    with pytest.raises(ProtocolError) as info:
        channel.next_message()
    assert info.value.code == code


def test_the_manifest_root_matches_the_documented_test_vector() -> None:
    """docs/protocol.md, "Manifest": the bytes a third-party implementation must reproduce."""
    data = b"a" * 65536 + b"b" * 10
    archive_hash = hashlib.sha256(data).hexdigest()
    chunk_hashes = hashlib.sha256(data[:65536]).digest() + hashlib.sha256(data[65536:]).digest()
    assert archive_hash == "6f440e033b3c418a8a7a0723c78a9dd68015085b47c051fe8f49f7cadd00e06f"
    assert chunk_hashes.hex() == (
        "bf718b6f653bebc184e1479f1935b8da974d701b893afcf49e701f3e2f9f9c5a"
        "6d2fe32dc4249ef7e7359c6d874fffbbf335e832e49a2681236e1b686af78794"
    )
    root = compute_root(archive_hash, len(data), 65536, chunk_hashes)
    assert root.hex() == "58900a6b7595664c39bb1025515fdd33dc6a2fe5efc10055bf2c15dd5245d0a7"
