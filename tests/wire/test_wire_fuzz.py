"""Fuzzing: whatever bytes arrive, the only outcomes are events or ProtocolError, in bounded memory."""

from __future__ import annotations

import datetime
import itertools
from typing import Any

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2p_orchestrator.errors import Busy, ProtocolError
from p2p_orchestrator.wire import (
    CLOSED,
    NEED_DATA,
    Cancel,
    ConnectionState,
    ErrorReply,
    Hello,
    Message,
    Request,
    Response,
    RpcConnection,
    StreamEnd,
    StreamItem,
    decode_payload,
    encode_frame,
    encode_payload,
)

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
MAX_FRAME = 1024
MESSAGE_TYPES = (Request, Response, ErrorReply, Cancel, StreamItem, StreamEnd, Hello)


def is_plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return True
    if isinstance(value, list):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(type(k) is str and is_plain(v) for k, v in value.items())
    return False


def drive(conn: RpcConnection, chunks: list[bytes], *, eof: bool = True) -> list[Message]:
    """Feed ``chunks`` (then EOF); return the messages.  Any exception but ProtocolError fails the test."""
    got: list[Message] = []
    try:
        for chunk in [*chunks, b""] if eof else chunks:
            conn.receive_data(chunk)
            while (event := conn.next_event()) is not NEED_DATA:
                if event is CLOSED:
                    assert conn.state is ConnectionState.CLOSED
                    return got
                assert isinstance(event, MESSAGE_TYPES)
                got.append(event)
            # Drained: only one partial frame may remain.
            assert conn.buffered_bytes < 4 + MAX_FRAME
    except ProtocolError:
        assert conn.state is ConnectionState.ERROR
        assert conn.data_to_send()  # the peer is told why
    return got


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


roles = st.sampled_from(["client", "server", "peer"])
cuts = st.lists(st.integers(min_value=0, max_value=10_000), max_size=8)


@FUZZ
@given(role=roles, hello=st.booleans(), data=st.binary(max_size=600), cut=cuts)
def test_random_bytes(role: Any, hello: bool, data: bytes, cut: list[int]) -> None:
    conn = RpcConnection(role, max_frame_bytes=MAX_FRAME, exchange_hello=hello)
    drive(conn, split(data, cut))


@FUZZ
@given(role=roles, payloads=st.lists(st.binary(min_size=1, max_size=200), max_size=6), cut=cuts)
def test_random_payloads_in_valid_frames(role: Any, payloads: list[bytes], cut: list[int]) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    drive(RpcConnection(role, max_frame_bytes=MAX_FRAME), split(stream, cut))


@FUZZ
@given(st.binary(min_size=1, max_size=300))
def test_decode_payload_on_random_bytes(payload: bytes) -> None:
    try:
        value = decode_payload(payload)
    except ProtocolError:
        return
    assert isinstance(value, dict)
    assert is_plain(value)


small_ids = st.integers(min_value=1, max_value=4)
plain_values = (
    st.none() | st.integers(min_value=-9, max_value=9) | st.text(max_size=5) | st.binary(max_size=5)
)
requests = st.builds(
    Request, small_ids, st.sampled_from(["svc/m", "orchestrator/list_services"]), st.just({})
)
cancels = st.builds(Cancel, small_ids)
answers = st.one_of(
    st.builds(Response, small_ids, plain_values),
    st.builds(ErrorReply, small_ids, st.just(Busy("later"))),
    st.builds(StreamItem, small_ids, plain_values),
    st.builds(StreamEnd, small_ids),
)
anything = st.one_of(
    requests,
    cancels,
    answers,
    st.builds(ErrorReply, st.none(), st.just(Busy("going away"))),
    st.builds(Hello, st.sampled_from(["cli", "service"]), st.sampled_from([1, 2])),
)
# Mostly what the role accepts, sometimes anything at all.
likely = {
    "server": st.one_of(requests, requests, cancels, anything),
    "client": st.one_of(answers, answers, answers, anything),
    "peer": st.one_of(requests, cancels, answers, answers, anything),
}


@FUZZ
@given(role=roles, hello=st.booleans(), data=st.data())
def test_well_formed_messages_in_random_orders(role: Any, hello: bool, data: st.DataObject) -> None:
    """Well-formed messages in arbitrary orders, with our side sending and answering in between.

    The only outcomes are events or ProtocolError, and the bookkeeping stays within its limits.
    """
    conn = RpcConnection(role, max_frame_bytes=MAX_FRAME, max_in_flight=1, exchange_hello=hello)
    if hello:
        conn.send(Hello("orchestrator"))
        conn.receive_data(encode_frame(encode_payload(Hello("cli").to_wire())))
        assert conn.next_event() == Hello("cli")
    if role != "server":
        for _ in range(3):
            conn.send(Request(conn.next_request_id(), "svc/m"))
    try:
        for msg in data.draw(st.lists(likely[role], max_size=12), label="received"):
            conn.receive_data(encode_frame(encode_payload(msg.to_wire())))
            while (event := conn.next_event()) is not NEED_DATA:
                assert isinstance(event, MESSAGE_TYPES)
                if isinstance(event, Request) and data.draw(st.booleans(), label="answer now"):
                    conn.send(Response(event.id, None))
                if isinstance(event, Response) and data.draw(st.booleans(), label="call again"):
                    conn.send(Request(conn.next_request_id(), "svc/m"))
                if role != "server" and conn.outstanding_requests().sent and data.draw(st.booleans()):
                    conn.send(Cancel(min(conn.outstanding_requests().sent)))
            assert len(conn.outstanding_requests().received) <= 1
        conn.receive_data(b"")
        assert conn.next_event() is CLOSED
    except ProtocolError:
        assert conn.state is ConnectionState.ERROR
        assert conn.data_to_send()


# Values cbor2 can encode, including the tagged kinds the profile refuses.
wild = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=10)
    | st.datetimes(timezones=st.just(datetime.UTC))
    | st.frozensets(st.integers(), max_size=3)
    | st.sampled_from([cbor2.undefined, cbor2.CBORTag(99, "x"), cbor2.CBORSimpleValue(99)]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=6) | st.integers(), children, max_size=4)
    ),
    max_leaves=8,
)
ids = st.integers(min_value=-1, max_value=4) | st.sampled_from([2**53, 2**53 + 1, True, None, 1.0])
message_dicts = st.fixed_dictionaries(
    {"t": st.sampled_from(["req", "res", "err", "cancel", "item", "end", "hello", "nope"])},
    optional={
        "id": ids,
        "method": st.sampled_from(["svc/m", "orchestrator/list_services", "bad", ""]),
        "params": wild,
        "result": wild,
        "item": wild,
        "error": st.fixed_dictionaries({"code": st.text(max_size=5), "type": st.text(max_size=5)})
        | st.just({"code": "x", "type": "Busy", "message": "m"})
        | wild,
        "role": st.sampled_from(["cli", "service", "Bad"]),
        "version": st.sampled_from([1, 2, 0]),
        "info": wild,
        "x": wild,
    },
)


@settings(FUZZ, max_examples=120)
@given(role=roles, msgs=st.lists(message_dicts, min_size=1, max_size=3))
def test_wild_fields(role: Any, msgs: list[dict[str, Any]]) -> None:
    """Maps with missing, extra, ill-typed and tagged fields, encoded by an unrestricted cbor2."""
    stream = b"".join(encode_frame(cbor2.dumps(m)) for m in msgs)
    drive(RpcConnection(role, max_frame_bytes=MAX_FRAME), [stream])


def valid_conversation() -> list[bytes]:
    """The frames a client legitimately sends a server: greetings, requests, a cancel."""
    client = RpcConnection("client", exchange_hello=True)
    frames = [client.send(Hello("cli", info={"user": "ops"}))]
    for n in range(1, 6):
        frames.append(client.send(Request(client.next_request_id(), "svc/method", {"n": n, "b": b"\0" * n})))
    return [*frames, client.send(Cancel(2))]


FRAMES = valid_conversation()
VALID = b"".join(FRAMES)

mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "duplicate"]),
        st.integers(min_value=0, max_value=len(VALID)),
        st.integers(min_value=0, max_value=255),
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, value in edits:
        pos %= len(buf) + 1
        if kind == "flip" and pos < len(buf):
            buf[pos] ^= 1 << (value % 8)
        elif kind == "set" and pos < len(buf):
            buf[pos] = value
        elif kind == "insert":
            buf[pos:pos] = bytes([value])
        elif kind == "delete":
            del buf[pos : pos + 1 + value % 8]
        elif kind == "duplicate":
            buf[pos:pos] = buf[pos : pos + value]
    return bytes(buf)


@FUZZ
@given(edits=mutations, cut=cuts, truncate=st.integers(min_value=0, max_value=len(VALID)))
def test_mutated_valid_streams(edits: list[tuple[str, int, int]], cut: list[int], truncate: int) -> None:
    stream = mutate(VALID, edits)
    stream = stream[: len(stream) - truncate % 16]
    drive(RpcConnection("server", max_frame_bytes=MAX_FRAME, exchange_hello=True), split(stream, cut))


@FUZZ
@given(which=st.integers(min_value=0, max_value=len(FRAMES) - 1), edits=mutations, cut=cuts)
def test_mutated_payloads_in_intact_frames(
    which: int, edits: list[tuple[str, int, int]], cut: list[int]
) -> None:
    """Damage one message's CBOR but keep the framing right, so the damage reaches the decoder."""
    payload = mutate(FRAMES[which][4:], edits) or b"\xa0"
    frames = [*FRAMES[:which], encode_frame(payload), *FRAMES[which + 1 :]]
    drive(
        RpcConnection("server", max_frame_bytes=MAX_FRAME, exchange_hello=True), split(b"".join(frames), cut)
    )


def test_the_unmutated_conversation_is_accepted() -> None:
    server = RpcConnection("server", max_frame_bytes=MAX_FRAME, exchange_hello=True)
    got = drive(server, [VALID])
    assert [type(m).__name__ for m in got] == ["Hello"] + ["Request"] * 5 + ["Cancel"]
    assert server.state is ConnectionState.CLOSED
