"""The control socket's protocol, spoken directly with :class:`ControlClient` and raw bytes."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from p2p_orchestrator.control.client import ControlClient
from p2p_orchestrator.control.errors import NodeNotRunning
from p2p_orchestrator.errors import OrchestratorError, ProtocolError
from p2p_orchestrator.wire import FrameDecoder, decode_payload, encode_frame, encode_payload
from tests.cli.support import NodeProcess


def test_control_methods_and_their_refusals(shared_node: NodeProcess, tmp_path: Path) -> None:
    with ControlClient(shared_node.home) as client:
        assert client.node_info == {"peer_id": shared_node.peer_id}
        assert client.call("node/id")["peer_id"] == shared_node.peer_id
        refusals = {
            "node/no_such": ({}, "unknown_method"),
            "node/trust": (
                {"peer_id": "12D3KooWPU5nExxbPjSjsxYdMqYcGWRyi5yQUdHBUqptRKFZuM6q", "role": "god"},
                "bad_role",
            ),
            "node/logs": ({"service_name": "x", "lines": -1}, "bad_params"),
            "node/export": ({"service_name": "x", "path": "relative.tar.gz"}, "bad_params"),
            "orchestrator/install_service": ({"archive_path": "relative.tar.gz"}, "bad_params"),
        }
        for method, (params, code) in refusals.items():
            with pytest.raises(OrchestratorError) as caught:
                client.call(method, params)
            assert caught.value.code == code, (method, caught.value)
        with pytest.raises(OrchestratorError) as caught:
            client.call(
                "orchestrator/install_service", {"archive_path": str(tmp_path / "x"), "archive_data": b""}
            )
        assert caught.value.code == "bad_params"
        with pytest.raises(OrchestratorError) as caught:
            client.call("orchestrator/install_service", {"archive_path": str(tmp_path / "missing.tar.gz")})
        assert caught.value.code == "unreadable_archive"
        assert client.call("orchestrator/list_services")["total_installed"] >= 0  # still usable


def test_closing_a_followed_stream_cancels_it(shared_node: NodeProcess) -> None:
    with ControlClient(shared_node.home) as client:
        events = client.stream("node/events", {"limit": 0, "follow": True})
        assert client.call("node/id")["peer_id"] == shared_node.peer_id  # meanwhile, on the same connection
        events.close()  # never started: nothing was asked
        followed = client.stream("node/events", {"limit": 1000, "follow": True})
        first = next(followed, None)  # the node's history, or nothing yet
        followed.close()  # sends Cancel: the node ends the stream and forgets it
        assert first is None or "type" in first
        assert client.call("orchestrator/get_orchestrator_status")["orchestrator_status"] == "running"


def test_a_client_that_breaks_the_protocol_is_dropped_alone(shared_node: NodeProcess) -> None:
    # a frame that is not CBOR, instead of a hello
    messages = _exchange(shared_node.home / "control.sock", b"\x00\x00\x00\x03abc")
    assert messages[0]["t"] == "hello" and messages[0]["role"] == "orchestrator"
    assert messages[-1]["t"] == "err" and messages[-1]["id"] is None
    with ControlClient(shared_node.home) as client:  # everyone else is served as before
        assert client.call("node/id")["peer_id"] == shared_node.peer_id


def _exchange(path: Path, data: bytes) -> list[dict[str, object]]:
    """Send raw bytes to the control socket; every message the node sends back until it closes."""
    raw = socket.socket(socket.AF_UNIX)
    raw.connect(str(path))
    raw.sendall(data)
    decoder, messages = FrameDecoder(), []
    while chunk := raw.recv(65536):
        decoder.feed(chunk)
        while (payload := decoder.next_frame()) is not None:
            messages.append(decode_payload(payload))
    raw.close()
    return messages


def test_a_client_of_another_protocol_version_is_refused(shared_node: NodeProcess) -> None:
    hello = encode_frame(encode_payload({"t": "hello", "role": "cli", "version": 2, "info": {}}))
    messages = _exchange(shared_node.home / "control.sock", hello)
    assert messages[0]["t"] == "hello"
    assert messages[-1]["t"] == "err"
    error = messages[-1]["error"]
    assert isinstance(error, dict) and error["code"] == "unsupported_version"


def test_no_node_is_not_running_error(tmp_path: Path) -> None:
    with pytest.raises(NodeNotRunning) as caught:
        ControlClient(tmp_path).connect()
    assert caught.value.code == "node_not_running"
    assert f"--home {tmp_path} node" in caught.value.message
    assert not isinstance(caught.value, ProtocolError)
