"""Release statements: exact bytes, round trips, strict refusal of anything malformed, and signatures
that break when any field changes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2p_orchestrator.errors import ReleaseError, ServiceInstallationError
from p2p_orchestrator.release import (
    MAX_STATEMENT_BYTES,
    SIGNING_CONTEXT,
    PublisherKey,
    ReleaseStatement,
)

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
KEY = PublisherKey(bytes(range(32)))
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
STATEMENT = KEY.sign("web", "2.0.0", SHA, 4096, issued_at=1767225600, expires_at=1798761600)

# docs/protocol.md, "Release statements", shows these bytes: change both together, or neither.
GOLDEN = bytes.fromhex(
    "a9617601636578701a6b36ec80636961741a6955b900636b6579582003a107bff3ce10be1d70dd18e74bc09967e4d630"
    "9ba50d5f1ddc8664125531b86373696758406dcaa79d73bd95c2ff6071e312a2e31dfdd1f78138988afa24ee86ba372c"
    "92aa43a8402aacb2278b317b198d633bc5b7e708ea08c2459ed92af07d394fb7560c6376657265322e302e30646e616d"
    "65637765626473697a651910006673686132353658209f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d"
    "6c15b0f00a08"
)


def _fields(statement: ReleaseStatement = STATEMENT) -> dict[str, Any]:
    return dict(cbor2.loads(statement.to_bytes()))


def _encode(fields: dict[str, Any]) -> bytes:
    return bytes(cbor2.dumps(fields, canonical=True))


def test_the_exact_bytes_of_a_statement() -> None:
    assert KEY.public_text == "ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
    assert STATEMENT.to_bytes() == GOLDEN
    assert SIGNING_CONTEXT == b"p2p-orchestrator release statement 1\x00"
    unsigned = {key: value for key, value in _fields().items() if key != "sig"}
    assert STATEMENT.signed_bytes() == SIGNING_CONTEXT + _encode(unsigned)
    assert list(_fields()) == ["v", "exp", "iat", "key", "sig", "ver", "name", "size", "sha256"]
    assert _fields()["v"] == 1 and _fields()["sha256"] == bytes.fromhex(SHA)


@pytest.mark.parametrize("expires_at", [None, 1798761600])
def test_a_statement_round_trips_and_its_signature_holds(expires_at: int | None) -> None:
    statement = KEY.sign("web", "2.0.0-rc.1+b7", SHA, 0, issued_at=0, expires_at=expires_at)
    again = ReleaseStatement.from_bytes(statement.to_bytes())
    assert again == statement
    again.verify_signature()
    assert ReleaseStatement.from_bytes(bytearray(statement.to_bytes())) == statement


TAMPERED = {
    "name": "api",
    "version": "2.0.1",
    "archive_sha256": "0" * 64,
    "archive_size": 4097,
    "publisher_key": PublisherKey(bytes(32)).public_key,
    "issued_at": 1767225601,
    "expires_at": None,
    "signature": bytes(64),
}


@pytest.mark.parametrize("field", sorted(TAMPERED))
def test_changing_any_field_breaks_the_signature(field: str) -> None:
    assert {f.name for f in dataclasses.fields(ReleaseStatement)} == set(TAMPERED)
    tampered = dataclasses.replace(STATEMENT, **{field: TAMPERED[field]})
    assert ReleaseStatement.from_bytes(tampered.to_bytes()) == tampered  # well formed, yet...
    with pytest.raises(ReleaseError) as refused:
        tampered.verify_signature()
    assert refused.value.code == "bad_signature"
    assert "web" in refused.value.message or "api" in refused.value.message


def test_a_signature_over_the_map_alone_is_not_a_statement_signature() -> None:
    """Domain separation: the same key signing the bare CBOR (no context) does not verify."""
    bare = KEY._signing_key.sign(STATEMENT.signed_bytes()[len(SIGNING_CONTEXT) :]).signature
    with pytest.raises(ReleaseError, match="signature"):
        dataclasses.replace(STATEMENT, signature=bytes(bare)).verify_signature()


def _with(**changes: Any) -> bytes:
    fields = _fields()
    for key, value in changes.items():
        if value is _DROP:
            del fields[key]
        else:
            fields[key] = value
    return _encode(fields)


_DROP = object()

REFUSED = {
    "empty": b"",
    "not a map": _encode({"a": 1})[1:],
    "a list": cbor2.dumps([1, 2]),
    "trailing byte": GOLDEN + b"\x00",
    "truncated": GOLDEN[:-1],
    "too large": GOLDEN + b"\x00" * MAX_STATEMENT_BYTES,
    "indefinite map": b"\xbf\xff",
    "a tag": _with(name=cbor2.CBORTag(32, "web")),
    "a float": _with(size=1.5),
    "a negative size": _with(size=-1),
    "a nested map": _with(name={"a": 1}),
    "format 2": _with(v=2),
    "format missing": _with(v=_DROP),
    "name missing": _with(name=_DROP),
    "signature missing": _with(sig=_DROP),
    "expiry missing": _with(exp=_DROP),
    "unknown key": _with(note="hi"),
    "bad name": _with(name="Web"),
    "reserved name": _with(name="orchestrator"),
    "bad version": _with(ver="2.0"),
    "non-canonical version": _with(ver="v2.0.0"),
    "name as bytes": _with(name=b"web"),
    "short sha256": _with(sha256=b"\x00" * 31),
    "sha256 as hex text": _with(sha256=SHA),
    "short key": _with(key=b"\x00" * 31),
    "short signature": _with(sig=b"\x00" * 63),
    "expiry before issue": _with(exp=1767225600),
    "expiry as text": _with(exp="never"),
    "issued as null": _with(iat=None),
    "bool size": _with(size=True),
    "invalid utf-8": _with(ver="2.0.0").replace(b"2.0.0", b"2.0\xff0"),
    "duplicate key": bytes([0xAA]) + GOLDEN[1:] + b"\x61v\x01",
    "non-minimal integer": GOLDEN.replace(b"\x1a\x69\x55\xb9\x00", b"\x1b\x00\x00\x00\x00\x69\x55\xb9\x00"),
    "keys out of order": b"\xa9"
    + b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in sorted(_fields().items())),
}


@pytest.mark.parametrize("data", REFUSED.values(), ids=REFUSED.keys())
def test_malformed_statements_are_refused(data: bytes) -> None:
    with pytest.raises(ReleaseError) as refused:
        ReleaseStatement.from_bytes(data)
    assert refused.value.code == "bad_release"
    assert "statement" in refused.value.message


def test_a_malformed_field_is_refused_when_the_statement_is_made() -> None:
    with pytest.raises(ReleaseError, match="archive_sha256"):
        dataclasses.replace(STATEMENT, archive_sha256=SHA.upper())
    with pytest.raises(ReleaseError, match="expires_at"):
        KEY.sign("web", "2.0.0", SHA, 1, issued_at=10, expires_at=10)
    assert issubclass(ReleaseError, ServiceInstallationError)


def _statement_maps() -> st.SearchStrategy[bytes]:
    scalar = st.one_of(
        st.none(),
        st.integers(min_value=-(2**64), max_value=2**64 - 1),
        st.binary(max_size=70),
        st.text(max_size=20),
        st.booleans(),
        st.floats(),
    )
    keys = st.sampled_from(["v", "name", "ver", "sha256", "size", "key", "iat", "exp", "sig", "x"])

    def mutate(changes: dict[str, Any]) -> bytes:
        fields = _fields()
        fields.update(changes)
        return bytes(cbor2.dumps(fields, canonical=True))

    return st.dictionaries(keys, scalar, max_size=4).map(mutate)


def _bit_flips() -> st.SearchStrategy[bytes]:
    return st.tuples(st.integers(0, len(GOLDEN) * 8 - 1), st.integers(0, len(GOLDEN))).map(
        lambda flip: (int.from_bytes(GOLDEN, "big") ^ (1 << flip[0])).to_bytes(len(GOLDEN), "big")[
            : len(GOLDEN) - flip[1] % 3
        ]
    )


@FUZZ
@given(st.one_of(st.binary(max_size=300), _statement_maps(), _bit_flips()))
def test_hostile_bytes_raise_only_release_errors(data: bytes) -> None:
    try:
        statement = ReleaseStatement.from_bytes(data)
    except ReleaseError as exc:
        codes = {exc.code}
    else:
        assert statement.to_bytes() == data  # whatever is accepted is exactly what would be written
        try:
            statement.verify_signature()
        except ReleaseError as exc:
            codes = {exc.code}
        else:
            codes = set()
    assert codes <= {"bad_release", "bad_signature"}


def test_the_protocol_document_shows_these_bytes() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    blocks = ["".join(block.split()) for block in text.split("```")[1::2]]
    assert GOLDEN.hex() in blocks
    assert STATEMENT.signed_bytes().hex() in blocks
