"""RpcConnection: every message order, the in-flight cap, EOF, errors and the Hello exchange."""

from __future__ import annotations

from typing import Any

import pytest

from p2p_orchestrator.errors import Busy, ProtocolError, ServiceCallError
from p2p_orchestrator.wire import (
    CLOSED,
    NEED_DATA,
    Cancel,
    ConnectionState,
    ErrorReply,
    Event,
    Hello,
    Request,
    Response,
    RpcConnection,
    StreamEnd,
    StreamItem,
    decode_payload,
    encode_frame,
    encode_payload,
    message_from_wire,
)


def events(conn: RpcConnection, data: bytes = b"") -> list[Event]:
    """Feed ``data`` (if any) and collect events up to NEED_DATA or CLOSED (included)."""
    if data:
        conn.receive_data(data)
    got: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        got.append(event)
        if event is CLOSED:
            break
    return got


def raw(**wire: Any) -> bytes:
    """A frame built without any state checks, to play a misbehaving peer."""
    return encode_frame(encode_payload(wire))


def violation(conn: RpcConnection, data: bytes, code: str) -> None:
    """``data`` breaks the protocol: check the error, the ERROR state and the notice to the peer."""
    with pytest.raises(ProtocolError) as exc:
        events(conn, data)
    assert exc.value.code == code
    assert conn.state is ConnectionState.ERROR
    notice = conn.data_to_send()
    assert events(RpcConnection("peer"), notice) == [
        ErrorReply(None, ProtocolError(exc.value.message, code=code))
    ]
    for again in (conn.next_event, lambda: conn.receive_data(b"x"), lambda: conn.send(Hello("cli"))):
        with pytest.raises(ProtocolError) as later:
            again()
        assert later.value.code == code
    assert conn.data_to_send() == b""


def refused_send(conn: RpcConnection, msg: Any, code: str) -> None:
    """Sending ``msg`` is refused locally and changes nothing."""
    before = (conn.state, conn.outstanding_requests())
    with pytest.raises(ProtocolError) as exc:
        conn.send(msg)
    assert exc.value.code == code
    assert (conn.state, conn.outstanding_requests()) == before


def call(client: RpcConnection, server: RpcConnection, method: str = "svc/m", **params: Any) -> int:
    rid = client.next_request_id()
    assert events(server, client.send(Request(rid, method, params))) == [Request(rid, method, params)]
    return rid


# -- normal flows -------------------------------------------------------------------------------


def test_request_and_response() -> None:
    client, server = RpcConnection("client"), RpcConnection("server")
    rid = call(client, server, "orchestrator/get_service_info", service_name="echo")
    assert client.outstanding_requests().sent == {rid}
    assert server.outstanding_requests().received == {rid}
    assert events(client, server.send(Response(rid, {"name": "echo"}))) == [Response(rid, {"name": "echo"})]
    assert client.outstanding_requests().sent == frozenset()
    assert server.outstanding_requests().received == frozenset()


def test_stream_of_items_then_end() -> None:
    client, server = RpcConnection("client"), RpcConnection("server")
    rid = call(client, server, "orchestrator/logs", follow=True)
    data = server.send(StreamItem(rid, "line 1")) + server.send(StreamItem(rid, "line 2"))
    refused_send(server, Response(rid, None), "unexpected_message")  # a stream ends with StreamEnd
    data += server.send(StreamEnd(rid))
    assert events(client, data) == [StreamItem(rid, "line 1"), StreamItem(rid, "line 2"), StreamEnd(rid)]
    assert client.outstanding_requests().sent == frozenset()


def test_an_empty_stream_and_an_error_ending_a_stream() -> None:
    client, server = RpcConnection("client"), RpcConnection("server")
    first, second = call(client, server), call(client, server)
    data = server.send(StreamEnd(first)) + server.send(StreamItem(second, 1))
    data += server.send(ErrorReply(second, ServiceCallError("lost the log file")))
    assert events(client, data) == [
        StreamEnd(first),
        StreamItem(second, 1),
        ErrorReply(second, ServiceCallError("lost the log file")),
    ]
    assert client.outstanding_requests() == server.outstanding_requests()


def test_peers_call_each_other_with_separate_id_spaces() -> None:
    parent, child = RpcConnection("peer"), RpcConnection("peer")
    down = call(parent, child, "echo/echo")
    up = call(child, parent, "orchestrator/proxy_call")  # the child calls back into its parent
    assert down == up == 1
    assert events(child, parent.send(Response(up, "proxied"))) == [Response(up, "proxied")]
    assert events(parent, child.send(Response(down, "echoed"))) == [Response(down, "echoed")]


def test_next_request_id_counts_up_and_skips_ids_in_use() -> None:
    client = RpcConnection("client")
    client.send(Request(2, "a/b"))
    assert [client.next_request_id() for _ in range(3)] == [1, 3, 4]
    refused_send(client, Request(2, "a/b"), "duplicate_request_id")


def test_connection_level_errors_go_both_ways() -> None:
    client, server = RpcConnection("client"), RpcConnection("server")
    notice = ErrorReply(None, ProtocolError("shutting down", code="going_away"))
    assert events(client, server.send(notice)) == [notice]
    assert events(server, client.send(notice)) == [notice]
    assert client.state is server.state is ConnectionState.OPEN


# -- cancellation -------------------------------------------------------------------------------


def test_cancel_reaches_the_server_and_the_late_answer_is_dropped() -> None:
    client, server = RpcConnection("client"), RpcConnection("server")
    rid = call(client, server)
    assert events(server, client.send(Cancel(rid))) == [Cancel(rid)]
    assert client.send(Cancel(rid)) == b""  # cancelling twice sends nothing
    assert client.outstanding_requests().sent == frozenset()  # nobody waits for it any more
    late = server.send(StreamItem(rid, "x")) + server.send(ErrorReply(rid, ServiceCallError("cancelled")))
    assert events(client, late) == []
    # The final answer freed the id: another answer for it is a violation.
    violation(client, raw(t="res", id=rid, result=None), "unknown_request_id")


def test_cancel_crossing_the_final_answer_is_ignored() -> None:
    client, server = RpcConnection("client"), RpcConnection("server")
    rid = call(client, server)
    answer = server.send(Response(rid, 1))
    cancel = client.send(Cancel(rid))
    assert events(server, cancel) == []  # the server already answered: nothing to cancel
    assert events(client, answer) == []  # the client gave up: the answer is dropped
    assert server.state is client.state is ConnectionState.OPEN


def test_cancel_of_unknown_ids_is_ignored_and_repeats_are_not_reported() -> None:
    client, server = RpcConnection("client"), RpcConnection("server")
    assert client.send(Cancel(42)) == b""
    assert events(server, raw(t="cancel", id=42)) == []
    rid = call(client, server)
    assert events(server, raw(t="cancel", id=rid) * 2) == [Cancel(rid)]
    assert server.outstanding_requests().received == {rid}  # still needs its final answer


# -- in-flight cap ------------------------------------------------------------------------------


def test_requests_beyond_the_in_flight_cap_are_refused_with_busy() -> None:
    client, server = RpcConnection("client"), RpcConnection("server", max_in_flight=2)
    ids = [client.next_request_id() for _ in range(3)]
    data = b"".join(client.send(Request(rid, "svc/m")) for rid in ids)
    assert events(server, data) == [Request(ids[0], "svc/m"), Request(ids[1], "svc/m")]
    refusal = server.data_to_send()
    assert server.data_to_send() == b""
    [reply] = events(client, refusal)
    assert isinstance(reply, ErrorReply)
    assert reply.id == ids[2]
    assert isinstance(reply.error, Busy)
    assert reply.error.code == "busy"
    assert events(server, client.send(Cancel(ids[0]))) == [Cancel(ids[0])]
    assert server.outstanding_requests().received == {ids[0], ids[1]}  # cancelled still counts
    events(client, server.send(ErrorReply(ids[0], ServiceCallError("cancelled"))))
    again = call(client, server)  # a slot is free again
    assert server.outstanding_requests().received == {ids[1], again}


# -- violations by the peer ---------------------------------------------------------------------


def test_response_before_request() -> None:
    violation(RpcConnection("client"), raw(t="res", id=1, result=None), "unknown_request_id")


@pytest.mark.parametrize(
    "answer",
    [
        {"t": "res", "id": 1, "result": None},
        {"t": "end", "id": 1},
        {"t": "item", "id": 1, "item": 0},
        {"t": "err", "id": 1, "error": {"code": "x", "type": "Busy", "message": "m"}},
    ],
)
def test_anything_after_the_final_answer(answer: dict[str, Any]) -> None:
    client, server = RpcConnection("client"), RpcConnection("server")
    rid = call(client, server)
    assert events(client, server.send(Response(rid, None))) == [Response(rid, None)]
    violation(client, raw(**answer), "unknown_request_id")


def test_stream_item_after_end() -> None:
    client, server = RpcConnection("client"), RpcConnection("server")
    rid = call(client, server)
    events(client, server.send(StreamItem(rid, 1)) + server.send(StreamEnd(rid)))
    violation(client, raw(t="item", id=rid, item=2), "unknown_request_id")


def test_response_after_stream_items() -> None:
    client, server = RpcConnection("client"), RpcConnection("server")
    rid = call(client, server)
    events(client, server.send(StreamItem(rid, 1)))
    violation(client, raw(t="res", id=rid, result=None), "unexpected_message")


def test_duplicate_request_id_while_outstanding() -> None:
    server = RpcConnection("server")
    assert events(server, raw(t="req", id=5, method="a/b", params={})) == [Request(5, "a/b")]
    server.send(Response(5, None))
    assert events(server, raw(t="req", id=5, method="a/b", params={})) == [Request(5, "a/b")]  # reuse after
    violation(server, raw(t="req", id=5, method="a/b", params={}), "duplicate_request_id")


@pytest.mark.parametrize(
    ("role", "wire"),
    [
        ("client", {"t": "req", "id": 1, "method": "a/b", "params": {}}),
        ("client", {"t": "cancel", "id": 1}),
        ("server", {"t": "res", "id": 1, "result": 1}),
        ("server", {"t": "item", "id": 1, "item": 1}),
        ("server", {"t": "end", "id": 1}),
        ("server", {"t": "err", "id": 1, "error": {"code": "x", "type": "Busy", "message": "m"}}),
        ("peer", {"t": "hello", "role": "cli", "version": 1, "info": {}}),
    ],
)
def test_messages_the_role_does_not_accept(role: Any, wire: dict[str, Any]) -> None:
    violation(RpcConnection(role), raw(**wire), "unexpected_message")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (encode_frame(b"\xa1\x61t\xc1\x00"), "cbor_tag_forbidden"),
        (encode_frame(b"\x80"), "cbor_not_map"),
        (encode_frame(b"\xa1\x61t\x63req"), "bad_message"),
        (b"\x00\x00\x00\x00", "empty_frame"),
        (b"\x7f\xff\xff\xff", "frame_too_large"),
    ],
)
def test_bad_frames(frame: bytes, code: str) -> None:
    violation(RpcConnection("peer"), frame, code)


def test_oversized_frame_is_refused_by_receive_data_itself() -> None:
    conn = RpcConnection("peer", max_frame_bytes=1024)
    with pytest.raises(ProtocolError) as exc:
        conn.receive_data((1025).to_bytes(4, "big"))
    assert exc.value.code == "frame_too_large"
    assert conn.state is ConnectionState.ERROR


def test_a_violation_after_good_messages_still_delivers_them_first() -> None:
    server = RpcConnection("server")
    server.receive_data(raw(t="req", id=1, method="a/b", params={}) + b"\x00\x00\x00\x01\xff")
    assert server.next_event() == Request(1, "a/b")
    with pytest.raises(ProtocolError):
        server.next_event()


# -- local misuse: refused, nothing changes ------------------------------------------------------


def test_sends_the_role_does_not_allow() -> None:
    client, server = RpcConnection("client"), RpcConnection("server")
    for msg in (Response(1, None), StreamItem(1, 1), StreamEnd(1), ErrorReply(1, Busy("x"))):
        refused_send(client, msg, "unexpected_message")
    refused_send(server, Request(1, "a/b"), "unexpected_message")
    refused_send(server, Cancel(1), "unexpected_message")
    refused_send(server, Hello("orchestrator"), "unexpected_message")


def test_answers_to_unknown_or_finished_requests() -> None:
    client, server = RpcConnection("client"), RpcConnection("server")
    refused_send(server, Response(1, None), "unknown_request_id")
    rid = call(client, server)
    server.send(Response(rid, None))
    for msg in (Response(rid, None), StreamItem(rid, 1), StreamEnd(rid), ErrorReply(rid, Busy("x"))):
        refused_send(server, msg, "unknown_request_id")


def test_unencodable_or_oversized_answers_leave_the_request_open() -> None:
    client, server = RpcConnection("client"), RpcConnection("server", max_frame_bytes=2048)
    rid = call(client, server)
    refused_send(server, Response(rid, {1, 2}), "unencodable")
    refused_send(server, StreamItem(rid, b"x" * 4096), "frame_too_large")
    reply = ErrorReply(rid, ServiceCallError("result is not encodable", code="unencodable_result"))
    assert events(client, server.send(reply)) == [reply]


# -- EOF ----------------------------------------------------------------------------------------


def test_eof_at_a_frame_boundary_closes_and_reports_outstanding_requests() -> None:
    client, server = RpcConnection("client"), RpcConnection("server")
    rid = call(client, server)
    client.receive_data(b"")
    assert client.next_event() is CLOSED
    assert client.next_event() is CLOSED
    assert client.state is ConnectionState.CLOSED
    assert client.outstanding_requests().sent == {rid}
    client.receive_data(b"")  # repeated EOF is harmless
    with pytest.raises(ProtocolError) as after:
        client.receive_data(b"more")
    assert after.value.code == "data_after_eof"
    refused_send(client, Request(client.next_request_id(), "a/b"), "connection_closed")


def test_buffered_messages_are_delivered_before_closed() -> None:
    server = RpcConnection("server")
    server.receive_data(raw(t="req", id=1, method="a/b", params={}))
    server.receive_data(b"")
    assert events(server) == [Request(1, "a/b"), CLOSED]
    assert server.outstanding_requests().received == {1}


@pytest.mark.parametrize("cut", [1, 3, 4, 10])
def test_eof_in_the_middle_of_a_frame(cut: int) -> None:
    conn = RpcConnection("server")
    conn.receive_data(raw(t="req", id=1, method="a/b", params={})[:cut])
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(ProtocolError) as exc:
        conn.next_event()
    assert exc.value.code == "truncated_frame"
    assert conn.state is ConnectionState.ERROR


# -- Hello exchange -----------------------------------------------------------------------------


def test_hello_exchange() -> None:
    cli, node = RpcConnection("client", exchange_hello=True), RpcConnection("server", exchange_hello=True)
    refused_send(cli, Request(1, "orchestrator/list_services"), "hello_required")
    data = cli.send(Hello("cli", info={"user": "ops"})) + cli.send(Request(1, "orchestrator/list_services"))
    assert events(node, data) == [
        Hello("cli", info={"user": "ops"}),
        Request(1, "orchestrator/list_services"),
    ]
    assert node.peer_hello == Hello("cli", info={"user": "ops"})
    refused_send(node, Response(1, None), "hello_required")
    assert events(cli, node.send(Hello("orchestrator")) + node.send(Response(1, {}))) == [
        Hello("orchestrator"),
        Response(1, {}),
    ]
    refused_send(cli, Hello("cli"), "unexpected_message")


def test_hello_must_come_first() -> None:
    violation(
        RpcConnection("server", exchange_hello=True),
        raw(t="req", id=1, method="a/b", params={}),
        "hello_required",
    )


def test_second_hello_is_refused() -> None:
    node = RpcConnection("server", exchange_hello=True)
    hello = raw(t="hello", role="cli", version=1, info={})
    violation(node, hello + hello, "unexpected_message")


def test_hello_of_another_version_is_refused() -> None:
    violation(
        RpcConnection("server", exchange_hello=True),
        raw(t="hello", role="cli", version=2, info={}),
        "unsupported_version",
    )
    refused_send(RpcConnection("client", exchange_hello=True), Hello("cli", 2), "unsupported_version")


def test_a_connection_error_may_replace_the_hello() -> None:
    """A node refusing a client's Hello tells it why, before (instead of) its own Hello."""
    cli, node = RpcConnection("client", exchange_hello=True), RpcConnection("server", exchange_hello=True)
    with pytest.raises(ProtocolError):
        events(node, cli.send(Hello("cli", 1)) + raw(t="hello", role="cli", version=2, info={}))
    [reply] = events(cli, node.data_to_send())
    assert isinstance(reply, ErrorReply)
    assert reply.id is None
    assert reply.error.code == "unexpected_message"  # the second Hello
    refusal = ErrorReply(None, ProtocolError("we speak version 1", code="unsupported_version"))
    assert RpcConnection("server", exchange_hello=True).send(refusal)  # sending one first is allowed


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"our_role": "master"},
        {"our_role": "peer", "max_in_flight": 0},
        {"our_role": "peer", "max_frame_bytes": 100},
        {"our_role": "peer", "max_depth": 0},
    ],
)
def test_invalid_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RpcConnection(**kwargs)


def test_refusal_notice_is_a_valid_message() -> None:
    conn = RpcConnection("client")
    with pytest.raises(ProtocolError):
        events(conn, b"\x00\x00\x00\x00")
    notice = conn.data_to_send()
    msg = message_from_wire(decode_payload(notice[4:]))
    assert isinstance(msg, ErrorReply)
    assert msg.id is None
    assert msg.error.code == "empty_frame"
