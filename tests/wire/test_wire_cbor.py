"""The strict CBOR profile: every refusal with its code, and round trips of what is allowed."""

from __future__ import annotations

import datetime
import decimal
import fractions
import math
import uuid
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p_orchestrator.errors import ProtocolError
from p2p_orchestrator.wire import decode_payload, encode_payload

A = bytes.fromhex("6161")  # the text string "a"


def refused(payload: bytes, **limits: int) -> str:
    with pytest.raises(ProtocolError) as exc:
        decode_payload(payload, **limits)
    return exc.value.code


def in_map(value: bytes) -> bytes:
    """``{"a": <value>}``"""
    return b"\xa1" + A + value


def nested_maps(levels: int) -> bytes:
    return b"".join(b"\xa1" + A for _ in range(levels - 1)) + b"\xa0"


def nested_arrays(levels: int) -> bytes:
    """A map holding ``levels - 1`` arrays, each inside the previous one."""
    return b"\xa1" + A + b"\x81" * (levels - 2) + b"\x80"


# -- accepted -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("00", 0),
        ("1bffffffffffffffff", 2**64 - 1),
        ("3bffffffffffffffff", -(2**64)),
        ("f4", False),
        ("f5", True),
        ("f6", None),
        ("f93c00", 1.0),
        ("fa3fc00000", 1.5),
        ("fb400921fb54442d18", math.pi),
        ("4401020304", b"\x01\x02\x03\x04"),
        ("63e282ac", "\u20ac"),
        ("820102", [1, 2]),
        ("a0", {}),
        ("780161", "a"),  # non-preferred (longer) length encodings are accepted
    ],
)
def test_plain_values_decode(item: str, expected: Any) -> None:
    assert decode_payload(in_map(bytes.fromhex(item))) == {"a": expected}


def test_nesting_exactly_at_the_limit_is_fine() -> None:
    assert decode_payload(nested_maps(16)) is not None
    assert decode_payload(nested_arrays(16)) is not None
    assert decode_payload(nested_maps(3), max_depth=3) == {"a": {"a": {}}}


def test_items_exactly_at_the_limit_are_fine() -> None:
    # map + key + array + 2 elements = 5 items
    assert decode_payload(in_map(b"\x82\x01\x02"), max_items=5) == {"a": [1, 2]}


# -- refused ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "item",
    [
        "c11a514b67b0",  # tag 1: epoch datetime
        "c074323031332d30332d32315432303a30343a30305a",  # tag 0: datetime string
        "d9010280",  # tag 258: set
        "d81c80",  # tag 28: shareable value
        "d81d00",  # tag 29: shared reference
        "c24101",  # tag 2: bignum
        "d8188161",  # tag 24: embedded CBOR
        "d9d9f7a0",  # tag 55799: self-described CBOR
    ],
)
def test_tags_are_forbidden(item: str) -> None:
    assert refused(in_map(bytes.fromhex(item))) == "cbor_tag_forbidden"


def test_tags_are_forbidden_in_keys_too() -> None:
    assert refused(b"\xa1\xc1\x61a\x01") == "cbor_tag_forbidden"


@pytest.mark.parametrize(
    "payload",
    [
        in_map(b"\x9f\xff"),  # indefinite array
        in_map(b"\xbf\xff"),  # indefinite map
        in_map(b"\x5f\x41a\xff"),  # indefinite byte string
        in_map(b"\x7f\x61a\xff"),  # indefinite text string
        b"\xbf\x61a\x01\xff",  # indefinite top-level map
        b"\xa1\x7f\x61a\xff\x01",  # indefinite key
    ],
)
def test_indefinite_lengths_are_refused(payload: bytes) -> None:
    assert refused(payload) == "cbor_indefinite"


def test_nesting_past_the_limit_is_refused() -> None:
    assert refused(nested_maps(17)) == "cbor_too_deep"
    assert refused(nested_arrays(17)) == "cbor_too_deep"
    assert refused(nested_maps(4), max_depth=3) == "cbor_too_deep"


def test_too_many_items_are_refused() -> None:
    assert refused(in_map(b"\x83\x01\x02\x03"), max_items=5) == "cbor_too_many_items"
    assert refused(b"\xa2" + A + b"\x01\x61b\x02", max_items=4) == "cbor_too_many_items"


def test_declared_counts_cannot_force_work_or_memory() -> None:
    # An array claiming 2**64-1 elements is refused before any element is looked at.
    assert refused(in_map(b"\x9b" + b"\xff" * 8)) == "cbor_truncated"
    assert refused(in_map(b"\xbb" + b"\xff" * 8)) == "cbor_truncated"


@pytest.mark.parametrize(
    "item",
    [
        "f7",  # undefined
        "f0",  # simple(16), unassigned
        "e0",  # simple(0)
        "f814",  # simple(20) in the two-byte form: not well-formed
        "f820",  # simple(32)
        "f8ff",  # simple(255)
    ],
)
def test_simple_values_other_than_false_true_null_are_refused(item: str) -> None:
    assert refused(in_map(bytes.fromhex(item))) == "cbor_bad_simple"


@pytest.mark.parametrize(
    "item",
    [
        "fc",  # reserved additional information 28..30
        "fe",
        "1c",
        "3d",
        "5e",
        "ff",  # a stray break
        "1f",  # unsigned integer with additional information 31
        "3f",
    ],
)
def test_malformed_items_are_bad_cbor(item: str) -> None:
    assert refused(in_map(bytes.fromhex(item))) == "bad_cbor"


@pytest.mark.parametrize(
    "payload",
    [
        b"\xa1\x01\x01",  # integer key
        b"\xa1\x41a\x01",  # byte-string key
        b"\xa1\x80\x01",  # array key
        b"\xa1\xf6\x01",  # null key
        in_map(b"\xa1\x20\x01"),  # nested map with a negative-integer key
    ],
)
def test_non_text_keys_are_refused(payload: bytes) -> None:
    assert refused(payload) == "cbor_bad_key"


def test_duplicate_keys_are_refused() -> None:
    assert refused(b"\xa2" + A + b"\x01" + A + b"\x02") == "cbor_duplicate_key"
    # The same key with a different length encoding is still the same key.
    assert refused(b"\xa2" + A + b"\x01\x78\x01a\x02") == "cbor_duplicate_key"
    # The same key in different maps is fine.
    assert decode_payload(b"\xa2" + A + b"\xa1" + A + b"\x01\x61b\x02") == {"a": {"a": 1}, "b": 2}


@pytest.mark.parametrize(
    "payload",
    [
        in_map(b"\x62\xc3\x28"),  # invalid continuation byte
        in_map(b"\x63\xed\xa0\x80"),  # an encoded UTF-16 surrogate
        in_map(b"\x61\xff"),
        b"\xa1\x61\xff\x01",  # in a key
    ],
)
def test_invalid_utf8_is_refused(payload: bytes) -> None:
    assert refused(payload) == "cbor_bad_utf8"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xa1",  # map without its pair
        b"\xa2" + A + b"\x01",  # map of two pairs with one
        in_map(b"\x5a\xff\xff\xff\xff\x00"),  # byte string longer than the payload
        in_map(b"\x65abc"),  # text string longer than the payload
        in_map(b"\x19\x01"),  # two-byte argument with one byte
        in_map(b"\xfb\x00\x00"),  # float64 with two bytes
        b"\xa1\x61",  # key cut short
    ],
)
def test_lengths_past_the_end_are_refused(payload: bytes) -> None:
    assert refused(payload) == "cbor_truncated"


@pytest.mark.parametrize("payload", [b"\xa0\x00", b"\xa0\xa0", in_map(b"\x01") + b"\xff"])
def test_trailing_bytes_are_refused(payload: bytes) -> None:
    assert refused(payload) == "cbor_trailing_bytes"


@pytest.mark.parametrize("payload", [b"\x80", b"\x01", A, b"\xf6", b"\xc1\xa0", b"\x40"])
def test_top_level_must_be_a_map(payload: bytes) -> None:
    assert refused(payload) == "cbor_not_map"


@pytest.mark.parametrize(("max_depth", "max_items"), [(0, 10), (129, 10), (16, 0)])
def test_invalid_limits_are_configuration_errors(max_depth: int, max_items: int) -> None:
    with pytest.raises(ValueError, match="max_"):
        decode_payload(b"\xa0", max_depth=max_depth, max_items=max_items)


# -- encoding -----------------------------------------------------------------------------------


def test_encoding_never_uses_tags_for_allowed_types() -> None:
    value = {"b": bytearray(b"xy"), "t": (1, 2), "n": None, "f": 1.5, "big": 2**64 - 1, "neg": -(2**64)}
    data = encode_payload(value)
    assert decode_payload(data) == {**value, "b": b"xy", "t": [1, 2]}


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC), "datetime.datetime"),
        (datetime.date(2024, 1, 1), "datetime.date"),
        ({1, 2}, "set"),
        (frozenset(), "frozenset"),
        (decimal.Decimal("1.5"), "decimal.Decimal"),
        (fractions.Fraction(1, 3), "fractions.Fraction"),
        (uuid.UUID(int=0), "uuid.UUID"),
        (object(), "object"),
        (1j, "complex"),
        (memoryview(b"x"), "memoryview"),
        (cbor2.CBORTag(1, 0), "CBORTag"),
    ],
)
def test_unencodable_types_are_named(value: object, type_name: str) -> None:
    with pytest.raises(ProtocolError) as exc:
        encode_payload({"result": {"when": [value]}})
    assert exc.value.code == "unencodable"
    assert type_name in exc.value.message
    assert "['result']['when'][0]" in exc.value.message


@pytest.mark.parametrize("value", [{1: "x"}, {(1, 2): "x"}, {b"k": "x"}, {None: 1}])
def test_non_str_keys_are_unencodable(value: dict[Any, Any]) -> None:
    with pytest.raises(ProtocolError) as exc:
        encode_payload({"params": value})
    assert exc.value.code == "unencodable"
    assert "key" in exc.value.message


@pytest.mark.parametrize("value", [2**64, -(2**64) - 1, 10**40])
def test_integers_that_would_need_bignum_tags_are_unencodable(value: int) -> None:
    with pytest.raises(ProtocolError) as exc:
        encode_payload({"n": value})
    assert exc.value.code == "unencodable"


def test_unencodable_payloads() -> None:
    for payload in ([1], "x", None):
        with pytest.raises(ProtocolError) as exc:
            encode_payload(payload)  # type: ignore[arg-type]
        assert exc.value.code == "unencodable"
    with pytest.raises(ProtocolError) as surrogate:
        encode_payload({"s": "\ud800"})
    assert surrogate.value.code == "unencodable"


def test_encoding_applies_the_decoder_limits() -> None:
    deep: dict[str, Any] = {}
    for _ in range(16):
        deep = {"a": deep}
    with pytest.raises(ProtocolError) as too_deep:
        encode_payload(deep)
    assert too_deep.value.code == "cbor_too_deep"
    encode_payload(deep["a"])  # 16 levels is fine
    with pytest.raises(ProtocolError) as too_many:
        encode_payload({"a": [1, 2, 3]}, max_items=5)
    assert too_many.value.code == "cbor_too_many_items"
    assert decode_payload(encode_payload({"a": [1, 2]}, max_items=5), max_items=5) == {"a": [1, 2]}


def test_cycles_are_refused_not_looped_on() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ProtocolError) as exc:
        encode_payload({"c": cycle})
    assert exc.value.code == "cbor_too_deep"


plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=120, deadline=None, database=None)
@given(st.dictionaries(st.text(max_size=8), plain, max_size=6))
def test_round_trip_of_plain_values(value: dict[str, Any]) -> None:
    data = encode_payload(value, max_depth=64)
    assert decode_payload(data, max_depth=64) == value
    # The validator and cbor2 agree: re-encoding what was decoded gives the same bytes.
    assert encode_payload(decode_payload(data, max_depth=64), max_depth=64) == data


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff", "bad_cbor"),  # a stray break at the top level
        (b"\xff\xa0", "bad_cbor"),
        (b"\xfc", "bad_cbor"),  # reserved additional information 28
        (b"\x9f\xff", "cbor_not_map"),  # well-formed (an indefinite array), but not a map
        (b"\xa1\x61a\xc1\x00\xff", "cbor_tag_forbidden"),  # the first broken rule in byte order wins
        (b"\xa1\x61a\x01\xff", "cbor_trailing_bytes"),
    ],
)
def test_which_error_a_payload_breaking_rules_gets(payload: bytes, code: str) -> None:
    """docs/protocol.md, section 2: the first rule met reading the bytes in order."""
    assert refused(payload) == code
