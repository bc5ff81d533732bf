"""Messages: wire form, round trips through CBOR, and strict refusal of anything ill-formed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from p2p_orchestrator.control.errors import NodeNotRunning
from p2p_orchestrator.errors import (
    Busy,
    ConfigError,
    ControlError,
    IdentityError,
    OrchestratorError,
    ProtocolError,
    ReleaseError,
    RemoteError,
    ServiceCallError,
    ServiceInstallationError,
)
from p2p_orchestrator.wire import (
    MAX_REQUEST_ID,
    PROTOCOL_VERSION,
    Cancel,
    ErrorReply,
    Hello,
    Message,
    Request,
    Response,
    StreamEnd,
    StreamItem,
    decode_payload,
    encode_payload,
    message_from_wire,
)

EXAMPLES: list[Message] = [
    Request(1, "orchestrator/list_services", {}),
    Request(MAX_REQUEST_ID, "echo_service/Echo_2", {"archive_data": b"\x1f\x8b", "force_reinstall": True}),
    Response(7, {"success": True, "services": {"a": {"running": False}}}),
    Response(7, None),
    Response(8, b"\x00" * 100),
    ErrorReply(3, ServiceInstallationError("archive member escapes", code="unsafe_path")),
    ErrorReply(None, ProtocolError("frame too large", code="frame_too_large")),
    ErrorReply(4, Busy("later")),
    Cancel(9),
    StreamItem(10, {"line": "Starting service: x", "ts": 1.5}),
    StreamItem(10, None),
    StreamEnd(10),
    Hello("orchestrator"),
    Hello("service", PROTOCOL_VERSION, {"service": "echo_service", "pid": 1234}),
]


def bad(obj: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as exc:
        message_from_wire(obj)
    assert exc.value.code == "bad_message"
    return exc.value


@pytest.mark.parametrize("msg", EXAMPLES, ids=repr)
def test_round_trip_through_cbor(msg: Message) -> None:
    wire = msg.to_wire()
    assert wire["t"] == type(msg).TYPE
    back = message_from_wire(decode_payload(encode_payload(wire)))
    assert back == msg
    assert type(back) is type(msg)


def test_wire_forms_are_as_documented() -> None:
    assert Request(1, "a/b", {"x": 1}).to_wire() == {"t": "req", "id": 1, "method": "a/b", "params": {"x": 1}}
    assert Response(2, [1]).to_wire() == {"t": "res", "id": 2, "result": [1]}
    assert ErrorReply(None, Busy("slow down")).to_wire() == {
        "t": "err",
        "id": None,
        "error": {"code": "busy", "type": "Busy", "message": "slow down"},
    }
    assert Cancel(3).to_wire() == {"t": "cancel", "id": 3}
    assert StreamItem(4, "x").to_wire() == {"t": "item", "id": 4, "item": "x"}
    assert StreamEnd(4).to_wire() == {"t": "end", "id": 4}
    assert Hello("cli").to_wire() == {"t": "hello", "role": "cli", "version": 1, "info": {}}


def test_error_replies_rebuild_the_error_class() -> None:
    wire = ErrorReply(5, ServiceCallError("no such method", code="unknown_method")).to_wire()
    error = message_from_wire(wire)
    assert isinstance(error, ErrorReply)
    assert isinstance(error.error, ServiceCallError)
    assert error.error.code == "unknown_method"
    unknown = message_from_wire(
        {"t": "err", "id": 5, "error": {"code": "x", "type": "Weird", "message": "m"}}
    )
    assert isinstance(unknown, ErrorReply)
    assert isinstance(unknown.error, RemoteError)


@pytest.mark.parametrize("cls", [ConfigError, IdentityError, ControlError, ReleaseError, NodeNotRunning])
def test_every_error_class_of_the_package_crosses_as_itself(cls: type[OrchestratorError]) -> None:
    """Regression: configuration, identity and control errors crossed as ``RemoteError``."""
    sent = cls(Path("/srv/node")) if cls is NodeNotRunning else cls("it went wrong", code="some_code")  # type: ignore[call-arg]
    got = message_from_wire(ErrorReply(1, sent).to_wire())
    assert isinstance(got, ErrorReply)
    expected = ControlError if cls is NodeNotRunning else cls  # a subclass crosses as its wire class
    assert type(got.error) is expected and (got.error.code, got.error.message) == (sent.code, sent.message)


def test_error_reply_equality_uses_the_wire_form() -> None:
    assert ErrorReply(1, Busy("x")) == ErrorReply(1, Busy("x"))
    assert hash(ErrorReply(1, Busy("x"))) == hash(ErrorReply(1, Busy("x")))
    assert ErrorReply(1, Busy("x")) != ErrorReply(2, Busy("x"))
    assert ErrorReply(1, Busy("x")) != ErrorReply(1, Busy("y"))
    assert ErrorReply(1, Busy("x")) != ErrorReply(1, OrchestratorError("x", code="busy"))
    assert ErrorReply(1, Busy("x")) != "ErrorReply"


@pytest.mark.parametrize("obj", [None, [], "req", 1, b"\xa0"])
def test_non_maps_are_refused(obj: Any) -> None:
    bad(obj)


@pytest.mark.parametrize("kind", [None, 1, "request", "REQ", "", b"req"])
def test_unknown_or_missing_types_are_refused(kind: Any) -> None:
    obj = {"id": 1, "method": "a/b", "params": {}}
    if kind is not None:
        obj["t"] = kind
    assert "unknown message type" in bad(obj).message


def test_missing_and_extra_fields_are_refused() -> None:
    assert "missing: params" in bad({"t": "req", "id": 1, "method": "a/b"}).message
    assert "unexpected: 'x'" in bad({"t": "res", "id": 1, "result": 1, "x": 2}).message
    assert "missing: id" in bad({"t": "err", "error": Busy("x")}).message
    bad({"t": "end"})
    bad({"t": "hello", "role": "cli", "version": 1})


@pytest.mark.parametrize("rid", [0, -1, MAX_REQUEST_ID + 1, True, False, 1.0, "1", None, [1]])
@pytest.mark.parametrize("kind", ["res", "cancel", "item", "end"])
def test_ill_typed_ids_are_refused(kind: str, rid: Any) -> None:
    obj: dict[str, Any] = {"t": kind, "id": rid}
    if kind == "res":
        obj["result"] = None
    if kind == "item":
        obj["item"] = None
    assert ".id must be an integer" in bad(obj).message


@pytest.mark.parametrize(
    "method",
    [
        "",
        "list_services",
        "Orchestrator/list",
        "9svc/m",
        "svc/",
        "/m",
        "svc/9m",
        "svc/m/x",
        "svc-x/m",
        "svc/m-x",
        "svc/m\n",
        "s" * 65 + "/m",
        "svc/" + "m" * 129,
        7,
        None,
    ],
)
def test_bad_method_names_are_refused(method: Any) -> None:
    bad({"t": "req", "id": 1, "method": method, "params": {}})


def test_method_names_at_the_length_limits_are_fine() -> None:
    Request(1, "s" * 64 + "/" + "M" * 128)


@pytest.mark.parametrize("params", [None, [], "x", {1: 2}])
def test_params_must_be_a_map_with_text_keys(params: Any) -> None:
    bad({"t": "req", "id": 1, "method": "a/b", "params": params})


@pytest.mark.parametrize(
    "error",
    [
        None,
        "boom",
        {"code": "x", "type": "Busy"},
        {"code": "x", "type": "Busy", "message": "m", "extra": "e"},
        {"code": 1, "type": "Busy", "message": "m"},
        {"code": "x", "type": None, "message": "m"},
    ],
)
def test_error_objects_must_be_exact(error: Any) -> None:
    bad({"t": "err", "id": 1, "error": error})


@pytest.mark.parametrize(
    "fields",
    [
        {"role": "", "version": 1, "info": {}},
        {"role": "CLI", "version": 1, "info": {}},
        {"role": "a" * 33, "version": 1, "info": {}},
        {"role": 1, "version": 1, "info": {}},
        {"role": "cli", "version": 0, "info": {}},
        {"role": "cli", "version": True, "info": {}},
        {"role": "cli", "version": "1", "info": {}},
        {"role": "cli", "version": 1, "info": []},
    ],
)
def test_bad_hellos_are_refused(fields: dict[str, Any]) -> None:
    bad({"t": "hello", **fields})


def test_local_construction_is_checked_too() -> None:
    with pytest.raises(ProtocolError):
        Request(0, "a/b")
    with pytest.raises(ProtocolError):
        Request(1, "nope")
    with pytest.raises(ProtocolError):
        ErrorReply(1, ValueError("not an OrchestratorError"))  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        Hello("Bad Role")


def test_a_hello_of_another_version_parses() -> None:
    """Parsing accepts any version so the connection can answer with a precise error."""
    hello = message_from_wire({"t": "hello", "role": "cli", "version": 2, "info": {}})
    assert hello == Hello("cli", 2)
